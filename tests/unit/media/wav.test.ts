import { describe, expect, it } from "vitest";
import { decodeWavMono, decodeWavMonoYielding, parseWav, WavError } from "../../../engine/media/wav";
import { makeWav, sine } from "../../fixtures/media/make";

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

const FRAMES = 1000;
const left = sine(FRAMES, 440, 16000, 0.8);
const right = sine(FRAMES, 97, 16000, 0.5);
const mono = left.map((x, i) => (x + right[i]!) / 2);

describe("WAV: header and decode, every supported encoding", () => {
  it.each([
    ["pcm", 8, false, 2 / 128],
    ["pcm", 16, false, 2 / 32768],
    ["pcm", 24, false, 2 / 8388608],
    ["pcm", 32, false, 1e-7],
    ["float", 32, false, 1e-7],
    ["float", 64, false, 1e-7], // the output is Float32,
    ["pcm", 24, true, 2 / 8388608],
    ["float", 32, true, 1e-7],
  ] as const)("%s %d-bit (extensible: %s) stereo decodes to the mean of the channels", (format, bits, extensible, tol) => {
    const wav = makeWav({ sampleRate: 16000, channels: [left, right], bits, format, extensible });
    const { info, samples } = decodeWavMono(wav);
    expect(info).toMatchObject({ sampleRate: 16000, channels: 2, bitsPerSample: bits, format, frames: FRAMES });
    expect(info.durationSec).toBeCloseTo(FRAMES / 16000, 9);
    const d = maxDiff(samples, mono);
    expect(d, `max |decoded - generated| = ${d}`).toBeLessThanOrEqual(tol);
  });

  it("the yielding decode gives the same samples and lets the event loop in between stretches (a 192 MB WAV held the server 6.6 s)", async () => {
    const n = 2_500_000; // ~2.4 stretches of 2^20 frames
    const l = sine(n, 440, 48000, 0.8), r = sine(n, 97, 48000, 0.5);
    const wav = makeWav({ sampleRate: 48000, channels: [l, r], bits: 16, format: "pcm" });
    let turns = 0;
    const timer = setInterval(() => turns++, 0);
    const yielded = await decodeWavMonoYielding(wav);
    clearInterval(timer);
    const whole = decodeWavMono(wav).samples;
    expect(yielded.samples.length).toBe(whole.length);
    // compared in a loop: toEqual on 2.5 M elements took most of a 30-s timeout on a loaded machine
    let firstDiff = -1;
    for (let i = 0; i < whole.length && firstDiff < 0; i++) if (!Object.is(yielded.samples[i], whole[i])) firstDiff = i;
    expect(firstDiff).toBe(-1);
    expect(turns).toBeGreaterThan(0);
    const stop = new AbortController();
    stop.abort();
    await expect(decodeWavMonoYielding(wav, stop.signal)).rejects.toThrow();
  });

  it("decodes mono without change and handles full-scale values", () => {
    const x = Float64Array.from([0, 1, -1, 0.5, -0.5]);
    const { samples } = decodeWavMono(makeWav({ channels: [x], bits: 16, format: "pcm" }));
    expect(maxDiff(samples, x)).toBeLessThanOrEqual(2 / 32768);
  });

  it("walks past other chunks, including odd-sized ones with a pad byte", () => {
    const wav = makeWav({ channels: [left], bits: 16, format: "pcm", extraChunk: { id: "LIST", body: new Uint8Array(7) } });
    const { info, samples } = decodeWavMono(wav);
    expect(info.frames).toBe(FRAMES);
    expect(maxDiff(samples, left)).toBeLessThanOrEqual(2 / 32768);
  });

  it("reads a streamed file whose data size is 0xFFFFFFFF to the end", () => {
    const wav = makeWav({ channels: [left], bits: 16, format: "pcm", dataSizeOverride: 0xffffffff });
    expect(parseWav(wav).frames).toBe(FRAMES);
  });
});

describe("WAV: errors", () => {
  const good = makeWav({ channels: [left], bits: 16, format: "pcm" });
  const err = (b: Uint8Array): WavError => {
    try {
      parseWav(b);
    } catch (e) {
      expect(e).toBeInstanceOf(WavError);
      return e as WavError;
    }
    throw new Error("expected parseWav to throw");
  };

  it("truncated data is corrupt and says how much is missing", () => {
    const e = err(good.subarray(0, good.length - 100));
    expect(e.code).toBe("corrupt");
    expect(e.message).toMatch(/truncated.*2000 bytes.*1900/);
  });
  it("a file cut inside the header has no data chunk", () => {
    expect(err(good.subarray(0, 30)).message).toMatch(/fmt chunk is truncated|no data chunk/);
    expect(err(good.subarray(0, 40)).message).toMatch(/no data chunk/);
  });
  it("not RIFF/WAVE at all", () => {
    expect(err(new TextEncoder().encode("RIFF....AVI LIST")).message).toMatch(/not a WAV/);
  });
  it("A-law and odd bit depths are unsupported, with a hint", () => {
    const alaw = err(makeWav({ channels: [left], bits: 8, format: "pcm", codecOverride: 6 }));
    expect(alaw.code).toBe("unsupported");
    expect(alaw.message).toMatch(/A-law.*PCM or float/);
    expect(err(makeWav({ channels: [left], bits: 64, format: "pcm" })).code).toBe("unsupported");
  });
  it("an inconsistent header is corrupt", () => {
    const bad = good.slice();
    new DataView(bad.buffer).setUint16(32, 3, true); // block align 3 for mono 16-bit
    expect(err(bad).message).toMatch(/inconsistent/);
  });
});
