import sharp, { type Metadata, type SharpOptions } from "sharp";
import { pngStructureProblem } from "./png";
import type { FileType } from "./sniff";

export interface ImageInfo {
  width: number;
  height: number;
  /** Channels of the decoded pixels (1 grey, 2 grey+alpha, 3 RGB, 4 RGBA). */
  channels: number;
  /** sharp's format name: "png", "jpeg", "webp", "gif". */
  format: string;
  hasAlpha: boolean;
  /** Frames of an animated GIF/WebP (1 for a still image); width/height are those of one frame. */
  frames: number;
}

export const DEFAULT_MAX_IMAGE_PIXELS = 64_000_000;

export class ImageError extends Error {
  constructor(
    message: string,
    readonly code: "corrupt" | "too-large" | "unsupported",
  ) {
    super(message);
    this.name = "ImageError";
  }
}

/** sharp's format name for each sniffed image format we accept. */
const SHARP_FORMAT: Record<string, string> = { PNG: "png", JPEG: "jpeg", WebP: "webp", GIF: "gif" };

function cause(err: unknown): string {
  const raw = err instanceof Error ? err.message : String(err);
  // libvips messages can span lines and end in a dangling colon; keep them short and readable.
  const msg = raw.split("\n").map((l) => l.trim().replace(/:$/, "")).filter(Boolean).join("; ") || "unknown error";
  if (/corrupt header/i.test(msg)) return "its header is damaged";
  if (/unsupported image format/i.test(msg)) return "no image decoder recognises its contents";
  if (/premature end|truncat|read error|unexpected end/i.test(msg)) return `the pixel data is truncated or damaged (${msg})`;
  if (/^unknown error$/i.test(msg)) return "the decoder refused it without saying why (the file is damaged or not really this format)";
  return msg;
}

/**
 * Reads an image's size and channels and proves that its pixels decode (a header alone is not
 * enough: a truncated PNG has a valid header). The full image is decoded through a small thumbnail,
 * which libvips streams, so memory stays bounded.
 *
 * @param type  the sniffed type of `bytes` (must be an image)
 * @param name  how to call the file in messages ("photo.png"); default "the file"
 * @param decodePixels  false: skip the thumbnail decode (the caller decodes every pixel next); default true
 */
export async function readImageInfo(
  bytes: Uint8Array,
  type: FileType,
  opts: { maxPixels?: number; name?: string; decodePixels?: boolean } = {},
): Promise<ImageInfo> {
  const name = opts.name ?? "the file";
  const maxPixels = opts.maxPixels ?? DEFAULT_MAX_IMAGE_PIXELS;
  const expected = SHARP_FORMAT[type.format];
  if (type.kind !== "image" || !expected) throw new ImageError(`${name} is not a supported image (${type.format})`, "unsupported");
  const unreadable = (why: string) => new ImageError(`${name} is not a readable ${type.format} image: ${why}`, "corrupt");

  if (type.format === "PNG") {
    const problem = pngStructureProblem(bytes);
    if (problem) throw unreadable(problem);
  }
  const input = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  // failOn "error": refuse truncated or damaged pixel data, tolerate harmless warnings (e.g. odd EXIF).
  const options: SharpOptions = { failOn: "error", limitInputPixels: false, animated: false };
  let meta: Metadata;
  try {
    meta = await sharp(input, options).metadata();
  } catch (err) {
    throw unreadable(cause(err));
  }
  if (meta.format !== expected) throw unreadable(`its contents decode as ${meta.format ?? "an unknown format"}`);
  const width = meta.width ?? 0;
  const height = meta.pageHeight ?? meta.height ?? 0;
  if (!(width > 0 && height > 0)) throw unreadable("it has no width or height");
  if (width * height > maxPixels) {
    throw new ImageError(
      `${name} is too large: ${width}×${height} is ${(width * height / 1e6).toFixed(1)} megapixels, the limit is ${(maxPixels / 1e6).toFixed(0)} megapixels`,
      "too-large",
    );
  }
  if (opts.decodePixels !== false) {
    try {
      await sharp(input, { ...options, limitInputPixels: maxPixels }).resize(32, 32, { fit: "inside" }).raw().toBuffer();
    } catch (err) {
      throw unreadable(cause(err));
    }
  }
  return {
    width,
    height,
    channels: meta.channels ?? (meta.hasAlpha ? 4 : 3),
    format: meta.format,
    hasAlpha: meta.hasAlpha ?? false,
    frames: meta.pages ?? 1,
  };
}
