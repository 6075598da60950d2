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

let dftTables: { cos: Float64Array; sin: Float64Array; window: Float64Array } | undefined;

function tables() {
  if (!dftTables) {
    const cos = new Float64Array(N_BINS * N_FFT);
    const sin = new Float64Array(N_BINS * N_FFT);
    for (let k = 0; k < N_BINS; k++)
      for (let n = 0; n < N_FFT; n++) {
        const a = (2 * Math.PI * ((k * n) % N_FFT)) / N_FFT;
        cos[k * N_FFT + n] = Math.cos(a);
        sin[k * N_FFT + n] = Math.sin(a);
      }
    const window = Float64Array.from({ length: N_FFT }, (_, n) => 0.5 - 0.5 * Math.cos((2 * Math.PI * n) / N_FFT));
    dftTables = { cos, sin, window };
  }
  return dftTables;
}

/**
 * Whisper log-mel of one chunk (at most 30 s of 16-kHz samples; shorter chunks are zero-padded).
 * Returns [nMels, 3000] row-major.
 */
export function logMelChunk(samples: Float32Array, nMels = 128): Float32Array {
  if (samples.length > CHUNK_SAMPLES) throw new Error(`logMelChunk: ${samples.length} samples is more than one 30-s chunk`);
  const { cos, sin, window } = tables();
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
      for (let k = 0; k < N_BINS; k++) {
        let re = 0;
        let im = 0;
        const row = k * N_FFT;
        for (let n = 0; n < N_FFT; n++) {
          re += frame[n]! * cos[row + n]!;
          im += frame[n]! * sin[row + n]!;
        }
        power[k] = re * re + im * im;
      }
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
 * at 512 points per zero crossing and linearly interpolated. Samples outside the input count as zero.
 */
export function resample(x: Float32Array, fromRate: number, toRate = SAMPLE_RATE): Float32Array {
  if (!(fromRate > 0 && toRate > 0)) throw new Error(`resample: bad rates ${fromRate} → ${toRate}`);
  if (fromRate === toRate) return x.slice();
  const r = toRate / fromRate;
  const fc = ROLLOFF * Math.min(1, r);
  const half = SINC_ZEROS / fc; // kernel half-width in input samples
  const table = kernelTable();
  const nOut = Math.round(x.length * r);
  const out = new Float32Array(nOut);
  const step = 1 / r;
  for (let n = 0; n < nOut; n++) {
    const t = n * step;
    const k0 = Math.max(0, Math.ceil(t - half));
    const k1 = Math.min(x.length - 1, Math.floor(t + half));
    let s = 0;
    for (let k = k0; k <= k1; k++) {
      const pos = Math.abs(t - k) * fc * TABLE_PER_ZERO;
      const i = Math.floor(pos);
      const f = pos - i;
      s += x[k]! * (table[i]! + f * (table[i + 1]! - table[i]!));
    }
    out[n] = s * fc;
  }
  return out;
}
