import { type MoeLlmConfig, headDim, paramNames } from "./config";
import { architectureOf } from "./families/conventions";
import { GraphBuilder } from "./onnx/builder";
import { Ops } from "./onnx/ops";
import type { WeightSource } from "./weights";
import { attentionParamShapes, declarePastKey0, gqaAttention, mlaAttention, ropeTables, type AttentionInputs } from "./decoder/attention";
import { denseMlp, expertsOutput, ffnParamShapes } from "./decoder/ffn";
import { io, type MoeGraphOptions } from "./decoder/io";
import { familyRouting, type Routing, type RouterInputs } from "./decoder/routers";
import { NEG, norm, weight, type DecoderContext } from "./decoder/tensors";

/**
 * The MoE-LLM decoder as an ONNX graph: Uni-MoE-2.0 (Qwen2 attention with M-RoPE + dynamic-capacity MoE, PAPER.md
 * §2-3) and the imported families (families/table.ts), whose variants are self-contained functions in decoder/:
 * attention.ts (GQA with biases, q/k norm, sliding windows, sinks; DeepSeek's MLA; RoPE with YaRN/LongRoPE
 * frequencies), routers.ts (softmax top-k, DeepSeek's softmax and grouped sigmoid routers, sparsemixer) and ffn.ts
 * (SwiGLU / clamped-SwiGLU experts, shared experts, the dense MLP of router-less layers).
 *
 * Dimension letters: B batch, S new tokens, P past tokens, T = P + S, N = B*S tokens, H hidden,
 * NH query heads, KVH key/value heads, G = NH/KVH, Dh head dim, V vocab, L layers,
 * R routed experts, Z null experts, SH shared experts, D = R + Z dynamic columns, E = D + SH router columns.
 *
 * Inputs : input_ids int64 [B,S]  (or inputs_embeds float [B,S,H] with `embeds: true`)
 *          position_ids int64 [3,B,S] (t, h, w)
 *          past_key_{i}, past_value_{i} float [B,KVH,P,Dh]    (kvCache; MLA: [B,1,P,kv_lora_rank] and [B,1,P,rope dims],
 *                                                                 see attention.ts kvCacheDims)
 *          router_bias float [L,E], ban_mask float [L,E], force_mask float [L,E], top_p float [1],
 *          top_k float [1] (fixed-k routers only: <= 0 keeps the config's k)
 *            — required inputs (onnxruntime-node ignores feeds for overridable initializers); the neutral
 *            values are all zeros (top_p 0 → "use the config"); MoeLlmRunner feeds them when omitted.
 *            Rows of dense (router-less) layers are ignored.
 * Outputs: logits [B,S,V], last_hidden [B,S,H] (after the final norm),
 *          present_key_{i}, present_value_{i} [B,KVH,T,Dh]                  (kvCache)
 *          per MoE layer i (decoder index; dense layers have none)                                 (trace):
 *          router_logits_{i} [N,E], mask_{i} [N,E] (0/1), weights_{i} [N,E], k_{i} int64 [N],
 *          scores_{i} [N,R] (deepseek_sigmoid: the selection scores)
 *
 * Interventions (neutral value = no change; `router_logits_{i}` reports the logits after the bias):
 * - router_bias is added to the router logits before anything else (Top-P, GRIN, g all see it). DeepSeek-V3 is the
 *   exception: its bias joins e_score_correction_bias on the selection scores (router_logits stay raw).
 * - The fixed-k routers (decoder/routers.ts) apply ban, force and the top_k override in one rule shared by all kinds.
 * - ban_mask > 0.5 bans a column. A banned dynamic column is an -inf logit for the whole dynamic routing:
 *   it leaves the Top-P softmax (p is renormalised over the allowed columns), is never chosen, and k is
 *   capped at the number of allowed dynamic columns (all of them banned → k = 0, shared experts only).
 *   A banned shared column gets mask 0 (it leaves g and contributes nothing).
 * - force_mask > 0.5 on an allowed dynamic column: the chosen set is the union of the model's own choice
 *   and the forced columns, so k = k_model + (forced columns the model did not choose). The GRIN steps take
 *   the forced columns first (by logit), then continue by logit; a step's m is the chosen column's logit.
 *   Ban wins over force. Force on a shared column changes nothing (shared columns are always on).
 * - top_p > 0 overrides the config's P for this run; top_p <= 0 keeps the config (where P = 0 means the
 *   fixed mlp_dynamic_top_k). P >= 1 selects all allowed dynamic columns (no float-rounding cut-off).
 * Rounding edge: if the float32 cumulative sum never reaches P, the released code gets k = D + 1 and then
 * gives that token no dynamic expert at all; here k is capped at the allowed dynamic columns (D).
 * GRIN ratio: (m - z_j) / max(|z_j|, |m|) as in the released `allocation_expert` (clamp(min=|m|)); a 0/0
 * (both logits 0) is NaN, which does not exceed 2·jitter, so that column is kept, exactly as in torch.
 * Capacity token-drop (`token_drop`, PAPER.md §2 item 8): see `capacityDrop` below (off by default; never in decode).
 * Attention is causal, within a sliding window in the layers that have one (config sliding_window_per_layer, see
 * "sliding-window bias" below). Not done: padding masks.
 */
export { io, type MoeGraphOptions } from "./decoder/io";

/** Sizes derived from a config. */
export function moeDims(c: MoeLlmConfig) {
  const R = c.mlp_dynamic_expert_num, Z = c.mlp_dynamic_null_expert_num, SH = c.mlp_fixed_expert_num;
  const NH = c.num_attention_heads, KVH = c.num_key_value_heads;
  return { H: c.hidden_size, L: c.num_hidden_layers, V: c.vocab_size, NH, KVH, G: NH / KVH, Dh: headDim(c), R, Z, SH, D: R + Z, E: R + Z + SH };
}

/** Every parameter the decoder reads, with its PyTorch shape. */
export function moeLlmParamShapes(c: MoeLlmConfig): Map<string, number[]> {
  const { H, L, V } = moeDims(c);
  const arch = architectureOf(c);
  const m = new Map<string, number[]>();
  const normShape = (name: string) => {
    m.set(name, [H]);
    if (arch.norm === "layer") m.set(paramNames.normBias(name), [H]);
  };
  m.set(paramNames.embed, [V, H]);
  for (let i = 0; i < L; i++) {
    normShape(paramNames.inputNorm(i));
    normShape(paramNames.postNorm(i));
    attentionParamShapes(c, i, m);
    ffnParamShapes(c, i, m);
  }
  normShape(paramNames.finalNorm);
  if (!c.tie_word_embeddings) m.set(paramNames.lmHead, [V, H]);
  if (arch.lmHeadBias) m.set(paramNames.lmHeadBias, [V]);
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
  if ((c.mlp_dynamic_top_p === 0 || arch.routing !== "uni_moe_top_p") && c.mlp_dynamic_top_k > D) throw new Error(`mlp_dynamic_top_k ${c.mlp_dynamic_top_k} exceeds the ${D} dynamic columns`);
  if (arch.routing === "sparsemixer" && c.mlp_dynamic_top_k !== 2) throw new Error(`sparsemixer routing is defined for top-2 only (transformers' sparsemixer raises for top_k ${c.mlp_dynamic_top_k})`);
  if (arch.routing.startsWith("deepseek")) {
    const { nGroup, topkGroup, topkMethod } = arch.router;
    const grouped = arch.routing === "deepseek_sigmoid" || topkMethod === "group_limited_greedy";
    if (grouped && (D % nGroup !== 0 || topkGroup > nGroup || (arch.routing === "deepseek_sigmoid" && D / nGroup < 2)))
      throw new Error(`n_group ${nGroup} / topk_group ${topkGroup} do not fit ${D} routed experts (groups of equal size${arch.routing === "deepseek_sigmoid" ? ", at least 2 each" : ""}, topk_group <= n_group)`);
    if (c.mlp_fixed_expert_num > 0 && arch.sharedExpertGate) throw new Error("DeepSeek's shared experts have no gate");
  }
  if (arch.ropeInterleave && arch.attention !== "mla") throw new Error("rope_interleave is implemented for MLA attention only");
  if (arch.denseLayers.some(Boolean) && c.token_drop) throw new Error("token_drop with dense layers is not supported");
}

/**
 * Capacity-based token dropping (PAPER.md §2 item 8), as in the released Uni-MoE GRIN block
 * (`GRINMoESparseMoeBlock.forward`, "token drop" section, published with UniMoE-Audio / Uni-MoE-2.0; the released
 * configs set token_drop false, drop_policy "probs", capacity_factor 6, min_capacity 8). Built only when
 * `config.token_drop` is true; with it false the graph is exactly the graph without this feature.
 *
 * When: only while processing a prefill / full sequence, never while decoding. The KV-cache graph serves both, so the
 *   rule is data-dependent: a forward call is a *decode step* iff it has exactly one new token per row (S = 1) AND a
 *   non-empty past (P > 0). Every other call drops: prefill (P = 0, any S, a one-token prompt included), a chunked
 *   prefill or multi-token step with a past (S > 1), and every call of a graph without a KV cache (P = 0; it always
 *   recomputes the full sequence). The routing-only and single-layer graphs treat their N tokens as one sequence.
 *   The capacity group is the whole forward call: N = B*S tokens, flattened batch-major (n = b*S + s).
 *   (The released code drops on every call, decode included; with the default min_capacity 8 a decode step with
 *   B <= 8 rows can never overflow there, so this only differs for tiny min_capacity or large decode batches.)
 * Capacity: C = max(min_capacity, ceil(f32(f32(N / D) * capacity_factor))), D = routed + null columns (the released
 *   `_capacity(B*S, mlp_dynamic_expert_num + mlp_dynamic_null_expert_num, ...)`, float32 like torch).
 * Which selections survive, per dynamic column (routed AND null: the null columns have a capacity too, since the
 *   released code caps every dynamic column; shared columns are never capped), chosen by `drop_policy`
 *   (config.json field, absent → "probs", the released default):
 *   - "probs": the C chosen tokens with the largest router logit z[n, e] for that column (the raw logit after
 *     router_bias, as the released code ranks `dynamic_router_logits`, not probabilities); ties → lower token index
 *     (ONNX TopK; torch.topk leaves ties unspecified). C is clamped to N, as the released code does.
 *   - "position": the first C chosen tokens in token order (cumsum(mask over tokens) - 1 < C), i.e. batch row 0's
 *     tokens before row 1's. (The released "position" branch also runs the cumsum over the shared columns, which
 *     would strip the shared experts from tokens past C; we keep shared experts always on, as PAPER.md §2.)
 *   Capacity applies after the interventions: forced selections compete for capacity like any other; banned columns
 *   are never chosen, so they use none.
 * After a drop (as the released code): the dropped (token, column) pairs leave the mask; the routing weights are
 *   re-masked and renormalised over the surviving dynamic columns, rw' = rw·keep / (Σ rw·keep + 1e-6) (applied to
 *   every token of a dropping call, as the released code does, so a token with nothing dropped moves by ~1e-6);
 *   g is recomputed from the reduced mask, so the weights still sum to 1 (to the shared experts alone when all of a
 *   token's dynamic selections are dropped; its dynamic share is then carried by the residual only).
 * Trace: a dropped selection shows as not selected (mask 0, weight 0) and k_{i} counts the surviving dynamic
 *   selections (k = Σ mask over the dynamic columns; the released code keeps reporting the pre-drop Top-P k).
 *   The pre-drop k is not in the trace (no `dropped_{i}` output); tests/reference/moe-llm.ts reports per-token drops.
 */
export type DropPolicy = "probs" | "position";

/** The `drop_policy` of a config (absent → "probs"); throws on an unknown value. */
export function dropPolicy(c: MoeLlmConfig): DropPolicy {
  const p = (c as Record<string, unknown>).drop_policy ?? "probs";
  if (p !== "probs" && p !== "position") throw new Error(`drop_policy "${String(p)}" is not "probs" or "position"`);
  return p;
}

/**
 * Capacity keep-mask (see above). chosen: bool [N,D]; zD: float [N,D] dynamic logits (after the bias).
 * Returns bool [N,D] = chosen selections that fit in their column's capacity.
 */
function capacityKeep(o: Ops, c: MoeLlmConfig, chosen: string, zD: string): string {
  const g = o.g;
  const { D } = moeDims(c);
  const nTok = o.shape(zD, 0, 1); // int64 [1] = N
  const raw = g.op("Ceil", [o.mul(o.div(o.cast(nTok, "float"), g.scalar(D)), g.scalar(c.capacity_factor))]); // [1]
  const cap = o.cast(o.max(raw, g.scalar(c.min_capacity)), "int64"); // int64 [1] = C
  if (dropPolicy(c) === "position") {
    const loc = o.sub(o.cumsum(o.cast(chosen, "float"), 0), g.scalar(1)); // [N,D] place in the column's queue
    return o.and(chosen, o.less(loc, o.cast(cap, "float")));
  }
  // "probs": per column, the min(C, N) largest logits among the chosen tokens (others at NEG never qualify)
  const ranked = o.where(chosen, zD, g.scalar(NEG));
  const [, top] = o.topk(ranked, o.min(cap, nTok), 0); // [min(C,N), D] token indices
  const ones = o.expand(g.scalar(1), o.shape(top));
  const inCap = o.scatterElements(o.expand(g.scalar(0), o.shape(zD)), top, ones, 0); // [N,D] 1 = within capacity
  return o.and(chosen, o.greater(inCap, g.scalar(0.5)));
}

/**
 * PAPER.md §2 dynamic-capacity routing on logits z: [N,E] (bias already added).
 * ban, force: float [1,E] rows; topP: float [1] effective P (<= 0 → fixed top-k).
 * dropActive: bool [1], whether this call drops over capacity (only used when config.token_drop; see capacityKeep).
 */
function routing(o: Ops, c: MoeLlmConfig, z: string, ban: string, force: string, topP: string, dropActive?: string): Routing {
  const g = o.g;
  const { D, E } = moeDims(c);
  const zD = o.slice(z, [0], [D], [1]); // [N,D]
  const allowed = o.not(o.greater(o.slice(ban, [0], [D], [1]), g.scalar(0.5))); // [1,D]
  const forced = o.and(o.greater(o.slice(force, [0], [D], [1]), g.scalar(0.5)), allowed); // [1,D]
  const neg = g.scalar(NEG);
  const zA = o.where(allowed, zD, neg); // [N,D], banned → NEG
  const nAllowed = o.reduceSum(o.cast(allowed, "float"), [1]); // [1,1]

  // 1-2. k from Top-P over p = softmax(z[0:D]) (or fixed top-k when P = 0)
  const p = o.softmax(zA, 1);
  const [sorted] = o.topk(p, g.ints([D]), 1);
  const cum = o.cumsum(sorted, 1);
  const notReached = o.cast(o.not(o.greaterOrEqual(cum, topP)), "float");
  let kTopP = o.add(o.reduceSum(notReached, [1]), g.scalar(1)); // [N,1]
  kTopP = o.where(o.greaterOrEqual(topP, g.scalar(1)), g.scalar(D), kTopP);
  const kBase = o.where(o.greater(topP, g.scalar(0)), kTopP, g.scalar(c.mlp_dynamic_top_k)); // [N,1]

  // The model's own choice is the kBase largest allowed logits (ties: lower index, as torch's argmax), so
  // rank[j] = position of column j in the descending order; TopK sorts ties to the lower index.
  const [, idx] = o.topk(zA, g.ints([D]), 1); // [N,D] columns in descending logit order
  const pos = o.expand(g.const(Array.from({ length: D }, (_, s) => s), [1, D]), o.shape(idx)); // [N,D] 0..D-1
  const zeros = o.expand(g.scalar(0), o.shape(idx));
  const rank = o.scatterElements(zeros, idx, pos, 1); // [N,D]
  // forced columns the model did not choose are added to k
  const forcedF = o.cast(forced, "float"); // [1,D]
  const extra = o.reduceSum(o.mul(forcedF, o.cast(o.greaterOrEqual(rank, kBase), "float")), [1]); // [N,1]
  const k = o.min(o.add(kBase, extra), nAllowed); // [N,1]

  // 3. repeated argmax with the GRIN near-tie rule. The argmax sequence is the order "forced first, then by
  // logit, ties to the lower index" (banned last): step s takes the column whose order is s. All steps
  // s < max k are evaluated at once as a batch [N, step, column]; steps >= a token's k do nothing.
  const fs = o.gatherElements(o.expand(forcedF, o.shape(idx)), idx, 1); // [N,D] forced flags in sorted order
  const before = o.sub(o.cumsum(fs, 1), fs); // forced columns ahead in the sorted order
  const nForced = o.reduceSum(forcedF, [1]); // [1,1]
  const orderSorted = o.where(o.greater(fs, g.scalar(0.5)), before, o.add(nForced, o.sub(pos, before)));
  const order = o.scatterElements(zeros, idx, orderSorted, 1); // [N,D] step at which each column is taken
  const nSteps = o.max(o.reduceMax(k, [0, 1], 0), g.scalar(1)); // scalar: max k over tokens (>= 1)
  const steps = o.reshape(o.range(g.scalar(0), nSteps, g.scalar(1)), g.ints([1, -1, 1])); // [1,S,1]
  const orderJ = o.unsqueeze(order, [1]); // [N,1,D]
  const zj = o.unsqueeze(zD, [1]); // [N,1,D]
  const pick = o.equal(orderJ, steps); // [N,S,D] one-hot: column e taken at step s
  const m = o.reduceMax(o.where(pick, zj, neg), [2]); // [N,S,1] logit of e
  const avail = o.and(o.unsqueeze(allowed, [1]), o.greaterOrEqual(orderJ, steps)); // [N,S,D] not yet taken
  const ratio = o.div(o.sub(m, zj), o.max(o.abs(zj), o.abs(m))); // NaN (0/0) counts as kept, as in torch
  const kept = o.and(avail, o.not(o.greater(ratio, g.scalar(2 * c.router_jitter_noise))));
  const gates = o.softmax(o.where(kept, zj, neg), 2); // [N,S,D]
  const multStep = o.reduceSum(o.mul(gates, o.cast(pick, "float")), [2]); // [N,S,1] softmax at e
  const active = o.less(steps, o.unsqueeze(k, [2])); // [N,S,1]
  const mult = o.reduceSum(o.where(o.and(pick, active), multStep, g.scalar(0)), [1], 0); // [N,D]
  let chosen = o.and(o.less(order, k), allowed); // [N,D]

  // 4. routing weights over the chosen dynamic columns
  let rw = o.div(mult, o.add(o.reduceSum(mult, [1]), g.scalar(1e-6))); // [N,D]
  let kOut = k;
  // 4b. capacity token-drop (config.token_drop; only when dropActive): drop, re-mask and renormalise rw
  if (c.token_drop) {
    const on = dropActive ?? g.const([1], [1], "bool");
    chosen = o.or(capacityKeep(o, c, chosen, zD), o.and(chosen, o.not(on))); // (ORT has no bool Where)
    const kept = o.mul(rw, o.cast(chosen, "float"));
    rw = o.where(on, o.div(kept, o.add(o.reduceSum(kept, [1]), g.scalar(1e-6))), rw);
    kOut = o.reduceSum(o.cast(chosen, "float"), [1]); // [N,1] surviving dynamic selections (= k without drops)
  }
  // 5. mask = chosen dynamic + allowed shared
  const chosenF = o.cast(chosen, "float");
  const sharedOn = o.cast(o.not(o.greater(o.slice(ban, [D], [E], [1]), g.scalar(0.5))), "float"); // [1,SH]
  const sharedMask = o.expand(sharedOn, o.concat([o.shape(z, 0, 1), g.ints([E - D])], 0)); // [N,SH]
  const mask = o.concat([chosenF, sharedMask], 1); // [N,E]
  // 6. g = softmax(z, -inf where mask = 0); dynamic weight = rw * Σ g(chosen dynamic); shared weight = g
  const gw = o.mul(o.softmax(o.where(o.greater(mask, g.scalar(0.5)), z, neg), 1), mask);
  const gDyn = o.reduceSum(o.slice(gw, [0], [D], [1]), [1]); // [N,1]
  const weights = o.concat([o.mul(rw, gDyn), o.slice(gw, [D], [E], [1])], 1); // [N,E]
  return { chosen, mask, weights, k: kOut };
}

/** The per-layer routing inputs: bias/ban/force [1,E] rows, top_p [1] (Uni-MoE), top_k [1] (fixed-k routers). */
interface LayerRouting extends RouterInputs {
  topP: string;
}

/** The MoE feed-forward of one layer: x [N,H] → [N,H] (+ routing and the reported router logits for the trace). */
function moeLayer(o: Ops, c: MoeLlmConfig, ws: WeightSource, shapes: Map<string, number[]>, i: number, x: string, r: LayerRouting, mode: "sparse" | "dense", dropActive?: string) {
  const g = o.g;
  const arch = architectureOf(c);
  const { E } = moeDims(c);
  const init = (name: string, dims?: number[]) => {
    const t = weight(ws, shapes, name);
    return g.initializer(name, t.data, dims ?? t.shape);
  };
  let z = o.linear(x, init(paramNames.router(i)), arch.router.bias ? init(paramNames.routerBias(i)) : undefined); // [N, router rows]
  const rows = shapes.get(paramNames.router(i))![0]!;
  // DeepSeek's shared experts have no router row: their trace column reads 0
  if (rows < E) z = o.concat([z, o.expand(g.scalar(0), o.concat([o.shape(z, 0, 1), g.ints([E - rows])], 0))], 1);
  let routed: Routing;
  let reported: string;
  if (arch.routing === "uni_moe_top_p") {
    reported = o.add(z, r.bias);
    routed = routing(o, c, reported, r.ban, r.force, r.topP, dropActive);
  } else {
    const correction = arch.routing === "deepseek_sigmoid" ? init(paramNames.scoreCorrection(i), [1, c.mlp_dynamic_expert_num]) : undefined;
    routed = familyRouting(o, c, z, r, correction);
    reported = routed.logits!;
  }
  return { y: expertsOutput(o, c, ws, shapes, i, x, routed, mode), routing: routed, z: reported };
}

/** Builds the decoder graph; returns a serialized ONNX ModelProto. */
/** `builder` lets a caller store the initializers elsewhere (models/import writes them as ONNX external data). */
export function buildMoeLlmGraph(config: MoeLlmConfig, weights: WeightSource, options: MoeGraphOptions, builder?: GraphBuilder): Uint8Array {
  checkConfig(config);
  const c = config;
  const { H, L, V, E, D } = moeDims(c);
  const arch = architectureOf(c);
  const shapes = moeLlmParamShapes(c);
  const g = builder ?? new GraphBuilder("uni_moe_decoder");
  const o = new Ops(g);
  const w = (name: string) => {
    const t = weight(weights, shapes, name);
    return g.initializer(name, t.data, t.shape);
  };
  const ctx: DecoderContext = { o, g, c, arch, shapes, ws: weights, w };

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
  const topPIn = g.input(io.topP, "float", [1]);
  const topP = o.where(o.greater(topPIn, g.scalar(0)), topPIn, g.scalar(c.mlp_dynamic_top_p)); // [1]
  const topK = arch.routing === "uni_moe_top_p" ? "" : g.input(io.topK, "float", [1]);

  // ---- causal bias [S,T]: key j visible to query i iff j <= P + i ----
  const sLen = o.slice(bsShape, [1], [2], [0]); // [1]
  const pLen = options.kvCache ? o.shape(declarePastKey0(ctx), 2, 3) : g.ints([0]);
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
  const layerMask = (layer: number): string => {
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
  // capacity token-drop applies unless this call is a decode step (S = 1 with a non-empty past); see capacityKeep
  const dropActive = c.token_drop ? o.or(o.greater(sLen, g.ints([1])), o.equal(pLen, g.ints([0]))) : undefined; // bool [1]
  const attention: AttentionInputs = { bsShape, kvCache: options.kvCache, rope: ropeTables(ctx, pos), mask: layerMask };

  for (let i = 0; i < L; i++) {
    g.scope = `l${i}/`;
    const h = norm(ctx, x, paramNames.inputNorm(i));
    x = o.add(x, arch.attention === "mla" ? mlaAttention(ctx, attention, i, h) : gqaAttention(ctx, attention, i, h));
    const h2 = norm(ctx, x, paramNames.postNorm(i));
    if (arch.denseLayers[i]) {
      x = o.add(x, denseMlp(ctx, i, h2));
      continue;
    }
    const row = (t: string) => o.slice(t, [i], [i + 1], [0]); // [1,E]
    const moe = moeLayer(o, c, weights, shapes, i, h2, { bias: row(routerBias), ban: row(banMask), force: row(forceMask), topP, topK }, options.moe, dropActive);
    x = o.add(x, moe.y);
    if (options.trace) {
      g.output(moe.z, io.routerLogits(i), "float", ["tokens", E]);
      g.output(moe.routing.mask, io.mask(i), "float", ["tokens", E]);
      g.output(moe.routing.weights, io.weights(i), "float", ["tokens", E]);
      g.output(o.reshape(o.cast(moe.routing.k, "int64"), g.ints([-1])), io.k(i), "int64", ["tokens"]);
      if (moe.routing.scores) g.output(moe.routing.scores, io.scores(i), "float", ["tokens", D]);
    }
  }
  g.scope = "";

  // ---- head ----
  const hn = norm(ctx, x, paramNames.finalNorm); // [N,H]
  const bsh = o.concat([bsShape, g.ints([-1])], 0);
  g.output(o.reshape(hn, bsh), io.lastHidden, "float", ["batch", "seq", H]);
  const head = c.tie_word_embeddings ? embed! : w(paramNames.lmHead);
  g.output(o.reshape(o.linear(hn, head, arch.lmHeadBias ? w(paramNames.lmHeadBias) : undefined), bsh), io.logits, "float", ["batch", "seq", V]);
  return g.toBytes();
}

/**
 * Only the routing as a graph, for tests and tools (with token_drop, the N rows are one sequence):
 * inputs router_logits [N,E], ban_mask/force_mask [1,E], top_p [1] (zeros = neutral); fixed-k routers also take
 * top_k [1] (0 = the config's k) and DeepSeek-V3's e_score_correction_bias [1,R];
 * outputs mask [N,E], weights [N,E], k int64 [N] (DeepSeek-V3: and scores [N,R]).
 */
export function buildRoutingGraph(config: MoeLlmConfig): Uint8Array {
  if (config.token_drop) dropPolicy(config);
  const { E } = moeDims(config);
  const g = new GraphBuilder("uni_moe_routing");
  const o = new Ops(g);
  const z = g.input("router_logits", "float", ["tokens", E]);
  const ban = g.input(io.ban, "float", [1, E]);
  const force = g.input(io.force, "float", [1, E]);
  const topPIn = g.input(io.topP, "float", [1]);
  const topP = o.where(o.greater(topPIn, g.scalar(0)), topPIn, g.scalar(config.mlp_dynamic_top_p));
  const arch = architectureOf(config);
  let r: Routing;
  if (arch.routing === "uni_moe_top_p") r = routing(o, config, z, ban, force, topP);
  else {
    const topK = g.input(io.topK, "float", [1]);
    const correction = arch.routing === "deepseek_sigmoid" ? g.input("e_score_correction_bias", "float", [1, config.mlp_dynamic_expert_num]) : undefined;
    r = familyRouting(o, config, z, { bias: g.const(Array<number>(E).fill(0), [1, E]), ban, force, topK }, correction);
    if (r.scores) g.output(r.scores, "scores", "float", ["tokens", config.mlp_dynamic_expert_num]);
  }
  g.output(r.mask, "mask", "float", ["tokens", E]);
  g.output(r.weights, "weights", "float", ["tokens", E]);
  g.output(o.reshape(o.cast(r.k, "int64"), g.ints([-1])), "k", "int64", ["tokens"]);
  return g.toBytes();
}

/**
 * One MoE feed-forward block (layer `layer`'s router and experts) as a graph, for benchmarks and tools
 * (with token_drop, the N rows are one sequence):
 * inputs hidden [N,H] (already normalised), router_bias/ban_mask/force_mask [1,E], top_p [1] (top_k [1] for fixed-k
 * routers; zeros = neutral);
 * outputs y [N,H] (without the residual) and, with `trace`, router_logits/mask/weights [N,E] and k int64 [N].
 */
export function buildMoeLayerGraph(config: MoeLlmConfig, weights: WeightSource, layer: number, options: Pick<MoeGraphOptions, "moe" | "trace">): Uint8Array {
  checkConfig(config);
  const { H, E } = moeDims(config);
  const g = new GraphBuilder("uni_moe_layer");
  const o = new Ops(g);
  const x = g.input("hidden", "float", ["tokens", H]);
  const bias = g.input(io.routerBias, "float", [1, E]);
  const ban = g.input(io.ban, "float", [1, E]);
  const force = g.input(io.force, "float", [1, E]);
  const topPIn = g.input(io.topP, "float", [1]);
  const topP = o.where(o.greater(topPIn, g.scalar(0)), topPIn, g.scalar(config.mlp_dynamic_top_p));
  const topK = architectureOf(config).routing === "uni_moe_top_p" ? "" : g.input(io.topK, "float", [1]);
  const moe = moeLayer(o, config, weights, moeLlmParamShapes(config), layer, x, { bias, ban, force, topP, topK }, options.moe);
  g.output(moe.y, "y", "float", ["tokens", H]);
  if (options.trace) {
    g.output(moe.z, "router_logits", "float", ["tokens", E]);
    g.output(moe.routing.mask, "mask", "float", ["tokens", E]);
    g.output(moe.routing.weights, "weights", "float", ["tokens", E]);
    g.output(o.reshape(o.cast(moe.routing.k, "int64"), g.ints([-1])), "k", "int64", ["tokens"]);
  }
  return g.toBytes();
}
