/**
 * fp16 compute graphs (for CUDA): a transform of a built fp32 ONNX graph (the MoE-LLM decoder of moe-llm-graph.ts,
 * or an encoder tower) into one whose matrix products run in half precision, with PyTorch autocast's rules:
 * - "fp16" ops (MatMul, Gemm, Conv) take fp16 inputs and give fp16 outputs; every weight is stored FLOAT16. The one
 *   exception is the router projection (FP32_PROJECTION), computed in fp32 from its fp16 weight.
 * - "fp32" ops stay in float: the RMSNorm path (Pow, ReduceMean, Sqrt: real activations overflow fp16 when squared),
 *   Softmax (attention and router), the routing arithmetic (TopK, CumSum, ReduceSum), RoPE angles (the Cast of int
 *   positions to float, Cos, Sin: fp16 angles at position 4096 are off by ~2 rad) and Exp.
 * - every other op "follows": it runs in the widest float type among its inputs (fp32 if any input is fp32), so
 *   once a value was computed in fp32 it stays fp32 until the next matrix product casts it down. In practice the
 *   residual stream after the first MoE block, the norms, attention scores + softmax, routing and the expert-weight
 *   combine are fp32, and the matrix products of attention, experts and LM head fp16.
 * Graph inputs and outputs keep their declared types (keep_io_types: a Cast is added before an output computed in
 * fp16), so the same feeds and result handling work on either graph (KV cache in/out stays fp32).
 *
 * Weights: external-data initializers become FLOAT16. When they are FLOAT16 already (an import with --dtype fp16),
 * the fp16 graph references the SAME data file and the Cast-to-float after each weight is dropped; FLOAT/BFLOAT16
 * data is converted into a new data file chunk by chunk (memory stays bounded whatever the model size). Small
 * inline float constants adopt their consumer's type when they fit fp16 (|v| in [6.1e-5, 65504], 0 or ±inf);
 * a constant that does not fit (e.g. the -1e30 masking value) keeps its op in fp32.
 */
import { createHash, randomBytes } from "node:crypto";
import { config, parseSetting } from "@/engine/config";
import { closeSync, existsSync, openSync, readFileSync, readSync, renameSync, rmSync, writeFileSync, writeSync } from "node:fs";
import path from "node:path";
import { onnx } from "onnx-proto";
import type { ExecutionProvider } from "@/engine/runtime/types";
import { webGpuShaderF16 } from "@/engine/runtime/webgpu";
import { removeStaleBuilds } from "../io/model-dir";
import { externalInfo } from "./external-graph";

export type ComputeDtype = "fp32" | "fp16";
/** Bumped whenever the transform's output changes for the same input graph (fp16 graphs on disk are rebuilt). */
export const FP16_CONVERTER_VERSION = 4;

const T = onnx.TensorProto.DataType;
const FLOAT = T.FLOAT, HALF = T.FLOAT16;
const TYPE_NAME: Record<number, string> = { [T.FLOAT]: "float", [T.FLOAT16]: "float16", [T.BFLOAT16]: "bfloat16", [T.INT64]: "int64", [T.INT32]: "int32", [T.BOOL]: "bool" };
const isFloat = (t: number) => t === FLOAT || t === HALF;

/** Ops computed in fp16 (all float inputs cast down; MatMulNBits: A, its scales and bias, its packed weights stay uint8). */
const FP16_OPS = new Set(["MatMul", "Gemm", "Conv", "GroupQueryAttention", "RotaryEmbedding", "MatMulNBits"]);
/**
 * Router projections (moe-llm-graph.ts: paramNames.router) run in fp32 from their fp16-stored weight: they are tiny
 * (E × H), and router logits are large (tens, on random checkpoints hundreds), where an fp16 result is off by
 * 0.03-0.06 per logit, which moves routing weights by percents and flips near-tie choices the Routing Inspector shows.
 */
export const FP32_PROJECTION = /^model\.layers\.\d+\.mlp\.gate\.weight$/;
/** The compact routing block's sums (decoder/grin-compact.ts: constants named `routing.*`) also stay fp32. */
const FP32_ROUTING_CONST = /(^|\/)routing\.\w+$/;
/** Numerically sensitive ops kept in fp32 (all float inputs cast up). */
const FP32_OPS = new Set(["Pow", "ReduceMean", "Sqrt", "Softmax", "LogSoftmax", "TopK", "CumSum", "ReduceSum", "Cos", "Sin", "Exp", "Log", "ReduceLogSumExp", "LayerNormalization", "SimplifiedLayerNormalization", "SkipSimplifiedLayerNormalization", "SkipLayerNormalization"]);
/** Ops that run in the widest float type of their inputs (or on non-float data as given). */
const FOLLOW_OPS = new Set([
  "Add", "Sub", "Mul", "Div", "Max", "Min", "Neg", "Abs", "Sigmoid", "Tanh", "Erf", "Relu", "Ceil", "Floor", "Identity",
  "Where", "Reshape", "Transpose", "Concat", "Split", "Slice", "Unsqueeze", "Squeeze", "Expand", "Range",
  "Gather", "GatherElements", "ScatterElements", "ScatterND", "ReduceMax", "ReduceMin", "GatherND", "QuickGelu", "Clip",
]);
/** The com.microsoft contrib ops of the fused decoder (moe-llm-graph.ts) the rules above cover. */
const CONTRIB_OPS = new Set(["GroupQueryAttention", "RotaryEmbedding", "SkipSimplifiedLayerNormalization", "SkipLayerNormalization", "QuickGelu", "MatMulNBits"]);
/** Ops whose outputs have a fixed type; their inputs are unified to one float type (comparisons) or left alone. */
const BOOL_OUT = new Set(["Equal", "Greater", "Less", "GreaterOrEqual", "LessOrEqual", "Not", "And", "Or", "Xor"]);
const INT64_OUT = new Set(["Shape", "NonZero", "ArgMax", "ArgMin", "Size"]);

export interface Fp16Result {
  model: onnx.ModelProto;
  /** External initializers whose data must be converted into the new data file (not FLOAT16 at the source). */
  convert: { tensor: onnx.ITensorProto; source: { location: string; offset: number; length: number; dataType: number } }[];
}

const isExternal = (t: onnx.ITensorProto) => t.dataLocation === onnx.TensorProto.DataLocation.EXTERNAL;

/** Values of an inline FLOAT initializer. */
function inlineFloats(t: onnx.ITensorProto): Float32Array {
  if (t.rawData && t.rawData.length > 0) {
    const raw = t.rawData;
    const copy = new Uint8Array(raw.byteLength);
    copy.set(raw);
    return new Float32Array(copy.buffer);
  }
  return Float32Array.from(t.floatData ?? []);
}

/** Whether v survives a round trip through fp16 without overflow or underflow to zero/subnormal. */
const fitsHalf = (v: number) => v === 0 || Number.isNaN(v) || v === Infinity || v === -Infinity || (Math.abs(v) >= 6.104e-5 && Math.abs(v) <= 65504);

/**
 * fp16 bit patterns of fp32 bit patterns (round to nearest, ties to even; NaN stays NaN; the same results as
 * safetensors.ts f32ToF16Bits, in one pass over typed arrays for weights of any size). Throws naming `what`
 * and the index when a finite value does not fit fp16 (it would become ±inf).
 */
export function halfFromFloatBits(bits: Uint32Array, out: Uint16Array, what: string): void {
  for (let i = 0; i < bits.length; i++) {
    const b = bits[i]!;
    const sign = (b >>> 16) & 0x8000;
    const exp = (b >>> 23) & 0xff;
    const mant = b & 0x7fffff;
    if (exp === 0xff) {
      out[i] = sign | 0x7c00 | (mant !== 0 ? 0x200 | (mant >>> 13) : 0);
      continue;
    }
    const e = exp - 112; // rebias 127 → 15
    let h: number;
    if (e >= 0x1f) h = sign | 0x7c00;
    else if (e <= 0) {
      if (e < -10) h = sign;
      else {
        const full = mant | 0x800000, shift = 14 - e;
        const m = full >>> shift, rem = full & ((1 << shift) - 1), half = 1 << (shift - 1);
        h = sign | (rem > half || (rem === half && (m & 1) === 1) ? m + 1 : m);
      }
    } else {
      const m = mant >>> 13, rem = mant & 0x1fff;
      h = sign | (e << 10) | m;
      if (rem > 0x1000 || (rem === 0x1000 && (m & 1) === 1)) h += 1;
    }
    if ((h & 0x7fff) === 0x7c00) {
      const v = new Float32Array(bits.buffer, bits.byteOffset + i * 4, 1)[0];
      throw new Error(`${what}: value ${v} at index ${i} does not fit fp16 (|v| > 65504)`);
    }
    out[i] = h;
  }
}

function halfBits(values: Float32Array, what: string): Uint8Array {
  const out = new Uint16Array(values.length);
  halfFromFloatBits(new Uint32Array(values.buffer, values.byteOffset, values.length), out, what);
  return new Uint8Array(out.buffer);
}

function attrInt(node: onnx.INodeProto, name: string): number | undefined {
  const a = node.attribute?.find((x) => x.name === name);
  return a ? Number(a.i) : undefined;
}

/**
 * The fp16 compute version of `model` (see the file comment). Pure: returns the new ModelProto and the list of
 * external tensors whose data still has to be converted (see ensureFp16Graph). Throws naming the node on an op it
 * has no rule for, or on a graph that is not topologically sorted.
 */
export function convertToFp16(model: onnx.IModelProto): Fp16Result {
  const graph = model.graph;
  if (!graph) throw new Error("fp16: the model has no graph");
  const types = new Map<string, number>();
  const declaredOut = new Map<string, number>();
  for (const v of graph.input ?? []) types.set(v.name!, v.type?.tensorType?.elemType ?? 0);
  for (const v of graph.output ?? []) declaredOut.set(v.name!, v.type?.tensorType?.elemType ?? 0);

  /** Inline FLOAT initializers: constants that may adopt fp16 (values cached on first use). */
  const constants = new Map<string, Float32Array | undefined>();
  const weights = new Set<string>();
  const newInits: onnx.ITensorProto[] = [];
  const byName = new Map<string, onnx.ITensorProto>();
  const addInit = (t: onnx.ITensorProto) => {
    newInits.push(t);
    byName.set(t.name!, t);
  };
  const convert: Fp16Result["convert"] = [];
  for (const t of graph.initializer ?? []) {
    const name = t.name!;
    const dt = t.dataType ?? 0;
    if (isExternal(t) && (dt === FLOAT || dt === HALF || dt === T.BFLOAT16)) {
      weights.add(name);
      types.set(name, HALF);
      const src = externalInfo(t);
      const converted: onnx.ITensorProto = { name, dims: t.dims, dataType: HALF, dataLocation: onnx.TensorProto.DataLocation.EXTERNAL, externalData: t.externalData };
      if (dt !== HALF) convert.push({ tensor: converted, source: { ...src, dataType: dt } });
      addInit(converted);
      continue;
    }
    if (dt === T.BFLOAT16 || dt === HALF) throw new Error(`fp16: inline ${TYPE_NAME[dt]} initializer "${name}" (the builders store weights as external data, constants as float)`);
    if (dt === FLOAT) constants.set(name, undefined);
    types.set(name, dt);
    addInit(t);
  }
  const constValues = (name: string) => {
    let v = constants.get(name);
    if (!v) {
      v = inlineFloats(byName.get(name)!);
      constants.set(name, v);
    }
    return v;
  };
  const constFitsHalf = (name: string) => constValues(name).every(fitsHalf);

  const used = new Set<string>([...types.keys()]);
  for (const n of graph.node ?? []) for (const o of n.output ?? []) used.add(o);
  let counter = 0;
  const fresh = (base: string) => {
    let name = `${base}/fp16_${counter++}`;
    while (used.has(name)) name = `${base}/fp16_${counter++}`;
    used.add(name);
    return name;
  };

  const nodes: onnx.INodeProto[] = [];
  const alias = new Map<string, string>();
  const casts = new Map<string, string>();
  const halfConsts = new Map<string, string>();
  /** `name` as type `to`: the value itself, an fp16 copy of a constant, or a (shared) Cast node's output. */
  const as = (name: string, to: number): string => {
    const from = types.get(name)!;
    if (from === to) return name;
    if (constants.has(name) && to === HALF && constFitsHalf(name)) {
      let copy = halfConsts.get(name);
      if (!copy) {
        copy = fresh(name);
        addInit({ name: copy, dims: byName.get(name)!.dims, dataType: HALF, rawData: halfBits(constValues(name), `constant "${name}"`) });
        types.set(copy, HALF);
        halfConsts.set(name, copy);
      }
      return copy;
    }
    const key = `${name}|${to}`;
    let out = casts.get(key);
    if (!out) {
      out = fresh(name);
      nodes.push({ opType: "Cast", domain: "", input: [name], output: [out], name: fresh("node/Cast"), attribute: [{ name: "to", type: onnx.AttributeProto.AttributeType.INT, i: to }] });
      types.set(out, to);
      casts.set(key, out);
    }
    return out;
  };

  for (const node of graph.node ?? []) {
    const op = node.opType ?? "";
    const where = `node "${node.name ?? op}" (${op})`;
    if (node.domain && node.domain !== "" && node.domain !== "ai.onnx" && !(node.domain === "com.microsoft" && CONTRIB_OPS.has(op))) throw new Error(`fp16: ${where} is in domain ${node.domain}, which the fp16 transform has no rule for`);
    if (node.attribute?.some((a) => a.g || (a.graphs && a.graphs.length > 0))) throw new Error(`fp16: ${where} has a subgraph, which the fp16 transform does not handle`);
    const inputs = (node.input ?? []).map((n) => alias.get(n) ?? n);
    for (const n of inputs) if (n !== "" && !types.has(n)) throw new Error(`fp16: ${where} reads "${n}" before it is computed (graph not topologically sorted?)`);
    const outs = [...(node.output ?? [])];

    // the Cast-to-float after a stored fp16/bf16 weight: the fp16 graph reads the weight directly
    if (op === "Cast" && weights.has(inputs[0]!) && attrInt(node, "to") === FLOAT) {
      alias.set(outs[0]!, inputs[0]!);
      continue;
    }

    let newInputs = inputs;
    let outTypes: number[];
    if (op === "Cast") {
      const to = attrInt(node, "to")!;
      outTypes = [to];
    } else if (INT64_OUT.has(op)) {
      outTypes = outs.map(() => T.INT64);
    } else {
      const floatIdx = inputs.map((n, i) => (n !== "" && isFloat(types.get(n)!) ? i : -1)).filter((i) => i >= 0);
      let target: number | undefined;
      if (FP16_OPS.has(op)) target = inputs.some((n) => (weights.has(n) && FP32_PROJECTION.test(n)) || (constants.has(n) && FP32_ROUTING_CONST.test(n))) ? FLOAT : HALF;
      else if (FP32_OPS.has(op)) target = floatIdx.length > 0 ? FLOAT : undefined;
      else if (FOLLOW_OPS.has(op) || BOOL_OUT.has(op)) {
        if (floatIdx.length > 0) {
          // constants that fit fp16 do not decide the type; everything else does (fp32 wins)
          // (only constants: computed as built, in fp32)
          const deciding = floatIdx.filter((i) => !(constants.has(inputs[i]!) && constFitsHalf(inputs[i]!)));
          target = deciding.length === 0 || deciding.some((i) => types.get(inputs[i]!) === FLOAT) ? FLOAT : HALF;
        }
      } else {
        throw new Error(`fp16: ${where} has no fp16 rule (add it to models/import/fp16.ts)`);
      }
      if (target !== undefined) newInputs = inputs.map((n, i) => (floatIdx.includes(i) ? as(n, target!) : n));
      // GroupQueryAttention may write present_key/value in place of past_key/value (its past-present buffer sharing);
      // ORT's planner then reuses a converted past (a Cast output read only here) for the longer present and fails
      // ("Shape mismatch attempting to re-use buffer"). A second reader of each converted past keeps its buffer apart.
      if (op === "GroupQueryAttention")
        for (const i of [3, 4])
          if (newInputs[i] && newInputs[i] !== inputs[i]) {
            const shape = fresh(`${newInputs[i]}_shape`);
            nodes.push({ opType: "Shape", domain: "", input: [newInputs[i]!], output: [shape], name: fresh("node/Shape") });
            types.set(shape, T.INT64);
          }
      const dataType = (i: number) => types.get(newInputs[i]!)!;
      if (BOOL_OUT.has(op)) outTypes = outs.map(() => T.BOOL);
      else if (op === "TopK") outTypes = [dataType(0), T.INT64];
      else if (op === "Where") outTypes = [dataType(1)];
      else outTypes = outs.map(() => dataType(0));
    }
    const finalOuts = outs.map((o, i) => {
      const declared = declaredOut.get(o);
      if (declared === undefined || declared === outTypes[i] || !isFloat(outTypes[i]!)) return o;
      return fresh(o);
    });
    nodes.push({ ...node, input: newInputs, output: finalOuts });
    finalOuts.forEach((o, i) => types.set(o, outTypes[i]!));
    // keep_io_types: an output computed in fp16 is cast to its declared type under its own name
    outs.forEach((o, i) => {
      if (finalOuts[i] === o) return;
      nodes.push({ opType: "Cast", domain: "", input: [finalOuts[i]!], output: [o], name: fresh("node/Cast"), attribute: [{ name: "to", type: onnx.AttributeProto.AttributeType.INT, i: declaredOut.get(o)! }] });
      types.set(o, declaredOut.get(o)!);
    });
  }
  for (const [name, declared] of declaredOut) {
    const got = types.get(alias.get(name) ?? name);
    if (got !== declared) throw new Error(`fp16: graph output "${name}" is ${TYPE_NAME[got ?? 0] ?? got}, declared ${TYPE_NAME[declared] ?? declared}`);
  }

  // every intermediate value gets its element type as value_info: ORT checks it against its own type inference
  // when the session is created (a wrong annotation fails the load), and tools can read what runs in fp16
  const io = new Set([...(graph.input ?? []), ...(graph.output ?? [])].map((v) => v.name!));
  const valueInfo = nodes.flatMap((n) => n.output ?? []).filter((o) => o !== "" && !io.has(o)).map((o) => ({ name: o, type: { tensorType: { elemType: types.get(o)! } } }));
  const read = new Set(nodes.flatMap((n) => n.input ?? []));
  for (const o of graph.output ?? []) read.add(o.name!);
  const out = onnx.ModelProto.create({
    ...model,
    graph: { ...graph, node: nodes, initializer: newInits.filter((t) => read.has(t.name!)).map((t) => onnx.TensorProto.create(t)), valueInfo },
    metadataProps: [...(model.metadataProps ?? []).filter((p) => p.key !== "moe_studio_compute_dtype"), { key: "moe_studio_compute_dtype", value: "fp16" }],
  });
  // the converted tensors' external data is rewritten in place (ensureFp16Graph): point at the model's own instances
  const final = new Map((out.graph!.initializer ?? []).map((t) => [t.name!, t]));
  return { model: out, convert: convert.filter((c) => final.has(c.tensor.name!)).map((c) => ({ ...c, tensor: final.get(c.tensor.name!)! })) };
}

/** STUDIO_COMPUTE_DTYPE (fp32 | fp16; empty or auto = follow the provider): the given setting, else the environment's. */
export function parseComputeDtype(setting?: string): ComputeDtype | undefined {
  const v = setting === undefined ? config().STUDIO_COMPUTE_DTYPE : parseSetting("STUDIO_COMPUTE_DTYPE", setting);
  return v === "auto" ? undefined : v;
}

/** The dtype an imported model computes in on `provider`: fp16 on CUDA, fp32 on CPU, unless STUDIO_COMPUTE_DTYPE says otherwise. */
/** `shaderF16`: whether the WebGPU adapter has `shader-f16` (webgpu.ts probes it); fp16 on WebGPU needs it. */
export function computeDtypeFor(provider: ExecutionProvider, setting?: string, shaderF16 = webGpuShaderF16()): ComputeDtype {
  const chosen = parseComputeDtype(setting) ?? (provider === "cuda" || (provider === "webgpu" && shaderF16) ? "fp16" : "fp32");
  if (chosen === "fp16" && provider === "webgpu" && !shaderF16) throw new Error("STUDIO_COMPUTE_DTYPE=fp16, but the WebGPU adapter has no shader-f16 feature (fp16 graphs cannot run on it): use fp32 or auto");
  return chosen;
}

/** Offsets of external tensors are aligned so ORT can map them directly (as external-graph.ts). */
const ALIGN = 64;
/** Values converted per read (bounded memory for tensors of any size). */
const CHUNK_VALUES = 1 << 22;

/** The fp16 graph's file name beside `file` (model.onnx → model.fp16.onnx). */
export function fp16GraphPath(file: string): string {
  return path.join(path.dirname(file), `${path.basename(file, ".onnx")}.fp16.onnx`);
}

function sourceKey(graphBytes: Uint8Array): string {
  return createHash("sha256").update(graphBytes).update(`fp16-v${FP16_CONVERTER_VERSION}`).digest("hex");
}

/**
 * The fp16 compute graph of the graph file `file` (fp32 compute, weights as external data or inline), written as
 * `<name>.fp16.onnx` (+ `<name>.fp16.onnx.data` when weights had to be converted) beside it: built on first use
 * and reused while the source graph is unchanged. Written to temporary names and renamed into place (the graph
 * last), so an interrupted build leaves nothing that would be used (its temp files are removed by the next build).
 */
export async function ensureFp16Graph(file: string): Promise<string> {
  const target = fp16GraphPath(file);
  const srcBytes = readFileSync(file);
  const key = sourceKey(srcBytes);
  if (existsSync(target)) {
    try {
      const have = onnx.ModelProto.decode(readFileSync(target)).metadataProps?.find((p) => p.key === "moe_studio_fp16_source")?.value;
      if (have === key) return target;
    } catch {
      // unreadable: rebuilt below
    }
  }
  const { model, convert } = convertToFp16(onnx.ModelProto.decode(srcBytes));
  model.metadataProps.push(onnx.StringStringEntryProto.create({ key: "moe_studio_fp16_source", value: key }));
  const dir = path.dirname(file);
  const suffix = `.tmp-${process.pid}-${randomBytes(4).toString("hex")}`;
  const dataName = `${path.basename(target)}.data`;
  removeStaleBuilds(dir, path.basename(target)); // temp files of a build whose process died
  removeStaleBuilds(dir, dataName);
  const tmpData = path.join(dir, `.${dataName}${suffix}`);
  const tmpGraph = path.join(dir, `.${path.basename(target)}${suffix}`);
  try {
    if (convert.length > 0) await writeConvertedData(dir, convert, tmpData, dataName);
    writeFileSync(tmpGraph, onnx.ModelProto.encode(model).finish());
    if (convert.length > 0) renameSync(tmpData, path.join(dir, dataName));
    renameSync(tmpGraph, target);
  } catch (e) {
    rmSync(tmpData, { force: true });
    rmSync(tmpGraph, { force: true });
    throw new Error(`building the fp16 graph of ${file}: ${(e as Error).message}`);
  }
  return target;
}

/**
 * Converts each listed external tensor to fp16 into `tmpData` (chunk by chunk) and points the tensors at `dataName`.
 * It yields to the event loop after every chunk: converting a large fp32 import takes minutes, and the server
 * that asked for the session must keep answering meanwhile.
 */
async function writeConvertedData(dir: string, convert: Fp16Result["convert"], tmpData: string, dataName: string): Promise<void> {
  const out = openSync(tmpData, "w");
  const sources = new Map<string, number>();
  let offset = 0;
  try {
    for (const { tensor, source } of convert) {
      let fd = sources.get(source.location);
      if (fd === undefined) {
        const srcFile = path.resolve(dir, source.location);
        if (!srcFile.startsWith(path.resolve(dir) + path.sep)) throw new Error(`tensor "${tensor.name}": external data location "${source.location}" is outside the model folder`);
        fd = openSync(srcFile, "r");
        sources.set(source.location, fd);
      }
      const width = source.dataType === FLOAT ? 4 : 2;
      const count = source.length / width;
      offset = Math.ceil(offset / ALIGN) * ALIGN;
      const start = offset;
      for (let done = 0; done < count; ) {
        const n = Math.min(CHUNK_VALUES, count - done);
        const bytes = Buffer.alloc(n * width);
        for (let got = 0; got < bytes.length; ) {
          const r = readSync(fd, bytes, got, bytes.length - got, source.offset + done * width + got);
          if (r === 0) throw new Error(`tensor "${tensor.name}": ${source.location} ends before its data (offset ${source.offset}, length ${source.length})`);
          got += r;
        }
        const floatBits = new Uint32Array(n);
        if (width === 4) floatBits.set(new Uint32Array(bytes.buffer, bytes.byteOffset, n));
        else for (let i = 0; i < n; i++) floatBits[i] = bytes.readUInt16LE(i * 2) << 16; // bf16 = the top half of fp32
        const halves = new Uint16Array(n);
        halfFromFloatBits(floatBits, halves, `weight "${tensor.name}"`);
        const half = new Uint8Array(halves.buffer);
        for (let w = 0; w < half.length; ) w += writeSync(out, half, w, half.length - w, offset + w);
        offset += half.length;
        done += n;
        await new Promise((resolve) => setImmediate(resolve));
      }
      tensor.externalData = [
        { key: "location", value: dataName },
        { key: "offset", value: String(start) },
        { key: "length", value: String(offset - start) },
      ];
    }
  } finally {
    closeSync(out);
    for (const fd of sources.values()) closeSync(fd);
  }
}
