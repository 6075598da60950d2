import { describe, expect, it } from "vitest";
import { decodeWavMono, parseWav } from "@/engine/media/wav";
import { SeededRandom } from "@/models/io/seeded-random";
import { encodeWav16 } from "@/models/io/wav-write";

describe("16-bit PCM WAV writer", () => {
  it("round-trips through parseWav / decodeWavMono within one 16-bit step (half a step below +1)", () => {
    const rng = new SeededRandom(1);
    const x = new Float32Array(24000 + 7).map(() => rng.range(-1, 1));
    x[0] = -1;
    x[1] = 1;
    x[2] = 0;
    const bytes = encodeWav16(x);
    expect(bytes.length).toBe(44 + 2 * x.length);
    const info = parseWav(bytes);
    expect(info).toMatchObject({ sampleRate: 24000, channels: 1, bitsPerSample: 16, format: "pcm", frames: x.length });
    expect(info.durationSec).toBeCloseTo(x.length / 24000, 12);
    const { samples } = decodeWavMono(bytes);
    let d = 0;
    for (let i = 0; i < x.length; i++) d = Math.max(d, Math.abs(samples[i]! - x[i]!));
    console.log(`WAV round trip: max |Δ| = ${d.toExponential(2)} (1/32768 = ${(1 / 32768).toExponential(2)})`);
    expect(d).toBeLessThanOrEqual(1 / 32768);
    expect(samples[0]).toBe(-1);
    expect(samples[1]).toBeCloseTo(32767 / 32768, 12);
    expect(samples[2]).toBe(0);
  });

  it("clamps out-of-range samples, silences NaN, and writes an empty file", () => {
    const { samples } = decodeWavMono(encodeWav16(Float32Array.from([2, -3, NaN])));
    expect(Array.from(samples)).toEqual([32767 / 32768, -1, 0]);
    const empty = parseWav(encodeWav16(new Float32Array(0)));
    expect(empty.frames).toBe(0);
  });

  it("writes other rates and interleaved channels", () => {
    const info = parseWav(encodeWav16(new Float32Array(8), { sampleRate: 16000, channels: 2 }));
    expect(info).toMatchObject({ sampleRate: 16000, channels: 2, frames: 4 });
    expect(() => encodeWav16(new Float32Array(3), { channels: 2 })).toThrow(/channels/);
  });
});
