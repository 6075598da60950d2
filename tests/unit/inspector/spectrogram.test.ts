import { describe, expect, it } from "vitest";
import { spectrogramDb } from "@/app/inspector/spectrogram";
import { SeededRandom } from "@/models/io/seeded-random";

/** Plain reference: Hann-windowed DFT by its definition, in float64 (no FFT). */
function referenceDb(x: Float32Array, N: number, hop: number): Float64Array {
  const frames = Math.max(1, Math.floor((x.length - N) / hop) + 1);
  const bins = N / 2;
  const out = new Float64Array(frames * bins);
  for (let f = 0; f < frames; f++) {
    for (let b = 0; b < bins; b++) {
      let re = 0;
      let im = 0;
      for (let n = 0; n < N; n++) {
        const v = (x[f * hop + n] ?? 0) * (0.5 - 0.5 * Math.cos((2 * Math.PI * n) / N));
        re += v * Math.cos((2 * Math.PI * b * n) / N);
        im -= v * Math.sin((2 * Math.PI * b * n) / N);
      }
      out[f * bins + b] = 10 * Math.log10(re * re + im * im + 1e-10);
    }
  }
  return out;
}

describe("spectrogram (fft.js)", () => {
  it("equals a plain DFT on seeded random signals and a tone, within 1e-3 dB where the power is above the floor", () => {
    let worst = 0;
    for (const seed of [1, 2, 3]) {
      const rng = new SeededRandom(seed);
      const n = 512 + 256 * (2 + seed);
      const x = Float32Array.from({ length: n }, (_, i) => 0.5 * Math.sin(2 * Math.PI * 0.05 * seed * i) + 0.2 * rng.normal());
      for (const [N, hop] of [[512, 256], [64, 32]] as const) {
        const got = spectrogramDb(x, N, hop);
        const want = referenceDb(x, N, hop);
        expect(got.frames * got.bins).toBe(want.length);
        for (let i = 0; i < want.length; i++) if (want[i]! > -60) worst = Math.max(worst, Math.abs(got.db[i]! - want[i]!));
        expect(got.max).toBeCloseTo(Math.max(...want), 2);
      }
    }
    console.log(`spectrogram vs plain DFT: max |Δ| ${worst.toExponential(2)} dB`);
    expect(worst).toBeLessThan(1e-3);
  });

  it("a pure tone peaks at its bin", () => {
    const x = Float32Array.from({ length: 4096 }, (_, i) => Math.sin((2 * Math.PI * 32 * i) / 512));
    const s = spectrogramDb(x);
    const row = s.db.subarray(3 * s.bins, 4 * s.bins);
    expect(row.indexOf(Math.max(...row))).toBe(32);
  });
});
