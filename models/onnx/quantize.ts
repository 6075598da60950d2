/**
 * Weight-only int8 / int4 quantisation of a built ONNX graph, for ONNX Runtime's `com.microsoft.MatMulNBits`.
 *
 * A post-build transform: it finds every MatMul / Gemm whose weight input is a float initializer (directly, or through
 * the Cast-to-float an fp16/bf16-stored weight has) and replaces it by MatMulNBits with the weight quantised block-wise
 * along K. It relies on nothing the builder names but three canonical parameter names: the routers
 * (`model.layers.{i}.mlp.gate.weight`, kept in full precision: their logits decide routing), `lm_head.weight`
 * (optional) and `model.embed_tokens.weight` (never quantised). Norm weights, embeddings (Gather), biases and
 * computed matrices are never a MatMul/Gemm initializer weight, so they stay as they are. A weight that anything but
 * such a MatMul/Gemm reads (a tied embedding) is kept; so is the embedding where a tied head is its only reader (the
 * decoder fed inputs_embeds, the logit-lens head), so that every graph of a model computes the same logits.
 *
 * MatMulNBits (ContribOperators.md, onnxruntime 1.30): Y = A · dequant(B)ᵀ (+ bias), A [..., K], dequant(B) [N, K]:
 *   B           uint8 [N, n_blocks, blob_size], n_blocks = ceil(K / block_size), blob_size = block_size · bits / 8;
 *               4 bits: element 2j of a block in the low nibble of byte j, element 2j+1 in the high nibble.
 *   scales      T1 (float here) [N, n_blocks]
 *   zero_points uint8 [N, ceil(n_blocks · bits / 8)], packed like B (4 bits: block 2j low nibble); absent: 2^(bits-1)
 *   dequant     (q - zero_point) · scale
 * Symmetric: no zero points (the default 2^(bits-1)); scale = the block's value of largest magnitude / -2^(bits-1), so
 * that value maps exactly to q = 0 and the others to round(w / scale) clamped to [0, 2^bits - 1] (llama.cpp's Q4_0/Q8_0
 * idea: all 2^bits levels used). Asymmetric: the block's range widened to include 0, scale = (max - min) / (2^bits - 1),
 * zero point = round(-min / scale) (0 is exact). A block of zeros gets scale 0.
 */
import { onnx } from "onnx-proto";
import { f16BitsToF32 } from "../io/safetensors";

export type QuantBits = 4 | 8;
export const QUANT_BLOCK_SIZES = [16, 32, 64, 128] as const;
export type QuantBlockSize = (typeof QUANT_BLOCK_SIZES)[number];

export interface QuantScheme {
  bits: QuantBits;
  blockSize: QuantBlockSize;
  symmetric: boolean;
  /**
   * MatMulNBits' accuracy_level: 0 computes A in fp32 against the dequantised weights; 4 lets the CPU kernel quantise A
   * to int8 per block (faster, less exact). See the README's quantisation section for the measured difference.
   */
  accuracyLevel?: 0 | 4;
}

/** One quantised [N, K] matrix in MatMulNBits' layout. */
export interface QuantizedMatrix {
  N: number;
  K: number;
  nBlocks: number;
  blobSize: number;
  /** [N, nBlocks, blobSize] */
  b: Uint8Array;
  /** [N, nBlocks] */
  scales: Float32Array;
  /** [N, zpColumns(nBlocks, bits)] (asymmetric only) */
  zeroPoints?: Uint8Array;
}

export const zpColumns = (nBlocks: number, bits: QuantBits) => Math.ceil((nBlocks * bits) / 8);

export function checkScheme(s: QuantScheme): void {
  if (s.bits !== 4 && s.bits !== 8) throw new Error(`quantisation: bits must be 4 or 8 (got ${s.bits})`);
  if (!QUANT_BLOCK_SIZES.includes(s.blockSize)) throw new Error(`quantisation: block size must be one of ${QUANT_BLOCK_SIZES.join(", ")} (got ${s.blockSize})`);
}

/**
 * Quantises a weight matrix block-wise along K. `w` holds the [N, K] matrix row-major (`layout: "nk"`, a PyTorch Linear
 * weight, Gemm with transB = 1) or its transpose [K, N] (`layout: "kn"`, a MatMul's right-hand side).
 */
export function quantizeMatrix(w: Float32Array, N: number, K: number, scheme: QuantScheme, layout: "nk" | "kn" = "nk"): QuantizedMatrix {
  checkScheme(scheme);
  if (w.length !== N * K) throw new Error(`quantisation: a [${N}, ${K}] matrix has ${N * K} values, got ${w.length}`);
  const { bits, blockSize: bs, symmetric } = scheme;
  const nBlocks = Math.ceil(K / bs);
  const blobSize = (bs * bits) / 8;
  const qmax = (1 << bits) - 1;
  const mid = 1 << (bits - 1);
  const b = new Uint8Array(N * nBlocks * blobSize);
  const scales = new Float32Array(N * nBlocks);
  const zc = zpColumns(nBlocks, bits);
  const zeroPoints = symmetric ? undefined : new Uint8Array(N * zc);
  const block = new Float32Array(bs);
  const q = new Uint8Array(bs);
  // row n, column k of [N, K]
  const rowStride = layout === "nk" ? K : 1, colStride = layout === "nk" ? 1 : N;
  for (let n = 0; n < N; n++) {
    for (let blk = 0; blk < nBlocks; blk++) {
      const k0 = blk * bs, len = Math.min(bs, K - k0);
      let lo = 0, hi = 0, big = 0;
      for (let j = 0; j < len; j++) {
        const v = w[n * rowStride + (k0 + j) * colStride]!;
        block[j] = v;
        if (v < lo) lo = v;
        if (v > hi) hi = v;
        if (Math.abs(v) > Math.abs(big)) big = v;
      }
      let scale: number, zp: number;
      if (symmetric) {
        scale = Math.fround(big / -mid);
        zp = mid;
      } else {
        scale = Math.fround((hi - lo) / qmax);
        zp = scale === 0 ? 0 : Math.min(qmax, Math.max(0, Math.round(-lo / scale)));
      }
      const inv = scale === 0 ? 0 : 1 / scale;
      for (let j = 0; j < bs; j++) q[j] = j < len ? Math.min(qmax, Math.max(0, Math.round(block[j]! * inv) + zp)) : zp; // padding dequantises to 0
      scales[n * nBlocks + blk] = scale;
      const out = (n * nBlocks + blk) * blobSize;
      if (bits === 8) b.set(q, out);
      else for (let j = 0; j < blobSize; j++) b[out + j] = q[2 * j]! | (q[2 * j + 1]! << 4);
      if (zeroPoints) {
        if (bits === 8) zeroPoints[n * zc + blk] = zp;
        else zeroPoints[n * zc + (blk >> 1)]! |= zp << ((blk & 1) * 4);
      }
    }
  }
  return { N, K, nBlocks, blobSize, b, scales, zeroPoints };
}

/** Bytes a quantised [N, K] matrix takes (packed weights, fp32 scales, zero points). */
export function quantizedBytes(N: number, K: number, s: Pick<QuantScheme, "bits" | "blockSize" | "symmetric">): number {
  const nBlocks = Math.ceil(K / s.blockSize);
  return N * nBlocks * ((s.blockSize * s.bits) / 8) + N * nBlocks * 4 + (s.symmetric ? 0 : N * zpColumns(nBlocks, s.bits));
}

/** A router weight (kept in full precision: its logits decide routing). */
export const ROUTER_WEIGHT = /^model\.layers\.\d+\.mlp\.gate\.weight$/;
export const LM_HEAD_WEIGHT = "lm_head.weight";
export const EMBED_WEIGHT = "model.embed_tokens.weight";
/**
 * The fused decoder's routing constants (models/moe-llm/decoder/fused.ts): 0/1 matrices spreading routing weights over
 * expert columns and the per-expert down biases, multiplied by routing weights. MatMul right-hand sides, but not
 * weights: quantising them would only add error and kernels.
 */
export const ROUTING_CONSTANT = /\.(spread|down_bias)(_\d+)?$/;

// ---------------------------------------------------------------------------------------------
// The graph transform

const T = onnx.TensorProto.DataType;
const FLOAT_TYPES = new Set<number>([T.FLOAT, T.FLOAT16, T.BFLOAT16]);

export interface QuantizeGraphOptions {
  scheme: QuantScheme;
  /** Quantise the LM head too (default false: it stays in full precision, like llama.cpp's higher-precision output tensor). */
  lmHead?: boolean;
}

/** One weight to quantise: its source initializer, how it is laid out, and the (data-less) tensors that replace it. */
export interface QuantJob {
  source: onnx.ITensorProto;
  layout: "nk" | "kn";
  N: number;
  K: number;
  b: onnx.ITensorProto;
  scales: onnx.ITensorProto;
  zeroPoints?: onnx.ITensorProto;
}

export interface QuantPlan {
  /** The transformed model; the jobs' tensors are in its initializers, without data yet. */
  model: onnx.ModelProto;
  jobs: QuantJob[];
}

/** What a quantised graph records (ImportManifest.quant, a run's trace). */
export interface QuantSummary {
  bits: QuantBits;
  blockSize: QuantBlockSize;
  symmetric: boolean;
  accuracyLevel: 0 | 4;
  lmHead: boolean;
  /** Matrices replaced by MatMulNBits, their parameters, and the bytes they take quantised (weights + scales + zero points). */
  matrices: number;
  parameters: number;
  bytes: number;
}

export const quantLabel = (q: Pick<QuantSummary, "bits" | "blockSize" | "symmetric">) => `int${q.bits} (block ${q.blockSize}, ${q.symmetric ? "symmetric" : "asymmetric"})`;

const attr = (node: onnx.INodeProto, name: string) => node.attribute?.find((a) => a.name === name);
const attrInt = (node: onnx.INodeProto, name: string, dflt: number) => {
  const a = attr(node, name);
  return a ? Number(a.i) : dflt;
};
const attrFloat = (node: onnx.INodeProto, name: string, dflt: number) => {
  const a = attr(node, name);
  return a ? (a.f ?? dflt) : dflt;
};

/**
 * Plans the quantisation of `model` (see the file comment): which MatMul/Gemm nodes become MatMulNBits and the tensors
 * that replace their weights. Pure: no weight data is read (QuantJob.source says where it is).
 */
export function planQuantization(model: onnx.IModelProto, opts: QuantizeGraphOptions): QuantPlan {
  checkScheme(opts.scheme);
  const graph = model.graph;
  if (!graph) throw new Error("quantisation: the model has no graph");
  const inits = new Map((graph.initializer ?? []).map((t) => [t.name!, t]));
  const consumers = new Map<string, { node: onnx.INodeProto; index: number }[]>();
  for (const node of graph.node ?? []) (node.input ?? []).forEach((name, index) => name && consumers.set(name, [...(consumers.get(name) ?? []), { node, index }]));
  const graphOutputs = new Set((graph.output ?? []).map((o) => o.name!));
  const bits = opts.scheme.bits, bs = opts.scheme.blockSize;
  const eligibleWeight = (name: string) => !ROUTER_WEIGHT.test(name) && !ROUTING_CONSTANT.test(name) && name !== EMBED_WEIGHT && (opts.lmHead || name !== LM_HEAD_WEIGHT);

  /** The weight layout a consumer reads a [r, c] initializer in, or undefined when it cannot become MatMulNBits. */
  const readsAs = (c: { node: onnx.INodeProto; index: number }): "nk" | "kn" | undefined => {
    const n = c.node;
    if (c.index !== 1 || (n.domain ?? "") !== "") return undefined;
    if (n.opType === "MatMul") return "kn";
    if (n.opType !== "Gemm" || attrInt(n, "transA", 0) !== 0 || attrFloat(n, "alpha", 1) !== 1) return undefined;
    if ((n.input?.[2] ?? "") !== "" && attrFloat(n, "beta", 1) !== 1) return undefined;
    return attrInt(n, "transB", 0) === 1 ? "nk" : "kn";
  };

  const replaced = new Map<onnx.INodeProto, onnx.INodeProto[]>();
  const dropped = new Set<onnx.INodeProto>();
  const newInits: onnx.ITensorProto[] = [];
  const jobs: QuantJob[] = [];
  const used = new Set<string>([...inits.keys(), ...(graph.node ?? []).flatMap((n) => n.output ?? [])]);
  const fresh = (base: string) => {
    let name = base;
    for (let i = 1; used.has(name); i++) name = `${base}_${i}`;
    used.add(name);
    return name;
  };
  for (const w of graph.initializer ?? []) {
    const name = w.name!;
    if (!FLOAT_TYPES.has(w.dataType ?? 0) || w.dims?.length !== 2 || !eligibleWeight(name) || graphOutputs.has(name)) continue;
    // the weight itself, or the Cast to float after an fp16/bf16-stored weight
    let value = name;
    let cast: onnx.INodeProto | undefined;
    const direct = consumers.get(name) ?? [];
    if (w.dataType !== T.FLOAT) {
      if (direct.length !== 1 || direct[0]!.node.opType !== "Cast" || attrInt(direct[0]!.node, "to", 0) !== T.FLOAT) continue;
      cast = direct[0]!.node;
      value = cast.output![0]!;
      if (graphOutputs.has(value)) continue;
    }
    const users = consumers.get(value) ?? [];
    const layouts = users.map(readsAs);
    if (users.length === 0 || layouts.some((l) => l === undefined) || new Set(layouts).size !== 1) continue;
    const layout = layouts[0]!;
    const [r, c] = w.dims.map(Number) as [number, number];
    const [N, K] = layout === "nk" ? [r, c] : [c, r];
    const nBlocks = Math.ceil(K / bs);
    const job: QuantJob = {
      source: w,
      layout,
      N,
      K,
      b: { name: fresh(`${name}.q${bits}`), dataType: T.UINT8, dims: [N, nBlocks, (bs * bits) / 8] },
      scales: { name: fresh(`${name}.scales`), dataType: T.FLOAT, dims: [N, nBlocks] },
      ...(opts.scheme.symmetric ? {} : { zeroPoints: { name: fresh(`${name}.zero_points`), dataType: T.UINT8, dims: [N, zpColumns(nBlocks, bits)] } }),
    };
    jobs.push(job);
    newInits.push(job.b, job.scales, ...(job.zeroPoints ? [job.zeroPoints] : []));
    if (cast) dropped.add(cast);
    for (const { node } of users) {
      const bias = node.opType === "Gemm" ? (node.input?.[2] ?? "") : "";
      const biasInit = bias ? inits.get(bias) : undefined;
      // a 1-D float bias of length N goes into MatMulNBits; any other C of Gemm is added after it (same broadcasting)
      const fused = biasInit && biasInit.dataType === T.FLOAT && biasInit.dims?.length === 1 && Number(biasInit.dims[0]) === N ? bias : "";
      const out = node.output![0]!;
      const y = bias && !fused ? fresh(`${out}/nbits`) : out;
      const A = onnx.AttributeProto.AttributeType;
      const q: onnx.INodeProto = {
        opType: "MatMulNBits",
        domain: "com.microsoft",
        name: fresh(`${node.name ?? node.opType}/nbits`),
        input: [node.input![0]!, job.b.name!, job.scales.name!, job.zeroPoints?.name ?? "", ...(fused ? ["", fused] : [])],
        output: [y],
        attribute: [
          { name: "K", type: A.INT, i: K },
          { name: "N", type: A.INT, i: N },
          { name: "bits", type: A.INT, i: bits },
          { name: "block_size", type: A.INT, i: bs },
          { name: "accuracy_level", type: A.INT, i: opts.scheme.accuracyLevel ?? 0 },
        ],
      };
      replaced.set(node, bias && !fused ? [q, { opType: "Add", domain: "", name: fresh(`${node.name ?? "Gemm"}/bias`), input: [y, bias], output: [out] }] : [q]);
    }
  }

  const nodes = (graph.node ?? []).flatMap((n) => (dropped.has(n) ? [] : (replaced.get(n) ?? [n])));
  const read = new Set(nodes.flatMap((n) => n.input ?? []));
  for (const o of graph.output ?? []) read.add(o.name!);
  const initializer = [...(graph.initializer ?? []), ...newInits].filter((t) => read.has(t.name!)).map((t) => onnx.TensorProto.create(t));
  const live = new Set([...nodes.flatMap((n) => n.output ?? []), ...initializer.map((t) => t.name!)]);
  const opsetImport = [...(model.opsetImport ?? [])];
  if (jobs.length > 0 && !opsetImport.some((o) => o.domain === "com.microsoft")) opsetImport.push({ domain: "com.microsoft", version: 1 });
  const out = onnx.ModelProto.create({
    ...model,
    opsetImport,
    graph: { ...graph, node: nodes, initializer, valueInfo: (graph.valueInfo ?? []).filter((v) => live.has(v.name!)) },
  });
  // the jobs' tensors as the model holds them (their data is filled in by the writer)
  const byName = new Map(initializer.map((t) => [t.name!, t]));
  return {
    model: out,
    jobs: jobs.map((j) => ({ ...j, b: byName.get(j.b.name!)!, scales: byName.get(j.scales.name!)!, ...(j.zeroPoints ? { zeroPoints: byName.get(j.zeroPoints.name!)! } : {}) })),
  };
}

/** The summary of a plan (what the manifest and runs record). */
export function summarizePlan(plan: QuantPlan, opts: QuantizeGraphOptions): QuantSummary {
  const s = opts.scheme;
  return {
    bits: s.bits,
    blockSize: s.blockSize,
    symmetric: s.symmetric,
    accuracyLevel: s.accuracyLevel ?? 0,
    lmHead: !!opts.lmHead,
    matrices: plan.jobs.length,
    parameters: plan.jobs.reduce((a, j) => a + j.N * j.K, 0),
    bytes: plan.jobs.reduce((a, j) => a + quantizedBytes(j.N, j.K, s), 0),
  };
}

const u8 = (a: Float32Array | Uint8Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

/** Quantises one job's weight (given as float32 values in the source's layout) into its tensors' raw bytes. */
export function quantizeJob(job: QuantJob, weight: Float32Array, scheme: QuantScheme): { b: Uint8Array; scales: Uint8Array; zeroPoints?: Uint8Array } {
  const q = quantizeMatrix(weight, job.N, job.K, scheme, job.layout);
  return { b: q.b, scales: u8(q.scales), ...(q.zeroPoints ? { zeroPoints: q.zeroPoints } : {}) };
}

/** Float32 values of an inline float initializer (FLOAT raw or float_data; FLOAT16/BFLOAT16 raw). */
export function inlineFloatValues(t: onnx.ITensorProto): Float32Array {
  const count = (t.dims ?? []).reduce<number>((a, b) => a * Number(b), 1);
  const raw = t.rawData;
  if (t.dataType === T.FLOAT) {
    if (!raw || raw.length === 0) return Float32Array.from(t.floatData ?? []);
    const copy = new Uint8Array(raw.byteLength);
    copy.set(raw);
    return new Float32Array(copy.buffer);
  }
  if (!raw || raw.length !== count * 2) throw new Error(`initializer "${t.name}": expected ${count * 2} raw bytes`);
  const out = new Float32Array(count);
  const bitsOut = new Uint32Array(out.buffer);
  const dv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  if (t.dataType === T.BFLOAT16) for (let i = 0; i < count; i++) bitsOut[i] = dv.getUint16(i * 2, true) << 16;
  else for (let i = 0; i < count; i++) out[i] = f16BitsToF32(dv.getUint16(i * 2, true));
  return out;
}

/**
 * Quantises a model whose weights are inline (graphs built in memory, e.g. the seeded reference models): returns the
 * serialised quantised model and its summary. External-data models go through models/import/quantize-file.ts.
 */
export function quantizeModelBytes(bytes: Uint8Array, opts: QuantizeGraphOptions): { bytes: Uint8Array; summary: QuantSummary } {
  const plan = planQuantization(onnx.ModelProto.decode(bytes), opts);
  for (const job of plan.jobs) {
    if (job.source.dataLocation === onnx.TensorProto.DataLocation.EXTERNAL) throw new Error(`quantisation: weight "${job.source.name}" is external data; quantise the graph file instead (models/import/quantize-file.ts)`);
    const q = quantizeJob(job, inlineFloatValues(job.source), opts.scheme);
    job.b.rawData = q.b;
    job.scales.rawData = q.scales;
    if (job.zeroPoints) job.zeroPoints.rawData = q.zeroPoints!;
  }
  return { bytes: onnx.ModelProto.encode(plan.model).finish(), summary: summarizePlan(plan, opts) };
}

/** What a user asks for (`cli import --quant`, the Models page); resolveQuant fills in the defaults. */
export interface QuantChoice {
  kind: "int4" | "int8";
  blockSize?: QuantBlockSize;
  symmetric?: boolean;
  /** How MatMulNBits computes: "fp32" (accuracy_level 0) or "int8" (4: activations quantised to int8 per block). */
  compute?: "fp32" | "int8";
  lmHead?: boolean;
}

/**
 * Defaults, from the measurements in the README (this 2-core x86 machine, onnxruntime 1.30): int4 → block 32, fp32
 * compute (MLAS has a fast 4-bit fp32 kernel, exact against the dequantised weights); int8 → block 128, int8 compute
 * (8-bit weights have no fp32 kernel in MLAS here: ORT dequantises the whole matrix on every call, 10-100× slower).
 * Both symmetric (no zero points).
 */
export function resolveQuant(c: QuantChoice): QuantizeGraphOptions {
  if (c.kind !== "int4" && c.kind !== "int8") throw new Error(`--quant must be int8 or int4 (got "${c.kind}")`);
  const bits: QuantBits = c.kind === "int4" ? 4 : 8;
  const compute = c.compute ?? (bits === 4 ? "fp32" : "int8");
  if (compute !== "fp32" && compute !== "int8") throw new Error(`quantised compute must be fp32 or int8 (got "${compute}")`);
  const scheme: QuantScheme = { bits, blockSize: c.blockSize ?? (bits === 4 ? 32 : 128), symmetric: c.symmetric ?? true, accuracyLevel: compute === "int8" ? 4 : 0 };
  checkScheme(scheme);
  return { scheme, lmHead: !!c.lmHead };
}

/** The options a recorded summary was made with (to quantise another graph of the same model the same way). */
export const optionsOf = (q: QuantSummary): QuantizeGraphOptions => ({ scheme: { bits: q.bits, blockSize: q.blockSize, symmetric: q.symmetric, accuracyLevel: q.accuracyLevel }, lmHead: q.lmHead });
/** A key naming the options (equal options, equal keys; "" for none). */
export const quantKey = (o: QuantizeGraphOptions | undefined) => (o ? `int${o.scheme.bits}-b${o.scheme.blockSize}-${o.scheme.symmetric ? "sym" : "asym"}-acc${o.scheme.accuracyLevel ?? 0}${o.lmHead ? "-head" : ""}` : "");
