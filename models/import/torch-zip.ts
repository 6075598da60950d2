/**
 * Reads tensors from a PyTorch checkpoint (torch.save's zip format: `<record>/data.pkl` + `<record>/data/<key>`
 * storage files, stored uncompressed) WITHOUT executing anything: the pickle is interpreted opcode by opcode into
 * plain values. Globals are never imported or called: the few that build tensors and containers
 * (torch._utils._rebuild_tensor_v2 / _rebuild_parameter, torch.*Storage, collections.OrderedDict) are interpreted
 * here; any other global becomes an inert `PickleOpaque` marker (as do REDUCE/NEWOBJ/BUILD applied to it), and a
 * tensor asked for that is not a plain rebuilt tensor is refused naming what it is. `strict` refuses any unknown
 * global outright. Only the storages of the tensors asked for are read (random access in the zip).
 *
 * The weights are the top-level dict's "state_dict" when it has one (a PyTorch-Lightning checkpoint, e.g.
 * WavTokenizer's .ckpt), else the top-level dict itself (a plain state_dict, e.g. Uni-MoE-TTS's speech_gen_ep2.bin).
 */
import { closeSync, fstatSync, openSync, readSync } from "node:fs";
import { bf16BitsToF32, f16BitsToF32 } from "../io/safetensors";
import type { Tensor32, WeightSource } from "../io/weights";

// ---------------------------------------------------------------------------------------------
// zip (central directory, zip64; stored entries only)

interface ZipEntry {
  name: string;
  method: number;
  size: number;
  compressedSize: number;
  localOffset: number;
}

function readAt(fd: number, offset: number, length: number): Buffer {
  const b = Buffer.alloc(length);
  for (let done = 0; done < length; ) {
    const n = readSync(fd, b, done, length - done, offset + done);
    if (n === 0) throw new Error(`unexpected end of file at ${offset + done}`);
    done += n;
  }
  return b;
}

function readZipDirectory(fd: number, file: string): Map<string, ZipEntry> {
  const size = fstatSync(fd).size;
  const tailLen = Math.min(size, 65557);
  const tail = readAt(fd, size - tailLen, tailLen);
  let eocd = -1;
  for (let i = tail.length - 22; i >= 0; i--) if (tail.readUInt32LE(i) === 0x06054b50) { eocd = i; break; }
  if (eocd < 0) throw new Error(`${file} is not a zip file (no end of central directory): not a PyTorch checkpoint in the zip format`);
  let count = tail.readUInt16LE(eocd + 10);
  let cdSize = tail.readUInt32LE(eocd + 12);
  let cdOffset = tail.readUInt32LE(eocd + 16);
  const loc = eocd - 20;
  if (loc >= 0 && tail.readUInt32LE(loc) === 0x07064b50) {
    const z64 = readAt(fd, Number(tail.readBigUInt64LE(loc + 8)), 56);
    if (z64.readUInt32LE(0) !== 0x06064b50) throw new Error(`${file}: bad zip64 end of central directory`);
    count = Number(z64.readBigUInt64LE(32));
    cdSize = Number(z64.readBigUInt64LE(40));
    cdOffset = Number(z64.readBigUInt64LE(48));
  }
  const cd = readAt(fd, cdOffset, cdSize);
  const entries = new Map<string, ZipEntry>();
  let p = 0;
  for (let k = 0; k < count; k++) {
    if (cd.readUInt32LE(p) !== 0x02014b50) throw new Error(`${file}: bad central directory entry ${k}`);
    const method = cd.readUInt16LE(p + 10);
    let compressedSize = cd.readUInt32LE(p + 20), sz = cd.readUInt32LE(p + 24);
    const nameLen = cd.readUInt16LE(p + 28), extraLen = cd.readUInt16LE(p + 30), commentLen = cd.readUInt16LE(p + 32);
    let localOffset = cd.readUInt32LE(p + 42);
    const name = cd.toString("utf8", p + 46, p + 46 + nameLen);
    // zip64 extra field: the 0xFFFFFFFF fields, in order size, compressed size, offset
    for (let e = p + 46 + nameLen; e < p + 46 + nameLen + extraLen; ) {
      const id = cd.readUInt16LE(e), len = cd.readUInt16LE(e + 2);
      if (id === 0x0001) {
        let q = e + 4;
        if (sz === 0xffffffff) { sz = Number(cd.readBigUInt64LE(q)); q += 8; }
        if (compressedSize === 0xffffffff) { compressedSize = Number(cd.readBigUInt64LE(q)); q += 8; }
        if (localOffset === 0xffffffff) localOffset = Number(cd.readBigUInt64LE(q));
      }
      e += 4 + len;
    }
    entries.set(name, { name, method, size: sz, compressedSize, localOffset });
    p += 46 + nameLen + extraLen + commentLen;
  }
  return entries;
}

// ---------------------------------------------------------------------------------------------
// pickle

export class PickleOpaque {
  constructor(
    readonly what: string,
    readonly args?: unknown,
  ) {}
}

class PickleGlobal {
  constructor(
    readonly module: string,
    readonly name: string,
  ) {}
  get qualified(): string {
    return `${this.module}.${this.name}`;
  }
}

export type TorchDtype = "F32" | "F16" | "BF16" | "F64" | "I64" | "I32" | "I16" | "I8" | "U8" | "BOOL";

const STORAGE_DTYPES: Record<string, TorchDtype> = {
  FloatStorage: "F32", HalfStorage: "F16", BFloat16Storage: "BF16", DoubleStorage: "F64", LongStorage: "I64", IntStorage: "I32",
  ShortStorage: "I16", CharStorage: "I8", ByteStorage: "U8", BoolStorage: "BOOL",
};
const DTYPE_BYTES: Record<TorchDtype, number> = { F32: 4, F16: 2, BF16: 2, F64: 8, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1 };

interface StorageRef {
  kind: "storage";
  key: string;
  dtype: TorchDtype;
  numel: number;
}

export interface TorchTensorRef {
  kind: "tensor";
  storage: StorageRef;
  offset: number;
  shape: number[];
  stride: number[];
}

class Mark {}
const MARK = new Mark();

/** Globals the interpreter understands (never imported): what each becomes when called. */
function callGlobal(g: PickleGlobal, args: unknown[]): unknown {
  const q = g.qualified;
  if (q === "collections.OrderedDict") return new Map();
  if (q === "torch._utils._rebuild_tensor_v2" || q === "torch._utils._rebuild_tensor") {
    const [storage, offset, size, stride] = args as [StorageRef, number, number[], number[]];
    if (!storage || (storage as { kind?: string }).kind !== "storage") return new PickleOpaque(`${q} of a non-storage`, args);
    return { kind: "tensor", storage, offset, shape: [...size], stride: [...stride] } satisfies TorchTensorRef;
  }
  if (q === "torch._utils._rebuild_parameter") return args[0];
  return new PickleOpaque(q, args);
}

const KNOWN_GLOBALS = new Set(["collections.OrderedDict", "torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_tensor", "torch._utils._rebuild_parameter", ...Object.keys(STORAGE_DTYPES).map((s) => `torch.${s}`)]);

/**
 * Interprets a pickle (protocols 0–5, no out-of-band buffers) into JS values: dicts → Map, lists → arrays, tuples →
 * frozen arrays, persistent ids ('storage', torch.XStorage, key, location, numel) → StorageRef.
 */
export function unpickle(data: Buffer, opts: { strict?: boolean; where?: string } = {}): unknown {
  const where = opts.where ?? "pickle";
  let p = 0;
  const stack: unknown[] = [];
  const marks: number[] = [];
  const memo = new Map<number, unknown>();
  const u8 = () => data[p++]!;
  const take = (n: number) => {
    if (p + n > data.length) throw new Error(`${where}: truncated`);
    const b = data.subarray(p, p + n);
    p += n;
    return b;
  };
  const line = () => {
    const e = data.indexOf(0x0a, p);
    if (e < 0) throw new Error(`${where}: truncated`);
    const s = data.toString("latin1", p, e);
    p = e + 1;
    return s;
  };
  const pop = () => {
    if (stack.length === 0) throw new Error(`${where}: stack underflow`);
    return stack.pop();
  };
  const popMark = () => {
    const m = marks.pop();
    if (m === undefined) throw new Error(`${where}: no mark`);
    return stack.splice(m);
  };
  const top = () => stack[stack.length - 1];
  const global = (module: string, name: string) => {
    const g = new PickleGlobal(module, name);
    if (opts.strict && !KNOWN_GLOBALS.has(g.qualified)) throw new Error(`${where}: refusing the unknown global ${g.qualified}`);
    return g;
  };
  const call = (f: unknown, args: unknown[]) => (f instanceof PickleGlobal ? callGlobal(f, args) : new PickleOpaque("call of a non-global", args));
  const setItems = (d: unknown, kv: unknown[]) => {
    if (!(d instanceof Map)) throw new Error(`${where}: SETITEM on a non-dict`);
    for (let i = 0; i + 1 < kv.length; i += 2) d.set(kv[i], kv[i + 1]);
  };
  const persistent = (pid: unknown): unknown => {
    const t = pid as unknown[];
    if (Array.isArray(t) && t[0] === "storage" && t[1] instanceof PickleGlobal) {
      const dtype = t[1].module === "torch" ? STORAGE_DTYPES[t[1].name] : undefined;
      if (!dtype) return new PickleOpaque(`storage of type ${t[1].qualified}`);
      return { kind: "storage", key: String(t[2]), dtype, numel: Number(t[4]) } satisfies StorageRef;
    }
    return new PickleOpaque("persistent id", pid);
  };
  for (;;) {
    if (p >= data.length) throw new Error(`${where}: no STOP opcode`);
    const op = u8();
    switch (op) {
      case 0x80: u8(); break; // PROTO
      case 0x95: take(8); break; // FRAME
      case 0x2e: return pop(); // STOP
      case 0x28: marks.push(stack.length); break; // MARK
      case 0x30: pop(); break; // POP
      case 0x31: popMark(); break; // POP_MARK
      case 0x32: stack.push(top()); break; // DUP
      case 0x7d: stack.push(new Map()); break; // EMPTY_DICT
      case 0x5d: stack.push([]); break; // EMPTY_LIST
      case 0x29: stack.push(Object.freeze([])); break; // EMPTY_TUPLE
      case 0x74: stack.push(Object.freeze(popMark())); break; // TUPLE
      case 0x85: stack.push(Object.freeze([pop()])); break; // TUPLE1
      case 0x86: { const b = pop(), a = pop(); stack.push(Object.freeze([a, b])); break; } // TUPLE2
      case 0x87: { const c = pop(), b = pop(), a = pop(); stack.push(Object.freeze([a, b, c])); break; } // TUPLE3
      case 0x6c: stack.push(popMark()); break; // LIST
      case 0x64: { const d = new Map(); setItems(d, popMark()); stack.push(d); break; } // DICT
      case 0x61: { const v = pop(); (top() as unknown[]).push(v); break; } // APPEND
      case 0x65: { const vs = popMark(); (top() as unknown[]).push(...vs); break; } // APPENDS
      case 0x73: { const v = pop(), k = pop(); setItems(top(), [k, v]); break; } // SETITEM
      case 0x75: { const kv = popMark(); setItems(top(), kv); break; } // SETITEMS
      case 0x8f: stack.push(new Set()); break; // EMPTY_SET
      case 0x90: { const vs = popMark(); for (const v of vs) (top() as Set<unknown>).add(v); break; } // ADDITEMS
      case 0x91: stack.push(new Set(popMark())); break; // FROZENSET
      case 0x4e: stack.push(null); break; // NONE
      case 0x88: stack.push(true); break; // NEWTRUE
      case 0x89: stack.push(false); break; // NEWFALSE
      case 0x49: { const s = line(); stack.push(s === "01" ? true : s === "00" ? false : Number(s)); break; } // INT
      case 0x4a: stack.push(take(4).readInt32LE(0)); break; // BININT
      case 0x4b: stack.push(u8()); break; // BININT1
      case 0x4d: stack.push(take(2).readUInt16LE(0)); break; // BININT2
      case 0x4c: stack.push(Number(line().replace(/L$/, ""))); break; // LONG
      case 0x8a: case 0x8b: { // LONG1, LONG4: little-endian two's complement
        const n = op === 0x8a ? u8() : take(4).readUInt32LE(0);
        const b = take(n);
        let v = 0n;
        for (let i = n - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]!);
        if (n > 0 && b[n - 1]! & 0x80) v -= 1n << BigInt(8 * n);
        stack.push(Number(v));
        break;
      }
      case 0x46: stack.push(Number(line())); break; // FLOAT
      case 0x47: stack.push(take(8).readDoubleBE(0)); break; // BINFLOAT
      case 0x53: { const s = line(); stack.push(s.slice(1, -1)); break; } // STRING (repr)
      case 0x54: stack.push(take(take(4).readUInt32LE(0)).toString("latin1")); break; // BINSTRING
      case 0x55: stack.push(take(u8()).toString("latin1")); break; // SHORT_BINSTRING
      case 0x56: stack.push(line()); break; // UNICODE (raw-unicode-escape; plain text here)
      case 0x58: stack.push(take(take(4).readUInt32LE(0)).toString("utf8")); break; // BINUNICODE
      case 0x8c: stack.push(take(u8()).toString("utf8")); break; // SHORT_BINUNICODE
      case 0x8d: stack.push(take(Number(take(8).readBigUInt64LE(0))).toString("utf8")); break; // BINUNICODE8
      case 0x42: stack.push(Buffer.from(take(take(4).readUInt32LE(0)))); break; // BINBYTES
      case 0x43: stack.push(Buffer.from(take(u8()))); break; // SHORT_BINBYTES
      case 0x8e: case 0x96: stack.push(Buffer.from(take(Number(take(8).readBigUInt64LE(0))))); break; // BINBYTES8, BYTEARRAY8
      case 0x63: { const module = line(); stack.push(global(module, line())); break; } // GLOBAL
      case 0x93: { const name = pop() as string, module = pop() as string; stack.push(global(String(module), String(name))); break; } // STACK_GLOBAL
      case 0x52: { const args = pop() as unknown[], f = pop(); stack.push(call(f, [...args])); break; } // REDUCE
      case 0x81: { const args = pop() as unknown[], cls = pop(); stack.push(call(cls, [...args])); break; } // NEWOBJ
      case 0x92: { pop(); const args = pop() as unknown[], cls = pop(); stack.push(call(cls, [...args])); break; } // NEWOBJ_EX
      case 0x62: { // BUILD: state on a Map (OrderedDict's) is ignored, anything else stays opaque
        const state = pop();
        const obj = top();
        if (!(obj instanceof Map) && !(obj instanceof PickleOpaque)) stack[stack.length - 1] = new PickleOpaque("built object", state);
        break;
      }
      case 0x69: { const module = line(), name = line(); stack.push(call(global(module, name), popMark())); break; } // INST
      case 0x6f: { const items = popMark(); stack.push(call(items[0], items.slice(1))); break; } // OBJ
      case 0x70: memo.set(Number(line()), top()); break; // PUT
      case 0x71: memo.set(u8(), top()); break; // BINPUT
      case 0x72: memo.set(take(4).readUInt32LE(0), top()); break; // LONG_BINPUT
      case 0x94: memo.set(memo.size, top()); break; // MEMOIZE
      case 0x67: stack.push(memo.get(Number(line()))); break; // GET
      case 0x68: stack.push(memo.get(u8())); break; // BINGET
      case 0x6a: stack.push(memo.get(take(4).readUInt32LE(0))); break; // LONG_BINGET
      case 0x50: stack.push(persistent(line())); break; // PERSID
      case 0x51: stack.push(persistent(pop())); break; // BINPERSID
      default:
        throw new Error(`${where}: unsupported pickle opcode 0x${op.toString(16)} at byte ${p - 1}`);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// checkpoint

function describe(v: unknown): string {
  if (v instanceof PickleOpaque) return `an object built by ${v.what}`;
  if (v === null) return "None";
  return typeof v === "object" ? (Array.isArray(v) ? "a list" : v instanceof Map ? "a dict" : "an object") : typeof v;
}

/** A PyTorch zip checkpoint's state_dict, as a WeightSource (fp32 on read; F32/F16/BF16 storages). */
export class TorchCheckpoint implements WeightSource {
  private readonly fd: number;
  private readonly entries: Map<string, ZipEntry>;
  private readonly prefix: string;
  readonly tensors = new Map<string, TorchTensorRef>();
  /** Entries of the state_dict that are not tensors (kept out of names()). */
  readonly skipped: string[] = [];

  constructor(
    readonly file: string,
    opts: { strict?: boolean } = {},
  ) {
    this.fd = openSync(file, "r");
    try {
      this.entries = readZipDirectory(this.fd, file);
      const pkl = [...this.entries.keys()].find((n) => /^[^/]+\/data\.pkl$/.test(n));
      if (!pkl) throw new Error(`${file}: no <record>/data.pkl in the zip (not a torch.save checkpoint)`);
      this.prefix = pkl.slice(0, -"data.pkl".length);
      const root = unpickle(this.entryData(pkl), { strict: opts.strict, where: `${file} (data.pkl)` });
      const sd = root instanceof Map && root.get("state_dict") instanceof Map ? (root.get("state_dict") as Map<unknown, unknown>) : root;
      if (!(sd instanceof Map)) throw new Error(`${file}: the checkpoint is ${describe(root)}, not a dict of tensors`);
      for (const [k, v] of sd) {
        if (typeof k !== "string") continue;
        if ((v as TorchTensorRef | null)?.kind === "tensor") this.tensors.set(k, v as TorchTensorRef);
        else this.skipped.push(`${k} (${describe(v)})`);
      }
    } catch (e) {
      closeSync(this.fd);
      throw e;
    }
  }

  private entryData(name: string, offset = 0, length?: number): Buffer {
    const e = this.entries.get(name);
    if (!e) throw new Error(`${this.file}: no zip entry ${name}`);
    if (e.method !== 0) throw new Error(`${this.file}: ${name} is compressed (method ${e.method}); torch.save stores entries uncompressed`);
    const local = readAt(this.fd, e.localOffset, 30);
    if (local.readUInt32LE(0) !== 0x04034b50) throw new Error(`${this.file}: bad local header for ${name}`);
    const start = e.localOffset + 30 + local.readUInt16LE(26) + local.readUInt16LE(28);
    const len = length ?? e.size - offset;
    if (offset + len > e.size) throw new Error(`${this.file}: ${name} holds ${e.size} bytes, ${offset + len} needed`);
    return readAt(this.fd, start + offset, len);
  }

  names(): string[] {
    return [...this.tensors.keys()];
  }

  has(name: string): boolean {
    return this.tensors.has(name);
  }

  info(name: string): { shape: number[]; dtype: TorchDtype } {
    const t = this.tensors.get(name);
    if (!t) throw new Error(`${this.file}: no tensor ${name}`);
    return { shape: t.shape, dtype: t.storage.dtype };
  }

  get(name: string): Tensor32 {
    const t = this.tensors.get(name);
    if (!t) throw new Error(`weight "${name}" is missing from ${this.file}`);
    const numel = t.shape.reduce((a, b) => a * b, 1);
    let expect = 1;
    for (let i = t.shape.length - 1; i >= 0; i--) {
      if (t.shape[i]! > 1 && t.stride[i] !== expect) throw new Error(`${this.file}: tensor ${name} is not contiguous (stride [${t.stride}] for shape [${t.shape}])`);
      expect *= t.shape[i]!;
    }
    const { dtype } = t.storage;
    if (dtype !== "F32" && dtype !== "F16" && dtype !== "BF16" && dtype !== "F64") throw new Error(`${this.file}: tensor ${name} is ${dtype}, not a float tensor`);
    if (t.offset + numel > t.storage.numel) throw new Error(`${this.file}: tensor ${name} reaches past its storage`);
    const bytes = this.entryData(`${this.prefix}data/${t.storage.key}`, t.offset * DTYPE_BYTES[dtype], numel * DTYPE_BYTES[dtype]);
    const data = new Float32Array(numel);
    for (let i = 0; i < numel; i++) {
      data[i] = dtype === "F32" ? bytes.readFloatLE(4 * i) : dtype === "F64" ? bytes.readDoubleLE(8 * i) : dtype === "F16" ? f16BitsToF32(bytes.readUInt16LE(2 * i)) : bf16BitsToF32(bytes.readUInt16LE(2 * i));
    }
    return { shape: [...t.shape], data };
  }

  close(): void {
    closeSync(this.fd);
  }
}
