/**
 * The safetensors format, read and written in TypeScript, streaming.
 *
 * Layout: [u64 LE header length N][N bytes of JSON header, padded with spaces][data].
 * Header: { "__metadata__"?: {string: string}, "<tensor name>": { dtype, shape, data_offsets: [begin, end] } }
 * with offsets relative to the start of the data section; tensors tile the data section contiguously.
 *
 * Reading opens the file, parses only the header and reads a tensor's byte range when asked
 * (fs.readSync on a file descriptor). Writing computes the header from names/shapes/dtypes first,
 * then writes the data tensor by tensor, so a tensor's values can be produced just before they are written.
 * F32, F16 and BF16 are read (as fp32) and written; other dtypes are validated in headers but not read.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import type { Tensor32, WeightSource } from "./weights";
import { buildHeader, DTYPE_BYTES, numel, SafetensorsError } from "@/engine/safetensors";

export type FloatDtype = "F32" | "F16" | "BF16";


/** Largest header we accept (the reference implementation's limit is 100 MB). */
const MAX_HEADER_BYTES = 100_000_000;
/** Largest single read/write call; fs calls are limited to about 2 GiB. */
const IO_CHUNK = 1 << 30;
const LITTLE_ENDIAN = os.endianness() === "LE";

export interface TensorInfo {
  name: string;
  dtype: string;
  shape: number[];
  /** Byte range inside the data section. */
  begin: number;
  end: number;
}

export interface SafetensorsHeader {
  /** Size of the JSON header in bytes (without the 8-byte length prefix). */
  headerBytes: number;
  /** Absolute file offset of the data section (8 + headerBytes). */
  dataStart: number;
  tensors: Map<string, TensorInfo>;
  metadata: Record<string, string>;
}

export { SafetensorsError, buildHeader };

// ---------------------------------------------------------------------------------------------
// fp16 / bf16 <-> fp32 conversion (round to nearest, ties to even; NaN stays NaN, sign kept)

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** fp32 bits of x (x is first rounded to fp32). */
function f32Bits(x: number): number {
  f32[0] = x;
  return u32[0]!;
}

function bitsToF32(bits: number): number {
  u32[0] = bits >>> 0;
  return f32[0]!;
}

/** fp16 bit pattern (uint16) of the fp32 value nearest to x, rounded to nearest even. */
export function f32ToF16Bits(x: number): number {
  const bits = f32Bits(x);
  const sign = (bits >>> 16) & 0x8000;
  const exp = (bits >>> 23) & 0xff;
  const mant = bits & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant !== 0 ? 0x200 | (mant >>> 13) : 0); // inf / quiet NaN
  const e = exp - 127 + 15; // rebias
  if (e >= 0x1f) return sign | 0x7c00; // overflow -> inf
  if (e <= 0) {
    // fp16 subnormal (or zero): value = m * 2^-24 with m = round(full mantissa * 2^(e-1) ... )
    if (e < -10) return sign; // below half the smallest subnormal -> signed zero
    const full = mant | 0x800000; // 24-bit significand
    const shift = 14 - e; // 14..24
    const m = full >>> shift;
    const rem = full & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    const rounded = rem > half || (rem === half && (m & 1) === 1) ? m + 1 : m;
    return sign | rounded; // a carry into 0x400 correctly becomes the smallest normal
  }
  const m = mant >>> 13;
  const rem = mant & 0x1fff;
  let h = sign | (e << 10) | m;
  if (rem > 0x1000 || (rem === 0x1000 && (m & 1) === 1)) h += 1; // carry may roll into exp (up to inf): correct
  return h;
}

/** The fp32 value of an fp16 bit pattern. */
export function f16BitsToF32(h: number): number {
  const sign = (h & 0x8000) << 16;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) {
    if (mant === 0) return bitsToF32(sign);
    const v = mant * 2 ** -24;
    return sign ? -v : v;
  }
  if (exp === 0x1f) return bitsToF32(sign | 0x7f800000 | (mant << 13));
  return bitsToF32(sign | ((exp - 15 + 127) << 23) | (mant << 13));
}

/** bf16 bit pattern (uint16) of the fp32 value nearest to x, rounded to nearest even. */
export function f32ToBf16Bits(x: number): number {
  const bits = f32Bits(x);
  if ((bits & 0x7f800000) === 0x7f800000 && (bits & 0x7fffff) !== 0) return ((bits >>> 16) | 0x40) & 0xffff; // quiet NaN
  const lsb = (bits >>> 16) & 1;
  return ((bits + 0x7fff + lsb) >>> 16) & 0xffff;
}

/** The fp32 value of a bf16 bit pattern. */
export function bf16BitsToF32(b: number): number {
  return bitsToF32((b & 0xffff) << 16);
}

let f16Table: Float32Array | null = null;
/** All 65536 fp16 values as fp32 (built on first use; 256 KB). */
function f16ToF32Table(): Float32Array {
  if (!f16Table) {
    f16Table = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) f16Table[h] = f16BitsToF32(h);
  }
  return f16Table;
}

/** Decodes raw little-endian bytes of a float dtype into fp32. */
export function decodeToF32(bytes: Uint8Array, dtype: FloatDtype): Float32Array {
  const n = bytes.byteLength / (dtype === "F32" ? 4 : 2);
  if (dtype === "F32") {
    if (LITTLE_ENDIAN && bytes.byteOffset % 4 === 0) return new Float32Array(bytes.buffer, bytes.byteOffset, n);
    const out = new Float32Array(n);
    const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    for (let i = 0; i < n; i++) out[i] = dv.getFloat32(i * 4, true);
    return out;
  }
  const out = new Float32Array(n);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (dtype === "F16") {
    const table = f16ToF32Table();
    for (let i = 0; i < n; i++) out[i] = table[dv.getUint16(i * 2, true)]!;
  } else {
    const outBits = new Uint32Array(out.buffer);
    for (let i = 0; i < n; i++) outBits[i] = dv.getUint16(i * 2, true) << 16;
  }
  return out;
}

/** Encodes fp32 values as little-endian bytes of a float dtype. */
export function encodeFromF32(data: Float32Array, dtype: FloatDtype): Uint8Array {
  const n = data.length;
  if (dtype === "F32") {
    if (LITTLE_ENDIAN) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    const out = new Uint8Array(n * 4);
    const dv = new DataView(out.buffer);
    for (let i = 0; i < n; i++) dv.setFloat32(i * 4, data[i]!, true);
    return out;
  }
  if (dtype === "BF16" && LITTLE_ENDIAN) {
    // f32ToBf16Bits over typed arrays (this is every weight of a bf16 import: keep it a tight loop)
    const src = new Uint32Array(data.buffer, data.byteOffset, n);
    const half = new Uint16Array(n);
    for (let i = 0; i < n; i++) {
      const b = src[i]!;
      half[i] = (b & 0x7f800000) === 0x7f800000 && (b & 0x7fffff) !== 0 ? (b >>> 16) | 0x40 : (b + 0x7fff + ((b >>> 16) & 1)) >>> 16;
    }
    return new Uint8Array(half.buffer);
  }
  const out = new Uint8Array(n * 2);
  const dv = new DataView(out.buffer);
  const conv = dtype === "F16" ? f32ToF16Bits : f32ToBf16Bits;
  for (let i = 0; i < n; i++) dv.setUint16(i * 2, conv(data[i]!), true);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Header parsing and validation


/** Reads exactly `length` bytes at `position`, in chunks; throws if the file ends first. */
function readExact(fd: number, target: Uint8Array, position: number, what: () => string): void {
  let done = 0;
  while (done < target.byteLength) {
    const want = Math.min(IO_CHUNK, target.byteLength - done);
    const got = fs.readSync(fd, target, done, want, position + done);
    if (got === 0) throw new SafetensorsError(`${what()}: unexpected end of file (read ${done} of ${target.byteLength} bytes)`);
    done += got;
  }
}

/** Parses and validates the header of an open safetensors file. */
export function readHeaderFromFd(fd: number, file: string): SafetensorsHeader {
  const fileSize = fs.fstatSync(fd).size;
  if (fileSize < 8) throw new SafetensorsError(`${file}: not a safetensors file (${fileSize} bytes, shorter than the 8-byte header length)`);
  const lenBuf = new Uint8Array(8);
  readExact(fd, lenBuf, 0, () => file);
  const headerLen = new DataView(lenBuf.buffer).getBigUint64(0, true);
  if (headerLen > BigInt(MAX_HEADER_BYTES)) throw new SafetensorsError(`${file}: header length ${headerLen} is larger than the ${MAX_HEADER_BYTES}-byte limit (corrupt or not a safetensors file)`);
  const headerBytes = Number(headerLen);
  if (headerBytes < 2) throw new SafetensorsError(`${file}: header length ${headerBytes} is too small`);
  if (8 + headerBytes > fileSize) throw new SafetensorsError(`${file}: header length ${headerBytes} runs past the end of the file (${fileSize} bytes): truncated or corrupt`);
  const hbuf = new Uint8Array(headerBytes);
  readExact(fd, hbuf, 8, () => file);
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(hbuf));
  } catch (e) {
    throw new SafetensorsError(`${file}: header is not valid UTF-8 JSON (${(e as Error).message})`);
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) throw new SafetensorsError(`${file}: header must be a JSON object`);
  const dataStart = 8 + headerBytes;
  const dataBytes = fileSize - dataStart;
  const tensors = new Map<string, TensorInfo>();
  let metadata: Record<string, string> = {};
  for (const [name, raw] of Object.entries(json as Record<string, unknown>)) {
    if (name === "__metadata__") {
      if (typeof raw !== "object" || raw === null || Array.isArray(raw)) throw new SafetensorsError(`${file}: __metadata__ must be an object of strings`);
      for (const [k, v] of Object.entries(raw)) {
        if (typeof v !== "string") throw new SafetensorsError(`${file}: __metadata__["${k}"] must be a string`);
      }
      metadata = raw as Record<string, string>;
      continue;
    }
    const where = `${file}: tensor "${name}"`;
    if (typeof raw !== "object" || raw === null) throw new SafetensorsError(`${where}: entry must be an object`);
    const { dtype, shape, data_offsets } = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (typeof dtype !== "string" || !(dtype in DTYPE_BYTES)) throw new SafetensorsError(`${where}: unknown dtype ${JSON.stringify(dtype)}`);
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) throw new SafetensorsError(`${where}: shape must be an array of non-negative integers, got ${JSON.stringify(shape)}`);
    if (!Array.isArray(data_offsets) || data_offsets.length !== 2 || !data_offsets.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw new SafetensorsError(`${where}: data_offsets must be [begin, end] non-negative integers, got ${JSON.stringify(data_offsets)}`);
    }
    const [begin, end] = data_offsets as [number, number];
    if (end < begin) throw new SafetensorsError(`${where}: data_offsets [${begin}, ${end}] end before they begin`);
    const expected = numel(shape as number[]) * DTYPE_BYTES[dtype]!;
    if (end - begin !== expected) throw new SafetensorsError(`${where}: data_offsets span ${end - begin} bytes but ${dtype}${JSON.stringify(shape)} needs ${expected}`);
    if (end > dataBytes) throw new SafetensorsError(`${where}: data_offsets end at ${end} but the file has only ${dataBytes} data bytes: truncated file`);
    tensors.set(name, { name, dtype, shape: shape as number[], begin, end });
  }
  // The tensors must tile the data section: sorted by begin, no gaps, no overlaps, ending at the file's end.
  const sorted = [...tensors.values()].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let cursor = 0;
  for (const t of sorted) {
    if (t.begin !== cursor) {
      throw new SafetensorsError(`${file}: tensor "${t.name}" starts at ${t.begin} but the previous tensor ends at ${cursor} (data must be contiguous, without gaps or overlaps)`);
    }
    cursor = t.end;
  }
  if (cursor !== dataBytes) {
    throw new SafetensorsError(`${file}: tensors cover ${cursor} data bytes but the file has ${dataBytes} (${cursor > dataBytes ? "truncated" : "trailing bytes"})`);
  }
  return { headerBytes, dataStart, tensors, metadata };
}

/** Reads only the header of a safetensors file. */
export function readSafetensorsHeader(file: string): SafetensorsHeader {
  const fd = fs.openSync(file, "r");
  try {
    return readHeaderFromFd(fd, file);
  } finally {
    fs.closeSync(fd);
  }
}

// ---------------------------------------------------------------------------------------------
// Reading: one file

const fdCloser = new FinalizationRegistry<number>((fd) => {
  try {
    fs.closeSync(fd);
  } catch {
    /* already closed */
  }
});

/** An open safetensors file: header parsed, tensors read on demand. Call close() when done. */
export class SafetensorsFile {
  readonly header: SafetensorsHeader;
  /** Tensor data bytes read so far (header bytes excluded); handy to check that reads stay lazy. */
  bytesRead = 0;
  private fd: number | null;

  private constructor(readonly file: string, fd: number) {
    this.fd = fd;
    try {
      this.header = readHeaderFromFd(fd, file);
    } catch (e) {
      fs.closeSync(fd);
      throw e;
    }
    fdCloser.register(this, fd, this);
  }

  static open(file: string): SafetensorsFile {
    let fd: number;
    try {
      fd = fs.openSync(file, "r");
    } catch (e) {
      throw new SafetensorsError(`${file}: cannot open (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }
    return new SafetensorsFile(file, fd);
  }

  get metadata(): Record<string, string> {
    return this.header.metadata;
  }

  names(): string[] {
    return [...this.header.tensors.keys()];
  }

  has(name: string): boolean {
    return this.header.tensors.has(name);
  }

  info(name: string): TensorInfo {
    const t = this.header.tensors.get(name);
    if (!t) throw new SafetensorsError(`${this.file}: no tensor "${name}"`);
    return t;
  }

  /**
   * The tensor's raw little-endian bytes, read from disk now: all of it, or `count` slices along its first dimension
   * from `first` on (e.g. one expert of a stacked [E, ...] tensor), read without the rest.
   */
  readBytes(name: string, first = 0, count?: number): Uint8Array {
    const t = this.info(name);
    if (this.fd === null) throw new SafetensorsError(`${this.file}: file is closed (reading tensor "${name}")`);
    const rows = t.shape[0] ?? 1;
    const n = count ?? rows - first;
    if (!Number.isInteger(first) || !Number.isInteger(n) || first < 0 || n < 0 || first + n > rows) throw new SafetensorsError(`${this.file}: tensor "${name}" has ${rows} slices, cannot read ${n} from ${first}`);
    const per = t.shape.length === 0 ? t.end - t.begin : (t.end - t.begin) / rows;
    const out = new Uint8Array(per * n);
    readExact(this.fd, out, this.header.dataStart + t.begin + per * first, () => `${this.file}: tensor "${name}"`);
    this.bytesRead += out.byteLength;
    return out;
  }

  /** The tensor as fp32 (F16/BF16 converted), whole or `count` slices along its first dimension from `first`. */
  read(name: string, first?: number, count?: number): Tensor32 {
    const t = this.info(name);
    if (t.dtype !== "F32" && t.dtype !== "F16" && t.dtype !== "BF16") {
      throw new SafetensorsError(`${this.file}: tensor "${name}" has dtype ${t.dtype}; only F32, F16 and BF16 can be read as fp32`);
    }
    const shape = first === undefined ? [...t.shape] : [count ?? t.shape[0]! - first, ...t.shape.slice(1)];
    return { shape, data: decodeToF32(this.readBytes(name, first, count), t.dtype) };
  }

  close(): void {
    if (this.fd !== null) {
      fdCloser.unregister(this);
      fs.closeSync(this.fd);
      this.fd = null;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Reading: a model directory

/**
 * The weights of a model directory, read lazily from safetensors:
 * `model.safetensors.index.json` (its weight_map names the shard of each tensor), else a single
 * `model.safetensors`, else every `*.safetensors` in the directory (a tensor name may appear only once).
 * A path to a single .safetensors file also works.
 */
export class SafetensorsWeights implements WeightSource {
  private readonly files: SafetensorsFile[] = [];
  private readonly where = new Map<string, SafetensorsFile>();

  constructor(readonly dir: string) {
    try {
      this.openAll(dir);
    } catch (e) {
      this.close();
      throw e;
    }
  }

  private openAll(dir: string): void {
    let stat: fs.Stats;
    try {
      stat = fs.statSync(dir);
    } catch {
      throw new SafetensorsError(`${dir}: no such model directory or safetensors file`);
    }
    if (stat.isFile()) {
      this.addFile(dir, null);
      return;
    }
    const index = path.join(dir, "model.safetensors.index.json");
    if (fs.existsSync(index)) {
      let weightMap: Record<string, unknown>;
      try {
        const parsed = JSON.parse(fs.readFileSync(index, "utf8")) as { weight_map?: unknown };
        if (typeof parsed.weight_map !== "object" || parsed.weight_map === null) throw new Error("it has no weight_map object");
        weightMap = parsed.weight_map as Record<string, unknown>;
      } catch (e) {
        throw new SafetensorsError(`${index}: cannot read the shard index (${(e as Error).message})`);
      }
      const byShard = new Map<string, string[]>();
      for (const [name, shard] of Object.entries(weightMap)) {
        if (typeof shard !== "string" || shard !== path.basename(shard) || !shard.endsWith(".safetensors")) {
          throw new SafetensorsError(`${index}: weight_map["${name}"] must be a file name in the same directory, got ${JSON.stringify(shard)}`);
        }
        byShard.set(shard, [...(byShard.get(shard) ?? []), name]);
      }
      for (const [shard, names] of byShard) this.addFile(path.join(dir, shard), names);
      return;
    }
    const single = path.join(dir, "model.safetensors");
    if (fs.existsSync(single)) {
      this.addFile(single, null);
      return;
    }
    const all = fs.readdirSync(dir).filter((f) => f.endsWith(".safetensors")).sort();
    if (all.length === 0) throw new SafetensorsError(`${dir}: no model.safetensors, model.safetensors.index.json or *.safetensors files`);
    for (const f of all) this.addFile(path.join(dir, f), null);
  }

  /** Opens a file and registers its tensors (all of them, or only `listed`, which must all exist). */
  private addFile(file: string, listed: string[] | null): void {
    const sf = SafetensorsFile.open(file);
    this.files.push(sf);
    const names = listed ?? sf.names();
    for (const name of names) {
      if (!sf.has(name)) throw new SafetensorsError(`${file}: the shard index lists tensor "${name}" here but the file does not contain it`);
      const prev = this.where.get(name);
      if (prev) throw new SafetensorsError(`tensor "${name}" appears in both ${prev.file} and ${file}`);
      this.where.set(name, sf);
    }
  }

  names(): string[] {
    return [...this.where.keys()];
  }

  has(name: string): boolean {
    return this.where.has(name);
  }

  private fileOf(name: string): SafetensorsFile {
    const sf = this.where.get(name);
    if (!sf) throw new SafetensorsError(`${this.dir}: weight "${name}" is missing`);
    return sf;
  }

  /** dtype, shape and file of a tensor, without reading its data. */
  info(name: string): TensorInfo & { file: string } {
    const sf = this.fileOf(name);
    return { ...sf.info(name), file: sf.file };
  }

  get(name: string): Tensor32 {
    return this.fileOf(name).read(name);
  }

  /** `count` slices of a tensor along its first dimension (e.g. expert e of a stacked [E, ...] tensor) as fp32. */
  getSlices(name: string, first: number, count = 1): Tensor32 {
    return this.fileOf(name).read(name, first, count);
  }

  /** A tensor's raw bytes (any dtype; e.g. uint8 MXFP4 blocks, F8_E4M3 weights), whole or `count` slices from `first`. */
  rawBytes(name: string, first?: number, count?: number): Uint8Array {
    return this.fileOf(name).readBytes(name, first, count);
  }

  /** Tensor data bytes read so far over all files. */
  get bytesRead(): number {
    return this.files.reduce((s, f) => s + f.bytesRead, 0);
  }

  /** __metadata__ of every file, merged (later files win on conflicts). */
  get metadata(): Record<string, string> {
    return Object.assign({}, ...this.files.map((f) => f.metadata)) as Record<string, string>;
  }

  close(): void {
    for (const f of this.files) f.close();
  }
}

// ---------------------------------------------------------------------------------------------
// Writing

export interface SafetensorsEntry {
  name: string;
  shape: number[];
  /** Stored dtype (default: the writer's `dtype` option, itself F32 by default); raw dtypes (U8, F8_E4M3, …) take bytes. */
  dtype?: string;
  /** fp32 values in row-major order (float dtypes) or the stored bytes (other dtypes), or a function producing them when written. */
  data: Float32Array | Uint8Array | (() => Float32Array | Uint8Array);
}

export interface WriteOptions {
  metadata?: Record<string, string>;
  /** Default stored dtype for entries without one. */
  dtype?: FloatDtype;
  /** Called after each tensor with bytes written so far (including the header) and the file's total size. */
  onProgress?: (written: number, total: number) => void;
}

/** Total file size for the given entries, without writing anything. */
export function safetensorsFileSize(entries: readonly { name: string; shape: number[]; dtype?: string }[], opts: Pick<WriteOptions, "metadata" | "dtype"> = {}): number {
  const { header, dataBytes } = buildHeader(entries.map((e) => ({ name: e.name, shape: e.shape, dtype: e.dtype ?? opts.dtype ?? "F32" })), opts.metadata);
  return header.byteLength + dataBytes;
}

/**
 * Writes a safetensors file, streaming: the header is computed from the entries' shapes and dtypes,
 * then each tensor's data is obtained (a lazy `data` function is called only now) and written in order.
 * Throws, leaving a partial file, if a tensor's value count does not match its shape; write to a
 * temporary path and rename if the file must appear atomically.
 */
export async function writeSafetensors(file: string, entries: readonly SafetensorsEntry[], opts: WriteOptions = {}): Promise<{ bytes: number }> {
  const resolved = entries.map((e) => ({ ...e, dtype: e.dtype ?? opts.dtype ?? "F32" }));
  const { header, dataBytes } = buildHeader(resolved, opts.metadata);
  const total = header.byteLength + dataBytes;
  const fh = await fs.promises.open(file, "w");
  try {
    let pos = 0;
    const writeAll = async (bytes: Uint8Array) => {
      let done = 0;
      while (done < bytes.byteLength) {
        const { bytesWritten } = await fh.write(bytes, done, Math.min(IO_CHUNK, bytes.byteLength - done), pos);
        done += bytesWritten;
        pos += bytesWritten;
      }
    };
    await writeAll(header);
    opts.onProgress?.(pos, total);
    for (const e of resolved) {
      const data = typeof e.data === "function" ? e.data() : e.data;
      const float = e.dtype === "F32" || e.dtype === "F16" || e.dtype === "BF16";
      if (float !== data instanceof Float32Array) throw new SafetensorsError(`${file}: tensor "${e.name}" is ${e.dtype}: give ${float ? "fp32 values" : "its bytes (Uint8Array)"}`);
      const want = float ? numel(e.shape) : numel(e.shape) * (DTYPE_BYTES[e.dtype] ?? 0);
      if (data.length !== want) {
        throw new SafetensorsError(`${file}: tensor "${e.name}" has ${data.length} ${float ? "values" : "bytes"} but shape ${JSON.stringify(e.shape)} needs ${want}${float ? "" : ` (${e.dtype})`}`);
      }
      await writeAll(float ? encodeFromF32(data as Float32Array, e.dtype as FloatDtype) : (data as Uint8Array));
      opts.onProgress?.(pos, total);
    }
  } finally {
    await fh.close();
  }
  return { bytes: total };
}

/** Writes every tensor of a map (in insertion order). */
export function writeSafetensorsFromMap(file: string, tensors: Map<string, Tensor32>, opts: WriteOptions = {}): Promise<{ bytes: number }> {
  return writeSafetensors(file, [...tensors].map(([name, t]) => ({ name, shape: t.shape, data: t.data })), opts);
}
