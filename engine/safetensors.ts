/**
 * The safetensors format itself (https://huggingface.co/docs/safetensors): an 8-byte little-endian header
 * length, a JSON header `{ name: { dtype, shape, data_offsets }, "__metadata__": { string: string } }`
 * padded with spaces to 8 bytes, then the tensors' bytes (little-endian, row-major). Framework-free and
 * browser-safe: models/io/safetensors.ts adds file I/O and float conversion on top; routing exports encode
 * in memory with `encodeSafetensors`.
 */

/** Bytes per element of every dtype the format defines. */
export const DTYPE_BYTES: Readonly<Record<string, number>> = {
  BOOL: 1, U8: 1, I8: 1, F8_E5M2: 1, F8_E4M3: 1,
  I16: 2, U16: 2, F16: 2, BF16: 2,
  I32: 4, U32: 4, F32: 4,
  I64: 8, U64: 8, F64: 8,
};

export class SafetensorsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "SafetensorsError";
  }
}

export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** Builds the header bytes (padded with spaces to a multiple of 8) for the given entries. */
export function buildHeader(entries: readonly { name: string; shape: number[]; dtype: string }[], metadata?: Record<string, string>): { header: Uint8Array; dataBytes: number } {
  const obj: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length > 0) {
    for (const [k, v] of Object.entries(metadata)) if (typeof v !== "string") throw new SafetensorsError(`metadata "${k}" must be a string`);
    obj.__metadata__ = metadata;
  }
  let offset = 0;
  for (const e of entries) {
    if (!e.name || e.name === "__metadata__") throw new SafetensorsError(`invalid tensor name ${JSON.stringify(e.name)}`);
    if (Object.prototype.hasOwnProperty.call(obj, e.name)) throw new SafetensorsError(`tensor "${e.name}" is listed twice`);
    if (!e.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) throw new SafetensorsError(`tensor "${e.name}": invalid shape ${JSON.stringify(e.shape)}`);
    if (!(e.dtype in DTYPE_BYTES)) throw new SafetensorsError(`tensor "${e.name}": unknown dtype ${e.dtype}`);
    const bytes = numel(e.shape) * DTYPE_BYTES[e.dtype]!;
    obj[e.name] = { dtype: e.dtype, shape: e.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  const json = new TextEncoder().encode(JSON.stringify(obj));
  const padded = Math.ceil(json.byteLength / 8) * 8;
  const header = new Uint8Array(8 + padded).fill(0x20, 8);
  new DataView(header.buffer).setBigUint64(0, BigInt(padded), true);
  header.set(json, 8);
  return { header, dataBytes: offset };
}

export type TypedTensorData = Float32Array | Float64Array | Int32Array | Uint8Array;

const DTYPE_OF = new Map<Function, string>([
  [Float32Array, "F32"],
  [Float64Array, "F64"],
  [Int32Array, "I32"],
  [Uint8Array, "U8"],
]);

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/**
 * A whole safetensors file in memory, each tensor stored in its typed array's dtype (F32, F64, I32, U8).
 * For exports of modest size (a routing trace, an aggregate); large weights go through
 * models/io/safetensors.ts writeSafetensors, which streams to disk.
 */
export function encodeSafetensors(tensors: readonly { name: string; shape: number[]; data: TypedTensorData }[], metadata?: Record<string, string>): Uint8Array {
  if (!LITTLE_ENDIAN) throw new SafetensorsError("writing safetensors on a big-endian machine is not supported");
  const entries = tensors.map((t) => {
    const dtype = DTYPE_OF.get(t.data.constructor);
    if (!dtype) throw new SafetensorsError(`tensor "${t.name}": unsupported array type`);
    if (t.data.length !== numel(t.shape)) throw new SafetensorsError(`tensor "${t.name}" has ${t.data.length} values but shape ${JSON.stringify(t.shape)} needs ${numel(t.shape)}`);
    return { name: t.name, shape: t.shape, dtype };
  });
  const { header, dataBytes } = buildHeader(entries, metadata);
  const out = new Uint8Array(header.byteLength + dataBytes);
  out.set(header, 0);
  let at = header.byteLength;
  for (const t of tensors) {
    out.set(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength), at);
    at += t.data.byteLength;
  }
  return out;
}

/** Reads an in-memory safetensors file back (header, metadata, and each tensor as a typed array view copy). */
export function decodeSafetensors(bytes: Uint8Array): { metadata: Record<string, string>; tensors: Map<string, { dtype: string; shape: number[]; data: TypedTensorData }> } {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLen = Number(view.getBigUint64(0, true));
  if (8 + headerLen > bytes.byteLength) throw new SafetensorsError("the header is longer than the file");
  type Entry = { dtype: string; shape: number[]; data_offsets: [number, number] };
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + headerLen))) as Record<string, unknown>;
  const tensors = new Map<string, { dtype: string; shape: number[]; data: TypedTensorData }>();
  const ctor: Record<string, new (b: ArrayBuffer) => TypedTensorData> = { F32: Float32Array, F64: Float64Array, I32: Int32Array, U8: Uint8Array };
  for (const [name, value] of Object.entries(header)) {
    if (name === "__metadata__") continue;
    const t = value as Entry;
    const C = ctor[t.dtype];
    if (!C) throw new SafetensorsError(`tensor "${name}": dtype ${t.dtype} is not read here`);
    const [b, e] = t.data_offsets;
    tensors.set(name, { dtype: t.dtype, shape: t.shape, data: new C(bytes.slice(8 + headerLen + b, 8 + headerLen + e).buffer) });
  }
  return { metadata: (header.__metadata__ ?? {}) as Record<string, string>, tensors };
}
