import { crc32 } from "node:zlib";

const SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

/**
 * What is structurally wrong with a PNG file, in words, or null. libvips reports a damaged critical chunk
 * as "Unknown error"; this walks the chunks first so the user learns which chunk is damaged and how.
 * Like libpng, only critical chunks (IHDR, PLTE, IDAT, IEND: first letter upper case) must have a good
 * CRC; a damaged ancillary chunk (text, colour profile, …) is skipped by decoders and is not refused here.
 */
export function pngStructureProblem(bytes: Uint8Array): string | null {
  if (bytes.length < 8 || SIGNATURE.some((b, i) => bytes[i] !== b)) return "it does not start with the PNG signature";
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let offset = 8;
  let index = 0;
  let sawIdat = false;
  while (offset < bytes.length) {
    if (offset + 12 > bytes.length) return `it ends inside chunk ${index + 1} (truncated file)`;
    const length = view.getUint32(offset);
    const type = String.fromCharCode(...bytes.subarray(offset + 4, offset + 8));
    if (!/^[A-Za-z]{4}$/.test(type)) return `chunk ${index + 1} at byte ${offset} has no valid type (the file is damaged)`;
    if (index === 0 && type !== "IHDR") return `its first chunk is ${type}, not IHDR (the file is damaged)`;
    const end = offset + 12 + length;
    if (length > 0x7fffffff || end > bytes.length) return `its ${type} chunk claims ${length} bytes but the file ends first (truncated file)`;
    const critical = type.charCodeAt(0) < 97;
    if (critical) {
      const stored = view.getUint32(offset + 8 + length);
      const computed = crc32(bytes.subarray(offset + 4, offset + 8 + length));
      if (stored !== computed) return `its ${type} chunk is damaged (its CRC checksum does not match its contents)`;
    }
    if (type === "IDAT") sawIdat = true;
    if (type === "IEND") return sawIdat ? null : "it has no image data (no IDAT chunk)";
    offset = end;
    index++;
  }
  return "it has no IEND chunk (truncated file)";
}
