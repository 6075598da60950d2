/**
 * Writes a checkpoint in the layout torch.save produces (torch is not installed here): a zip whose entries are
 * `<record>/data.pkl` (pickle protocol 2, memoised with BINPUT), `<record>/byteorder`, `<record>/data/<key>` (one
 * raw little-endian storage per tensor, data 64-byte aligned through a padding extra field, as PyTorch's
 * PyTorchStreamWriter does), `<record>/version` and `<record>/.data/serialization_id`, all stored uncompressed.
 * Tensors are pickled as torch does: GLOBAL torch._utils _rebuild_tensor_v2, then (BINPERSID ('storage',
 * GLOBAL torch FloatStorage, key, 'cpu', numel), offset, size, stride, requires_grad False, OrderedDict()) REDUCE.
 */
import { writeFileSync } from "node:fs";
import { f32ToBf16Bits, f32ToF16Bits } from "@/models/io/safetensors";
import type { Tensor32 } from "@/models/io/weights";

export type PyValue = null | boolean | number | string | PyValue[] | { tuple: PyValue[] } | { dict: [PyValue, PyValue][]; ordered?: boolean } | { tensor: Tensor32; dtype?: "F32" | "F16" | "BF16" } | { global: [string, string]; args: PyValue[] };

class PickleWriter {
  private readonly parts: Buffer[] = [];
  private memo = 0;
  readonly storages: { key: string; bytes: Buffer }[] = [];
  private byte(...b: number[]) {
    this.parts.push(Buffer.from(b));
  }
  private put() {
    if (this.memo < 256) this.byte(0x71, this.memo++);
    else {
      const b = Buffer.alloc(5);
      b[0] = 0x72;
      b.writeUInt32LE(this.memo++, 1);
      this.parts.push(b);
    }
  }
  private str(s: string) {
    const b = Buffer.from(s, "utf8");
    const h = Buffer.alloc(5);
    h[0] = 0x58; // BINUNICODE
    h.writeUInt32LE(b.length, 1);
    this.parts.push(h, b);
    this.put();
  }
  private global(module: string, name: string) {
    this.parts.push(Buffer.from(`c${module}\n${name}\n`, "latin1"));
    this.put();
  }
  private int(v: number) {
    if (v >= 0 && v < 256) this.byte(0x4b, v);
    else if (v >= 0 && v < 65536) this.byte(0x4d, v & 0xff, v >> 8);
    else {
      const b = Buffer.alloc(5);
      b[0] = 0x4a;
      b.writeInt32LE(v, 1);
      this.parts.push(b);
    }
  }
  private tuple(items: (() => void)[]) {
    if (items.length === 0) return this.byte(0x29);
    if (items.length <= 3) {
      items.forEach((f) => f());
      this.byte([0x85, 0x86, 0x87][items.length - 1]!);
    } else {
      this.byte(0x28);
      items.forEach((f) => f());
      this.byte(0x74);
    }
    this.put();
  }
  value(v: PyValue): void {
    if (v === null) return this.byte(0x4e);
    if (v === true) return this.byte(0x88);
    if (v === false) return this.byte(0x89);
    if (typeof v === "number") {
      if (Number.isInteger(v)) return this.int(v);
      const b = Buffer.alloc(9);
      b[0] = 0x47;
      b.writeDoubleBE(v, 1);
      return void this.parts.push(b);
    }
    if (typeof v === "string") return this.str(v);
    if (Array.isArray(v)) {
      this.byte(0x5d);
      this.put();
      if (v.length) {
        this.byte(0x28);
        v.forEach((x) => this.value(x));
        this.byte(0x65);
      }
      return;
    }
    if ("tuple" in v) return this.tuple(v.tuple.map((x) => () => this.value(x)));
    if ("dict" in v) {
      if (v.ordered) {
        this.global("collections", "OrderedDict");
        this.byte(0x29, 0x52); // () REDUCE
      } else this.byte(0x7d);
      this.put();
      if (v.dict.length) {
        this.byte(0x28);
        for (const [k, x] of v.dict) {
          this.value(k);
          this.value(x);
        }
        this.byte(0x75);
      }
      return;
    }
    if ("global" in v) {
      this.global(...v.global);
      this.tuple(v.args.map((x) => () => this.value(x)));
      this.byte(0x52);
      return this.put();
    }
    // a tensor: its own storage, contiguous
    const dtype = v.dtype ?? "F32";
    const t = v.tensor;
    const key = String(this.storages.length);
    const bytes = Buffer.alloc(t.data.length * (dtype === "F32" ? 4 : 2));
    t.data.forEach((x, i) => (dtype === "F32" ? bytes.writeFloatLE(x, 4 * i) : bytes.writeUInt16LE(dtype === "F16" ? f32ToF16Bits(x) : f32ToBf16Bits(x), 2 * i)));
    this.storages.push({ key, bytes });
    this.global("torch._utils", "_rebuild_tensor_v2");
    const stride = t.shape.map((_, i) => t.shape.slice(i + 1).reduce((a, b) => a * b, 1));
    this.tuple([
      () => {
        this.tuple([() => this.str("storage"), () => this.global("torch", { F32: "FloatStorage", F16: "HalfStorage", BF16: "BFloat16Storage" }[dtype]), () => this.str(key), () => this.str("cpu"), () => this.int(t.data.length)]);
        this.byte(0x51); // BINPERSID
      },
      () => this.int(0),
      () => this.tuple(t.shape.map((d) => () => this.int(d))),
      () => this.tuple(stride.map((s) => () => this.int(s))),
      () => this.byte(0x89),
      () => {
        this.global("collections", "OrderedDict");
        this.byte(0x29, 0x52);
        this.put();
      },
    ]);
    this.byte(0x52);
    this.put();
  }
  bytes(root: PyValue): Buffer {
    this.parts.length = 0;
    this.byte(0x80, 2);
    this.value(root);
    this.byte(0x2e);
    return Buffer.concat(this.parts);
  }
}

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});
function crc32(b: Buffer): number {
  let c = 0xffffffff;
  for (const x of b) c = CRC_TABLE[(c ^ x) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** A zip of stored entries, each entry's data aligned to 64 bytes (extra field 0x4246 "FB" as padding). */
function zip(entries: { name: string; data: Buffer }[]): Buffer {
  const out: Buffer[] = [];
  const central: Buffer[] = [];
  let offset = 0;
  for (const e of entries) {
    const name = Buffer.from(e.name, "utf8");
    const crc = crc32(e.data);
    const base = offset + 30 + name.length + 4;
    const pad = (64 - (base % 64)) % 64;
    const extra = Buffer.alloc(4 + pad);
    extra.writeUInt16LE(0x4246, 0);
    extra.writeUInt16LE(pad, 2);
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(e.data.length, 18);
    local.writeUInt32LE(e.data.length, 22);
    local.writeUInt16LE(name.length, 26);
    local.writeUInt16LE(extra.length, 28);
    const cd = Buffer.alloc(46);
    cd.writeUInt32LE(0x02014b50, 0);
    cd.writeUInt16LE(20, 4);
    cd.writeUInt16LE(20, 6);
    cd.writeUInt32LE(crc, 16);
    cd.writeUInt32LE(e.data.length, 20);
    cd.writeUInt32LE(e.data.length, 24);
    cd.writeUInt16LE(name.length, 28);
    cd.writeUInt32LE(offset, 42);
    central.push(cd, name);
    out.push(local, name, extra, e.data);
    offset += 30 + name.length + extra.length + e.data.length;
  }
  const cdBytes = Buffer.concat(central);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(entries.length, 8);
  end.writeUInt16LE(entries.length, 10);
  end.writeUInt32LE(cdBytes.length, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...out, cdBytes, end]);
}

/** torch.save(root, file) as PyTorch ≥ 1.6 writes it (record name = the file's stem, as torch uses). */
export function writeTorchCheckpoint(file: string, root: PyValue, record = "archive"): void {
  const w = new PickleWriter();
  const pkl = w.bytes(root);
  writeFileSync(
    file,
    zip([
      { name: `${record}/data.pkl`, data: pkl },
      { name: `${record}/byteorder`, data: Buffer.from("little") },
      ...w.storages.map((s) => ({ name: `${record}/data/${s.key}`, data: s.bytes })),
      { name: `${record}/version`, data: Buffer.from("3\n") },
      { name: `${record}/.data/serialization_id`, data: Buffer.from("1234567890123456789012345678901234567890") },
    ]),
  );
}

/**
 * A PyTorch-Lightning checkpoint dict around `stateDict` (epoch, global_step, version, hyper_parameters, an Adam-like
 * optimizer state with tensors, a ModelCheckpoint callback state holding a pathlib.PosixPath — a global the reader
 * does not know and must leave inert).
 */
export function lightningCheckpoint(stateDict: Map<string, Tensor32>, dtype: "F32" | "F16" | "BF16" = "F32"): PyValue {
  const first = [...stateDict.values()][0]!;
  return {
    dict: [
      ["epoch", 12],
      ["global_step", 240000],
      ["pytorch-lightning_version", "1.8.6"],
      ["state_dict", { ordered: true, dict: [...stateDict].map(([k, t]) => [k, { tensor: t, dtype }] as [PyValue, PyValue]) }],
      ["loops", { dict: [["fit_loop", { dict: [["epoch_progress", { dict: [["total", 12]] }]] }]] }],
      ["callbacks", { dict: [["ModelCheckpoint{'monitor': 'val_loss'}", { dict: [["best_model_score", { tensor: { shape: [], data: Float32Array.of(0.25) } }], ["dirpath", { global: ["pathlib", "PosixPath"], args: ["/tmp/ckpt"] }]] }]] }],
      ["optimizer_states", [{ dict: [["state", { dict: [[0, { dict: [["step", 3], ["exp_avg", { tensor: first }]] }]] }], ["param_groups", [{ dict: [["lr", 0.0002], ["betas", { tuple: [0.8, 0.9] }]] }]]] }]],
      ["hyper_parameters", { dict: [["sample_rate", 24000], ["initial_learning_rate", 0.0002], ["evaluate_utmos", true]] }],
    ],
  };
}
