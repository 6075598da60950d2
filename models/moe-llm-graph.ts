import { type MoeLlmConfig, headDim, paramNames } from "./config";
import { architectureOf, qkNormNames } from "./families/conventions";
import { checkRoutingPrecision, dropPolicy, grinRouterLogits, grinRouting } from "./grin-routing";
import { bf16Values, roundBf16, type RoutingPrecision } from "./onnx/bf16";
import { GraphBuilder } from "./onnx/builder";
import { Ops } from "./onnx/ops";
import type { Tensor32, WeightSource } from "./weights";

/**
 * Uni-MoE-2.0 decoder (Qwen2 attention with M-RoPE + dynamic-capacity MoE, PAPER.md §2-3) as an ONNX graph.
 *
 * Dimension letters: B batch, S new tokens, P past tokens, T = P + S, N = B*S tokens, H hidden,
 * NH query heads, KVH key/value heads, G = NH/KVH, Dh head dim, V vocab, L layers,
 * R routed experts, Z null experts, SH shared experts, D = R + Z dynamic columns, E = D + SH router columns.
 *
 * Inputs : input_ids int64 [B,S]  (or inputs_embeds float [B,S,H] with `embeds: true`)
 *          position_ids int64 [3,B,S] (t, h, w)
 *          past_key_{i}, past_value_{i} float [B,KVH,P,Dh]                  (kvCache)
 *          router_bias float [L,E], ban_mask float [L,E], force_mask float [L,E], top_p float [1]
 *            — required inputs (onnxruntime-node ignores feeds for overridable initializers); the neutral
 *            values are all zeros (top_p 0 → "use the config"); MoeLlmRunner feeds them when omitted.
 * Outputs: logits [B,S,V], last_hidden [B,S,H] (after the final norm),
 *          present_key_{i}, present_value_{i} [B,KVH,T,Dh]                  (kvCache)
 *          router_logits_{i} [N,E], mask_{i} [N,E] (0/1), weights_{i} [N,E], k_{i} int64 [N]   (trace)
 *          dropped_{i} [N,E] (0/1: selected, then dropped over capacity)                  (trace, config.token_drop)
 *
 * Interventions (neutral value = no change; `router_logits_{i}` reports the logits after the bias):
 * - router_bias is added to the router logits before anything else (Top-P, GRIN, g all see it).
 * - ban_mask > 0.5 bans a column. A banned dynamic column is an -inf logit for the whole dynamic routing:
 *   it leaves the Top-P softmax (p is renormalised over the allowed columns), is never chosen, and k is
 *   capped at the number of allowed dynamic columns (all of them banned → k = 0, shared experts only).
 *   A banned shared column gets mask 0 (it leaves g and contributes nothing).
 * - force_mask > 0.5 on an allowed dynamic column: the chosen set is the union of the model's own choice
 *   and the forced columns, so k = k_model + (forced columns the model did not choose). The GRIN steps take
 *   the forced columns first (by logit), then continue by logit; a step's m is the chosen column's logit.
 *   Ban wins over force. Force on a shared column changes nothing (shared columns are always on).
 * - top_p > 0 overrides the config's P for this run; top_p <= 0 keeps the config (where P = 0 means the
 *   fixed mlp_dynamic_top_k). An override P >= 1 selects all allowed dynamic columns (no rounding cut-off).
 * The Uni-MoE routing itself (Top-P k, GRIN multipliers, capacity token drop, in fp32 or bf16 as the release computes
 * it) is models/grin-routing.ts: k is reported as the release reports it (D + 1 when the cumsum never reaches P, before
 * drops), and with `token_drop` every call drops, decode steps included (outputs dropped_{i} with the trace).
 * Attention is causal, within a sliding window in the layers that have one (config sliding_window_per_layer, see
 * "sliding-window bias" below). Not done: padding masks.
 */
export interface MoeGraphOptions {
  /** "sparse": each routed expert runs only on the tokens that chose it; "dense": every expert on every token, masked. */
  moe: "sparse" | "dense";
  /** Adds the per-layer routing outputs. */
  trace: boolean;
  /** Adds past_key/value inputs and present_key/value outputs. */
  kvCache: boolean;
  /** Takes inputs_embeds [B,S,H] instead of input_ids [B,S]. */
  embeds?: boolean;
  /** Arithmetic of the Uni-MoE routing (grin-routing.ts); absent = "fp32". */
  routingPrecision?: RoutingPrecision;
}

/** Graph input/output names. */
export const io = {
  ids: "input_ids",
  embeds: "inputs_embeds",
  positions: "position_ids",
  routerBias: "router_bias",
  ban: "ban_mask",
  force: "force_mask",
  topP: "top_p",
  pastKey: (i: number) => `past_key_${i}`,
  pastValue: (i: number) => `past_value_${i}`,
  presentKey: (i: number) => `present_key_${i}`,
  presentValue: (i: number) => `present_value_${i}`,
  logits: "logits",
  lastHidden: "last_hidden",
  routerLogits: (i: number) => `router_logits_${i}`,
  mask: (i: number) => `mask_${i}`,
  weights: (i: number) => `weights_${i}`,
  k: (i: number) => `k_${i}`,
  dropped: (i: number) => `dropped_${i}`,
};

/** Sizes derived from a config. */
export function moeDims(c: MoeLlmConfig) {
  const R = c.mlp_dynamic_expert_num, Z = c.mlp_dynamic_null_expert_num, SH = c.mlp_fixed_expert_num;
  const NH = c.num_attention_heads, KVH = c.num_key_value_heads;
  return { H: c.hidden_size, L: c.num_hidden_layers, V: c.vocab_size, NH, KVH, G: NH / KVH, Dh: headDim(c), R, Z, SH, D: R + Z, E: R + Z + SH };
}

/** Every parameter the decoder reads, with its PyTorch shape. */
export function moeLlmParamShapes(c: MoeLlmConfig): Map<string, number[]> {
  const { H, L, V, NH, KVH, Dh, R, SH, E } = moeDims(c);
  const I = c.dynamic_intermediate_size, Is = c.shared_intermediate_size;
  const arch = architectureOf(c);
  const m = new Map<string, number[]>();
  m.set(paramNames.embed, [V, H]);
  for (let i = 0; i < L; i++) {
    m.set(paramNames.inputNorm(i), [H]);
    m.set(paramNames.postNorm(i), [H]);
    m.set(paramNames.attn(i, "q", "weight"), [NH * Dh, H]);
    if (arch.attentionBias) m.set(paramNames.attn(i, "q", "bias"), [NH * Dh]);
    m.set(paramNames.attn(i, "k", "weight"), [KVH * Dh, H]);
    if (arch.attentionBias) m.set(paramNames.attn(i, "k", "bias"), [KVH * Dh]);
    m.set(paramNames.attn(i, "v", "weight"), [KVH * Dh, H]);
    if (arch.attentionBias) m.set(paramNames.attn(i, "v", "bias"), [KVH * Dh]);
    m.set(paramNames.attn(i, "o", "weight"), [H, NH * Dh]);
    if (arch.qkNorm !== "none") {
      m.set(qkNormNames.q(i), [arch.qkNorm === "full" ? NH * Dh : Dh]);
      m.set(qkNormNames.k(i), [arch.qkNorm === "full" ? KVH * Dh : Dh]);
    }
    m.set(paramNames.router(i), [E, H]);
    for (let e = 0; e < R; e++) {
      m.set(paramNames.routed(i, e, "gate"), [I, H]);
      m.set(paramNames.routed(i, e, "up"), [I, H]);
      m.set(paramNames.routed(i, e, "down"), [H, I]);
    }
    for (let s = 0; s < SH; s++) {
      m.set(paramNames.shared(i, s, "gate"), [Is, H]);
      m.set(paramNames.shared(i, s, "up"), [Is, H]);
      m.set(paramNames.shared(i, s, "down"), [H, Is]);
    }
  }
  m.set(paramNames.finalNorm, [H]);
  if (!c.tie_word_embeddings) m.set(paramNames.lmHead, [V, H]);
  return m;
}

function checkConfig(c: MoeLlmConfig): void {
  const { NH, KVH, Dh, D } = moeDims(c);
  if (c.token_drop) dropPolicy(c);
  const sec = c.rope_scaling.mrope_section;
  if (NH % KVH !== 0) throw new Error(`num_attention_heads ${NH} is not a multiple of num_key_value_heads ${KVH}`);
  if (!Number.isInteger(Dh) || Dh % 2 !== 0) throw new Error(`head_dim ${Dh} must be an even integer`);
  if (sec.reduce((a, b) => a + b, 0) !== Dh / 2) throw new Error(`mrope_section [${sec}] must sum to head_dim/2 = ${Dh / 2}`);
  const arch = architectureOf(c);
  if (arch.routing !== "uni_moe_top_p" && c.mlp_dynamic_null_expert_num !== 0) throw new Error(`routing_convention ${arch.routing} has no null experts (mlp_dynamic_null_expert_num must be 0)`);
  if (arch.sharedExpertGate && c.mlp_fixed_expert_num !== 1) throw new Error("shared_expert_gate needs exactly one shared expert (mlp_fixed_expert_num 1)");
  if (arch.routing !== "uni_moe_top_p" && c.mlp_dynamic_top_k > D) throw new Error(`mlp_dynamic_top_k ${c.mlp_dynamic_top_k} exceeds the ${D} dynamic columns`);
}

/** Reads a weight and checks its shape against the table. */
function weight(ws: WeightSource, shapes: Map<string, number[]>, name: string): Tensor32 {
  const t = ws.get(name);
  const want = shapes.get(name);
  if (want && (t.shape.length !== want.length || t.shape.some((d, i) => d !== want[i])))
    throw new Error(`weight "${name}" has shape [${t.shape}], expected [${want}]`);
  return t;
}

/** [rows, cols] row-major → [cols, rows]. */
function transpose2(t: Tensor32): Float32Array {
  const [r, c] = t.shape as [number, number];
  const out = new Float32Array(r * c);
  for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) out[j * r + i] = t.data[i * c + j]!;
  return out;
}

/** Concatenates row-major matrices along rows (all [*, C]). */
function catRows(ts: Float32Array[]): Float32Array {
  const out = new Float32Array(ts.reduce((a, t) => a + t.length, 0));
  let o = 0;
  for (const t of ts) { out.set(t, o); o += t.length; }
  return out;
}

/** A finite stand-in for -inf in softmax inputs (keeps all-masked rows finite instead of NaN). */
const NEG = -1e30;

/** Routing tensors of one layer (all [N, ...]). */
interface Routing {
  /** bool [N,D] chosen dynamic columns */
  chosen: string;
  /** float [N,E] 0/1 */
  mask: string;
  /** float [N,E] final weights */
  weights: string;
  /** float [N,1] dynamic k */
  k: string;
  /** float [N,E] 1 where a selection was dropped over capacity (config.token_drop) */
  dropped?: string;
}

/**
 * The routing of one layer on logits z: [N,E] (bias already added). ban, force: float [1,E] rows; topP: the float [1]
 * top_p input (> 0 overrides the config's P). The Uni-MoE routing is grin-routing.ts, in `precision`.
 */
function routing(o: Ops, c: MoeLlmConfig, z: string, ban: string, force: string, topP: string, precision: RoutingPrecision): Routing {
  if (architectureOf(c).routing !== "uni_moe_top_p") return topkRouting(o, c, z, ban, force);
  return grinRouting(o, c, { z, ban, force, topP }, precision);
}

/**
 * Fixed top-k routing of the Qwen2-MoE / Qwen3-MoE / OLMoE / Mixtral families (families/conventions.ts) on z: [N,E]
 * (E = R routed columns, plus the shared expert's gate logit as the last column with `shared_expert_gate`).
 * p = softmax over the allowed routed logits; the chosen set is the forced columns first, then by logit (ties: lower
 * index), k = min(top_k + forced outside the model's own top-k, allowed). Weights: p at the chosen columns, divided by
 * their sum unless the convention is softmax_topk. A shared column is always on (unless banned) with weight
 * sigmoid(its logit) under `shared_expert_gate`, else 1. The top_p input does not apply here.
 */
function topkRouting(o: Ops, c: MoeLlmConfig, z: string, ban: string, force: string): Routing {
  const g = o.g;
  const { D, E } = moeDims(c);
  const arch = architectureOf(c);
  const zD = o.slice(z, [0], [D], [1]); // [N,D]
  const allowed = o.not(o.greater(o.slice(ban, [0], [D], [1]), g.scalar(0.5))); // [1,D]
  const forcedF = o.cast(o.and(o.greater(o.slice(force, [0], [D], [1]), g.scalar(0.5)), allowed), "float"); // [1,D]
  const zA = o.where(allowed, zD, g.scalar(NEG)); // [N,D]
  const nAllowed = o.reduceSum(o.cast(allowed, "float"), [1]); // [1,1]
  const [, idx] = o.topk(zA, g.ints([D]), 1); // [N,D] columns in descending logit order
  const pos = o.expand(g.const(Array.from({ length: D }, (_, s) => s), [1, D]), o.shape(idx)); // [N,D]
  const zeros = o.expand(g.scalar(0), o.shape(idx));
  const rank = o.scatterElements(zeros, idx, pos, 1); // [N,D] place of each column by logit
  const kBase = g.scalar(c.mlp_dynamic_top_k);
  const extra = o.reduceSum(o.mul(forcedF, o.cast(o.greaterOrEqual(rank, kBase), "float")), [1]); // [N,1]
  const k = o.min(o.add(kBase, extra), nAllowed); // [N,1]
  const fs = o.gatherElements(o.expand(forcedF, o.shape(idx)), idx, 1); // [N,D] forced flags in sorted order
  const before = o.sub(o.cumsum(fs, 1), fs);
  const orderSorted = o.where(o.greater(fs, g.scalar(0.5)), before, o.add(o.reduceSum(forcedF, [1]), o.sub(pos, before)));
  const order = o.scatterElements(zeros, idx, orderSorted, 1); // [N,D] forced first, then by logit
  const chosen = o.and(o.less(order, k), allowed); // [N,D]
  const chosenF = o.cast(chosen, "float");
  const picked = o.mul(o.softmax(zA, 1), chosenF); // [N,D]
  // (every routed column banned: nothing picked, weights stay 0 rather than 0/0)
  const wD = arch.routing === "softmax_topk" ? picked : o.div(picked, o.max(o.reduceSum(picked, [1]), g.scalar(1e-30)));
  if (E === D) return { chosen, mask: chosenF, weights: wD, k };
  const sharedOn = o.cast(o.not(o.greater(o.slice(ban, [D], [E], [1]), g.scalar(0.5))), "float"); // [1,SH]
  const sharedMask = o.expand(sharedOn, o.concat([o.shape(z, 0, 1), g.ints([E - D])], 0)); // [N,SH]
  const wS = arch.sharedExpertGate ? o.mul(o.sigmoid(o.slice(z, [D], [E], [1])), sharedOn) : sharedMask;
  return { chosen, mask: o.concat([chosenF, sharedMask], 1), weights: o.concat([wD, wS], 1), k };
}

/** Per-layer expert weights as graph initializers, laid out for the chosen MoE mode. */
function expertInitializers(g: GraphBuilder, ws: WeightSource, shapes: Map<string, number[]>, c: MoeLlmConfig, i: number, mode: "sparse" | "dense") {
  const { R, SH, H } = moeDims(c);
  const I = c.dynamic_intermediate_size, Is = c.shared_intermediate_size;
  const w = (n: string) => weight(ws, shapes, n);
  // shared experts fused: gate_up [SH*2*Is, H] rows = [gate_0, up_0, gate_1, up_1, ...]; down^T [SH*Is, H]
  const sharedGateUp = SH === 0 ? "" : g.initializer(`l${i}.shared.gate_up`, catRows(Array.from({ length: SH }, (_, s) => [w(paramNames.shared(i, s, "gate")).data, w(paramNames.shared(i, s, "up")).data]).flat()), [SH * 2 * Is, H]);
  const sharedDown = SH === 0 ? "" : g.initializer(`l${i}.shared.down`, catRows(Array.from({ length: SH }, (_, s) => transpose2(w(paramNames.shared(i, s, "down"))))), [SH * Is, H]);
  if (mode === "sparse") {
    const routed = Array.from({ length: R }, (_, e) => ({
      gateUp: g.initializer(`l${i}.routed${e}.gate_up`, catRows([w(paramNames.routed(i, e, "gate")).data, w(paramNames.routed(i, e, "up")).data]), [2 * I, H]),
      down: g.initializer(`l${i}.routed${e}.down`, w(paramNames.routed(i, e, "down")).data, [H, I]),
    }));
    return { sharedGateUp, sharedDown, routed, stacked: undefined };
  }
  // dense: stacked for batched MatMul: gate_up^T [R,H,2I], down^T [R,I,H]
  const gu = catRows(Array.from({ length: R }, (_, e) => transpose2({ shape: [2 * I, H], data: catRows([w(paramNames.routed(i, e, "gate")).data, w(paramNames.routed(i, e, "up")).data]) })));
  const dn = catRows(Array.from({ length: R }, (_, e) => transpose2(w(paramNames.routed(i, e, "down")))));
  const stacked = { gateUp: g.initializer(`l${i}.routed.gate_up_t`, gu, [R, H, 2 * I]), down: g.initializer(`l${i}.routed.down_t`, dn, [R, I, H]) };
  return { sharedGateUp, sharedDown, routed: undefined, stacked };
}

/** silu(gate) * up for a fused [.., 2I] projection → [.., I]. */
function swigluAct(o: Ops, gu: string, I: number, axis: number): string {
  const [gate, up] = o.split(gu, [I, I], axis) as [string, string];
  return o.mul(o.silu(gate), up);
}

/** The MoE feed-forward of one layer: x [N,H] → [N,H] (+ routing for the trace). */
function moeLayer(o: Ops, c: MoeLlmConfig, ws: WeightSource, shapes: Map<string, number[]>, i: number, x: string, bias: string, ban: string, force: string, topP: string, mode: "sparse" | "dense", precision: RoutingPrecision) {
  const g = o.g;
  const { R, SH, D } = moeDims(c);
  const I = c.dynamic_intermediate_size, Is = c.shared_intermediate_size;
  const W = weight(ws, shapes, paramNames.router(i)).data;
  const router = g.initializer(paramNames.router(i), precision === "bf16" ? bf16Values(W) : W, shapes.get(paramNames.router(i))!);
  const z = grinRouterLogits(o, x, router, bias, precision); // [N,E]
  const r = routing(o, c, z, ban, force, topP, precision);
  const ex = expertInitializers(g, ws, shapes, c, i, mode);

  // shared experts: Σ_s w_s · down_s(act_s)  =  down_cat(concat_s(w_s · act_s)); none → y starts at 0
  let y: string;
  if (SH > 0) {
    const wS = o.slice(r.weights, [D], [D + SH], [1]); // [N,SH]
    const guS = o.reshape(o.linear(x, ex.sharedGateUp), g.ints([0, SH, 2 * Is])); // [N,SH,2Is]
    const actS = o.mul(swigluAct(o, guS, Is, 2), o.unsqueeze(wS, [2])); // [N,SH,Is]
    y = o.matmul(o.reshape(actS, g.ints([0, SH * Is])), ex.sharedDown); // [N,H]
  } else {
    y = o.mul(x, g.scalar(0));
  }

  const wR = o.transpose(o.slice(r.weights, [0], [R], [1]), [1, 0]); // [R,N]
  if (mode === "dense") {
    const gu = o.matmul(x, ex.stacked!.gateUp); // [R,N,2I]
    const out = o.matmul(swigluAct(o, gu, I, 2), ex.stacked!.down); // [R,N,H]
    y = o.add(y, o.reduceSum(o.mul(out, o.unsqueeze(wR, [2])), [0], 0));
  } else {
    const chosenT = o.transpose(r.chosen, [1, 0]); // [D,N] bool
    for (let e = 0; e < R; e++) {
      const ee = ex.routed![e]!;
      const row = g.const([e], [], "int64");
      const idx = o.transpose(o.nonzero(o.gather(chosenT, row)), [1, 0]); // [n_e,1]
      const flat = o.reshape(idx, g.ints([-1])); // [n_e]
      const xe = o.gather(x, flat); // [n_e,H]
      const he = o.linear(swigluAct(o, o.linear(xe, ee.gateUp), I, 1), ee.down); // [n_e,H]
      const we = o.unsqueeze(o.gather(o.gather(wR, row), flat), [1]); // [n_e,1]
      y = o.scatterAddRows(y, idx, o.mul(he, we));
    }
  }
  return { y, routing: r, z };
}

/** Builds the decoder graph; returns a serialized ONNX ModelProto. */
/** `builder` lets a caller store the initializers elsewhere (models/import writes them as ONNX external data). */
export function buildMoeLlmGraph(config: MoeLlmConfig, weights: WeightSource, options: MoeGraphOptions, builder?: GraphBuilder): Uint8Array {
  checkConfig(config);
  const c = config;
  const precision = options.routingPrecision ?? "fp32";
  checkRoutingPrecision(c, precision);
  const { H, L, V, NH, KVH, G, Dh, E } = moeDims(c);
  const arch = architectureOf(c);
  const shapes = moeLlmParamShapes(c);
  const g = builder ?? new GraphBuilder("uni_moe_decoder");
  const o = new Ops(g);
  const w = (name: string) => {
    const t = weight(weights, shapes, name);
    return g.initializer(name, t.data, t.shape);
  };

  // ---- inputs ----
  let x: string; // [N,H]
  let bsShape: string; // int64 [2] = [B,S]
  const embed = options.embeds && c.tie_word_embeddings === false ? undefined : w(paramNames.embed);
  if (options.embeds) {
    const e = g.input(io.embeds, "float", ["batch", "seq", H]);
    bsShape = o.shape(e, 0, 2);
    x = o.reshape(e, g.ints([-1, H]));
  } else {
    const ids = g.input(io.ids, "int64", ["batch", "seq"]);
    bsShape = o.shape(ids);
    x = o.gather(embed!, o.reshape(ids, g.ints([-1])));
  }
  const pos = g.input(io.positions, "int64", [3, "batch", "seq"]);
  const routerBias = g.input(io.routerBias, "float", [L, E]);
  const banMask = g.input(io.ban, "float", [L, E]);
  const forceMask = g.input(io.force, "float", [L, E]);
  const topP = g.input(io.topP, "float", [1]);

  // ---- M-RoPE tables: cos, sin [B,1,S,Dh] ----
  const half = Dh / 2;
  const sec = c.rope_scaling.mrope_section;
  const invFreq = Array.from({ length: half }, (_, j) => 1 / Math.pow(c.rope_theta, (2 * j) / Dh));
  const axisOf = (j: number) => (j < sec[0]! ? 0 : j < sec[0]! + sec[1]! ? 1 : 2);
  const select = Array.from({ length: 3 * half }, (_, q) => (axisOf(q % half) === Math.floor(q / half) ? 1 : 0));
  const freqs = o.mul(o.unsqueeze(o.cast(pos, "float"), [3]), g.const(invFreq, [half])); // [3,B,S,half]
  const f = o.reduceSum(o.mul(freqs, g.const(select, [3, 1, 1, half])), [0], 0); // [B,S,half]
  const emb = o.unsqueeze(o.concat([f, f], 2), [1]); // [B,1,S,Dh]
  const cos = o.cos(emb), sin = o.sin(emb);
  const rope = (t: string) => {
    const rot = o.concat([o.neg(o.slice(t, [half], [Dh], [3])), o.slice(t, [0], [half], [3])], 3);
    return o.add(o.mul(t, cos), o.mul(rot, sin));
  };

  // ---- causal bias [S,T]: key j visible to query i iff j <= P + i ----
  const sLen = o.slice(bsShape, [1], [2], [0]); // [1]
  const pLen = options.kvCache ? o.shape(g.input(io.pastKey(0), "float", ["batch", KVH, "past", Dh]), 2, 3) : g.ints([0]);
  const scalar = (t: string) => o.squeeze(t, [0]);
  const one = g.const([1], [], "int64");
  const qPos = o.range(scalar(pLen), scalar(o.add(pLen, sLen)), one); // [S]
  const kPos = o.range(g.const([0], [], "int64"), scalar(o.add(pLen, sLen)), one); // [T]
  const causal = o.where(o.greater(o.unsqueeze(kPos, [0]), o.unsqueeze(qPos, [1])), g.scalar(-Infinity), g.scalar(0)); // [S,T]
  // ---- sliding-window bias [S,T] (only for layers with a window W): the causal bias, and key j also hidden from query
  // position q = P + i when q - j >= W, i.e. visible iff j <= q and q - j < W (itself and the W - 1 keys before it).
  // That is transformers' rule: src/transformers/masking_utils.py (commit 00c4411c) sliding_window_causal_mask_function =
  // sliding_window_overlay (~l.88-97, `kv_idx > q_idx - sliding_window`) AND causal_mask_function (~l.72-76,
  // `kv_idx <= q_idx`), on cache positions (not on
  // position_ids, so not on M-RoPE's t/h/w rows). Older eager masks (AttentionMaskConverter) agree; the old flash-attention
  // path let W + 1 keys through (transformers issues #29623, #39408). The KV cache keeps every past key (present_* grows
  // with the whole context): memory is NOT bounded by the window, the mask only hides the keys that fell out of it.
  const windowBiases = new Map<number, string>();
  const attentionBias = (layer: number): string => {
    const W = arch.slidingWindows[layer];
    if (W === null || W === undefined) return causal;
    let bias = windowBiases.get(W);
    if (!bias) {
      const scope = g.scope;
      g.scope = "";
      const distance = o.sub(o.unsqueeze(qPos, [1]), o.unsqueeze(kPos, [0])); // int64 [S,T] = q - j
      bias = o.where(o.greater(distance, g.const([W - 1], [], "int64")), g.scalar(-Infinity), causal);
      g.scope = scope;
      windowBiases.set(W, bias);
    }
    return bias;
  };
  /** q, k, v projections fused into one Linear: rows [q; k; v] */
  const qkvWeight = (i: number, kind: "weight" | "bias") => {
    const parts = (["q", "k", "v"] as const).map((p) => weight(weights, shapes, paramNames.attn(i, p, kind)));
    const rows = parts.reduce((a, t) => a + t.shape[0]!, 0);
    return g.initializer(`l${i}.qkv_proj.${kind}`, catRows(parts.map((t) => t.data)), kind === "weight" ? [rows, H] : [rows]);
  };
  /** OLMoE: RMSNorm over the whole q and k projections (before the split into heads). qkv: [N,(NH+2KVH)*Dh] */
  const qkNormFull = (i: number, qkv: string) => {
    if (arch.qkNorm !== "full") return qkv;
    const [q, k, v] = o.split(qkv, [NH * Dh, KVH * Dh, KVH * Dh], 1) as [string, string, string];
    return o.concat([o.rmsNorm(q, w(qkNormNames.q(i)), c.rms_norm_eps), o.rmsNorm(k, w(qkNormNames.k(i)), c.rms_norm_eps), v], 1);
  };
  const headsShape = (n: number) => o.concat([bsShape, g.ints([n, Dh])], 0); // [B,S,n,Dh]
  const qScale = g.scalar(1 / Math.sqrt(Dh));

  for (let i = 0; i < L; i++) {
    g.scope = `l${i}/`;
    const bias = o.slice(routerBias, [i], [i + 1], [0]); // [1,E]
    const ban = o.slice(banMask, [i], [i + 1], [0]);
    const force = o.slice(forceMask, [i], [i + 1], [0]);

    // attention: x [N,H] → [N,H]
    const h = o.rmsNorm(x, w(paramNames.inputNorm(i)), c.rms_norm_eps);
    const qkv = o.linear(h, qkvWeight(i, "weight"), arch.attentionBias ? qkvWeight(i, "bias") : undefined); // [N,(NH+2KVH)*Dh]
    let heads = o.transpose(o.reshape(qkNormFull(i, qkv), headsShape(NH + 2 * KVH)), [0, 2, 1, 3]); // [B,NH+2KVH,S,Dh]
    if (arch.qkNorm === "per_head") {
      const [qh, kh, vh] = o.split(heads, [NH, KVH, KVH], 1) as [string, string, string];
      heads = o.concat([o.rmsNorm(qh, w(qkNormNames.q(i)), c.rms_norm_eps), o.rmsNorm(kh, w(qkNormNames.k(i)), c.rms_norm_eps), vh], 1);
    }
    const [qk, v0] = o.split(heads, [NH + KVH, KVH], 1) as [string, string];
    const [q, k0] = o.split(rope(qk), [NH, KVH], 1) as [string, string]; // [B,NH,S,Dh], [B,KVH,S,Dh]
    let k = k0, v = v0;
    if (options.kvCache) {
      const pk = i === 0 ? io.pastKey(0) : g.input(io.pastKey(i), "float", ["batch", KVH, "past", Dh]);
      const pv = g.input(io.pastValue(i), "float", ["batch", KVH, "past", Dh]);
      k = o.concat([pk, k], 2); // [B,KVH,T,Dh]
      v = o.concat([pv, v], 2);
      g.output(k, io.presentKey(i), "float", ["batch", KVH, "total", Dh]);
      g.output(v, io.presentValue(i), "float", ["batch", KVH, "total", Dh]);
    }
    const q5 = o.reshape(o.mul(q, qScale), g.ints([0, KVH, G, -1, Dh])); // [B,KVH,G,S,Dh]
    const kT = o.unsqueeze(o.transpose(k, [0, 1, 3, 2]), [2]); // [B,KVH,1,Dh,T]
    const probs = o.softmax(o.add(o.matmul(q5, kT), attentionBias(i)), -1); // [B,KVH,G,S,T]
    const att = o.matmul(probs, o.unsqueeze(v, [2])); // [B,KVH,G,S,Dh]
    const merged = o.reshape(o.transpose(o.reshape(att, g.ints([0, NH, -1, Dh])), [0, 2, 1, 3]), g.ints([-1, NH * Dh])); // [N,NH*Dh]
    x = o.add(x, o.linear(merged, w(paramNames.attn(i, "o", "weight"))));

    // MoE: x [N,H] → [N,H]
    const h2 = o.rmsNorm(x, w(paramNames.postNorm(i)), c.rms_norm_eps);
    const moe = moeLayer(o, c, weights, shapes, i, h2, bias, ban, force, topP, options.moe, precision);
    x = o.add(x, moe.y);
    if (options.trace) {
      g.output(moe.z, io.routerLogits(i), "float", ["tokens", E]);
      g.output(moe.routing.mask, io.mask(i), "float", ["tokens", E]);
      g.output(moe.routing.weights, io.weights(i), "float", ["tokens", E]);
      g.output(o.reshape(o.cast(moe.routing.k, "int64"), g.ints([-1])), io.k(i), "int64", ["tokens"]);
      if (moe.routing.dropped) g.output(moe.routing.dropped, io.dropped(i), "float", ["tokens", E]);
    }
  }
  g.scope = "";

  // ---- head ----
  const hn = o.rmsNorm(x, w(paramNames.finalNorm), c.rms_norm_eps); // [N,H]
  const bsh = o.concat([bsShape, g.ints([-1])], 0);
  g.output(o.reshape(hn, bsh), io.lastHidden, "float", ["batch", "seq", H]);
  const head = c.tie_word_embeddings ? embed! : w(paramNames.lmHead);
  g.output(o.reshape(o.linear(hn, head), bsh), io.logits, "float", ["batch", "seq", V]);
  return g.toBytes();
}

/**
 * Only the routing as a graph, for tests and tools (the N rows are one forward call, e.g. for the capacity):
 * inputs router_logits [N,E] (rounded to bf16 first under bf16: what the release's bf16 gate would give),
 * ban_mask/force_mask [1,E], top_p [1] (zeros = neutral);
 * outputs mask [N,E], weights [N,E], k int64 [N], and with token_drop dropped [N,E].
 */
export function buildRoutingGraph(config: MoeLlmConfig, precision: RoutingPrecision = "fp32"): Uint8Array {
  if (config.token_drop) dropPolicy(config);
  checkRoutingPrecision(config, precision);
  const { E } = moeDims(config);
  const g = new GraphBuilder("uni_moe_routing");
  const o = new Ops(g);
  const zIn = g.input("router_logits", "float", ["tokens", E]);
  const z = precision === "bf16" ? roundBf16(o, zIn) : zIn;
  const ban = g.input(io.ban, "float", [1, E]);
  const force = g.input(io.force, "float", [1, E]);
  const topP = g.input(io.topP, "float", [1]);
  const r = routing(o, config, z, ban, force, topP, precision);
  g.output(r.mask, "mask", "float", ["tokens", E]);
  g.output(r.weights, "weights", "float", ["tokens", E]);
  g.output(o.reshape(o.cast(r.k, "int64"), g.ints([-1])), "k", "int64", ["tokens"]);
  if (r.dropped) g.output(r.dropped, "dropped", "float", ["tokens", E]);
  return g.toBytes();
}

/**
 * One MoE feed-forward block (layer `layer`'s router and experts) as a graph, for benchmarks and tools
 * (with token_drop, the N rows are one sequence):
 * inputs hidden [N,H] (already normalised), router_bias/ban_mask/force_mask [1,E], top_p [1] (zeros = neutral);
 * outputs y [N,H] (without the residual) and, with `trace`, router_logits/mask/weights [N,E] and k int64 [N].
 */
export function buildMoeLayerGraph(config: MoeLlmConfig, weights: WeightSource, layer: number, options: Pick<MoeGraphOptions, "moe" | "trace" | "routingPrecision">): Uint8Array {
  checkConfig(config);
  const { H, E } = moeDims(config);
  const g = new GraphBuilder("uni_moe_layer");
  const o = new Ops(g);
  const x = g.input("hidden", "float", ["tokens", H]);
  const bias = g.input(io.routerBias, "float", [1, E]);
  const ban = g.input(io.ban, "float", [1, E]);
  const force = g.input(io.force, "float", [1, E]);
  const topP = g.input(io.topP, "float", [1]);
  const moe = moeLayer(o, config, weights, moeLlmParamShapes(config), layer, x, bias, ban, force, topP, options.moe, options.routingPrecision ?? "fp32");
  g.output(moe.y, "y", "float", ["tokens", H]);
  if (options.trace) {
    g.output(moe.z, "router_logits", "float", ["tokens", E]);
    g.output(moe.routing.mask, "mask", "float", ["tokens", E]);
    g.output(moe.routing.weights, "weights", "float", ["tokens", E]);
    g.output(o.reshape(o.cast(moe.routing.k, "int64"), g.ints([-1])), "k", "int64", ["tokens"]);
    if (moe.routing.dropped) g.output(moe.routing.dropped, "dropped", "float", ["tokens", E]);
  }
  return g.toBytes();
}
