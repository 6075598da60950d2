/**
 * What a file really is, from its first bytes (never from its name or a claimed MIME type).
 *
 * Signatures recognised (offsets in bytes):
 *   PNG   0: 89 50 4E 47 0D 0A 1A 0A          JPEG  0: FF D8 FF
 *   GIF   0: "GIF87a" | "GIF89a"               WebP  0: "RIFF", 8: "WEBP"
 *   WAV   0: "RIFF", 8: "WAVE"                 MP3   0: "ID3" (ID3v2 tag) or an MPEG audio frame header
 *   OGG   0: "OggS"                            FLAC  0: "fLaC"
 *   MP4/MOV 4: "ftyp" (brand at 8 picks MP4, MOV, M4A or HEIF/AVIF), or a bare QuickTime atom at 4
 *   WebM/MKV 0: 1A 45 DF A3 (EBML; the DocType "webm" picks WebM)
 *   AVI   0: "RIFF", 8: "AVI "
 * Some other common files (PDF, ZIP, BMP, TIFF, AAC, HEIF/AVIF, text) are named in the reason so the
 * user learns what they uploaded, but they are not accepted.
 */

export type MediaKind = "image" | "audio" | "video";

export interface FileType {
  kind: MediaKind;
  mime: string;
  /** Extension used when storing the file (no dot). */
  ext: string;
  /** Short format name for messages: "PNG", "WAV", "MP4". */
  format: string;
}

export type SniffResult = ({ ok: true } & FileType) | { ok: false; reason: string };

/** How many leading bytes `sniff` needs at most. */
export const SNIFF_BYTES = 4096;

const FORMATS = {
  png: { kind: "image", mime: "image/png", ext: "png", format: "PNG" },
  jpeg: { kind: "image", mime: "image/jpeg", ext: "jpg", format: "JPEG" },
  gif: { kind: "image", mime: "image/gif", ext: "gif", format: "GIF" },
  webp: { kind: "image", mime: "image/webp", ext: "webp", format: "WebP" },
  wav: { kind: "audio", mime: "audio/wav", ext: "wav", format: "WAV" },
  mp3: { kind: "audio", mime: "audio/mpeg", ext: "mp3", format: "MP3" },
  ogg: { kind: "audio", mime: "audio/ogg", ext: "ogg", format: "OGG" },
  flac: { kind: "audio", mime: "audio/flac", ext: "flac", format: "FLAC" },
  m4a: { kind: "audio", mime: "audio/mp4", ext: "m4a", format: "M4A" },
  mp4: { kind: "video", mime: "video/mp4", ext: "mp4", format: "MP4" },
  mov: { kind: "video", mime: "video/quicktime", ext: "mov", format: "MOV" },
  webm: { kind: "video", mime: "video/webm", ext: "webm", format: "WebM" },
  mkv: { kind: "video", mime: "video/x-matroska", ext: "mkv", format: "MKV" },
  avi: { kind: "video", mime: "video/x-msvideo", ext: "avi", format: "AVI" },
} as const satisfies Record<string, FileType>;

export type KnownFormat = keyof typeof FORMATS;

/** "a PNG image", "a WAV audio file", "an MP4 video". */
export function describeType(t: FileType): string {
  const noun = t.kind === "image" ? "image" : t.kind === "audio" ? "audio file" : "video";
  const article = ["AVI", "MP3", "MP4", "MKV", "M4A", "OGG"].includes(t.format) ? "an" : "a";
  return `${article} ${t.format} ${noun}`;
}

/** "an image", "an audio file", "a video". */
export function describeKind(kind: MediaKind): string {
  return kind === "image" ? "an image" : kind === "audio" ? "an audio file" : "a video";
}

export const SUPPORTED_FORMATS = "images (PNG, JPEG, WebP, GIF), audio (WAV, MP3, OGG, FLAC, M4A), video (MP4, MOV, WebM, MKV, AVI)";

function ascii(b: Uint8Array, offset: number, length: number): string {
  let s = "";
  for (let i = offset; i < offset + length && i < b.length; i++) s += String.fromCharCode(b[i]!);
  return s;
}

function startsWith(b: Uint8Array, sig: readonly number[], offset = 0): boolean {
  if (b.length < offset + sig.length) return false;
  return sig.every((v, i) => b[offset + i] === v);
}

function hit(f: KnownFormat): SniffResult {
  return { ok: true, ...FORMATS[f] };
}

/**
 * An MPEG-1/2/2.5 Layer I-III frame header: 11 sync bits, then version, layer, bitrate and sample-rate
 * fields that must not hold their reserved values (this rules out JPEG's FF D8 and AAC's ADTS header).
 */
function isMpegAudioFrame(b: Uint8Array, at: number): boolean {
  if (b.length < at + 4) return false;
  const b1 = b[at + 1]!;
  const b2 = b[at + 2]!;
  if (b[at] !== 0xff || (b1 & 0xe0) !== 0xe0) return false;
  const version = (b1 >> 3) & 0x03; // 01 reserved
  const layer = (b1 >> 1) & 0x03; // 00 reserved (ADTS uses it)
  const bitrate = b2 >> 4; // 1111 invalid
  const rate = (b2 >> 2) & 0x03; // 11 reserved
  return version !== 1 && layer !== 0 && bitrate !== 0x0f && rate !== 3;
}

const QUICKTIME_ATOMS = new Set(["moov", "mdat", "wide", "free", "skip", "pnot"]);

function sniffFtyp(b: Uint8Array): SniffResult {
  const brand = ascii(b, 8, 4);
  if (brand === "qt  ") return hit("mov");
  if (/^M4[ABP] $/.test(brand)) return hit("m4a");
  if (["heic", "heix", "hevc", "heim", "heis", "mif1", "msf1", "avif", "avis"].includes(brand)) {
    return { ok: false, reason: "it looks like a HEIF/AVIF image, which is not supported; convert it to PNG, JPEG or WebP" };
  }
  return hit("mp4");
}

function sniffEbml(b: Uint8Array): SniffResult {
  // The EBML header carries the DocType element (id 42 82) as a short string near the start.
  const head = ascii(b, 0, Math.min(b.length, 128));
  const at = head.indexOf("\x42\x82");
  if (at >= 0 && head.slice(at + 3, at + 7) === "webm") return hit("webm");
  return hit("mkv");
}

function looksLikeText(b: Uint8Array): boolean {
  const n = Math.min(b.length, 512);
  if (n === 0) return false;
  for (let i = 0; i < n; i++) {
    const c = b[i]!;
    if (c === 0 || (c < 0x20 && c !== 0x09 && c !== 0x0a && c !== 0x0d && c !== 0x0c && c !== 0x1b)) return false;
  }
  return true;
}

/** Identifies an image, audio or video file from its leading bytes (give at least `SNIFF_BYTES` if you can). */
export function sniff(bytes: Uint8Array): SniffResult {
  const b = bytes;
  if (b.length === 0) return { ok: false, reason: "the file is empty" };

  if (startsWith(b, [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])) return hit("png");
  if (startsWith(b, [0xff, 0xd8, 0xff])) return hit("jpeg");
  const head4 = ascii(b, 0, 4);
  const head6 = ascii(b, 0, 6);
  if (head6 === "GIF87a" || head6 === "GIF89a") return hit("gif");
  if (head4 === "RIFF" && b.length >= 12) {
    const form = ascii(b, 8, 4);
    if (form === "WEBP") return hit("webp");
    if (form === "WAVE") return hit("wav");
    if (form === "AVI ") return hit("avi");
    return { ok: false, reason: `it is a RIFF file of an unsupported form "${form.replace(/[^\x20-\x7e]/g, "?")}"` };
  }
  if (head4 === "RF64" || head4 === "RIFX") return { ok: false, reason: `it looks like a ${head4} WAV file, which is not supported; save it as a standard (RIFF) WAV` };
  if (head4 === "OggS") return hit("ogg");
  if (head4 === "fLaC") return hit("flac");
  if (ascii(b, 0, 3) === "ID3" || isMpegAudioFrame(b, 0)) return hit("mp3");
  if (b.length >= 12 && ascii(b, 4, 4) === "ftyp") return sniffFtyp(b);
  if (b.length >= 8 && QUICKTIME_ATOMS.has(ascii(b, 4, 4))) return hit("mov");
  if (startsWith(b, [0x1a, 0x45, 0xdf, 0xa3])) return sniffEbml(b);

  // Recognisable but unsupported files: say what they are.
  if (b[0] === 0xff && b.length >= 2 && (b[1]! & 0xf6) === 0xf0) return { ok: false, reason: "it looks like raw AAC (ADTS) audio, which is not supported; use WAV, MP3, OGG, FLAC or M4A" };
  if (ascii(b, 0, 5) === "%PDF-") return { ok: false, reason: "it looks like a PDF document" };
  if (startsWith(b, [0x50, 0x4b, 0x03, 0x04])) return { ok: false, reason: "it looks like a ZIP archive (or an Office document)" };
  if (ascii(b, 0, 2) === "BM" && b.length >= 26) return { ok: false, reason: "it looks like a BMP image, which is not supported; convert it to PNG, JPEG or WebP" };
  if (head4 === "II*\0" || head4 === "MM\0*") return { ok: false, reason: "it looks like a TIFF image, which is not supported; convert it to PNG, JPEG or WebP" };
  if (looksLikeText(b)) {
    const text = ascii(b, 0, 256).trimStart().toLowerCase();
    if (text.startsWith("<svg") || (text.startsWith("<?xml") && text.includes("<svg"))) return { ok: false, reason: "it looks like an SVG drawing, which is not supported; export it as PNG" };
    return { ok: false, reason: "it looks like a text file" };
  }
  return { ok: false, reason: "its first bytes match no supported image, audio or video format" };
}

/** The format a file name claims by its extension, if it names one we know; used only for messages. */
export function claimedFormat(filename: string): FileType | undefined {
  const ext = /\.([a-z0-9]{1,8})$/i.exec(filename)?.[1]?.toLowerCase();
  const byExt: Record<string, KnownFormat> = {
    png: "png", jpg: "jpeg", jpeg: "jpeg", jpe: "jpeg", jfif: "jpeg", gif: "gif", webp: "webp",
    wav: "wav", wave: "wav", mp3: "mp3", ogg: "ogg", oga: "ogg", opus: "ogg", flac: "flac", m4a: "m4a",
    mp4: "mp4", m4v: "mp4", mov: "mov", qt: "mov", webm: "webm", mkv: "mkv", avi: "avi",
  };
  const f = ext ? byExt[ext] : undefined;
  return f ? FORMATS[f] : undefined;
}
