/**
 * WAV (RIFF/WAVE) reading: header parsing and decoding to mono Float32 samples in [-1, 1].
 *
 * Supported encodings: integer PCM of 8 (unsigned), 16, 24 and 32 bits; IEEE float of 32 and 64 bits;
 * both in plain `fmt ` chunks and in WAVE_FORMAT_EXTENSIBLE (0xFFFE), whose sub-format GUID decides.
 * Layout: "RIFF" <u32 size> "WAVE", then chunks <4-char id> <u32 size> <data, padded to an even length>.
 */
import { nextTurn } from "../turns";

export type WavEncoding = "pcm" | "float";

export interface WavInfo {
  sampleRate: number;
  channels: number;
  /** Container bits per sample (8, 16, 24, 32 or 64). */
  bitsPerSample: number;
  format: WavEncoding;
  /** Samples per channel. */
  frames: number;
  durationSec: number;
  /** Byte offset and length of the sample data inside the file. */
  dataOffset: number;
  dataBytes: number;
}

export class WavError extends Error {
  constructor(
    message: string,
    /** "corrupt": damaged or truncated; "unsupported": a valid WAV in an encoding we do not read. */
    readonly code: "corrupt" | "unsupported",
  ) {
    super(message);
    this.name = "WavError";
  }
}

const WAVE_FORMAT_PCM = 0x0001;
const WAVE_FORMAT_IEEE_FLOAT = 0x0003;
const WAVE_FORMAT_EXTENSIBLE = 0xfffe;
const KNOWN_CODECS: Record<number, string> = {
  0x0002: "Microsoft ADPCM",
  0x0006: "A-law",
  0x0007: "µ-law",
  0x0011: "IMA ADPCM",
  0x0031: "GSM 6.10",
  0x0055: "MP3",
};
/** Streaming writers that cannot seek back put this in the data size; the data then runs to the end. */
const UNKNOWN_SIZE = 0xffffffff;

function id4(b: Uint8Array, at: number): string {
  return String.fromCharCode(b[at]!, b[at + 1]!, b[at + 2]!, b[at + 3]!);
}

/** Reads the header of a WAV file; throws `WavError` for damaged, truncated or unsupported files. */
export function parseWav(bytes: Uint8Array): WavInfo {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.length < 12 || id4(bytes, 0) !== "RIFF" || id4(bytes, 8) !== "WAVE") {
    throw new WavError("not a WAV file (no RIFF/WAVE header)", "corrupt");
  }
  let fmt: { codec: number; channels: number; sampleRate: number; blockAlign: number; bits: number } | undefined;
  let data: { offset: number; bytes: number } | undefined;
  let at = 12;
  while (at + 8 <= bytes.length && !(fmt && data)) {
    const id = id4(bytes, at);
    const size = view.getUint32(at + 4, true);
    const body = at + 8;
    if (id === "fmt ") {
      if (size < 16 || body + size > bytes.length) throw new WavError("the fmt chunk is truncated", "corrupt");
      let codec = view.getUint16(body, true);
      const bits = view.getUint16(body + 14, true);
      if (codec === WAVE_FORMAT_EXTENSIBLE) {
        if (size < 40) throw new WavError("the WAVE_FORMAT_EXTENSIBLE fmt chunk is too short", "corrupt");
        // SubFormat GUID at +24; its first two bytes are the real format code.
        codec = view.getUint16(body + 24, true);
      }
      fmt = { codec, channels: view.getUint16(body + 2, true), sampleRate: view.getUint32(body + 4, true), blockAlign: view.getUint16(body + 12, true), bits };
    } else if (id === "data") {
      const remaining = bytes.length - body;
      if (size === UNKNOWN_SIZE) {
        data = { offset: body, bytes: remaining };
      } else if (size > remaining) {
        throw new WavError(`the audio data is truncated: the header promises ${size} bytes but only ${remaining} are present`, "corrupt");
      } else {
        data = { offset: body, bytes: size };
      }
      if (!fmt) {
        at = body + data.bytes + (data.bytes & 1);
        continue;
      }
    }
    if (size === UNKNOWN_SIZE) break;
    at = body + size + (size & 1);
  }
  if (!fmt) throw new WavError("the WAV file has no fmt chunk", "corrupt");
  if (!data) throw new WavError("the WAV file has no data chunk (it may be truncated)", "corrupt");

  const { codec, channels, sampleRate, blockAlign, bits } = fmt;
  let format: WavEncoding;
  if (codec === WAVE_FORMAT_PCM) {
    if (![8, 16, 24, 32].includes(bits)) throw new WavError(`${bits}-bit integer PCM is not supported (use 8, 16, 24 or 32 bits)`, "unsupported");
    format = "pcm";
  } else if (codec === WAVE_FORMAT_IEEE_FLOAT) {
    if (bits !== 32 && bits !== 64) throw new WavError(`${bits}-bit float WAV is not supported (use 32 or 64 bits)`, "unsupported");
    format = "float";
  } else {
    const name = KNOWN_CODECS[codec] ?? `format code 0x${codec.toString(16).padStart(4, "0")}`;
    throw new WavError(`WAV encoding ${name} is not supported; save it as PCM or float WAV`, "unsupported");
  }
  if (channels < 1 || channels > 64) throw new WavError(`the WAV header gives ${channels} channels`, "corrupt");
  if (sampleRate < 1000 || sampleRate > 768_000) throw new WavError(`the WAV header gives a sample rate of ${sampleRate} Hz`, "corrupt");
  if (blockAlign !== channels * (bits / 8)) {
    throw new WavError(`the WAV header is inconsistent: block size ${blockAlign} for ${channels} channel(s) of ${bits} bits`, "corrupt");
  }
  const frames = Math.floor(data.bytes / blockAlign);
  return {
    sampleRate,
    channels,
    bitsPerSample: bits,
    format,
    frames,
    durationSec: frames / sampleRate,
    dataOffset: data.offset,
    dataBytes: frames * blockAlign,
  };
}

/** One sample reader per encoding: (view, byteOffset) → value in [-1, 1]. */
function sampleReader(info: WavInfo): (view: DataView, at: number) => number {
  if (info.format === "float") {
    return info.bitsPerSample === 32 ? (v, at) => v.getFloat32(at, true) : (v, at) => v.getFloat64(at, true);
  }
  switch (info.bitsPerSample) {
    case 8:
      return (v, at) => (v.getUint8(at) - 128) / 128; // 8-bit WAV is unsigned
    case 16:
      return (v, at) => v.getInt16(at, true) / 32768;
    case 24:
      return (v, at) => ((v.getUint8(at) | (v.getUint8(at + 1) << 8) | (v.getInt8(at + 2) << 16)) / 8388608);
    default:
      return (v, at) => v.getInt32(at, true) / 2147483648;
  }
}

/**
 * Decodes a WAV file to mono Float32 samples (channels averaged), at the file's own sample rate.
 * Returns the header too, so callers can resample.
 */
export function decodeWavMono(bytes: Uint8Array): { info: WavInfo; samples: Float32Array } {
  const d = monoDecoder(bytes);
  d.fill(0, d.info.frames);
  return { info: d.info, samples: d.samples };
}

/** Frames a yielding decode converts between two turns of the event loop (~10–20 ms of work). */
const FRAMES_PER_TURN = 1 << 20;

/**
 * decodeWavMono in stretches, with a turn of the event loop between them, for a server that decodes while it answers
 * requests: a 1,000-s 192-kHz WAV (192 M frames) held every request for 6.6 s in one loop. Same samples.
 */
export async function decodeWavMonoYielding(bytes: Uint8Array, signal?: AbortSignal): Promise<{ info: WavInfo; samples: Float32Array }> {
  const d = monoDecoder(bytes);
  for (let f = 0; f < d.info.frames; f += FRAMES_PER_TURN) {
    d.fill(f, Math.min(d.info.frames, f + FRAMES_PER_TURN));
    await nextTurn();
    signal?.throwIfAborted();
  }
  return { info: d.info, samples: d.samples };
}

/** The mono samples array of a WAV and the function that decodes its frames [f0, f1) into it. */
function monoDecoder(bytes: Uint8Array): { info: WavInfo; samples: Float32Array; fill(f0: number, f1: number): void } {
  const info = parseWav(bytes);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const read = sampleReader(info);
  const step = info.bitsPerSample / 8;
  const block = step * info.channels;
  const samples = new Float32Array(info.frames);
  const scale = 1 / info.channels;
  const fill = (f0: number, f1: number) => {
    for (let f = f0; f < f1; f++) {
      const base = info.dataOffset + f * block;
      let sum = 0;
      for (let c = 0; c < info.channels; c++) sum += read(view, base + c * step);
      samples[f] = sum * scale;
    }
  };
  return { info, samples, fill };
}
