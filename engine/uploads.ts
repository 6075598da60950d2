/**
 * Checking and storing uploaded media. Pure functions over bytes and a `Storage`; the HTTP route that
 * receives the bytes lives elsewhere and should map `UploadError.code` to its status codes.
 *
 * Every upload is: size-checked for its kind → sniffed from its bytes (the name and claimed MIME are
 * not trusted) → matched against the kind the caller expects → decoded where we can (images, WAV) →
 * written to content-addressed storage under the extension of what it really is.
 */
import { DEFAULT_MAX_IMAGE_PIXELS, ImageError, readImageInfo, type ImageInfo } from "./media/image";
import { claimedFormat, describeKind, describeType, sniff, SUPPORTED_FORMATS, type FileType, type MediaKind } from "./media/sniff";
import { parseWav, WavError, type WavEncoding } from "./media/wav";
import { createHash } from "node:crypto";
import { createWriteStream } from "node:fs";
import { mkdir, open, readFile, stat } from "node:fs/promises";
import { once } from "node:events";
import path from "node:path";
import { SNIFF_BYTES } from "./media/sniff";
import type { Storage } from "./node";
import { config, parseSetting } from "./config";

export type { MediaKind } from "./media/sniff";

export type UploadErrorCode = "too-large" | "unsupported" | "corrupt" | "wrong-kind";

/**
 * A refused upload, with a message meant for the user. Codes: "too-large"; "unsupported" (not a format
 * we take); "corrupt" (empty, damaged, or its name claims a format its contents are not); "wrong-kind"
 * (e.g. audio where an image was asked for).
 */
export class UploadError extends Error {
  constructor(
    message: string,
    readonly code: UploadErrorCode,
  ) {
    super(message);
    this.name = "UploadError";
  }
}

const MB = 1024 * 1024;

export const DEFAULT_MAX_UPLOAD_BYTES: Readonly<Record<MediaKind, number>> = { image: 50 * MB, audio: 200 * MB, video: 1024 * MB };

export interface UploadLimits {
  /** Maximum size in bytes per kind; unset kinds fall back to STUDIO_MAX_UPLOAD_MB, then the defaults. */
  maxBytes?: Partial<Record<MediaKind, number>>;
  /** Maximum decoded image size in pixels (default 64 MP). */
  maxImagePixels?: number;
}

const KINDS: readonly MediaKind[] = ["image", "audio", "video"];

/**
 * Limits from STUDIO_MAX_UPLOAD_MB: either one number of megabytes for every kind ("300") or per-kind
 * values ("image=50,audio=200,video=1024"; kinds left out keep their defaults). Throws on a bad value,
 * because a silently ignored limit is worse than a loud misconfiguration.
 */
export function envUploadLimits(value?: string): Partial<Record<MediaKind, number>> {
  return (value === undefined ? config().STUDIO_MAX_UPLOAD_MB : parseSetting("STUDIO_MAX_UPLOAD_MB", value)) ?? {};
}

/** The size limit in bytes for a kind (or, without a kind, the largest of them: useful to cap a request body). */
export function uploadLimitBytes(kind?: MediaKind, limits: UploadLimits = {}): number {
  const env = envUploadLimits();
  const of = (k: MediaKind) => limits.maxBytes?.[k] ?? env[k] ?? DEFAULT_MAX_UPLOAD_BYTES[k];
  return kind ? of(kind) : Math.max(...KINDS.map(of));
}

export interface WavMeta {
  format: "WAV";
  sampleRate: number;
  channels: number;
  bitsPerSample: number;
  encoding: WavEncoding;
  frames: number;
  durationSec: number;
}
/** Audio we only sniff (MP3, OGG, FLAC, M4A): not decoded in this version. */
export interface OtherAudioMeta {
  format: string;
}
export interface VideoMeta {
  format: string;
}
export type ImageMeta = ImageInfo;

interface Common {
  mime: string;
  /** Extension the file is stored under (from its contents). */
  ext: string;
  /** Size in bytes. */
  bytes: number;
}
export type InspectedMedia =
  | (Common & { kind: "image"; meta: ImageMeta })
  | (Common & { kind: "audio"; meta: WavMeta | OtherAudioMeta })
  | (Common & { kind: "video"; meta: VideoMeta });

export type StoredUpload = InspectedMedia & {
  /** Storage id (content hash + extension). */
  id: string;
  /** The user's file name, reduced to a safe base name. */
  filename: string;
};

export interface InspectOptions {
  /** How to call the file in messages, e.g. its file name. */
  name?: string;
  expectedKind?: MediaKind;
  limits?: UploadLimits;
  /**
   * The full size when `bytes` holds only the head of the file (see SNIFF_BYTES); then only images
   * and WAV need the whole file. Defaults to bytes.length.
   */
  totalBytes?: number;
  /** Skip the size limit (for files already in storage, accepted under whatever limit held then). */
  skipSizeLimit?: boolean;
  /**
   * false: check an image's header, size and pixel limit but not that all its pixels decode — for a caller that
   * decodes every pixel right after and reports a failure itself (the vision encoder). Default true.
   */
  decodePixels?: boolean;
}

function formatSize(n: number): string {
  if (n >= 1024 * MB) return `${+(n / (1024 * MB)).toFixed(2)} GB`;
  if (n >= MB) return `${+(n / MB).toFixed(1)} MB`;
  if (n >= 1024) return `${+(n / 1024).toFixed(1)} KB`;
  return `${n} bytes`;
}

/** A file name safe to show and store: no directories, no control characters, at most 200 characters. */
export function cleanFilename(filename: string): string {
  const base = filename.split(/[/\\]/).pop() ?? "";
  // eslint-disable-next-line no-control-regex
  const clean = base.replace(/[\u0000-\u001f\u007f]/g, "").trim().slice(-200);
  return clean || "upload";
}

function refuseUnrecognised(name: string, reason: string, expectedKind: MediaKind | undefined, claimed: FileType | undefined): never {
  if (claimed) {
    const noun = (expectedKind ?? claimed.kind) === "image" ? "image" : (expectedKind ?? claimed.kind) === "audio" ? "audio file" : "video";
    throw new UploadError(`${name} claims to be ${claimed.format} but its contents are not a recognised ${noun} (${reason})`, "corrupt");
  }
  const wanted = expectedKind ? `${describeKind(expectedKind)} in a supported format` : "a supported file";
  throw new UploadError(`${name} is not ${wanted}: ${reason}. Supported: ${SUPPORTED_FORMATS}`, "unsupported");
}

/**
 * Identifies and checks media bytes without storing them. Throws `UploadError` with a message meant
 * for the user when the file is too large, of an unsupported or unexpected kind, or does not decode.
 */
export async function inspectMedia(bytes: Uint8Array, opts: InspectOptions = {}): Promise<InspectedMedia> {
  const name = opts.name ?? "the file";
  const total = opts.totalBytes ?? bytes.length;
  const limits = opts.limits ?? {};
  if (total === 0) throw new UploadError(`${name} is empty`, "corrupt");

  const type = sniff(bytes);
  if (!type.ok) refuseUnrecognised(name, type.reason, opts.expectedKind, claimedFormat(name));
  if (opts.expectedKind && type.kind !== opts.expectedKind) {
    throw new UploadError(`${name} is not ${describeKind(opts.expectedKind)}: it looks like ${describeType(type)}`, "wrong-kind");
  }
  const max = uploadLimitBytes(type.kind, limits);
  if (total > max && !opts.skipSizeLimit) {
    throw new UploadError(
      `${name} is too large: ${formatSize(total)}, the limit for ${type.kind} files is ${formatSize(max)} (the server's STUDIO_MAX_UPLOAD_MB sets it)`,
      "too-large",
    );
  }
  const common: Common = { mime: type.mime, ext: type.ext, bytes: total };
  const needsAll = type.kind === "image" || type.format === "WAV";
  if (needsAll && bytes.length < total) throw new Error(`inspectMedia: ${type.format} files must be passed whole`);

  if (type.kind === "image") {
    try {
      const meta = await readImageInfo(bytes, type, { name, maxPixels: limits.maxImagePixels ?? DEFAULT_MAX_IMAGE_PIXELS, decodePixels: opts.decodePixels });
      return { ...common, kind: "image", meta };
    } catch (err) {
      if (err instanceof ImageError) throw new UploadError(err.message, err.code);
      throw err;
    }
  }
  if (type.kind === "audio") {
    if (type.format !== "WAV") return { ...common, kind: "audio", meta: { format: type.format } };
    try {
      const { sampleRate, channels, bitsPerSample, format: encoding, frames, durationSec } = parseWav(bytes);
      if (frames === 0) throw new WavError("it contains no audio samples", "corrupt");
      return { ...common, kind: "audio", meta: { format: "WAV", sampleRate, channels, bitsPerSample, encoding, frames, durationSec } };
    } catch (err) {
      if (err instanceof WavError) {
        const msg = err.code === "unsupported" ? `${name} cannot be used: ${err.message}` : `${name} is not a readable WAV audio file: ${err.message}`;
        throw new UploadError(msg, err.code);
      }
      throw err;
    }
  }
  return { ...common, kind: "video", meta: { format: type.format } };
}

/**
 * Checks an upload (see `inspectMedia`) and writes it to storage under the extension of what it
 * really is. Storing is content-addressed, so uploading the same bytes twice yields the same id.
 */
export async function storeUpload(
  storage: Storage,
  bytes: Uint8Array,
  opts: { filename: string; expectedKind?: MediaKind; limits?: UploadLimits },
): Promise<StoredUpload> {
  const filename = cleanFilename(opts.filename);
  const media = await inspectMedia(bytes, { name: filename, expectedKind: opts.expectedKind, limits: opts.limits });
  const id = await storage.write(bytes, media.ext);
  return { ...media, id, filename };
}

/** Inspects media in a file: images and WAV are read whole and decoded, other audio and video only by their head. */
async function inspectFile(file: string, opts: InspectOptions & { name: string }): Promise<InspectedMedia> {
  let head: Uint8Array;
  let total: number;
  const handle = await open(file, "r");
  try {
    total = (await handle.stat()).size;
    const buf = Buffer.alloc(Math.min(SNIFF_BYTES, total));
    const { bytesRead } = await handle.read(buf, 0, buf.length, 0);
    head = buf.subarray(0, bytesRead);
  } finally {
    await handle.close();
  }
  const sniffed = sniff(head);
  const whole = sniffed.ok && (sniffed.kind === "image" || sniffed.format === "WAV") && !(total > uploadLimitBytes(sniffed.kind, opts.limits) && !opts.skipSizeLimit);
  const bytes = whole ? await readFile(file) : head;
  return inspectMedia(bytes, { ...opts, totalBytes: whole ? bytes.length : total });
}

/**
 * Inspects a file already in storage (as input nodes do at run time). Images and WAV are read whole
 * and decoded; for other audio and for video only the head is read, so a 1 GB video costs one read
 * of a few kilobytes. Size limits do not apply: the file was accepted when it was uploaded.
 */
export async function inspectStored(
  storage: Storage,
  id: string,
  opts: { expectedKind?: MediaKind; name?: string } = {},
): Promise<InspectedMedia> {
  const file = storage.pathOf(id);
  if (!(await storage.exists(id))) throw new Error(`file ${id} is missing from the data directory; upload it again`);
  return inspectFile(file, { name: opts.name ?? "the chosen file", expectedKind: opts.expectedKind, skipSizeLimit: true });
}

/** A store that can take a finished file whole (a rename on disk), so an upload is never held in memory. */
export interface FileAdoptingStorage extends Storage {
  /** Where an upload being received is written: a new path in the store's own filesystem. */
  incomingPath(): string;
  /** Moves a received file into the store under its content hash (computed while it was received); returns its id. */
  adopt(file: string, ext: string, sha256: string): Promise<string>;
}

/**
 * Receives an upload body into `file` as it streams: counted (refused with "too-large" as soon as it
 * passes `limit`, the rest never read) and hashed on the way, so the body is never buffered whole.
 */
export async function receiveToFile(body: ReadableStream<Uint8Array> | null, file: string, limit: number, name: string): Promise<{ bytes: number; sha256: string }> {
  const hash = createHash("sha256");
  let bytes = 0;
  await mkdir(path.dirname(file), { recursive: true });
  const out = createWriteStream(file, { flags: "wx" });
  const done = new Promise<void>((resolve, reject) => {
    out.once("finish", resolve);
    out.once("error", reject);
  });
  const reader = body?.getReader();
  try {
    for (;;) {
      const chunk = reader ? await reader.read() : { done: true as const, value: undefined };
      if (chunk.done) break;
      bytes += chunk.value.byteLength;
      if (bytes > limit) {
        await reader!.cancel();
        throw new UploadError(`${name} is larger than the ${formatSize(limit)} limit for this kind of upload (the server's STUDIO_MAX_UPLOAD_MB sets it)`, "too-large");
      }
      hash.update(chunk.value);
      if (!out.write(chunk.value)) await once(out, "drain");
    }
  } finally {
    out.end();
    await done.catch(() => undefined);
  }
  await done;
  return { bytes, sha256: hash.digest("hex") };
}

/**
 * Checks an upload already received into a file (see `receiveToFile`) like `storeUpload` checks bytes,
 * then moves it into the store. The stored file must have the received size and hash, or it is refused.
 */
export async function storeUploadedFile(
  storage: FileAdoptingStorage,
  file: string,
  opts: { filename: string; expectedKind?: MediaKind; limits?: UploadLimits; bytes: number; sha256: string },
): Promise<StoredUpload> {
  const filename = cleanFilename(opts.filename);
  const media = await inspectFile(file, { name: filename, expectedKind: opts.expectedKind, limits: opts.limits });
  const id = await storage.adopt(file, media.ext, opts.sha256);
  const stored = (await stat(storage.pathOf(id))).size;
  if (stored !== opts.bytes || media.bytes !== opts.bytes) throw new Error(`${filename} was stored with ${stored} bytes but ${opts.bytes} were received`);
  return { ...media, id, filename };
}
