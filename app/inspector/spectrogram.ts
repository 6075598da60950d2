/**
 * The audio view's spectrogram: log power of a short-time Fourier transform (Hann window of 512, hop
 * 256) computed with fft.js (radix-4, twiddle tables built once per size), in a Web Worker
 * (spectrogram-worker.ts) so a long waveform does not block the page.
 */
import FFT from "fft.js";

export interface Spectrogram {
  /** [frames × bins] power in dB (10·log10(|X|² + 1e-10)), frame-major. */
  db: Float32Array;
  frames: number;
  bins: number;
  max: number;
}

export function spectrogramDb(x: Float32Array, N = 512, hop = 256): Spectrogram {
  const fft = new FFT(N);
  const window = Float64Array.from({ length: N }, (_, i) => 0.5 - 0.5 * Math.cos((2 * Math.PI * i) / N));
  const frames = Math.max(1, Math.floor((x.length - N) / hop) + 1);
  const bins = N / 2;
  const db = new Float32Array(frames * bins);
  const frame = new Float64Array(N);
  const out = fft.createComplexArray();
  let max = -Infinity;
  for (let f = 0; f < frames; f++) {
    for (let i = 0; i < N; i++) frame[i] = (x[f * hop + i] ?? 0) * window[i]!;
    fft.realTransform(out, frame);
    for (let b = 0; b < bins; b++) {
      const v = 10 * Math.log10(out[2 * b]! ** 2 + out[2 * b + 1]! ** 2 + 1e-10);
      db[f * bins + b] = v;
      if (v > max) max = v;
    }
  }
  return { db, frames, bins, max };
}
