/**
 * The audio front end of the Whisper-style encoder: resampling to 16 kHz, 30-s chunking and Whisper's
 * log-mel spectrogram (as openai/whisper `log_mel_spectrogram` and HF `WhisperFeatureExtractor`).
 *
 * Log-mel of one chunk (n samples, n ≤ 480 000):
 *   1. zero-pad to 480 000 samples (30 s at 16 kHz);
 *   2. STFT: n_fft 400, hop 160, periodic Hann window w[n] = ½ − ½cos(2πn/400), centred frames
 *      (the signal is reflect-padded by 200 on both sides) → 3001 frames; the last is dropped → 3000;
 *   3. power |X_k|² for k = 0..200 (bin k is at 40·k Hz);
 *   4. mel filterbank [n_mels, 201]: librosa `filters.mel(sr=16000, n_fft=400, n_mels, htk=False,
 *      norm="slaney")` — Slaney mel scale (linear below 1 kHz at 200/3 Hz per mel, logarithmic above with
 *      27 mels per factor 6.4), n_mels + 2 points evenly spaced in mel from 0 to 8 kHz, triangles between
 *      neighbouring points, each scaled by 2/(f_{i+2} − f_i) (equal area);
 *   5. log10(max(mel, 1e-10)); clamp below at (max over the chunk) − 8; then (x + 4)/4.
 * Output layout: [n_mels, 3000] row-major (a bin's frames are contiguous), as the encoder's input.
 */
import { nextTurn } from "../../engine/turns";

export const SAMPLE_RATE = 16_000;
export const N_FFT = 400;
export const HOP = 160;
export const CHUNK_SECONDS = 30;
export const CHUNK_SAMPLES = CHUNK_SECONDS * SAMPLE_RATE;
export const CHUNK_FRAMES = CHUNK_SAMPLES / HOP; // 3000
const N_BINS = N_FFT / 2 + 1; // 201

// ---------------------------------------------------------------------------------------------
// Slaney mel scale and filterbank

const F_SP = 200 / 3;
const MIN_LOG_HZ = 1000;
const MIN_LOG_MEL = MIN_LOG_HZ / F_SP; // 15
const LOGSTEP = Math.log(6.4) / 27;

export function hzToMel(f: number): number {
  return f >= MIN_LOG_HZ ? MIN_LOG_MEL + Math.log(f / MIN_LOG_HZ) / LOGSTEP : f / F_SP;
}

export function melToHz(m: number): number {
  return m >= MIN_LOG_MEL ? MIN_LOG_HZ * Math.exp(LOGSTEP * (m - MIN_LOG_MEL)) : F_SP * m;
}

/** The n_mels + 2 edge frequencies in Hz (bin i spans points i..i+2 and peaks at point i+1). */
export function melPointsHz(nMels: number, sampleRate = SAMPLE_RATE): number[] {
  const top = hzToMel(sampleRate / 2);
  return Array.from({ length: nMels + 2 }, (_, i) => melToHz((top * i) / (nMels + 1)));
}

const filterCache = new Map<number, Float32Array>();

/** Slaney-normalised triangular filters [nMels, 201] (see the file comment). */
export function melFilterbank(nMels: number): Float32Array {
  const cached = filterCache.get(nMels);
  if (cached) return cached;
  const pts = melPointsHz(nMels);
  const out = new Float32Array(nMels * N_BINS);
  for (let m = 0; m < nMels; m++) {
    const [lo, mid, hi] = [pts[m]!, pts[m + 1]!, pts[m + 2]!];
    const enorm = 2 / (hi - lo);
    for (let k = 0; k < N_BINS; k++) {
      const f = (k * SAMPLE_RATE) / N_FFT;
      const lower = (f - lo) / (mid - lo);
      const upper = (hi - f) / (hi - mid);
      out[m * N_BINS + k] = Math.max(0, Math.min(lower, upper)) * enorm;
    }
  }
  filterCache.set(nMels, out);
  return out;
}

// ---------------------------------------------------------------------------------------------
// STFT power and log-mel

/*
 * The 400-point DFT of a real frame, by one Cooley–Tukey step with N = N1·N2 = 16·25 (n = 25·n1 + n2,
 * k = k1 + 16·k2):  X[k] = Σ_{n2} W_400^{n2·k1} · (Σ_{n1} x[25·n1 + n2] · W_16^{n1·k1}) · W_25^{n2·k2},
 * W_N = e^{−2πi/N}; only k = 0..200 are formed. About 5× fewer multiplications than the direct sum.
 */
const N1 = 16;
const N2 = 25;
let fftTables: { c16: Float64Array; s16: Float64Array; ctw: Float64Array; stw: Float64Array; c25: Float64Array; s25: Float64Array; window: Float64Array } | undefined;

function tables() {
  if (!fftTables) {
    const trig = (n: number, rows: number, cols: number, f: (r: number, c: number) => number) => {
      const c = new Float64Array(rows * cols);
      const s = new Float64Array(rows * cols);
      for (let r = 0; r < rows; r++)
        for (let q = 0; q < cols; q++) {
          const a = (2 * Math.PI * (f(r, q) % n)) / n;
          c[r * cols + q] = Math.cos(a);
          s[r * cols + q] = -Math.sin(a);
        }
      return [c, s] as const;
    };
    const [c16, s16] = trig(N1, N1, N1, (k1, n1) => k1 * n1); // [k1][n1]
    const [ctw, stw] = trig(N_FFT, N2, N1, (n2, k1) => n2 * k1); // [n2][k1]
    const [c25, s25] = trig(N2, N2, N2, (k2, n2) => k2 * n2); // [k2][n2]
    const window = Float64Array.from({ length: N_FFT }, (_, n) => 0.5 - 0.5 * Math.cos((2 * Math.PI * n) / N_FFT));
    fftTables = { c16, s16, ctw, stw, c25, s25, window };
  }
  return fftTables;
}

const scratchRe = new Float64Array(N2 * N1);
const scratchIm = new Float64Array(N2 * N1);

/** |X_k|² for k = 0..200 of a real 400-sample frame (already windowed), into `power`. */
export function powerSpectrum(frame: Float64Array, power: Float64Array = new Float64Array(N_BINS)): Float64Array {
  const { c16, s16, ctw, stw, c25, s25 } = tables();
  const bre = scratchRe; // [n2][k1]
  const bim = scratchIm;
  for (let n2 = 0; n2 < N2; n2++) {
    for (let k1 = 0; k1 < N1; k1++) {
      let re = 0;
      let im = 0;
      const row = k1 * N1;
      for (let n1 = 0; n1 < N1; n1++) {
        const v = frame[N2 * n1 + n2]!;
        re += v * c16[row + n1]!;
        im += v * s16[row + n1]!;
      }
      const tc = ctw[n2 * N1 + k1]!;
      const ts = stw[n2 * N1 + k1]!;
      bre[n2 * N1 + k1] = re * tc - im * ts;
      bim[n2 * N1 + k1] = re * ts + im * tc;
    }
  }
  for (let k = 0; k < N_BINS; k++) {
    const k1 = k % N1;
    const k2 = (k - k1) / N1;
    let re = 0;
    let im = 0;
    const row = k2 * N2;
    for (let n2 = 0; n2 < N2; n2++) {
      const c = c25[row + n2]!;
      const sn = s25[row + n2]!;
      const a = bre[n2 * N1 + k1]!;
      const b = bim[n2 * N1 + k1]!;
      re += a * c - b * sn;
      im += a * sn + b * c;
    }
    power[k] = re * re + im * im;
  }
  return power;
}

/**
 * Whisper log-mel of one chunk (at most 30 s of 16-kHz samples; shorter chunks are zero-padded).
 * Returns [nMels, 3000] row-major.
 */
export function logMelChunk(samples: Float32Array, nMels = 128): Float32Array {
  if (samples.length > CHUNK_SAMPLES) throw new Error(`logMelChunk: ${samples.length} samples is more than one 30-s chunk`);
  const { window } = tables();
  const filters = melFilterbank(nMels);
  const pad = N_FFT / 2;
  // Padded signal: reflect(200) | samples zero-padded to 480 000 | reflect(200).
  const x = new Float64Array(CHUNK_SAMPLES + 2 * pad);
  for (let i = 0; i < samples.length; i++) x[pad + i] = samples[i]!;
  for (let i = 1; i <= pad; i++) {
    x[pad - i] = x[pad + i]!;
    x[pad + CHUNK_SAMPLES - 1 + i] = x[pad + CHUNK_SAMPLES - 1 - i]!;
  }
  const mel = new Float32Array(nMels * CHUNK_FRAMES);
  const frame = new Float64Array(N_FFT);
  const power = new Float64Array(N_BINS);
  let maxLog = -Infinity;
  for (let t = 0; t < CHUNK_FRAMES; t++) {
    const start = t * HOP;
    let any = false;
    for (let n = 0; n < N_FFT; n++) {
      const v = x[start + n]! * window[n]!;
      frame[n] = v;
      if (v !== 0) any = true;
    }
    if (any) {
      powerSpectrum(frame, power);
    } else {
      power.fill(0);
    }
    for (let m = 0; m < nMels; m++) {
      let s = 0;
      const row = m * N_BINS;
      for (let k = 0; k < N_BINS; k++) s += filters[row + k]! * power[k]!;
      const l = Math.log10(Math.max(s, 1e-10));
      mel[m * CHUNK_FRAMES + t] = l;
      if (l > maxLog) maxLog = l;
    }
  }
  const floor = maxLog - 8;
  for (let i = 0; i < mel.length; i++) mel[i] = (Math.max(mel[i]!, floor) + 4) / 4;
  return mel;
}

/** Splits 16-kHz samples into 30-s chunks (the last one shorter; at least one chunk). */
export function chunkSamples(samples: Float32Array): Float32Array[] {
  const n = Math.max(1, Math.ceil(samples.length / CHUNK_SAMPLES));
  return Array.from({ length: n }, (_, i) => samples.subarray(i * CHUNK_SAMPLES, Math.min(samples.length, (i + 1) * CHUNK_SAMPLES)));
}

// ---------------------------------------------------------------------------------------------
// Resampling

/** Zero crossings of the sinc on each side, the window's Kaiser β, and the cutoff relative to the lower Nyquist. */
const SINC_ZEROS = 32;
const KAISER_BETA = 8.6;
const ROLLOFF = 0.94;
const TABLE_PER_ZERO = 512;

function besselI0(x: number): number {
  let sum = 1;
  let term = 1;
  for (let k = 1; k < 50; k++) {
    term *= (x / (2 * k)) ** 2;
    sum += term;
    if (term < sum * 1e-17) break;
  }
  return sum;
}

let sincTable: Float64Array | undefined;

/** Kaiser-windowed sinc sampled at TABLE_PER_ZERO points per zero crossing, for |x| in [0, SINC_ZEROS]. */
function kernelTable(): Float64Array {
  if (!sincTable) {
    const n = SINC_ZEROS * TABLE_PER_ZERO + 2;
    sincTable = new Float64Array(n);
    const i0b = besselI0(KAISER_BETA);
    for (let i = 0; i < n; i++) {
      const x = i / TABLE_PER_ZERO;
      const r = x / SINC_ZEROS;
      const w = r >= 1 ? 0 : besselI0(KAISER_BETA * Math.sqrt(1 - r * r)) / i0b;
      sincTable[i] = (x === 0 ? 1 : Math.sin(Math.PI * x) / (Math.PI * x)) * w;
    }
  }
  return sincTable;
}

/**
 * Band-limited resampling with a Kaiser-windowed sinc (β 8.6, 32 zero crossings per side, as resampy's
 * "kaiser_best" family). The cutoff is 0.94 × the lower of the two Nyquist frequencies, so downsampling
 * low-passes first (no aliasing: a 12-kHz tone at 48 kHz does not fold to 4 kHz at 16 kHz). Output sample n
 * is Σ_k x[k]·fc·h(fc·(n/r − k)) with r = toRate/fromRate and fc = 0.94·min(1, r); the kernel is tabulated
 * at 512 points per zero crossing and linearly interpolated, and for L ≤ 4096 (L/M the rate ratio in lowest
 * terms: 160/441 for 44.1 kHz) the taps of each of the L phases are computed once. Samples outside the input
 * count as zero.
 */
export function resample(x: Float32Array, fromRate: number, toRate = SAMPLE_RATE): Float32Array {
  const r = resampler(x, fromRate, toRate);
  r.fill(0, r.out.length);
  return r.out;
}

/**
 * `resample`, the same numbers, computed a stretch of output at a time with a turn of the event loop between
 * stretches: an hour of 8-kHz audio is ~10 s of work that would otherwise hold the web process.
 */
export async function resampleYielding(x: Float32Array, fromRate: number, toRate = SAMPLE_RATE, signal?: AbortSignal): Promise<Float32Array> {
  const r = resampler(x, fromRate, toRate);
  const stretch = 30 * toRate;
  for (let n = 0; n < r.out.length; n += stretch) {
    r.fill(n, Math.min(r.out.length, n + stretch));
    await nextTurn();
    signal?.throwIfAborted();
  }
  return r.out;
}

/** The output array of a resampling and the function that fills its samples [n0, n1). */
function resampler(x: Float32Array, fromRate: number, toRate: number): { out: Float32Array; fill(n0: number, n1: number): void } {
  if (!(fromRate > 0 && toRate > 0 && Number.isInteger(fromRate) && Number.isInteger(toRate))) throw new Error(`resample: bad rates ${fromRate} → ${toRate}`);
  if (fromRate === toRate) return { out: x.slice(), fill: () => {} };
  const r = toRate / fromRate;
  const fc = ROLLOFF * Math.min(1, r);
  const half = SINC_ZEROS / fc; // kernel half-width in input samples
  const table = kernelTable();
  const kernel = (dist: number): number => {
    const pos = Math.abs(dist) * fc * TABLE_PER_ZERO;
    const i = Math.floor(pos);
    if (i >= table.length - 1) return 0;
    return table[i]! + (pos - i) * (table[i + 1]! - table[i]!);
  };
  const nOut = Math.round(x.length * r);
  const out = new Float32Array(nOut);
  // Output n sits at input position t = n·M/L (L/M = toRate/fromRate in lowest terms); its fractional part
  // takes only L values, so the taps of each phase are computed once (polyphase), unless L is huge.
  const g = gcd(fromRate, toRate);
  const L = toRate / g;
  const M = fromRate / g;
  const J = Math.ceil(half) + 1;
  const taps = 2 * J + 1;
  const phases = L <= 4096 ? L : 0;
  const coef = new Float64Array(phases * taps);
  for (let p = 0; p < phases; p++) for (let j = -J; j <= J; j++) coef[p * taps + j + J] = fc * kernel(p / L - j);
  const fill = (n0: number, n1: number) => {
    for (let n = n0; n < n1; n++) {
      const base = Math.floor((n * M) / L); // floor(t)
      const p = (n * M) % L;
      let s = 0;
      const lo = Math.max(-J, -base);
      const hi = Math.min(J, x.length - 1 - base);
      if (phases) {
        const row = p * taps + J;
        for (let j = lo; j <= hi; j++) s += x[base + j]! * coef[row + j]!;
      } else {
        const frac = p / L;
        for (let j = lo; j <= hi; j++) s += x[base + j]! * fc * kernel(frac - j);
      }
      out[n] = s;
    }
  };
  return { out, fill };
}

function gcd(a: number, b: number): number {
  while (b) [a, b] = [b, a % b];
  return a;
}
