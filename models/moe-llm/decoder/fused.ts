import { headDim, paramNames, type MoeLlmConfig } from "../config";
import { architectureOf, qkNormNames } from "../../families/conventions";
import type { GraphBuilder } from "../../onnx/builder";
import type { Ops } from "../../onnx/ops";
import type { WeightSource } from "../../io/weights";
import { kvCacheDims, ropeFrequencies } from "./attention";
import { io } from "./io";
import type { Routing } from "./routers";
import { catRows, weight, type DecoderContext } from "./tensors";

/**
 * The fused decoder's building blocks (moe-llm-graph.ts builds the fused graph by default; `unfused: true` gives the
 * reference graph of plain ONNX ops these are tested against, tests/unit/models/moe-llm/fused-decoder.test.ts):
 * - norms: SimplifiedLayerNormalization / SkipSimplifiedLayerNormalization (RMSNorm, the residual add fused in),
 *   SkipLayerNormalization for LayerNorm families;
 * - attention (the GQA families): one QKV Gemm, RotaryEmbedding on q and k from per-token cos/sin tables computed once
 *   per forward and shared by every layer (M-RoPE's t/h/w sections included), GroupQueryAttention with the KV cache,
 *   the scale, sliding windows (local_window_size), gpt-oss's sinks (head_sink) and an additive padding bias;
 * - feed-forward: every expert (routed and shared) of a layer as ONE wide SwiGLU MLP ("dense": fixed shapes, one
 *   gate/up and one down projection, the per-expert weights spread over their columns by a 0/1 matrix), or the shared
 *   experts as one wide MLP plus each routed expert on the tokens that chose it ("sparse", data-dependent shapes), or
 *   plus the routed experts as one com.microsoft MoE node (`expertsOp`, the CPU decode twin: `l{i}.experts_op.fc1/fc2`);
 * - the decode-step form (`decodeStep`, the CPU decode twin): one token's attention over a KV cache read in place
 *   (decodeStepAttention).
 * Every ONNX Runtime contrib op used is in com.microsoft (SimplifiedLayerNormalization is in the ONNX domain in ORT).
 *
 * Weights that carry a projection are Gemm nodes (transB = 1, PyTorch [out, in] layout) whose B input is an
 * initializer named after what it holds (int8/int4 weight-only quantisation can swap exactly these for MatMulNBits):
 * `l{i}.qkv_proj.weight`, `model.layers.{i}.self_attn.o_proj.weight`, `l{i}.experts.gate_up` [2M,H] and
 * `l{i}.experts.down` [H,M] (dense), `l{i}.shared.gate_up`, `l{i}.shared.down`, `l{i}.routed{e}.gate_up` and the
 * routed experts' canonical `model.layers.{i}.mlp.….down_proj.weight` (sparse), the dense layers'
 * `model.layers.{i}.mlp.{gate,up,down}_proj.weight` and `lm_head.weight`. Not weights: the router
 * (`model.layers.{i}.mlp.gate.weight`, full precision) and the MatMul constants `l{i}/l{i}.experts.spread`,
 * `l{i}/l{i}.shared.spread` (0/1 matrices spreading the routing weights over the columns) and `….down_bias`.
 * Imported graphs store weights as external data (fp16/bf16 storage: followed by a Cast to float).
 */

const MS = "com.microsoft";

/** The tables every fused attention layer reads: per-token rotary cos/sin [N, Dr/2] and their row index [B,S]. */
export interface FusedRope {
  cos: string;
  sin: string;
  /** int64 [B,S]: b·S + s, the row of each token in cos/sin */
  rows: string;
}

/** Shared by every layer of one forward: lengths for GroupQueryAttention and the optional padding bias. */
export interface FusedAttentionInputs {
  /** [N,F] → [B,S,F] (a Reshape by [B,S,-1], or in the device-resident graph a Gather of each token's row) */
  toBS: (t: string) => string;
  kvCache: boolean;
  rope: FusedRope;
  /** int32 [B]: total length − 1 per sequence */
  seqlensK: string;
  /** int32 scalar: past + new */
  totalLength: string;
  /** float [B,1,S,T] additive bias (padding), or "" */
  bias: string;
  /** Graphs for WebGPU (MoeGraphOptions.webgpu): float [NH] of NULL_SINK, the head_sink of layers without sinks. */
  webgpu?: { nullSink: string };
}

/**
 * A head_sink logit that takes no attention weight: exp(NULL_SINK − max) is exactly 0 in float32 for any row maximum
 * above −1e9 + 104, so smooth_softmax with it is the plain softmax. Graphs for WebGPU give every GroupQueryAttention
 * smooth_softmax = 1 (with this sink where the family has none) because that keeps ONNX Runtime 1.30's WebGPU kernel
 * off its FlashAttention path, which on SwiftShader (4-lane subgroups) gave wrong rows from position 4 on once a
 * prefill had 32+ tokens (tests/integration/webgpu.test.ts); the CPU provider computes the same values either way.
 */
export const NULL_SINK = -1e9;

/** The shared head_sink of the WebGPU graph's GroupQueryAttention nodes (see NULL_SINK). */
export function nullSinkInput(g: GraphBuilder, numHeads: number): string {
  return g.const(new Float32Array(numHeads).fill(NULL_SINK), [numHeads], "float", "attention.null_sink");
}

/**
 * Per-token cos/sin [N, Dr/2] from position_ids [3,B,S] (nTokens: int64 scalar N) and the rotary frequencies (as ropeTables: section j of the
 * frequency pairs takes axis t, h or w; cos and sin × rope_attention_factor). RotaryEmbedding's rotate-half form
 * (interleaved 0) is transformers' apply_rotary_pos_emb with emb = cat(freqs, freqs).
 */
export function fusedRopeTables(ctx: DecoderContext, pos: string, nTokens: string, device?: { rows: string }): FusedRope {
  const { o, g, arch, c } = ctx;
  const { invFreq, select } = ropeFrequencies(ctx);
  const half = invFreq.length;
  // positions as float: a Cast, or (device-resident graph: GPU providers have no int64 → float Cast) a Gather from the
  // table 0, 1, 2, … (exact: the same float values the Cast gives)
  const posF = device ? o.gather(g.const(Float32Array.from({ length: ropeTableSize(c) }, (_, p) => p), [ropeTableSize(c)], "float", "rope.positions"), pos) : o.cast(pos, "float");
  const freqs = o.mul(o.unsqueeze(posF, [3]), g.const(invFreq, [half])); // [3,B,S,half]
  const f = o.reshape(o.reduceSum(o.mul(freqs, g.const(select, [3, 1, 1, half])), [0], 0), g.ints([-1, half])); // [N,half]
  const factor = arch.ropeAttentionFactor;
  const scaled = (t: string) => (factor === 1 ? t : o.mul(t, g.scalar(factor)));
  const rows = device ? device.rows : o.reshape(o.range(g.const([0], [], "int64"), nTokens, g.const([1], [], "int64")), o.shape(pos, 1, 3)); // [B,S]
  return { cos: scaled(o.cos(f)), sin: scaled(o.sin(f)), rows };
}

/** Positions the device-resident graph's float position table covers (0 … size − 1): the config's context, at least 32768. */
export function ropeTableSize(c: MoeLlmConfig): number {
  const m = Number((c as Record<string, unknown>).max_position_embeddings ?? 0);
  return Math.min(Math.max(Number.isFinite(m) ? m : 0, 32768), 1 << 20);
}

/** Whether layer i's attention can be GroupQueryAttention (else the reference attention is used for it). */
export function fusedAttentionFits(c: MoeLlmConfig): boolean {
  const a = architectureOf(c);
  if (a.attention === "mla") return false;
  const Dh = headDim(c);
  return Dh % 8 === 0;
}

/** RMSNorm (or LayerNorm) of x as one node. */
export function fusedNorm(ctx: DecoderContext, x: string, weightName: string, eps = ctx.c.rms_norm_eps): string {
  const { g, arch } = ctx;
  if (arch.norm === "layer") return ctx.o.layerNormalization(x, ctx.w(weightName), ctx.w(paramNames.normBias(weightName)), eps);
  return g.op("SimplifiedLayerNormalization", [x, ctx.w(weightName)], { axis: -1, epsilon: { f: eps }, stash_type: 1 });
}

/** x + skip and its norm in one node: returns [norm(x + skip), x + skip]. */
export function fusedSkipNorm(ctx: DecoderContext, x: string, skip: string, weightName: string): [string, string] {
  const { g, arch, c } = ctx;
  const eps = { f: c.rms_norm_eps };
  const outs =
    arch.norm === "layer"
      ? g.node("SkipLayerNormalization", [x, skip, ctx.w(weightName), ctx.w(paramNames.normBias(weightName))], { epsilon: eps }, { domain: MS, nOutputs: 4 })
      : g.node("SkipSimplifiedLayerNormalization", [x, skip, ctx.w(weightName)], { epsilon: eps }, { domain: MS, nOutputs: 4 });
  return [outs[0]!, outs[3]!];
}

/** The additive mask input of a GroupQueryAttention is only needed for padding; causal and windows are its own. */
export function fusedGqaAttention(ctx: DecoderContext, inputs: FusedAttentionInputs, i: number, h: string): string {
  const { o, g, c, arch } = ctx;
  const NH = c.num_attention_heads, KVH = c.num_key_value_heads, Dh = headDim(c);
  const { q, k, v } = rotatedQkv(ctx, inputs, i, h);
  const [keys, values] = [kvCacheDims(c).key, kvCacheDims(c).value];
  const past = (which: "key" | "value") => {
    if (!inputs.kvCache) return "";
    const [heads, dim] = which === "key" ? keys : values;
    if (which === "key" && i === 0) return io.pastKey(0);
    return g.input(which === "key" ? io.pastKey(i) : io.pastValue(i), "float", ["batch", heads, "past", dim]);
  };
  const pk = past("key"), pv = past("value");
  const W = arch.slidingWindows[i];
  const attrs: Record<string, number | { f: number }> = { num_heads: NH, kv_num_heads: KVH, scale: { f: attentionScale(ctx) } };
  if (W !== null && W !== undefined) attrs.local_window_size = W;
  if (inputs.webgpu) attrs.smooth_softmax = 1;
  const sinks = arch.sinks ? ctx.w(paramNames.sinks(i)) : (inputs.webgpu?.nullSink ?? "");
  const ins = [q, k, v, pk, pv, inputs.seqlensK, inputs.totalLength, "", "", "", inputs.bias, sinks];
  while (ins[ins.length - 1] === "") ins.pop();
  const presentNames = inputs.kvCache ? { outputs: [g.fresh("attn"), io.presentKey(i), io.presentValue(i)] } : { nOutputs: 3 };
  const [att] = g.node("GroupQueryAttention", ins, attrs, { domain: MS, ...presentNames });
  if (inputs.kvCache) {
    g.declareOutput(io.presentKey(i), "float", ["batch", keys[0], "total", keys[1]]);
    g.declareOutput(io.presentValue(i), "float", ["batch", values[0], "total", values[1]]);
  }
  return outProjection(ctx, i, o.reshape(att!, g.ints([-1, NH * Dh]))); // [N,NH*Dh]
}

function attentionScale(ctx: DecoderContext): number {
  return ctx.arch.attentionScale ?? 1 / Math.sqrt(headDim(ctx.c));
}

function outProjection(ctx: DecoderContext, i: number, merged: string): string {
  const { o, arch } = ctx;
  return o.linear(merged, ctx.w(paramNames.attn(i, "o", "weight")), arch.outputBias ? ctx.w(paramNames.attn(i, "o", "bias")) : undefined);
}

/** Whether the decode-step graph's attention (decodeStepAttention) computes this config's attention. */
export function decodeStepAttentionFits(c: MoeLlmConfig): boolean {
  const a = architectureOf(c);
  return fusedAttentionFits(c) && !a.sinks && a.slidingWindows.every((w) => w === null || w === undefined);
}

/**
 * The attention of the decode-step graph (MoeGraphOptions.decodeStep): ONE new token of ONE sequence, whose past keys
 * and values are read where the runner keeps them — past_key_i / past_value_i [past, kvH·D], position-major, the first
 * `past` rows of its store, wrapped without a copy — and whose rotated key and value are returned for the runner to
 * append (GroupQueryAttention would need its present outputs fetched, and onnxruntime-node copies every fetched output
 * into a new JS buffer, the whole cache every step). Same math as GroupQueryAttention for one query (every cached key
 * visible; no window, no sink: decodeStepAttentionFits): the query of head h, tiled over the kv heads and kept (×scale)
 * only in its own kv head's block [NH, kvH·D], scores every head against every cached key with one Gemm; softmax over
 * the past and the token itself; the values of both weighted likewise, then each head's own block picked.
 */
export function decodeStepAttention(ctx: DecoderContext, inputs: FusedAttentionInputs, i: number, h: string): { out: string; key: string; value: string } {
  const { o, g, c } = ctx;
  const NH = c.num_attention_heads, KVH = c.num_key_value_heads, D = headDim(c), group = NH / KVH;
  const { q, k, v } = rotatedQkv(ctx, inputs, i, h); // [1,1,NH·D], [1,1,KVH·D], [1,1,KVH·D]
  const pastK = g.input(io.pastKey(i), "float", ["past", KVH * D]);
  const pastV = g.input(io.pastValue(i), "float", ["past", KVH * D]);
  const scale = attentionScale(ctx);
  const block = g.const(Array.from({ length: NH * KVH * D }, (_, j) => (Math.floor(j / D) % KVH === Math.floor(Math.floor(j / (KVH * D)) / group) ? scale : 0)), [NH, KVH * D], "float", "attention.query_blocks");
  const qb = o.mul(g.op("Tile", [o.reshape(q, g.ints([NH, D])), g.ints([1, KVH])]), block); // [NH, KVH·D]
  const key = o.reshape(k, g.ints([1, KVH * D])), value = o.reshape(v, g.ints([1, KVH * D]));
  const scores = o.concat([g.op("Gemm", [qb, pastK], { transB: 1 }), g.op("Gemm", [qb, key], { transB: 1 })], 1); // [NH, past + 1]
  const p = o.softmax(scores, 1);
  const pPast = o.slice(p, [0], [-1], [1]), pNew = o.slice(p, [-1], [Number.MAX_SAFE_INTEGER], [1]);
  const mixed = g.op("Gemm", [pPast, pastV, g.op("Gemm", [pNew, value])]); // [NH, KVH·D]: every kv head's values under each head's weights
  const own = g.const(Array.from({ length: NH * D }, (_, j) => Math.floor(Math.floor(j / D) / group)), [NH, 1, D], "int64", "attention.own_block");
  const att = o.gatherElements(o.reshape(mixed, g.ints([NH, KVH, D])), own, 1); // [NH,1,D]
  return { out: outProjection(ctx, i, o.reshape(att, g.ints([1, NH * D]))), key, value };
}

/** The layer's q, k, v [B,S,*] from one QKV Gemm, q/k normalised where the family does, q and k rotated. */
function rotatedQkv(ctx: DecoderContext, inputs: FusedAttentionInputs, i: number, h: string): { q: string; k: string; v: string } {
  const { o, g, c, arch } = ctx;
  const H = c.hidden_size, NH = c.num_attention_heads, KVH = c.num_key_value_heads, Dh = headDim(c);
  const fused = (kind: "weight" | "bias") => {
    const parts = (["q", "k", "v"] as const).map((p) => weight(ctx.ws, ctx.shapes, paramNames.attn(i, p, kind)));
    const rows = parts.reduce((a, t) => a + t.shape[0]!, 0);
    return g.initializer(`l${i}.qkv_proj.${kind}`, catRows(parts.map((t) => t.data)), kind === "weight" ? [rows, H] : [rows]);
  };
  const qkv = o.linear(h, fused("weight"), arch.attentionBias ? fused("bias") : undefined); // [N,(NH+2KVH)*Dh]
  const normEps = { f: c.rms_norm_eps };
  const sln = (x: string, w: string) => g.op("SimplifiedLayerNormalization", [x, w], { axis: -1, epsilon: normEps, stash_type: 1 });
  let [q, k, v] = o.split(inputs.toBS(qkv), [NH * Dh, KVH * Dh, KVH * Dh], 2) as [string, string, string]; // [B,S,*]
  if (arch.qkNorm === "full") {
    q = sln(q, ctx.w(qkNormNames.q(i)));
    k = sln(k, ctx.w(qkNormNames.k(i)));
  } else if (arch.qkNorm === "per_head") {
    const perHead = (t: string, heads: number, w: string) => o.reshape(sln(o.reshape(t, g.ints([0, 0, heads, Dh])), w), g.ints([0, 0, heads * Dh]));
    q = perHead(q, NH, ctx.w(qkNormNames.q(i)));
    k = perHead(k, KVH, ctx.w(qkNormNames.k(i)));
  }
  const rot = (t: string, heads: number) => g.op("RotaryEmbedding", [t, inputs.rope.rows, inputs.rope.cos, inputs.rope.sin], { interleaved: 0, num_heads: heads }, MS);
  return { q: rot(q, NH), k: rot(k, KVH), v };
}

/** silu(gate) · up of a [.., 2M] projection whose first M columns are gates (QuickGelu with alpha 1 is x·sigmoid(x)). */
function swiglu(o: Ops, gu: string, M: number): string {
  const [gate, up] = o.split(gu, [M, M], 1) as [string, string];
  return o.mul(o.g.op("QuickGelu", [gate], { alpha: { f: 1 } }, MS), up);
}

/** gpt-oss's clamped SwiGLU (ffn.ts clampedSwigluAct) on a [.., 2M] projection. */
function clampedSwiglu(o: Ops, c: MoeLlmConfig, gu: string, M: number): string {
  const { alpha, limit } = architectureOf(c).swiglu;
  const g = o.g;
  const [gate0, up0] = o.split(gu, [M, M], 1) as [string, string];
  const gate = o.min(gate0, g.scalar(limit));
  const up = g.op("Clip", [up0, g.scalar(-limit), g.scalar(limit)]);
  return o.mul(o.add(up, g.scalar(1)), g.op("QuickGelu", [gate], { alpha: { f: alpha } }, MS));
}

/**
 * `names` experts as one MLP: gate/up rows [gates of every expert; ups of every expert] [2M, H] and down [H, M]
 * (columns expert after expert), M = Σ intermediate sizes. Returns the two initializers and each expert's column span.
 */
function wideMlpWeights(g: GraphBuilder, ws: WeightSource, shapes: Map<string, number[]>, prefix: string, parts: { gate: string; up: string; down: string; bias?: { gate: string; up: string; down: string } }[]) {
  const w = (n: string) => weight(ws, shapes, n);
  const gates = parts.map((p) => w(p.gate)), ups = parts.map((p) => w(p.up)), downs = parts.map((p) => w(p.down));
  const H = gates[0]!.shape[1]!;
  const sizes = gates.map((t) => t.shape[0]!);
  const M = sizes.reduce((a, b) => a + b, 0);
  const down = new Float32Array(H * M);
  let col = 0;
  downs.forEach((t, e) => {
    const I = sizes[e]!;
    for (let r = 0; r < H; r++) down.set(t.data.subarray(r * I, (r + 1) * I), r * M + col);
    col += I;
  });
  const gateUp = g.initializer(`${prefix}.gate_up`, catRows([...gates.map((t) => t.data), ...ups.map((t) => t.data)]), [2 * M, H]);
  const downInit = g.initializer(`${prefix}.down`, down, [H, M]);
  const withBias = parts.every((p) => p.bias);
  const gateUpBias = withBias ? g.initializer(`${prefix}.gate_up_bias`, catRows([...parts.map((p) => w(p.bias!.gate).data), ...parts.map((p) => w(p.bias!.up).data)]), [2 * M]) : undefined;
  const downBias = withBias ? catRows(parts.map((p) => w(p.bias!.down).data)) : undefined; // [experts, H]
  return { gateUp, down: downInit, gateUpBias, downBias, sizes, M };
}

/** [rows, M] 0/1: row r spreads weight column `cols[r]` over expert r's intermediate columns (null columns: zero rows). */
function spreadMatrix(sizes: number[], cols: number[], E: number): Float32Array {
  const M = sizes.reduce((a, b) => a + b, 0);
  const m = new Float32Array(E * M);
  let at = 0;
  sizes.forEach((I, r) => {
    for (let j = 0; j < I; j++) m[cols[r]! * M + at + j] = 1;
    at += I;
  });
  return m;
}

/**
 * The experts of an MoE layer weighted by the routing, x [N,H] → [N,H]. "dense": all experts (routed and shared) as
 * one wide MLP, fixed shapes (no NonZero, no device→host sync); "sparse": the shared experts as one wide MLP, each
 * routed expert on the tokens that chose it (NonZero/GatherND/ScatterND: CPU-fast, data-dependent shapes).
 */
export function fusedExperts(ctx: DecoderContext, i: number, x: string, r: Routing, mode: "sparse" | "dense" | "op"): string {
  const { o, g, c, ws, shapes, arch } = ctx;
  const R = c.mlp_dynamic_expert_num, SH = c.mlp_fixed_expert_num, D = R + c.mlp_dynamic_null_expert_num, E = D + SH;
  const clamped = arch.expertActivation === "clamped_swiglu";
  if (clamped && SH > 0) throw new Error("clamped SwiGLU experts with shared experts are not supported");
  const act = (gu: string, M: number) => (clamped ? clampedSwiglu(o, c, gu, M) : swiglu(o, gu, M));
  const routed = (e: number) => ({
    gate: paramNames.routed(i, e, "gate"),
    up: paramNames.routed(i, e, "up"),
    down: paramNames.routed(i, e, "down"),
    ...(arch.expertBias ? { bias: { gate: paramNames.routed(i, e, "gate", "bias"), up: paramNames.routed(i, e, "up", "bias"), down: paramNames.routed(i, e, "down", "bias") } } : {}),
  });
  const shared = (s: number) => ({ gate: paramNames.shared(i, s, "gate"), up: paramNames.shared(i, s, "up"), down: paramNames.shared(i, s, "down") });
  /** one wide MLP over `parts`, its columns weighted by the router columns `cols` */
  const wide = (prefix: string, parts: ReturnType<typeof routed>[], cols: number[]) => {
    const m = wideMlpWeights(g, ws, shapes, prefix, parts);
    const spread = g.const(spreadMatrix(m.sizes, cols, E), [E, m.M], "float", `${prefix}.spread`);
    const h = o.mul(act(o.linear(x, m.gateUp, m.gateUpBias), m.M), o.matmul(r.weights, spread)); // [N,M]
    let y = o.linear(h, m.down);
    if (m.downBias) {
      const rows = new Float32Array(E * c.hidden_size);
      cols.forEach((col, e) => rows.set(m.downBias!.subarray(e * c.hidden_size, (e + 1) * c.hidden_size), col * c.hidden_size));
      y = o.add(y, o.matmul(r.weights, g.const(rows, [E, c.hidden_size], "float", `${prefix}.down_bias`)));
    }
    return y;
  };
  const sharedCols = Array.from({ length: SH }, (_, s) => D + s);
  if (mode === "op") return expertsOp(ctx, i, x, r, SH > 0 ? wide(`l${i}.shared`, Array.from({ length: SH }, (_, s) => shared(s)), sharedCols) : undefined);
  if (mode === "dense") {
    const parts = [...Array.from({ length: R }, (_, e) => routed(e)), ...Array.from({ length: SH }, (_, s) => shared(s))];
    return wide(`l${i}.experts`, parts, [...Array.from({ length: R }, (_, e) => e), ...sharedCols]);
  }
  let y = SH > 0 ? wide(`l${i}.shared`, Array.from({ length: SH }, (_, s) => shared(s)), sharedCols) : o.mul(x, g.scalar(0));
  const chosenT = o.transpose(r.chosen, [1, 0]); // [D,N] bool
  const wT = o.unsqueeze(o.transpose(o.slice(r.weights, [0], [R], [1]), [1, 0]), [2]); // [R,N,1]
  for (let e = 0; e < R; e++) {
    const p = routed(e);
    const I = shapes.get(p.gate)![0]!;
    const gu = g.initializer(`l${i}.routed${e}.gate_up`, catRows([weight(ws, shapes, p.gate).data, weight(ws, shapes, p.up).data]), [2 * I, c.hidden_size]);
    const down = ctx.w(p.down);
    const guBias = p.bias ? g.initializer(`l${i}.routed${e}.gate_up_bias`, catRows([weight(ws, shapes, p.bias.gate).data, weight(ws, shapes, p.bias.up).data]), [2 * I]) : undefined;
    const row = g.const([e], [], "int64");
    const idx = o.transpose(o.nonzero(o.gather(chosenT, row)), [1, 0]); // [n_e,1]
    const xe = g.op("GatherND", [x, idx]); // [n_e,H]
    const we = g.op("GatherND", [o.gather(wT, row), idx]); // [n_e,1]
    const he = o.linear(act(o.linear(xe, gu, guBias), I), down, p.bias ? ctx.w(p.bias.down) : undefined); // [n_e,H]
    y = o.scatterAddRows(y, idx, o.mul(he, we));
  }
  return y;
}

/** Whether the routed experts can be one MoE node (expertsOp): SwiGLU experts (plain or gpt-oss's clamped form), at least one. */
export function expertsOpFits(c: MoeLlmConfig): boolean {
  return c.mlp_dynamic_expert_num >= 1 && ["swiglu", "clamped_swiglu"].includes(architectureOf(c).expertActivation);
}

/**
 * The routed experts of layer i as one com.microsoft MoE node, plus `sharedY` (the shared experts' weighted output).
 * The operator routes by softmax(router_probs) over its top k; fed log(w) of the routed columns with k = R it takes
 * exactly the columns with w > 0 (log 0 = −inf: weight 0, skipped) at weights w / Σw, so its output × Σw is
 * Σ_e w_e · expert_e(x). fc1 holds each expert's gate and up rows interleaved (swiglu_fusion 1), fc2 its down [H, I].
 */
function expertsOp(ctx: DecoderContext, i: number, x: string, r: Routing, sharedY: string | undefined): string {
  const { o, g, c, ws, shapes, arch } = ctx;
  const R = c.mlp_dynamic_expert_num, H = c.hidden_size;
  const I = shapes.get(paramNames.routed(i, 0, "gate"))![0]!;
  const fc1 = new Float32Array(R * 2 * I * H), fc2 = new Float32Array(R * H * I);
  for (let e = 0; e < R; e++) {
    const gate = weight(ws, shapes, paramNames.routed(i, e, "gate")).data, up = weight(ws, shapes, paramNames.routed(i, e, "up")).data;
    for (let j = 0; j < I; j++) {
      fc1.set(gate.subarray(j * H, (j + 1) * H), (e * 2 * I + 2 * j) * H);
      fc1.set(up.subarray(j * H, (j + 1) * H), (e * 2 * I + 2 * j + 1) * H);
    }
    fc2.set(weight(ws, shapes, paramNames.routed(i, e, "down")).data, e * H * I);
  }
  const swiglu: Record<string, { f: number }> = arch.expertActivation === "clamped_swiglu" ? { activation_alpha: { f: arch.swiglu.alpha }, activation_beta: { f: 1 }, swiglu_limit: { f: arch.swiglu.limit } } : { activation_alpha: { f: 1 }, activation_beta: { f: 0 } };
  let fc1Bias = "", fc2Bias = "";
  if (arch.expertBias) {
    const b1 = new Float32Array(R * 2 * I), b2 = new Float32Array(R * H);
    for (let e = 0; e < R; e++) {
      const gb = weight(ws, shapes, paramNames.routed(i, e, "gate", "bias")).data, ub = weight(ws, shapes, paramNames.routed(i, e, "up", "bias")).data;
      for (let j = 0; j < I; j++) [b1[e * 2 * I + 2 * j], b1[e * 2 * I + 2 * j + 1]] = [gb[j]!, ub[j]!];
      b2.set(weight(ws, shapes, paramNames.routed(i, e, "down", "bias")).data, e * H);
    }
    fc1Bias = g.initializer(`l${i}.experts_op.fc1_bias`, b1, [R, 2 * I]);
    fc2Bias = g.initializer(`l${i}.experts_op.fc2_bias`, b2, [R, H]);
  }
  const wR = o.slice(r.weights, [0], [R], [1]); // [N,R]
  const [y] = g.node("MoE", [x, g.op("Log", [wR]), g.initializer(`l${i}.experts_op.fc1`, fc1, [R, 2 * I, H]), fc1Bias, g.initializer(`l${i}.experts_op.fc2`, fc2, [R, H, I]), fc2Bias], { k: R, activation_type: "swiglu", swiglu_fusion: 1, normalize_routing_weights: 0, ...swiglu }, { domain: MS, nOutputs: 1 });
  const routed = o.mul(y!, o.reduceSum(wR, [1])); // [N,H]
  return sharedY ? o.add(sharedY, routed) : routed;
}
