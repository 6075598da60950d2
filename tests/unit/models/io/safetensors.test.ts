import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it, vi } from "vitest";
import {
  SafetensorsError,
  SafetensorsFile,
  SafetensorsWeights,
  buildHeader,
  readSafetensorsHeader,
  safetensorsFileSize,
  writeSafetensors,
  type FloatDtype,
} from "@/models/io/safetensors";
import { SeededRandom } from "@/models/io/seeded-random";

const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), "safetensors-test-"));
afterAll(() => fs.rmSync(tmpRoot, { recursive: true, force: true }));
let counter = 0;
const tmp = (name: string) => path.join(tmpRoot, `${counter++}-${name}`);

// ---------------------------------------------------------------------------------------------
// Independent reference conversions: plain arithmetic on doubles, no bit tricks shared with the code.

/** fp16 bit pattern -> value, from the IEEE 754 binary16 definition. */
function refF16Value(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * 2 ** (e - 15) * (1 + m / 1024);
}

/** fp32 value -> value of its fp32 bit pattern's rounded fp16 (nearest, ties to even), by search. */
const f16Positives: number[] = Array.from({ length: 0x7c00 }, (_, h) => refF16Value(h)); // 0 .. 65504, ascending
function refToF16Bits(x: number): number {
  if (Number.isNaN(x)) return -1; // checked separately
  const sign = x < 0 || Object.is(x, -0) ? 0x8000 : 0;
  const a = Math.abs(x);
  if (a >= 65520) return sign | 0x7c00; // halfway between 65504 and 2^16 rounds to even = inf
  let lo = 0;
  let hi = f16Positives.length - 1;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (f16Positives[mid]! <= a) lo = mid;
    else hi = mid;
  }
  const dl = a - f16Positives[lo]!;
  const dh = f16Positives[hi]! - a;
  let pick = dl < dh ? lo : dh < dl ? hi : lo % 2 === 0 ? lo : hi;
  if (a >= f16Positives[hi]!) pick = hi;
  return sign | pick;
}

/** fp32 value -> rounded bf16 value, choosing between the two bf16 neighbours by exact distance. */
function refToBf16Value(x: number): number {
  if (Number.isNaN(x)) return NaN;
  const a = Math.abs(x);
  const sign = x < 0 || Object.is(x, -0) ? -1 : 1;
  if (a === Infinity) return sign * Infinity;
  if (a === 0) return sign * 0;
  // bf16 has 8 significant bits; neighbours of a are k * 2^(E-7) with E = floor(log2 a) (clamped for subnormals).
  let E = Math.floor(Math.log2(a));
  if (2 ** E > a) E -= 1;
  if (2 ** (E + 1) <= a) E += 1;
  const ulp = 2 ** (Math.max(E, -126) - 7);
  const k = Math.floor(a / ulp);
  const lo = k * ulp;
  const hi = (k + 1) * ulp;
  const dl = a - lo;
  const dh = hi - a;
  let v = dl < dh ? lo : dh < dl ? hi : k % 2 === 0 ? lo : hi;
  if (v === 2 ** 128) v = Infinity; // rounding past the largest finite bf16 overflows
  return sign * v;
}

function fp32(x: number): number {
  return Math.fround(x);
}

/** Test values: random fp32 bit patterns (all exponents, nan, inf, subnormals), fp16-range values, ties, edges. */
function testValues(): Float32Array {
  const rng = new SeededRandom(1234);
  const vals: number[] = [0, -0, Infinity, -Infinity, NaN, 1, -1, 65504, 65519, 65520, 65536, -65520, 2 ** -24, 2 ** -25, 3 * 2 ** -26, 2 ** -14, 2 ** -14 - 2 ** -25,
    1.401298464324817e-45, 3.4028234663852886e38, -3.4028234663852886e38, 1 + 2 ** -11, 1 + 3 * 2 ** -11, 1 + 2 ** -8, 1 + 3 * 2 ** -8, 3.3961775292304720e38];
  const u = new Uint32Array(1);
  const f = new Float32Array(u.buffer);
  for (let i = 0; i < 20000; i++) {
    u[0] = rng.nextUint32();
    vals.push(f[0]!);
  }
  for (let i = 0; i < 20000; i++) {
    // values around fp16 grid points, including exact midpoints (ties)
    const h = rng.int(0x7c00);
    const v = refF16Value(h);
    const next = refF16Value(h + 1);
    const sgn = rng.uniform() < 0.5 ? -1 : 1;
    vals.push(sgn * v, sgn * ((v + next) / 2), sgn * (v + (next - v) * rng.uniform()));
  }
  return new Float32Array(vals);
}

async function roundTrip(values: Float32Array, dtype: FloatDtype): Promise<{ read: Float32Array; raw: Uint8Array }> {
  const file = tmp(`rt-${dtype}.safetensors`);
  await writeSafetensors(file, [{ name: "x", shape: [values.length], data: values }], { dtype });
  const sf = SafetensorsFile.open(file);
  try {
    expect(sf.info("x").dtype).toBe(dtype);
    return { read: sf.read("x").data, raw: sf.readBytes("x") };
  } finally {
    sf.close();
  }
}

describe("safetensors dtype conversion (against independent references)", () => {
  const values = testValues();

  it("F32 round trip is bit exact (nan payloads, -0, subnormals included)", async () => {
    const { read } = await roundTrip(values, "F32");
    expect(new Uint32Array(read.buffer, read.byteOffset, read.length)).toEqual(new Uint32Array(values.buffer));
  });

  it("F16 write rounds to nearest even, overflows to inf, keeps -0 and nan", async () => {
    const { read, raw } = await roundTrip(values, "F16");
    const dv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
    let mismatches = 0;
    let firstBad = "";
    for (let i = 0; i < values.length; i++) {
      const x = values[i]!;
      const bits = dv.getUint16(i * 2, true);
      if (Number.isNaN(x)) {
        expect((bits & 0x7c00) === 0x7c00 && (bits & 0x3ff) !== 0).toBe(true);
        expect(Number.isNaN(read[i]!)).toBe(true);
        continue;
      }
      const want = refToF16Bits(x);
      if (bits !== want) {
        mismatches++;
        firstBad ||= `x=${x} got 0x${bits.toString(16)} want 0x${want.toString(16)}`;
      }
      // the fp32 read-back equals the exact fp16 value
      if (!Object.is(read[i], fp32(refF16Value(bits)))) {
        mismatches++;
        firstBad ||= `read-back of 0x${bits.toString(16)}: ${read[i]}`;
      }
    }
    expect(firstBad).toBe("");
    expect(mismatches).toBe(0);
  });

  it("F16 read decodes all 65536 bit patterns exactly", () => {
    const file = tmp("all-f16.safetensors");
    const { header } = buildHeader([{ name: "h", shape: [65536], dtype: "F16" }]);
    const data = new Uint8Array(65536 * 2);
    const dv = new DataView(data.buffer);
    for (let h = 0; h < 65536; h++) dv.setUint16(h * 2, h, true);
    fs.writeFileSync(file, Buffer.concat([header, data]));
    const sf = SafetensorsFile.open(file);
    const got = sf.read("h").data;
    sf.close();
    for (let h = 0; h < 65536; h++) {
      const want = refF16Value(h);
      if (Number.isNaN(want)) expect(Number.isNaN(got[h]!)).toBe(true);
      else if (!Object.is(got[h], want)) throw new Error(`0x${h.toString(16)}: got ${got[h]} want ${want}`);
    }
    expect(Object.is(got[0x8000], -0)).toBe(true);
    expect(got[0x0001]).toBe(2 ** -24); // smallest subnormal
    expect(got[0x7c00]).toBe(Infinity);
  });

  it("BF16 write rounds to nearest even, keeps -0, inf, nan and fp32 subnormals", async () => {
    const { read, raw } = await roundTrip(values, "BF16");
    const dv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
    let firstBad = "";
    for (let i = 0; i < values.length; i++) {
      const x = values[i]!;
      const want = refToBf16Value(x);
      const got = read[i]!;
      if (Number.isNaN(x)) {
        if (!Number.isNaN(got)) firstBad ||= `nan became ${got}`;
        continue;
      }
      if (!Object.is(got, want)) firstBad ||= `x=${x} (bits 0x${(new Uint32Array(new Float32Array([x]).buffer)[0]!).toString(16)}) got ${got} want ${want} raw 0x${dv.getUint16(i * 2, true).toString(16)}`;
    }
    expect(firstBad).toBe("");
  });
});

describe("safetensors files", () => {
  it("round trips shapes, dtypes, metadata and lazy data; header is 8-byte aligned", async () => {
    const file = tmp("mixed.safetensors");
    const rng = new SeededRandom(7);
    const a = rng.fillNormal(new Float32Array(6));
    let lazyCalls = 0;
    const progress: number[] = [];
    const entries = [
      { name: "a", shape: [2, 3], data: a },
      { name: "b.half", shape: [4], dtype: "F16" as const, data: new Float32Array([1, 0.5, -2, 1024]) },
      { name: "c.bf", shape: [1, 2], dtype: "BF16" as const, data: () => (lazyCalls++, new Float32Array([3, -0.25])) },
      { name: "scalar", shape: [], data: new Float32Array([42]) },
      { name: "empty", shape: [0, 5], data: new Float32Array(0) },
    ];
    const metadata = { format: "pt", note: "hi" };
    const { bytes } = await writeSafetensors(file, entries, { metadata, onProgress: (w) => progress.push(w) });
    expect(bytes).toBe(fs.statSync(file).size);
    expect(bytes).toBe(safetensorsFileSize(entries, { metadata }));
    expect(lazyCalls).toBe(1);
    expect(progress.at(-1)).toBe(bytes);
    const hdr = readSafetensorsHeader(file);
    expect(hdr.headerBytes % 8).toBe(0);
    expect(hdr.metadata).toEqual({ format: "pt", note: "hi" });
    const w = new SafetensorsWeights(file);
    expect(w.names()).toEqual(["a", "b.half", "c.bf", "scalar", "empty"]);
    expect(w.get("a")).toEqual({ shape: [2, 3], data: a });
    expect(Array.from(w.get("b.half").data)).toEqual([1, 0.5, -2, 1024]);
    expect(Array.from(w.get("c.bf").data)).toEqual([3, -0.25]);
    expect(w.get("scalar")).toEqual({ shape: [], data: new Float32Array([42]) });
    expect(w.get("empty").shape).toEqual([0, 5]);
    expect(w.info("b.half")).toMatchObject({ dtype: "F16", shape: [4], file });
    expect(() => w.get("nope")).toThrow(/weight "nope" is missing/);
    w.close();
  });

  it("rejects a value count that does not match the shape, naming the tensor", async () => {
    await expect(writeSafetensors(tmp("bad.safetensors"), [{ name: "w", shape: [2, 2], data: new Float32Array(3) }])).rejects.toThrow(/"w" has 3 values but shape \[2,2\] needs 4/);
    expect(() => buildHeader([{ name: "x", shape: [1], dtype: "F32" }, { name: "x", shape: [1], dtype: "F32" }])).toThrow(/listed twice/);
  });

  it("reads a model dir: single model.safetensors, index.json shards, or all *.safetensors", async () => {
    const dir1 = tmp("single");
    fs.mkdirSync(dir1);
    await writeSafetensors(path.join(dir1, "model.safetensors"), [{ name: "w", shape: [2], data: new Float32Array([1, 2]) }]);
    await writeSafetensors(path.join(dir1, "ignored.safetensors"), [{ name: "other", shape: [1], data: new Float32Array([1]) }]);
    const w1 = new SafetensorsWeights(dir1);
    expect(w1.names()).toEqual(["w"]);
    w1.close();

    const dir2 = tmp("sharded");
    fs.mkdirSync(dir2);
    await writeSafetensors(path.join(dir2, "model-00001-of-00002.safetensors"), [
      { name: "a", shape: [2], data: new Float32Array([1, 2]) },
      { name: "b", shape: [1], data: new Float32Array([3]) },
    ]);
    await writeSafetensors(path.join(dir2, "model-00002-of-00002.safetensors"), [{ name: "c", shape: [2], dtype: "BF16", data: new Float32Array([4, 5]) }]);
    const index = { metadata: { total_size: 24 }, weight_map: { a: "model-00001-of-00002.safetensors", b: "model-00001-of-00002.safetensors", c: "model-00002-of-00002.safetensors" } };
    fs.writeFileSync(path.join(dir2, "model.safetensors.index.json"), JSON.stringify(index));
    const w2 = new SafetensorsWeights(dir2);
    expect(w2.names().sort()).toEqual(["a", "b", "c"]);
    expect(Array.from(w2.get("c").data)).toEqual([4, 5]);
    expect(w2.info("c").file).toBe(path.join(dir2, "model-00002-of-00002.safetensors"));
    w2.close();

    // index naming a tensor its shard lacks
    fs.writeFileSync(path.join(dir2, "model.safetensors.index.json"), JSON.stringify({ weight_map: { ...index.weight_map, d: "model-00002-of-00002.safetensors" } }));
    expect(() => new SafetensorsWeights(dir2)).toThrow(/model-00002-of-00002\.safetensors: the shard index lists tensor "d"/);
    // index escaping the directory
    fs.writeFileSync(path.join(dir2, "model.safetensors.index.json"), JSON.stringify({ weight_map: { a: "../x.safetensors" } }));
    expect(() => new SafetensorsWeights(dir2)).toThrow(/weight_map\["a"\] must be a file name/);

    const dir3 = tmp("glob");
    fs.mkdirSync(dir3);
    await writeSafetensors(path.join(dir3, "part-a.safetensors"), [{ name: "x", shape: [1], data: new Float32Array([1]) }]);
    await writeSafetensors(path.join(dir3, "part-b.safetensors"), [{ name: "y", shape: [1], data: new Float32Array([2]) }]);
    const w3 = new SafetensorsWeights(dir3);
    expect(w3.names()).toEqual(["x", "y"]);
    w3.close();
    await writeSafetensors(path.join(dir3, "part-c.safetensors"), [{ name: "x", shape: [1], data: new Float32Array([3]) }]);
    expect(() => new SafetensorsWeights(dir3)).toThrow(/tensor "x" appears in both .*part-a\.safetensors and .*part-c\.safetensors/);

    const empty = tmp("empty");
    fs.mkdirSync(empty);
    expect(() => new SafetensorsWeights(empty)).toThrow(/no model\.safetensors/);
  });
});

describe("safetensors validation", () => {
  function rawFile(name: string, headerJson: unknown, dataBytes: number, headerLenOverride?: bigint): string {
    const file = tmp(name);
    const json = Buffer.from(typeof headerJson === "string" ? headerJson : JSON.stringify(headerJson));
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(headerLenOverride ?? BigInt(json.length));
    fs.writeFileSync(file, Buffer.concat([len, json, Buffer.alloc(dataBytes)]));
    return file;
  }
  const ok = { a: { dtype: "F32", shape: [2], data_offsets: [0, 8] }, b: { dtype: "F16", shape: [2], data_offsets: [8, 12] } };

  it("accepts a valid hand-written header", () => {
    const f = rawFile("ok.safetensors", ok, 12);
    expect([...readSafetensorsHeader(f).tensors.keys()]).toEqual(["a", "b"]);
  });

  it.each([
    ["not JSON", "{nope", 0, /header is not valid UTF-8 JSON/],
    ["huge header length", ok, 12, /header length .* larger than/, 1n << 40n],
    ["header past EOF", ok, 0, /runs past the end of the file/, 10_000n],
    ["truncated data", ok, 10, /tensor "b": data_offsets end at 12 but the file has only 10 data bytes: truncated/],
    ["trailing bytes", ok, 20, /cover 12 data bytes but the file has 20 \(trailing bytes\)/],
    ["size mismatch", { a: { dtype: "F32", shape: [3], data_offsets: [0, 8] } }, 8, /tensor "a": data_offsets span 8 bytes but F32\[3\] needs 12/],
    ["gap", { a: { dtype: "F32", shape: [1], data_offsets: [0, 4] }, b: { dtype: "F32", shape: [1], data_offsets: [8, 12] } }, 12, /tensor "b" starts at 8 but the previous tensor ends at 4/],
    ["overlap", { a: { dtype: "F32", shape: [2], data_offsets: [0, 8] }, b: { dtype: "F32", shape: [1], data_offsets: [4, 8] } }, 8, /tensor "b" starts at 4/],
    ["bad dtype", { a: { dtype: "F17", shape: [1], data_offsets: [0, 4] } }, 4, /tensor "a": unknown dtype "F17"/],
    ["bad shape", { a: { dtype: "F32", shape: [-1], data_offsets: [0, 4] } }, 4, /tensor "a": shape must be/],
    ["bad metadata", { __metadata__: { n: 1 }, ...ok }, 12, /__metadata__\["n"\] must be a string/],
  ] as const)("rejects %s with an error naming the file", (label, header, dataBytes, re, len?: bigint) => {
    const f = rawFile(`${label.replace(/ /g, "-")}.safetensors`, header, dataBytes, len);
    let err: unknown;
    try {
      SafetensorsFile.open(f);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(SafetensorsError);
    expect((err as Error).message).toContain(f);
    expect((err as Error).message).toMatch(re);
  });

  it("a file cut short after writing is reported as truncated", async () => {
    const f = tmp("cut.safetensors");
    await writeSafetensors(f, [{ name: "w", shape: [100], data: new Float32Array(100) }]);
    fs.truncateSync(f, fs.statSync(f).size - 4);
    expect(() => new SafetensorsWeights(f)).toThrow(/tensor "w": data_offsets end at 400 but the file has only 396 data bytes: truncated/);
    fs.truncateSync(f, 5);
    expect(() => new SafetensorsWeights(f)).toThrow(/shorter than the 8-byte header length/);
  });

  it("refuses to read non-float dtypes as fp32", () => {
    const f = rawFile("ints.safetensors", { i: { dtype: "I64", shape: [1], data_offsets: [0, 8] } }, 8);
    const sf = SafetensorsFile.open(f);
    expect(() => sf.read("i")).toThrow(/tensor "i" has dtype I64; only F32, F16 and BF16/);
    sf.close();
  });
});

describe("safetensors streaming reads", () => {
  it("reads one tensor of a file holding a 4 GiB tensor without touching the rest", () => {
    // A sparse file: header + small tensor + a 4 GiB tensor that is never read (no disk space used).
    const file = tmp("huge.safetensors");
    const hugeBytes = 4 * 2 ** 30;
    const { header } = buildHeader([
      { name: "small", shape: [4], dtype: "F32" },
      { name: "huge", shape: [hugeBytes / 4], dtype: "F32" },
    ]);
    const small = new Float32Array([1, 2, 3, 4]);
    fs.writeFileSync(file, Buffer.concat([header, Buffer.from(small.buffer)]));
    fs.truncateSync(file, header.byteLength + 16 + hugeBytes);

    const spy = vi.spyOn(fs, "readSync");
    try {
      const w = new SafetensorsWeights(file);
      expect(w.info("huge").shape).toEqual([2 ** 30]);
      expect(Array.from(w.get("small").data)).toEqual([1, 2, 3, 4]);
      expect(w.bytesRead).toBe(16);
      // every read call: the 8-byte length, the header, then the 16 bytes of "small"
      const requested = spy.mock.calls.reduce((s, c) => s + (((c as unknown[])[3] as number | undefined) ?? 0), 0);
      expect(requested).toBe(header.byteLength + 16);
      w.close();
    } finally {
      spy.mockRestore();
    }
  });

  it("throws a clear error on a closed file", async () => {
    const f = tmp("closed.safetensors");
    await writeSafetensors(f, [{ name: "w", shape: [1], data: new Float32Array(1) }]);
    const sf = SafetensorsFile.open(f);
    sf.close();
    expect(() => sf.read("w")).toThrow(/file is closed \(reading tensor "w"\)/);
  });
});
