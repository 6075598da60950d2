import { describe, expect, it } from "vitest";
import { CHUNK_FRAMES, CHUNK_SAMPLES, chunkSamples, logMelChunk, melFilterbank, powerSpectrum, resample, resampleYielding } from "@/models/encoders/mel";

const SR = 16000;
const sine = (f: number, seconds: number, rate = SR, amp = 0.5) => Float32Array.from({ length: Math.round(seconds * rate) }, (_, i) => amp * Math.sin((2 * Math.PI * f * i) / rate));

/** Slaney mel-bin centres written independently (librosa's formula, htk=False): Hz of mel points 1..n. */
function binCentres(nMels: number): number[] {
  const toMel = (f: number) => (f < 1000 ? (3 * f) / 200 : 15 + (27 * Math.log(f / 1000)) / Math.log(6.4));
  const toHz = (m: number) => (m < 15 ? (200 * m) / 3 : 1000 * 6.4 ** ((m - 15) / 27));
  const top = toMel(8000);
  return Array.from({ length: nMels }, (_, i) => toHz((top * (i + 1)) / (nMels + 1)));
}

/** Mean over frames of each mel bin (frames [from, to)). */
function binMeans(mel: Float32Array, nMels: number, from = 20, to = 80): number[] {
  return Array.from({ length: nMels }, (_, m) => {
    let s = 0;
    for (let t = from; t < to; t++) s += mel[m * CHUNK_FRAMES + t]!;
    return s / (to - from);
  });
}
const argmax = (v: number[]) => v.reduce((best, x, i) => (x > v[best]! ? i : best), 0);

describe("Whisper log-mel", () => {
  it("filterbank: 128 Slaney triangles over 201 FFT bins with equal area", () => {
    const fb = melFilterbank(128);
    expect(fb).toHaveLength(128 * 201);
    const centres = binCentres(128);
    // Each filter's area (sum over FFT bins × 40 Hz) is ≈ 1 (Slaney norm) for the wide filters above 1 kHz.
    for (const m of [60, 90, 127]) {
      let area = 0;
      for (let k = 0; k < 201; k++) area += fb[m * 201 + k]! * 40;
      expect(area).toBeCloseTo(1, 1);
    }
    // A filter is zero far from its centre.
    const m = 100;
    const k = Math.round(centres[m]! / 40);
    expect(fb[m * 201 + k]).toBeGreaterThan(0);
    expect(fb[m * 201 + Math.min(200, k + 30)]).toBe(0);
  });

  it.each([440, 1000, 2500, 5000])("a %i Hz sine peaks in the mel bin whose centre is nearest", (f) => {
    const mel = logMelChunk(sine(f, 1), 128);
    expect(mel).toHaveLength(128 * 3000);
    const centres = binCentres(128);
    const nearest = argmax(centres.map((c) => -Math.abs(c - f)));
    expect(argmax(binMeans(mel, 128))).toBe(nearest);
  });

  it("80 bins work too (n_mels from the config)", () => {
    const mel = logMelChunk(sine(3000, 1), 80);
    const centres = binCentres(80);
    expect(argmax(binMeans(mel, 80))).toBe(argmax(centres.map((c) => -Math.abs(c - 3000))));
  });

  it("silence gives the constant floor (log10(1e-10) + 4)/4 = −1.5", () => {
    const mel = logMelChunk(new Float32Array(SR * 5), 128);
    expect(mel.every((v) => v === -1.5)).toBe(true);
  });

  it("clamps at max − 8 and maps by (x + 4)/4; padding after the signal sits at the floor", () => {
    const mel = logMelChunk(sine(1000, 2), 128);
    let max = -Infinity;
    let min = Infinity;
    for (const v of mel) {
      max = Math.max(max, v);
      min = Math.min(min, v);
    }
    expect(min).toBeCloseTo(max - 2, 5); // 8 in log10 units / 4
    // Frame 2000 (20 s) is in the zero padding.
    for (let m = 0; m < 128; m++) expect(mel[m * 3000 + 2000]).toBeCloseTo(min, 6);
  });

  it("chunks a 65-s signal into 30 + 30 + 5 s", () => {
    const chunks = chunkSamples(new Float32Array(65 * SR));
    expect(chunks.map((c) => c.length)).toEqual([CHUNK_SAMPLES, CHUNK_SAMPLES, 5 * SR]);
    expect(chunkSamples(new Float32Array(60 * SR))).toHaveLength(2);
    expect(chunkSamples(new Float32Array(10))).toHaveLength(1);
  });
});

describe("resampling (Kaiser-windowed sinc)", () => {
  it("keeps an in-band tone (44.1 kHz → 16 kHz and 8 kHz → 16 kHz)", () => {
    for (const from of [44100, 8000, 22050, 48000]) {
      const y = resample(sine(1000, 1, from), from);
      expect(y.length).toBe(SR);
      const want = sine(1000, 1, SR);
      let err = 0;
      for (let i = 800; i < SR - 800; i++) err = Math.max(err, Math.abs(y[i]! - want[i]!));
      expect(err, `from ${from} Hz`).toBeLessThan(2e-3);
    }
  });

  it("removes tones above the new Nyquist instead of aliasing them (12 kHz at 48 kHz)", () => {
    const y = resample(sine(12000, 1, 48000), 48000);
    let rms = 0;
    for (let i = 800; i < SR - 800; i++) rms += y[i]! ** 2;
    rms = Math.sqrt(rms / (SR - 1600));
    expect(rms).toBeLessThan(1e-3); // the input's RMS is 0.35
  });

  it("is the identity at 16 kHz", () => {
    const x = sine(300, 0.1);
    expect(resample(x, 16000)).toEqual(x);
  });

  it("resampleYielding gives the same samples, letting the event loop in between stretches (an hour of audio held the server ~10 s)", async () => {
    const x = sine(440, 70, 8000); // 70 s: three 30-s stretches
    let turns = 0;
    const timer = setInterval(() => turns++, 0);
    const y = await resampleYielding(x, 8000);
    clearInterval(timer);
    expect(y).toEqual(resample(x, 8000));
    expect(turns).toBeGreaterThanOrEqual(2);
    const stop = new AbortController();
    stop.abort();
    await expect(resampleYielding(x, 8000, 16000, stop.signal)).rejects.toThrow();
  });
});

describe("the 16×25 FFT", () => {
  it("matches a direct 400-point DFT", () => {
    const frame = Float64Array.from({ length: 400 }, (_, i) => Math.sin(i * 0.37) + 0.3 * Math.cos(i * i * 0.01) - 0.1);
    const got = powerSpectrum(frame);
    let maxErr = 0;
    for (let k = 0; k <= 200; k++) {
      let re = 0;
      let im = 0;
      for (let n = 0; n < 400; n++) {
        re += frame[n]! * Math.cos((2 * Math.PI * k * n) / 400);
        im -= frame[n]! * Math.sin((2 * Math.PI * k * n) / 400);
      }
      maxErr = Math.max(maxErr, Math.abs(got[k]! - (re * re + im * im)) / (1 + re * re + im * im));
    }
    expect(maxErr).toBeLessThan(1e-10);
  });
});
