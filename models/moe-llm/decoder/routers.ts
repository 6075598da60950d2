import type { MoeLlmConfig } from "../config";
import { architectureOf } from "../../families/conventions";
import type { Ops } from "../../onnx/ops";
import { NEG } from "./tensors";

/**
 * The fixed-k router kinds, each one self-contained function from router logits z [N,E] (E = R routed columns, plus
 * the shared columns) to the routing the trace records. Uni-MoE's dynamic-capacity routing is grinRouting in
 * grin-routing.ts. Interventions, the same in every kind (moe-llm-graph.ts documents them): ban = the column is never
 * selected; force = the chosen set is the forced columns first, then the model's order; k = the model's k (or the
 * top_k override) + forced columns outside the model's own top-k, capped at the allowed columns. Ties in an order go
 * to the lower column index (ONNX TopK; torch.topk leaves them unspecified).
 */

/** Routing tensors of one layer (all [N, ...]). */
export interface Routing {
  /** bool [N,D] chosen dynamic columns */
  chosen: string;
  /** float [N,E] 0/1 */
  mask: string;
  /** float [N,E] final weights */
  weights: string;
  /** float [N,1] dynamic k */
  k: string;
  /** DeepSeek-V3: float [N,R] the scores experts are selected on (sigmoid + correction bias + the bias intervention). */
  scores?: string;
  /** [N,E] the router logits the trace reports: after the bias intervention (DeepSeek-V3: raw). */
  logits?: string;
  /** Uni-MoE with token_drop: float [N,E] 1 where a selection was dropped over capacity (grin-routing.ts). */
  dropped?: string;
}

/** The per-layer intervention rows: ban, force float [1,E]; user bias [1,E]; topK float [1]: the k in force, exactly (MoeLlmRunner feeds resolveTopK: the override, else the model's k). */
export interface RouterInputs {
  bias: string;
  ban: string;
  force: string;
  topK: string;
  /** Fixed shapes only (no step count read from the data): the fused graph's routing. */
  staticShapes?: boolean;
}

interface Selection {
  chosen: string;
  k: string;
  /** [N,D] the step at which each column is taken (forced first, then by score) */
  order: string;
  allowed: string;
}

/**
 * The chosen set for a score matrix [N,D] (higher = preferred; banned columns must already be NEG): forced columns
 * first, then by score; k = kBase + forced columns outside the top-kBase, capped at the allowed columns.
 */
function selectByOrder(o: Ops, score: string, ban: string, force: string, kBase: string, D: number): Selection {
  const g = o.g;
  const allowed = o.not(o.greater(o.slice(ban, [0], [D], [1]), g.scalar(0.5))); // [1,D]
  const forcedF = o.cast(o.and(o.greater(o.slice(force, [0], [D], [1]), g.scalar(0.5)), allowed), "float"); // [1,D]
  const nAllowed = o.reduceSum(o.cast(allowed, "float"), [1]); // [1,1]
  const [, idx] = o.topk(score, g.ints([D]), 1); // [N,D] columns in descending order
  const pos = o.expand(g.const(Array.from({ length: D }, (_, s) => s), [1, D]), o.shape(idx)); // [N,D]
  const zeros = o.expand(g.scalar(0), o.shape(idx));
  const rank = o.scatterElements(zeros, idx, pos, 1); // [N,D] place of each column
  const extra = o.reduceSum(o.mul(forcedF, o.cast(o.greaterOrEqual(rank, kBase), "float")), [1]); // [N,1]
  const k = o.min(o.add(kBase, extra), nAllowed); // [N,1]
  const fs = o.gatherElements(o.expand(forcedF, o.shape(idx)), idx, 1); // [N,D] forced flags in sorted order
  const before = o.sub(o.cumsum(fs, 1), fs);
  const orderSorted = o.where(o.greater(fs, g.scalar(0.5)), before, o.add(o.reduceSum(forcedF, [1]), o.sub(pos, before)));
  const order = o.scatterElements(zeros, idx, orderSorted, 1); // [N,D]
  return { chosen: o.and(o.less(order, k), allowed), k, order, allowed };
}

/**
 * The steps [1,S,1] (0, 1, ...) of a repeated-argmax router: up to the largest k of the call, or all D steps with
 * `fixed` (the same result: steps at or past a token's k contribute exact zeros), so the shape does not depend on data.
 */
export function stepsUpTo(o: Ops, k: string, D: number, fixed: boolean): string {
  const g = o.g;
  if (fixed) return g.const(Array.from({ length: D }, (_, s) => s), [1, D, 1]);
  const nSteps = o.max(o.reduceMax(k, [0, 1], 0), g.scalar(1)); // scalar >= 1
  return o.reshape(o.range(g.scalar(0), nSteps, g.scalar(1)), g.ints([1, -1, 1]));
}

/** The shared columns after the routed ones: always on unless banned, weight 1 or (Qwen2-MoE) sigmoid(gate logit). */
function withShared(o: Ops, c: MoeLlmConfig, z: string, ban: string, chosen: string, wD: string, k: string): Routing {
  const g = o.g;
  const D = c.mlp_dynamic_expert_num, E = D + c.mlp_fixed_expert_num;
  const chosenF = o.cast(chosen, "float");
  if (E === D) return { chosen, mask: chosenF, weights: wD, k, logits: z };
  const sharedOn = o.cast(o.not(o.greater(o.slice(ban, [D], [E], [1]), g.scalar(0.5))), "float"); // [1,SH]
  const sharedMask = o.expand(sharedOn, o.concat([o.shape(z, 0, 1), g.ints([E - D])], 0)); // [N,SH]
  const wS = architectureOf(c).sharedExpertGate ? o.mul(o.sigmoid(o.slice(z, [D], [E], [1])), sharedOn) : sharedMask;
  return { chosen, mask: o.concat([chosenF, sharedMask], 1), weights: o.concat([wD, wS], 1), k, logits: z };
}

/**
 * Top-k of the Qwen2-MoE / Qwen3-MoE / OLMoE / Mixtral / gpt-oss routers on z (bias intervention added): p = softmax
 * over the allowed routed logits; weights = p at the chosen columns, divided by their sum unless softmax_topk
 * (topk_softmax, Mixtral's and gpt-oss's softmax over the chosen logits, is the same renormalised p).
 */
export function topkRouting(o: Ops, c: MoeLlmConfig, z: string, r: RouterInputs): Routing {
  const g = o.g;
  const D = c.mlp_dynamic_expert_num;
  const zb = o.add(z, r.bias);
  const allowed = o.not(o.greater(o.slice(r.ban, [0], [D], [1]), g.scalar(0.5)));
  const zA = o.where(allowed, o.slice(zb, [0], [D], [1]), g.scalar(NEG)); // [N,D]
  const sel = selectByOrder(o, zA, r.ban, r.force, r.topK, D);
  const picked = o.mul(o.softmax(zA, 1), o.cast(sel.chosen, "float")); // [N,D]
  // (every routed column banned: nothing picked, weights stay 0 rather than 0/0)
  const wD = architectureOf(c).routing === "softmax_topk" ? picked : o.div(picked, o.max(o.reduceSum(picked, [1]), g.scalar(1e-30)));
  return withShared(o, c, zb, r.ban, sel.chosen, wD, sel.k);
}

/**
 * Experts of the groups a token may use: [N,R] 1/0 for the `topk_group` best groups by `groupScore` of the
 * [N, n_group, R / n_group] scores (DeepseekV2Moe group_limited_greedy: max; DeepseekV3TopkRouter: sum of the top 2).
 */
function groupMask(o: Ops, c: MoeLlmConfig, score: string, by: "max" | "top2"): string {
  const g = o.g;
  const { nGroup, topkGroup } = architectureOf(c).router;
  const R = c.mlp_dynamic_expert_num, per = R / nGroup;
  const grouped = o.reshape(score, g.ints([-1, nGroup, per])); // [N,G,per]
  const gs = by === "max" ? o.reduceMax(grouped, [2], 0) : o.reduceSum(o.topk(grouped, g.ints([2]), 2)[0], [2], 0); // [N,G]
  const [, idx] = o.topk(gs, g.ints([topkGroup]), 1); // [N,tg]
  const kept = o.scatterElements(o.expand(g.scalar(0), o.shape(gs)), idx, o.expand(g.scalar(1), o.shape(idx)), 1); // [N,G]
  return o.reshape(o.mul(o.unsqueeze(kept, [2]), g.const(Array<number>(per).fill(1), [1, 1, per])), g.ints([-1, R])); // [N,R]
}

/**
 * DeepSeek-V2 (DeepseekV2Moe.route_tokens_to_experts, modeling_deepseek_v2.py): p = softmax(z) over the allowed routed
 * logits (bias intervention added); `greedy`: top-k of p; `group_limited_greedy`: p outside the topk_group groups
 * with the largest max p set to 0 (masked_fill 0.0), then top-k. Weights = p × routed_scaling_factor (no
 * renormalisation); the shared experts (mlp.shared_experts, added without a gate) have weight 1.
 */
export function deepseekSoftmaxRouting(o: Ops, c: MoeLlmConfig, z: string, r: RouterInputs): Routing {
  const g = o.g;
  const D = c.mlp_dynamic_expert_num;
  const a = architectureOf(c);
  const zb = o.add(z, r.bias);
  const allowed = o.not(o.greater(o.slice(r.ban, [0], [D], [1]), g.scalar(0.5)));
  const p = o.softmax(o.where(allowed, o.slice(zb, [0], [D], [1]), g.scalar(NEG)), 1); // [N,D]
  const masked = a.router.topkMethod === "group_limited_greedy" ? o.mul(p, groupMask(o, c, p, "max")) : p;
  const sel = selectByOrder(o, o.where(allowed, masked, g.scalar(NEG)), r.ban, r.force, r.topK, D);
  const wD = o.mul(o.mul(p, o.cast(sel.chosen, "float")), g.scalar(a.router.routedScaling));
  return withShared(o, c, zb, r.ban, sel.chosen, wD, sel.k);
}

/**
 * DeepSeek-V3 (DeepseekV3TopkRouter, modeling_deepseek_v3.py): s = sigmoid(z) (z: the raw logits; the bias
 * intervention joins e_score_correction_bias, on the selection only); selection score = s + correction bias + bias;
 * group score = sum of its two largest; the topk_group best groups keep their scores, the others become 0
 * (masked_fill 0.0); top-k of that. Weights = s (unbiased) at the chosen experts, / (their sum + 1e-20) when
 * norm_topk_prob, × routed_scaling_factor; the shared experts have weight 1.
 * correction: float [1,R] (the layer's e_score_correction_bias).
 */
export function deepseekSigmoidRouting(o: Ops, c: MoeLlmConfig, z: string, correction: string, r: RouterInputs): Routing {
  const g = o.g;
  const D = c.mlp_dynamic_expert_num;
  const a = architectureOf(c);
  const allowed = o.not(o.greater(o.slice(r.ban, [0], [D], [1]), g.scalar(0.5)));
  const s = o.sigmoid(o.slice(z, [0], [D], [1])); // [N,D]
  const scores = o.add(o.add(s, correction), o.slice(r.bias, [0], [D], [1])); // [N,D]
  const scoresA = o.where(allowed, scores, g.scalar(NEG));
  const masked = o.where(o.greater(groupMask(o, c, scoresA, "top2"), g.scalar(0.5)), scoresA, g.scalar(0));
  const sel = selectByOrder(o, o.where(allowed, masked, g.scalar(NEG)), r.ban, r.force, r.topK, D);
  let wD = o.mul(s, o.cast(sel.chosen, "float"));
  if (a.router.normTopk) wD = o.div(wD, o.add(o.reduceSum(wD, [1]), g.scalar(1e-20)));
  wD = o.mul(wD, g.scalar(a.router.routedScaling));
  return { ...withShared(o, c, z, r.ban, sel.chosen, wD, sel.k), scores };
}

/**
 * Phi-3.5-MoE's sparsemixer at inference (modeling_phimoe.py `sparsemixer`, training=False), top-2, on z (bias
 * intervention added). Step 1: m = the largest logit, e its expert; the experts j with (m - z_j) / max(|z_j|, m) >
 * 2·router_jitter_noise are masked (-inf); e's weight = softmax over the rest, at e. Step 2: the same with e masked
 * out, m = the largest remaining logit. (transformers clamps |z_j| at m where Uni-MoE's GRIN clamps at |m|; the two
 * agree, as every candidate has z_j <= m. A 0/0 ratio is NaN, which does not exceed the threshold, so that expert
 * stays, as in torch.) Weights are the two multipliers,
 * not renormalised. Forced columns are taken first (k = 2 + forced outside the model's two), each step's m being the
 * taken column's logit.
 */
export function sparsemixerRouting(o: Ops, c: MoeLlmConfig, z: string, r: RouterInputs): Routing {
  const g = o.g;
  const D = c.mlp_dynamic_expert_num;
  const zb = o.add(z, r.bias);
  const zD = o.slice(zb, [0], [D], [1]);
  const allowed = o.not(o.greater(o.slice(r.ban, [0], [D], [1]), g.scalar(0.5)));
  const sel = selectByOrder(o, o.where(allowed, zD, g.scalar(NEG)), r.ban, r.force, g.scalar(c.mlp_dynamic_top_k), D);
  // all steps s < max k at once: [N, step, column]
  const steps = stepsUpTo(o, sel.k, D, !!r.staticShapes); // [1,S,1]
  const orderJ = o.unsqueeze(sel.order, [1]); // [N,1,D]
  const zj = o.unsqueeze(zD, [1]); // [N,1,D]
  const pick = o.equal(orderJ, steps); // [N,S,D]
  const m = o.reduceMax(o.where(pick, zj, g.scalar(NEG)), [2]); // [N,S,1]
  const avail = o.and(o.unsqueeze(allowed, [1]), o.greaterOrEqual(orderJ, steps)); // not yet taken
  const ratio = o.div(o.sub(m, zj), o.max(o.abs(zj), m));
  const kept = o.and(avail, o.not(o.greater(ratio, g.scalar(2 * c.router_jitter_noise))));
  const gates = o.softmax(o.where(kept, zj, g.scalar(NEG)), 2); // [N,S,D]
  const multStep = o.reduceSum(o.mul(gates, o.cast(pick, "float")), [2]); // [N,S,1]
  const active = o.less(steps, o.unsqueeze(sel.k, [2]));
  const wD = o.reduceSum(o.where(o.and(pick, active), multStep, g.scalar(0)), [1], 0); // [N,D]
  return withShared(o, c, zb, r.ban, sel.chosen, wD, sel.k);
}

/** The routing of a fixed-k family (every convention but uni_moe_top_p). */
export function familyRouting(o: Ops, c: MoeLlmConfig, z: string, r: RouterInputs, correction?: string): Routing {
  switch (architectureOf(c).routing) {
    case "deepseek_softmax":
      return deepseekSoftmaxRouting(o, c, z, r);
    case "deepseek_sigmoid":
      return deepseekSigmoidRouting(o, c, z, correction!, r);
    case "sparsemixer":
      return sparsemixerRouting(o, c, z, r);
    default:
      return topkRouting(o, c, z, r);
  }
}
