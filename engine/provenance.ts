/**
 * Provenance: the workflow document that made a PNG or WAV travels inside the file, so dropping the
 * file back into the editor restores the workflow. Pure byte work (no node: imports), usable anywhere.
 *
 * PNG  One `iTXt` chunk just before IEND: keyword "moe-studio-workflow", compression flag 0 (not
 *      compressed), empty language tag and translated keyword, text = UTF-8 JSON of the document.
 *      CRC-32 over type + data as the PNG spec says. Embedding again replaces the previous chunk.
 * WAV  A RIFF `iXML` chunk, appended after the existing chunks (so `fmt ` and `data` keep their
 *      offsets):
 *        <?xml version="1.0" encoding="UTF-8"?>
 *        <BWFXML><MOE_STUDIO_WORKFLOW><![CDATA[json]]></MOE_STUDIO_WORKFLOW></BWFXML>
 *      and a `LIST`/`INFO` chunk whose `ICMT` says "MoE Studio workflow inside (iXML)", for players
 *      that only show INFO comments. Chunks are padded to an even size and the RIFF size is updated.
 *      A WAV that already has an iXML chunk keeps it: our element replaces an earlier one or is
 *      inserted before </BWFXML>. An existing INFO list gains the ICMT only when it has none.
 *
 * CDATA safety: the JSON is written as-is (readable by any XML tool), and every "]]>" inside it is
 * split across two CDATA sections ("]]" + "]]><![CDATA[" + ">"), the standard XML idiom; an XML
 * parser concatenating the sections gets the exact JSON back. U+FFFE/U+FFFF, the only characters
 * JSON.stringify leaves raw that XML 1.0 forbids, are written as JSON escapes (\ufffe, \uffff).
 * Control characters and lone surrogates are already escaped by JSON.stringify.
 *
 * Readers return the parsed JSON (unknown: run it through loadWorkflow), null when the file carries no
 * workflow, and throw ProvenanceError for damaged files (bad signature, truncation, bad CRC, bad JSON).
 */
import type { Workflow } from "./workflow/schema";
import { jsonTextProblem } from "./json-limits";

export const PNG_WORKFLOW_KEYWORD = "moe-studio-workflow";
export const WAV_WORKFLOW_ELEMENT = "MOE_STUDIO_WORKFLOW";
export const WAV_INFO_NOTE = "MoE Studio workflow inside (iXML)";

/** A file that cannot be read or written as asked (corrupt, truncated, not PNG/WAV). */
export class ProvenanceError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ProvenanceError";
  }
}

// ---------------------------------------------------------------------------------------------
// CRC-32 (IEEE 802.3, reflected, polynomial 0xEDB88320), as PNG uses it.

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/** CRC-32 of `bytes[start, end)`. crc32(ascii "123456789") = 0xCBF43926. */
export function crc32(bytes: Uint8Array, start = 0, end = bytes.length): number {
  let c = 0xffffffff;
  for (let i = start; i < end; i++) c = CRC_TABLE[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

// ---------------------------------------------------------------------------------------------
// Shared

const utf8 = new TextEncoder();
const utf8Strict = new TextDecoder("utf-8", { fatal: true });

/** The document as JSON text, safe inside XML CDATA once "]]>" is split (see the header). */
function workflowJson(doc: Workflow): string {
  return JSON.stringify(doc).replace(/[\ufffe\uffff]/g, (ch) => `\\u${ch.charCodeAt(0).toString(16)}`);
}

function parseJson(text: string, where: string): unknown {
  const problem = jsonTextProblem(text);
  if (problem) throw new ProvenanceError(`the workflow embedded in this ${where} is refused: ${problem}`);
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new ProvenanceError(`the workflow embedded in this ${where} is not valid JSON (${(err as Error).message})`);
  }
}

function decodeUtf8(bytes: Uint8Array, where: string): string {
  try {
    return utf8Strict.decode(bytes);
  } catch {
    throw new ProvenanceError(`the workflow embedded in this ${where} is not valid UTF-8`);
  }
}

function concat(parts: Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

const ascii4 = (b: Uint8Array, at: number) => String.fromCharCode(b[at]!, b[at + 1]!, b[at + 2]!, b[at + 3]!);

// ---------------------------------------------------------------------------------------------
// PNG

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

export function isPng(bytes: Uint8Array): boolean {
  return bytes.length >= 8 && PNG_SIGNATURE.every((v, i) => bytes[i] === v);
}

interface PngChunk {
  type: string;
  /** Offset of the length field. */
  start: number;
  /** Offset of the data. */
  data: number;
  length: number;
  /** Offset just after the CRC. */
  end: number;
}

/** Walks the chunks up to and including IEND; throws on a bad signature or a truncated file. */
function pngChunks(bytes: Uint8Array): PngChunk[] {
  if (!isPng(bytes)) throw new ProvenanceError("not a PNG file (bad signature)");
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const chunks: PngChunk[] = [];
  let at = 8;
  for (;;) {
    if (at + 12 > bytes.length) throw new ProvenanceError("corrupt PNG: the file ends before its IEND chunk (truncated?)");
    const length = view.getUint32(at);
    const type = ascii4(bytes, at + 4);
    if (length > 0x7fffffff || at + 12 + length > bytes.length) throw new ProvenanceError(`corrupt PNG: the ${JSON.stringify(type)} chunk runs past the end of the file`);
    if (!/^[A-Za-z]{4}$/.test(type)) throw new ProvenanceError(`corrupt PNG: bad chunk type at byte ${at + 4}`);
    const chunk = { type, start: at, data: at + 8, length, end: at + 12 + length };
    chunks.push(chunk);
    at = chunk.end;
    if (type === "IEND") return chunks;
  }
}

const KEYWORD_BYTES = utf8.encode(PNG_WORKFLOW_KEYWORD);

/** True when an iTXt chunk's data starts with our keyword and its NUL. */
function isWorkflowChunk(bytes: Uint8Array, c: PngChunk): boolean {
  if (c.type !== "iTXt" || c.length < KEYWORD_BYTES.length + 1) return false;
  for (let i = 0; i < KEYWORD_BYTES.length; i++) if (bytes[c.data + i] !== KEYWORD_BYTES[i]) return false;
  return bytes[c.data + KEYWORD_BYTES.length] === 0;
}

function pngChunk(type: string, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + data.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, data.length);
  for (let i = 0; i < 4; i++) out[4 + i] = type.charCodeAt(i);
  out.set(data, 8);
  view.setUint32(8 + data.length, crc32(out, 4, 8 + data.length));
  return out;
}

/** A copy of the PNG with the document in an iTXt chunk before IEND (replacing an earlier one). */
export function embedWorkflowInPng(png: Uint8Array, doc: Workflow): Uint8Array {
  const chunks = pngChunks(png);
  const text = utf8.encode(workflowJson(doc));
  // keyword \0, compression flag 0, compression method 0, language "" \0, translated keyword "" \0, text
  const data = concat([KEYWORD_BYTES, new Uint8Array([0, 0, 0, 0, 0]), text]);
  if (data.length > 0x7fffffff) throw new ProvenanceError("the workflow is too large for a PNG chunk");
  const parts: Uint8Array[] = [png.subarray(0, 8)];
  for (const c of chunks) {
    if (c.type === "IEND") parts.push(pngChunk("iTXt", data));
    if (!isWorkflowChunk(png, c)) parts.push(png.subarray(c.start, c.end));
  }
  return concat(parts);
}

/** The document embedded by embedWorkflowInPng (parsed JSON, not validated), or null when absent. */
export function readWorkflowFromPng(bytes: Uint8Array): unknown | null {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (const c of pngChunks(bytes)) {
    if (!isWorkflowChunk(bytes, c)) continue;
    const stored = view.getUint32(c.data + c.length);
    const actual = crc32(bytes, c.start + 4, c.data + c.length);
    if (stored !== actual) {
      throw new ProvenanceError(`corrupt PNG: the CRC of the embedded workflow chunk does not match (stored ${hex(stored)}, computed ${hex(actual)}); the file was damaged`);
    }
    const end = c.data + c.length;
    let at = c.data + KEYWORD_BYTES.length + 1;
    if (at + 2 > end) throw new ProvenanceError("corrupt PNG: the embedded workflow chunk is truncated");
    const compressed = bytes[at]!;
    at += 2; // flag, method
    if (compressed !== 0) throw new ProvenanceError("the embedded workflow is zlib-compressed, which this reader does not support");
    for (let k = 0; k < 2; k++) {
      const nul = bytes.indexOf(0, at);
      if (nul < 0 || nul >= end) throw new ProvenanceError("corrupt PNG: the embedded workflow chunk is malformed");
      at = nul + 1; // language tag, then translated keyword
    }
    return parseJson(decodeUtf8(bytes.subarray(at, end), "PNG"), "PNG");
  }
  return null;
}

const hex = (n: number) => `0x${n.toString(16).padStart(8, "0")}`;

// ---------------------------------------------------------------------------------------------
// WAV (RIFF)

export function isWav(bytes: Uint8Array): boolean {
  return bytes.length >= 12 && ascii4(bytes, 0) === "RIFF" && ascii4(bytes, 8) === "WAVE";
}

interface RiffChunk {
  id: string;
  /** Offset of the body. */
  body: number;
  size: number;
}

/** The top-level chunks of a RIFF/WAVE file, and where the RIFF form ends (trailing bytes after it are kept). */
function riffChunks(bytes: Uint8Array): { chunks: RiffChunk[]; end: number } {
  if (!isWav(bytes)) throw new ProvenanceError("not a WAV file (no RIFF/WAVE header)");
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const riffSize = view.getUint32(4, true);
  // A RIFF size past the end (truncated file, or a streaming writer's placeholder): walk to the end.
  const end = riffSize >= 4 && 8 + riffSize <= bytes.length ? 8 + riffSize : bytes.length;
  const chunks: RiffChunk[] = [];
  let at = 12;
  while (at + 8 <= end) {
    const id = ascii4(bytes, at);
    let size = view.getUint32(at + 4, true);
    const body = at + 8;
    if (id === "data" && size === 0xffffffff) size = end - body; // unknown size: the data runs to the end
    if (body + size > end) throw new ProvenanceError(`corrupt WAV: the ${JSON.stringify(id)} chunk runs past the end of the file (truncated?)`);
    chunks.push({ id, body, size });
    at = body + size + (size & 1); // a missing final pad byte is tolerated
  }
  return { chunks, end };
}

function riffChunk(id: string, body: Uint8Array): Uint8Array {
  const out = new Uint8Array(8 + body.length + (body.length & 1));
  for (let i = 0; i < 4; i++) out[i] = id.charCodeAt(i);
  new DataView(out.buffer).setUint32(4, body.length, true);
  out.set(body, 8);
  return out;
}

const OPEN = `<${WAV_WORKFLOW_ELEMENT}>`;
const CLOSE = `</${WAV_WORKFLOW_ELEMENT}>`;

function workflowElement(doc: Workflow): string {
  return `${OPEN}<![CDATA[${workflowJson(doc).split("]]>").join("]]]]><![CDATA[>")}]]>${CLOSE}`;
}

const ENTITIES: Record<string, string> = { lt: "<", gt: ">", amp: "&", quot: '"', apos: "'" };

/**
 * Finds our element in iXML text: its start, its end (after the closing tag) and its text content
 * (CDATA sections concatenated; plain text with the five XML entities is accepted too). Null if absent.
 */
function findWorkflowElement(xml: string): { start: number; end: number; text: string } | null {
  const start = xml.indexOf(OPEN);
  if (start < 0) return null;
  let at = start + OPEN.length;
  let text = "";
  for (;;) {
    if (xml.startsWith("<![CDATA[", at)) {
      const close = xml.indexOf("]]>", at + 9);
      if (close < 0) throw new ProvenanceError("corrupt WAV: an unterminated CDATA section in the embedded workflow");
      text += xml.slice(at + 9, close);
      at = close + 3;
    } else if (xml.startsWith(CLOSE, at)) {
      return { start, end: at + CLOSE.length, text };
    } else if (at >= xml.length || xml[at] === "<") {
      throw new ProvenanceError(`corrupt WAV: the ${WAV_WORKFLOW_ELEMENT} element in the iXML chunk is not closed`);
    } else {
      const next = xml.indexOf("<", at);
      const stop = next < 0 ? xml.length : next;
      text += xml.slice(at, stop).replace(/&(lt|gt|amp|quot|apos);/g, (_, e: string) => ENTITIES[e]!);
      at = stop;
    }
  }
}

/** A copy of the WAV with the document in an iXML chunk and a LIST/INFO comment pointing to it. */
export function embedWorkflowInWav(wav: Uint8Array, doc: Workflow): Uint8Array {
  const { chunks, end } = riffChunks(wav);
  const element = workflowElement(doc);
  const parts: Uint8Array[] = [];
  let hadIxml = false;
  let hadInfo = false;
  for (const c of chunks) {
    let body = wav.subarray(c.body, c.body + c.size);
    if (c.id === "iXML" && !hadIxml) {
      hadIxml = true;
      let xml = new TextDecoder().decode(body);
      const old = findWorkflowElement(xml);
      if (old) xml = xml.slice(0, old.start) + element + xml.slice(old.end);
      else {
        const close = xml.lastIndexOf("</BWFXML>");
        if (close < 0) throw new ProvenanceError("the WAV has an iXML chunk without a <BWFXML> root; not adding a workflow to it");
        xml = xml.slice(0, close) + element + xml.slice(close);
      }
      body = utf8.encode(xml);
    } else if (c.id === "LIST" && c.size >= 4 && ascii4(body, 0) === "INFO" && !hadInfo) {
      hadInfo = true;
      let hasComment = false;
      for (let at = 4; at + 8 <= body.length; ) {
        if (ascii4(body, at) === "ICMT") hasComment = true;
        const size = new DataView(body.buffer, body.byteOffset + at + 4, 4).getUint32(0, true);
        at += 8 + size + (size & 1);
      }
      if (!hasComment) body = concat([body, infoComment()]);
    }
    parts.push(riffChunk(c.id, body));
  }
  // New chunks go before `data`: some players (Chromium among them) count whatever follows the
  // samples as audio, which would make the clip look longer than it is.
  const added: Uint8Array[] = [];
  if (!hadIxml) added.push(riffChunk("iXML", utf8.encode(`<?xml version="1.0" encoding="UTF-8"?>\n<BWFXML>${element}</BWFXML>\n`)));
  if (!hadInfo) added.push(riffChunk("LIST", concat([utf8.encode("INFO"), infoComment()])));
  const dataAt = chunks.findIndex((c) => c.id === "data");
  parts.splice(dataAt < 0 ? parts.length : dataAt, 0, ...added);
  const form = concat(parts);
  if (4 + form.length > 0xffffffff) throw new ProvenanceError("the WAV with its workflow would exceed the 4 GB RIFF limit");
  const header = new Uint8Array(12);
  header.set(wav.subarray(0, 12));
  new DataView(header.buffer).setUint32(4, 4 + form.length, true);
  return concat([header, form, wav.subarray(end)]);
}

function infoComment(): Uint8Array {
  return riffChunk("ICMT", utf8.encode(`${WAV_INFO_NOTE}\0`));
}

/** The document embedded by embedWorkflowInWav (parsed JSON, not validated), or null when absent. */
export function readWorkflowFromWav(bytes: Uint8Array): unknown | null {
  for (const c of riffChunks(bytes).chunks) {
    if (c.id !== "iXML") continue;
    const found = findWorkflowElement(decodeUtf8(bytes.subarray(c.body, c.body + c.size), "WAV"));
    if (found) return parseJson(found.text, "WAV");
  }
  return null;
}

// ---------------------------------------------------------------------------------------------

export type MediaKind = "png" | "wav";

/** "png" or "wav" from the file's first bytes; null for anything else. */
export function sniffMedia(bytes: Uint8Array): MediaKind | null {
  return isPng(bytes) ? "png" : isWav(bytes) ? "wav" : null;
}

/** Reads the workflow from a PNG or a WAV (sniffed from the bytes); null when the file carries none. */
export function readWorkflowFromMedia(bytes: Uint8Array): unknown | null {
  const kind = sniffMedia(bytes);
  if (kind === "png") return readWorkflowFromPng(bytes);
  if (kind === "wav") return readWorkflowFromWav(bytes);
  throw new ProvenanceError("not a PNG or WAV file");
}
