import type { MoeLlmConfig } from "./config";
import { architectureOf } from "../families/conventions";
import { cumsumBf16, MAX_SCAN_COLUMNS, rounding, roundBf16, scalarAt, type RoutingPrecision } from "../onnx/bf16";
import type { Ops } from "../onnx/ops";
import { stepsUpTo } from "./decoder/routers";

/**
 * Uni-MoE-2.0's dynamic-capacity routing as its released inference computes it (RELEASED.md §5; `grin` =
 * Uni-MoE-2/uni_moe/model/modeling_qwen_grin_moe.py, GRINMoESparseMoeBlock.forward), as one self-contained graph
 * block: router logits in, chosen experts, mask, weights, reported k and capacity drops out. The decoder graph
 * (moe-llm-graph.ts) and any other graph that must route like the release (e.g. a fused decoder) call `grinRouting`;
 * tests/reference/grin-routing.ts is its independent plain-TS reference.
 *
 * Dimension letters: N tokens of this forward call (B·S, batch-major), D = routed + null columns, SH shared, E = D + SH.
 *
 * Precision (`RoutingPrecision`): "bf16" is what the release computes at inference (the model runs in bf16, eval mode;
 * grin's fp32 casts apply only when training with fp32_gate): the gate Linear gives z = bf16(f32(h_bf · W_bf)) and every
 * routing op computes in float from bf16 operands and rounds once to bf16 (softmax, sums, element-wise ops); Python
 * scalars meeting bf16 tensors are bf16 (Top-P 0.7 → 0.69921875, 2·jitter 0.02 → 0.02001953125, 1e-6 → 9.98e-7); the
 * Top-P cumsum follows PyTorch's CUDA scan (onnx/bf16.ts cumsumBf16). "fp32" is the same algorithm in float32 (ONNX
 * Runtime's CumSum order). Sorting, max, comparisons, masks and the capacity ranking are exact in both.
 *
 * Steps per call (grin line numbers):
 * 1. p = softmax over the D dynamic logits (banned columns excluded); k = #(sorted cumsum of p < P) + 1 (442-449, 563).
 *    k is not capped: a cumsum that never reaches P gives k = D + 1 and the token gets no dynamic expert (the grouping
 *    loop runs k = 1..D, 578). With P = 0 the fixed mlp_dynamic_top_k (truncated to an integer, 566) is k; above D it
 *    too gives no dynamic expert.
 * 2. sparsemixer, eval mode (362-439): k rounds of argmax (ties: lower column) with GRIN's near-tie rule, ratio
 *    (m − z_j) / max(|z_j|, |m|) > 2·jitter masks z_j; the multiplier is the softmax over the kept logits at the chosen
 *    column. routing weights rw = multipliers / (Σ + 1e-6) (607). Mask: chosen dynamic columns, shared columns 1 (630).
 * 3. Token drop (config.token_drop) on EVERY call, decode steps included (650): capacity C = max(min_capacity,
 *    ceil(f32(N / D) · f32(capacity_factor))) (452-458, 652).
 *    - "probs": C clamped to N; per dynamic column (null included) the C chosen tokens with the largest raw logit
 *      (in the precision's values: bf16 logits tie far more often) survive; ties → lower token index (torch.topk
 *      leaves them unspecified); shared columns are never capped (654-661).
 *    - "position": the token-order cumsum of the mask runs over ALL columns, so shared experts are capped too (670).
 *      A token left with no column gets NaN weights in the release, which raises a ValueError (687-691); the graph
 *      outputs NaN weights for it and MoeLlmRunner refuses the call (checkNoColumn).
 *    Then rw is re-masked and renormalised (+ 1e-6) (677-678) and the global weights come from the reduced mask
 *    (681-682). The reported k stays the pre-drop k (769); mask and weights are the ones applied after drops.
 * 4. Global weights (cal_global_weight, 461-475): g = softmax(z over the active columns); dynamic weight = rw ·
 *    Σ g(dynamic), shared weight = g; with no shared expert the weights are rw (684).
 *
 * Interventions (MoE Studio's own; neutral inputs leave the release's routing untouched):
 * - ban: a banned dynamic column leaves the softmax, is never chosen, and caps the chosen count at the allowed
 *   columns (every dynamic column banned: k = 0, shared experts only); a banned shared column gets mask 0.
 * - force: the chosen set is the union of the model's own choice and the forced columns (forced taken first by GRIN,
 *   k reported = own k + forced columns outside it); a token whose own k is above D keeps only the forced columns and
 *   reports its own k.
 * - top_p input: the P in force, exactly (the session resolves it once: the Top-P override, else the config's P;
 *   `resolveTopP`, config.ts); P = 0 is the fixed top-k, as the config's 0. P >= 1 depends on the precision: fp32
 *   chooses every allowed column (the float32 cumsum's last ulp would otherwise decide whether it reaches 1.0);
 *   bf16, the release's emulation, keeps the released cut-off for every P, 1.0 included (k = D + 1 where it falls short).
 *   Graphs before GRAPH_BUILDER_VERSION 5 (moe-llm-graph.ts) read top_p <= 0 as "the config's P" and any top_p >= 1
 *   as every column; MoeLlmRunner feeds those the old way.
 * Padding (grin:623-630, `valid`): a padded token's dynamic columns are cleared after sparsemixer (its k is still reported;
 * batched graphs refuse token_drop, whose capacity would count padding). Not emulated: the release's f32 summation order inside
 * matmul/softmax (cuBLAS/CUDA vs ONNX Runtime: an f32 ulp, which moves a bf16 rounding only when it lands on a tie).
 */

/** The `drop_policy` of a config (absent → "probs", the release's default); throws on an unknown value. */
export type DropPolicy = "probs" | "position";
export function dropPolicy(c: MoeLlmConfig): DropPolicy {
  const p = (c as Record<string, unknown>).drop_policy ?? "probs";
  if (p !== "probs" && p !== "position") throw new Error(`drop_policy "${String(p)}" is not "probs" or "position"`);
  return p;
}

/** model_type values of the released Uni-MoE-2.0 checkpoints (the saved model and its output-head config class). */
export const RELEASED_MODEL_TYPES: readonly string[] = ["grin_qwen2_vl", "grin_qwen2_vl_out"];

/** What a model routes in unless asked otherwise: bf16 for the released Uni-MoE-2.0 (what its inference computes), else fp32. */
export function defaultRoutingPrecision(c: MoeLlmConfig): RoutingPrecision {
  return architectureOf(c).routing === "uni_moe_top_p" && RELEASED_MODEL_TYPES.includes(String(c.model_type)) ? "bf16" : "fp32";
}

/** Refuses a precision the config's routing cannot be computed in. */
export function checkRoutingPrecision(c: MoeLlmConfig, precision: RoutingPrecision): void {
  if (precision === "fp32") return;
  const routing = architectureOf(c).routing;
  if (routing !== "uni_moe_top_p") throw new Error(`routing precision bf16 emulates Uni-MoE-2.0's released routing; this model routes with ${routing} (use fp32)`);
  const D = c.mlp_dynamic_expert_num + c.mlp_dynamic_null_expert_num;
  if (D > MAX_SCAN_COLUMNS) throw new Error(`routing precision bf16 supports up to ${MAX_SCAN_COLUMNS} dynamic columns (PyTorch's one-block CUDA scan); this model has ${D}`);
}

/** A finite stand-in for -inf in softmax and ranking inputs. */
const NEG = -1e30;

export interface GrinRoutingInput {
  /** float [N,E] router logits after router_bias (bf16 values under bf16: see grinRouterLogits). */
  z: string;
  /** float [1,E]: > 0.5 bans / forces a column. */
  ban: string;
  force: string;
  /** float [1]: the top_p graph input, the P in force (0: the fixed top-k; see the header's interventions). */
  topP: string;
  /** Fixed shapes only (the fused graph): all D sparsemixer steps instead of up to the call's largest k (same result). */
  staticShapes?: boolean;
  /** bool [N,1]: false for padding, which gets no dynamic expert and keeps the shared ones (grin:623-630). */
  valid?: string;
}

export interface GrinRouting {
  /** bool [N,D] dynamic columns the token is dispatched to (after drops). */
  chosen: string;
  /** float [N,E] 0/1, after drops. */
  mask: string;
  /** float [N,E] weights applied (after drops; NaN for a token "position" left with no column). */
  weights: string;
  /** float [N,1] k as the release reports it (before drops; D + 1 when Top-P never reached P). */
  k: string;
  /** float [N,E] 1 where a selected column was dropped over capacity (only with config.token_drop). */
  dropped?: string;
}

/** Router logits [N,E] of normalised hidden states x [N,H]: Linear (no bias) + the router_bias intervention [1,E]. */
export function grinRouterLogits(o: Ops, x: string, router: string, bias: string, precision: RoutingPrecision): string {
  if (precision === "fp32") return o.add(o.linear(x, router), bias);
  // z = bf16(f32(h_bf · W_bf)): `router` holds bf16 values (bf16Values); the bias add is one more bf16 op (exact for 0)
  const rb = (v: string) => roundBf16(o, v);
  return rb(o.add(rb(o.linear(rb(x), router)), bias));
}

export function grinRouting(o: Ops, c: MoeLlmConfig, inp: GrinRoutingInput, precision: RoutingPrecision): GrinRouting {
  checkRoutingPrecision(c, precision);
  const g = o.g;
  const D = c.mlp_dynamic_expert_num + c.mlp_dynamic_null_expert_num, SH = c.mlp_fixed_expert_num, E = D + SH;
  const rb = rounding(o, precision);
  const at = (v: number) => g.scalar(scalarAt(v, precision));
  const neg = g.scalar(NEG);
  const { z, ban, force, topP: topPIn } = inp;
  const zD = o.slice(z, [0], [D], [1]); // [N,D]
  const allowed = o.not(o.greater(o.slice(ban, [0], [D], [1]), g.scalar(0.5))); // [1,D]
  const forced = o.and(o.greater(o.slice(force, [0], [D], [1]), g.scalar(0.5)), allowed); // [1,D]
  const zA = o.where(allowed, zD, neg); // [N,D]
  const nAllowed = o.reduceSum(o.cast(allowed, "float"), [1]); // [1,1]
  /** w / (Σ w + 1e-6) over the dynamic columns, each op in the precision */
  const normalise = (w: string) => rb(o.div(w, rb(o.add(rb(o.reduceSum(w, [1])), at(1e-6)))));

  // 1. k: Top-P over p = softmax(z[0:D]), or the fixed top-k when P = 0
  const P = topPIn; // [1]
  const p = rb(o.softmax(zA, 1));
  const [sorted] = o.topk(p, g.ints([D]), 1);
  const cum = precision === "bf16" ? cumsumBf16(o, sorted, D) : o.cumsum(sorted, 1);
  const below = o.cast(o.not(o.greaterOrEqual(cum, rb(P))), "float");
  const kCut = o.add(o.reduceSum(below, [1]), g.scalar(1)); // [N,1]
  const kTopP = precision === "fp32" ? o.where(o.greaterOrEqual(P, g.scalar(1)), nAllowed, kCut) : kCut; // [N,1]
  const kModel = o.where(o.greater(P, g.scalar(0)), kTopP, g.scalar(Math.trunc(c.mlp_dynamic_top_k))); // [N,1]
  // k > D: no dynamic expert of its own (with every dynamic column banned, k is 0 instead)
  const hasOwn = o.or(o.not(o.greater(kModel, g.scalar(D))), o.less(nAllowed, g.scalar(0.5)));

  // The model's own choice is the kOwn largest allowed logits (ties: lower index, as torch's max); rank[j] = place of
  // column j in the descending order. Forced columns outside it are added.
  const [, idx] = o.topk(zA, g.ints([D]), 1); // [N,D]
  const pos = o.expand(g.const(Array.from({ length: D }, (_, s) => s), [1, D]), o.shape(idx));
  const zeros = o.expand(g.scalar(0), o.shape(idx));
  const rank = o.scatterElements(zeros, idx, pos, 1); // [N,D]
  const forcedF = o.cast(forced, "float"); // [1,D]
  const kOwn = o.where(hasOwn, o.min(kModel, nAllowed), g.scalar(0)); // [N,1]
  const extra = o.reduceSum(o.mul(forcedF, o.cast(o.greaterOrEqual(rank, kOwn), "float")), [1]); // [N,1]
  const nChosen = o.min(o.add(kOwn, extra), nAllowed); // [N,1]
  const k = o.where(hasOwn, nChosen, kModel); // [N,1] as the release reports it

  // 2. sparsemixer: repeated argmax with the GRIN near-tie rule. Step s takes the column whose order is s (forced first,
  // then by logit, ties to the lower index); all steps < max chosen are evaluated at once as [N, step, column].
  const fs = o.gatherElements(o.expand(forcedF, o.shape(idx)), idx, 1); // [N,D] forced flags in sorted order
  const before = o.sub(o.cumsum(fs, 1), fs);
  const orderSorted = o.where(o.greater(fs, g.scalar(0.5)), before, o.add(o.reduceSum(forcedF, [1]), o.sub(pos, before)));
  const order = o.scatterElements(zeros, idx, orderSorted, 1); // [N,D] step at which each column is taken
  const steps = stepsUpTo(o, nChosen, D, !!inp.staticShapes); // [1,S,1]
  const orderJ = o.unsqueeze(order, [1]); // [N,1,D]
  const zj = o.unsqueeze(zD, [1]); // [N,1,D]
  const pick = o.equal(orderJ, steps); // [N,S,D]
  const m = o.reduceMax(o.where(pick, zj, neg), [2]); // [N,S,1] logit of the column taken
  const avail = o.and(o.unsqueeze(allowed, [1]), o.greaterOrEqual(orderJ, steps)); // not yet taken
  const ratio = rb(o.div(rb(o.sub(m, zj)), o.max(o.abs(zj), o.abs(m)))); // 0/0 = NaN counts as kept, as in torch
  const kept = o.and(avail, o.not(o.greater(ratio, at(2 * c.router_jitter_noise))));
  const gates = rb(o.softmax(o.where(kept, zj, neg), 2)); // [N,S,D]
  const multStep = o.reduceSum(o.mul(gates, o.cast(pick, "float")), [2]); // [N,S,1]
  const active = o.less(steps, o.unsqueeze(nChosen, [2]));
  const mult = o.reduceSum(o.where(o.and(pick, active), multStep, g.scalar(0)), [1], 0); // [N,D]
  let chosen = o.and(o.less(order, nChosen), allowed); // [N,D]
  let rw = normalise(mult);
  if (inp.valid) {
    chosen = o.and(chosen, inp.valid);
    rw = o.mul(rw, o.cast(inp.valid, "float"));
  }

  // mask: chosen dynamic + allowed shared
  const sharedOn = o.cast(o.not(o.greater(o.slice(ban, [D], [E], [1]), g.scalar(0.5))), "float"); // [1,SH]
  const withShared = (dyn: string) => (SH === 0 ? dyn : o.concat([dyn, o.expand(sharedOn, o.concat([o.shape(z, 0, 1), g.ints([SH])], 0))], 1));
  let mask = withShared(o.cast(chosen, "float")); // [N,E]

  // 3. token drop, on every call
  let dropped: string | undefined;
  if (c.token_drop) {
    const keep = capacityKeep(o, c, mask, zD);
    dropped = o.sub(mask, keep);
    mask = keep;
    const keepD = o.slice(keep, [0], [D], [1]);
    chosen = o.greater(keepD, g.scalar(0.5));
    rw = normalise(o.mul(rw, keepD));
  }

  // 4. global weights
  if (SH === 0) return { chosen, mask, weights: rw, k, dropped };
  const gw = rb(o.softmax(o.where(o.greater(mask, g.scalar(0.5)), z, neg), 1)); // [N,E]
  const gDyn = rb(o.reduceSum(o.slice(gw, [0], [D], [1]), [1])); // [N,1]
  let weights = o.concat([rb(o.mul(rw, gDyn)), o.slice(gw, [D], [E], [1])], 1);
  // a token without any column: softmax over nothing is NaN in the release (only "position" can do this)
  if (c.token_drop && dropPolicy(c) === "position") weights = o.where(o.greater(o.reduceMax(mask, [1]), g.scalar(0.5)), weights, g.scalar(NaN));
  return { chosen, mask, weights, k, dropped };
}

/** Capacity C of a call of n tokens (float32 arithmetic as torch's `_capacity`). */
export function releasedCapacity(c: MoeLlmConfig, n: number): number {
  const D = c.mlp_dynamic_expert_num + c.mlp_dynamic_null_expert_num;
  return Math.max(c.min_capacity, Math.ceil(Math.fround(Math.fround(n / D) * Math.fround(c.capacity_factor))));
}

/** Mask [N,E] (0/1) → the part of it within capacity (see step 3). zD: [N,D] raw dynamic logits. */
function capacityKeep(o: Ops, c: MoeLlmConfig, mask: string, zD: string): string {
  const g = o.g;
  const D = c.mlp_dynamic_expert_num + c.mlp_dynamic_null_expert_num, SH = c.mlp_fixed_expert_num, E = D + SH;
  const nTok = o.shape(zD, 0, 1); // int64 [1] = N
  const raw = g.op("Ceil", [o.mul(o.div(o.cast(nTok, "float"), g.scalar(D)), g.scalar(c.capacity_factor))]); // [1]
  const cap = o.cast(o.max(raw, g.scalar(c.min_capacity)), "int64"); // int64 [1]
  if (dropPolicy(c) === "position") {
    const loc = o.sub(o.cumsum(mask, 0), g.scalar(1)); // [N,E] place in each column's queue, shared columns included
    return o.mul(mask, o.cast(o.less(loc, o.cast(cap, "float")), "float"));
  }
  const dyn = o.slice(mask, [0], [D], [1]);
  const ranked = o.where(o.greater(dyn, g.scalar(0.5)), zD, g.scalar(NEG));
  const [, top] = o.topk(ranked, o.min(cap, nTok), 0); // [min(C,N), D] token indices, ties → lower index
  const inCap = o.scatterElements(o.expand(g.scalar(0), o.shape(zD)), top, o.expand(g.scalar(1), o.shape(top)), 0); // [N,D]
  const keepD = o.mul(dyn, inCap);
  return SH === 0 ? keepD : o.concat([keepD, o.slice(mask, [D], [E], [1])], 1);
}

/**
 * The release raises (grin:687-691) when "position" token drop leaves a token with no column: refuse the same way.
 * mask: one layer's [N*E] mask of a call of N tokens.
 */
export function checkNoColumn(c: MoeLlmConfig, layer: number, mask: ArrayLike<number>, n: number): void {
  if (!c.token_drop || c.mlp_fixed_expert_num === 0 || dropPolicy(c) !== "position") return;
  const E = c.mlp_dynamic_expert_num + c.mlp_dynamic_null_expert_num + c.mlp_fixed_expert_num;
  for (let t = 0; t < n; t++) {
    let any = false;
    for (let j = 0; j < E && !any; j++) any = mask[t * E + j]! > 0.5;
    if (!any) throw new Error(noColumnMessage(c, n, `token ${t} of this call (${n} tokens) at layer ${layer}`, t));
  }
}

/** The refusal when only the NaN logits tell (a graph without routing outputs). */
export function noColumnMessage(c: MoeLlmConfig, n: number, where: string, token?: number): string {
  return (
    `ValueError${token === undefined ? "" : `: iindex: [[${token}, 0]]`} — token drop with drop_policy "position" left ${where} with no expert: the release caps the shared ` +
    `experts by position too (capacity ${releasedCapacity(c, n)} for ${n} tokens), so every column of this token was full; its global weights ` +
    `are NaN and the released code raises this ValueError (modeling_qwen_grin_moe.py:687-691). Use a shorter input, a larger capacity_factor ` +
    `or min_capacity, or drop_policy "probs".`
  );
}
