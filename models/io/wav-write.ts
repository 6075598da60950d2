/**
 * 16-bit PCM WAV writing (RIFF/WAVE, one `fmt ` chunk of 16 bytes, one `data` chunk), little-endian.
 * Samples are clamped to [-1, 1], scaled by 32768 and rounded (1.0 saturates at 32767), the inverse of
 * engine/media/wav.ts's int16 / 32768, so a round trip is within half a step (one step at +1).
 */

export interface WavWriteOptions {
  /** Default 24000 (the codec's rate). */
  sampleRate?: number;
  /** Interleaved channels in `samples` (default 1, mono). */
  channels?: number;
}

const HEADER_BYTES = 44;

/** Encodes float samples in [-1, 1] (interleaved when channels > 1) as a 16-bit PCM WAV file. */
export function encodeWav16(samples: Float32Array, opts: WavWriteOptions = {}): Uint8Array {
  const sampleRate = opts.sampleRate ?? 24000;
  const channels = opts.channels ?? 1;
  if (!Number.isInteger(sampleRate) || sampleRate < 1000 || sampleRate > 768_000) throw new Error(`WAV: bad sample rate ${sampleRate}`);
  if (!Number.isInteger(channels) || channels < 1 || channels > 64) throw new Error(`WAV: bad channel count ${channels}`);
  if (samples.length % channels !== 0) throw new Error(`WAV: ${samples.length} samples do not split into ${channels} channels`);
  const dataBytes = samples.length * 2;
  if (HEADER_BYTES - 8 + dataBytes > 0xffffffff) throw new Error("WAV: too long for a RIFF file (4 GB)");
  const bytes = new Uint8Array(HEADER_BYTES + dataBytes);
  const v = new DataView(bytes.buffer);
  const ascii = (at: number, s: string) => {
    for (let i = 0; i < 4; i++) bytes[at + i] = s.charCodeAt(i);
  };
  ascii(0, "RIFF");
  v.setUint32(4, HEADER_BYTES - 8 + dataBytes, true);
  ascii(8, "WAVE");
  ascii(12, "fmt ");
  v.setUint32(16, 16, true); // fmt chunk size
  v.setUint16(20, 1, true); // PCM
  v.setUint16(22, channels, true);
  v.setUint32(24, sampleRate, true);
  v.setUint32(28, sampleRate * channels * 2, true); // byte rate
  v.setUint16(32, channels * 2, true); // block align
  v.setUint16(34, 16, true); // bits per sample
  ascii(36, "data");
  v.setUint32(40, dataBytes, true);
  for (let i = 0; i < samples.length; i++) {
    let x = samples[i]!;
    if (!(x === x)) x = 0; // NaN → silence
    x = x < -1 ? -1 : x > 1 ? 1 : x;
    v.setInt16(HEADER_BYTES + 2 * i, Math.min(32767, Math.round(x * 32768)), true);
  }
  return bytes;
}
