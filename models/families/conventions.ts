import { resolveTopK, resolveTopP, type MoeLlmConfig } from "../moe-llm/config";

/**
 * How a family's router turns logits into expert weights. Stored in the canonical config.json of an
 * imported model (`routing_convention`), read by the graph builder and written into every routing trace.
 *
 * - uni_moe_top_p: Uni-MoE-2.0 dynamic capacity (PAPER.md §2): Top-P over routed+null columns, GRIN multipliers.
 * - softmax_topk: p = softmax over all routed logits, the top-k p are the weights as they are (no renormalisation).
 * - softmax_topk_renorm: the same, then the k weights are divided by their sum.
 * - topk_softmax: softmax over the k chosen logits (Mixtral; gpt-oss with `router_bias`); equal to
 *   softmax_topk_renorm, kept apart for the name.
 * - deepseek_softmax: DeepSeek-V2: p = softmax(logits); `topk_method` greedy (top-k of p) or group_limited_greedy
 *   (groups ranked by their largest p, keep `topk_group` groups, top-k of p inside them); weights = p ×
 *   `routed_scaling_factor`, not renormalised.
 * - deepseek_sigmoid: DeepSeek-V3: s = sigmoid(logits); selection on s + e_score_correction_bias (group score = sum of
 *   the group's two largest, keep `topk_group` groups, top-k inside); weights = s at the chosen experts,
 *   renormalised when `norm_topk_prob`, × `routed_scaling_factor`.
 * - sparsemixer: Phi-3.5-MoE's top-2 sparsemixer at inference (GRIN's near-tie rule on the raw logits, no Top-P).
 */
export type RoutingConvention = "uni_moe_top_p" | "softmax_topk" | "softmax_topk_renorm" | "topk_softmax" | "deepseek_softmax" | "deepseek_sigmoid" | "sparsemixer";
/** Where a family normalises queries and keys: not at all, per head over head_dim (Qwen3), or over the whole projection (OLMoE). */
export type QkNorm = "none" | "per_head" | "full";
/** The experts' feed-forward: SwiGLU (down(silu(gate x) · up x)), or gpt-oss's clamped SwiGLU with biases. */
export type ExpertActivation = "swiglu" | "clamped_swiglu";

/** Multi-head latent attention (DeepSeek-V2/V3), HF config names. */
export interface MlaDims {
  /** null: one q_proj; else q_a_proj → q_a_layernorm → q_b_proj */
  qLoraRank: number | null;
  kvLoraRank: number;
  nope: number;
  rope: number;
  v: number;
}

/** The router rule's parameters the graph and the inspector read (DeepSeek's; neutral for the others). */
export interface RouterOptions {
  /** deepseek_softmax: "greedy" | "group_limited_greedy"; deepseek_sigmoid: always grouped. */
  topkMethod: "greedy" | "group_limited_greedy" | "noaux_tc";
  nGroup: number;
  topkGroup: number;
  routedScaling: number;
  /** deepseek_sigmoid: renormalise the chosen sigmoid scores (+1e-20) before the scaling. */
  normTopk: boolean;
  /** The router Linear has a bias (gpt-oss). */
  bias: boolean;
}

export interface ArchitectureOptions {
  routing: RoutingConvention;
  router: RouterOptions;
  /** qwen2_moe: the shared expert's weight is sigmoid(its own gate logit), the last router column. */
  sharedExpertGate: boolean;
  qkNorm: QkNorm;
  /** q/k/v projections have a bias (Qwen2 family). */
  attentionBias: boolean;
  /** o_proj has a bias (Phi-3.5-MoE, gpt-oss; MLA with attention_bias). */
  outputBias: boolean;
  /** gpt-oss: one learned logit per head joins each softmax row (its probability mass is dropped). */
  sinks: boolean;
  /** "gqa": grouped-query attention (q/k/v_proj); "mla": DeepSeek's multi-head latent attention. */
  attention: "gqa" | "mla";
  mla?: MlaDims;
  /** "rms": RMSNorm; "layer": LayerNorm with weight and bias (Phi-3.5-MoE). */
  norm: "rms" | "layer";
  lmHeadBias: boolean;
  /**
   * Sliding-window attention per layer (length num_hidden_layers): W = query i sees key j iff j <= i and i - j < W
   * (itself and the W - 1 keys before it); null = full causal attention. From the canonical config's
   * `sliding_window_per_layer` (absent = no window anywhere); the family tables fill it from config.json.
   */
  slidingWindows: (number | null)[];
  /** Per decoder layer: true = a dense MLP (no router) instead of the MoE block. */
  denseLayers: boolean[];
  /** Intermediate size of the dense MLP layers. */
  denseIntermediate: number;
  expertActivation: ExpertActivation;
  /** clamped_swiglu: gate clamped above at `limit`, up to ±limit, glu = gate·sigmoid(alpha·gate), out = (up + 1)·glu. */
  swiglu: { alpha: number; limit: number };
  /** Routed experts' projections have biases (gpt-oss). */
  expertBias: boolean;
  /** Rotary frequencies of the rotated dims (length rotary/2); absent = 1/theta^(2j/d) over head_dim. */
  ropeInvFreq?: number[];
  /** cos and sin are multiplied by this (YaRN's attention_factor, LongRoPE's mscale). */
  ropeAttentionFactor: number;
  /** The rope dims of q and k are interleaved pairs (x0,x1),(x2,x3)…; rotated as pairs (see attention.ts). */
  ropeInterleave: boolean;
  /** Attention logits are q·k × this; null = 1/sqrt(q/k head dim). */
  attentionScale: number | null;
  /** Longest context (past + new tokens) the model accepts (Phi-3.5-MoE: LongRoPE's short factors only); null = any. */
  maxContext: number | null;
}

const ROUTINGS: readonly RoutingConvention[] = ["uni_moe_top_p", "softmax_topk", "softmax_topk_renorm", "topk_softmax", "deepseek_softmax", "deepseek_sigmoid", "sparsemixer"];
const QK_NORMS: readonly QkNorm[] = ["none", "per_head", "full"];

/** A canonical config field, checked (the family tables write them; a hand-edited config gets a clear error). */
function field<T>(raw: Record<string, unknown>, key: string, fallback: T, ok: (v: unknown) => boolean, what: string): T {
  const v = raw[key] ?? fallback;
  if (!ok(v)) throw new Error(`config ${key} must be ${what} (got ${JSON.stringify(raw[key])})`);
  return v as T;
}
const isBool = (v: unknown) => typeof v === "boolean";
const isPos = (v: unknown) => typeof v === "number" && Number.isFinite(v) && v > 0;
const isPosInt = (v: unknown) => Number.isInteger(v) && (v as number) > 0;

/** The architecture switches of a config; configs without them (the reference family, Uni-MoE-2.0) get Uni-MoE's. */
export function architectureOf(c: MoeLlmConfig): ArchitectureOptions {
  const raw = c as Record<string, unknown>;
  const routing = (raw.routing_convention ?? "uni_moe_top_p") as RoutingConvention;
  const qkNorm = (raw.qk_norm ?? "none") as QkNorm;
  if (!ROUTINGS.includes(routing)) throw new Error(`config routing_convention "${String(routing)}" is not one of ${ROUTINGS.join(", ")}`);
  if (!QK_NORMS.includes(qkNorm)) throw new Error(`config qk_norm "${String(qkNorm)}" is not one of ${QK_NORMS.join(", ")}`);
  const attention = field<"gqa" | "mla">(raw, "attention_type", "gqa", (v) => v === "gqa" || v === "mla", '"gqa" or "mla"');
  const mla =
    attention === "mla"
      ? {
          qLoraRank: raw.q_lora_rank === null || raw.q_lora_rank === undefined ? null : field<number>(raw, "q_lora_rank", 0, isPosInt, "a positive integer or null"),
          kvLoraRank: field<number>(raw, "kv_lora_rank", 0, isPosInt, "a positive integer"),
          nope: field<number>(raw, "qk_nope_head_dim", 0, isPosInt, "a positive integer"),
          rope: field<number>(raw, "qk_rope_head_dim", 0, isPosInt, "a positive integer"),
          v: field<number>(raw, "v_head_dim", 0, isPosInt, "a positive integer"),
        }
      : undefined;
  const invFreq = raw.rope_inv_freq;
  if (invFreq !== undefined && (!Array.isArray(invFreq) || !invFreq.every(isPos))) throw new Error(`config rope_inv_freq must be a list of positive numbers (got ${JSON.stringify(invFreq)})`);
  const method = field<RouterOptions["topkMethod"]>(raw, "topk_method", routing === "deepseek_sigmoid" ? "noaux_tc" : "greedy", (v) => v === "greedy" || v === "group_limited_greedy" || v === "noaux_tc", '"greedy", "group_limited_greedy" or "noaux_tc"');
  return {
    routing,
    router: {
      topkMethod: method,
      nGroup: field<number>(raw, "n_group", 1, isPosInt, "a positive integer"),
      topkGroup: field<number>(raw, "topk_group", 1, isPosInt, "a positive integer"),
      routedScaling: field<number>(raw, "routed_scaling_factor", 1, isPos, "a positive number"),
      normTopk: field<boolean>(raw, "norm_topk_prob", false, isBool, "true or false"),
      bias: field<boolean>(raw, "router_bias", false, isBool, "true or false"),
    },
    qkNorm,
    sharedExpertGate: raw.shared_expert_gate === true,
    attentionBias: raw.attention_bias !== false,
    outputBias: field<boolean>(raw, "attention_output_bias", false, isBool, "true or false"),
    sinks: field<boolean>(raw, "attention_sinks", false, isBool, "true or false"),
    attention,
    ...(mla ? { mla } : {}),
    norm: field<"rms" | "layer">(raw, "norm_type", "rms", (v) => v === "rms" || v === "layer", '"rms" or "layer"'),
    lmHeadBias: field<boolean>(raw, "lm_head_bias", false, isBool, "true or false"),
    slidingWindows: slidingWindowsOf(c),
    denseLayers: denseLayersOf(c),
    denseIntermediate: field<number>(raw, "dense_intermediate_size", 1, isPosInt, "a positive integer"),
    expertActivation: field<ExpertActivation>(raw, "expert_activation", "swiglu", (v) => v === "swiglu" || v === "clamped_swiglu", '"swiglu" or "clamped_swiglu"'),
    swiglu: { alpha: field<number>(raw, "swiglu_alpha", 1.702, isPos, "a positive number"), limit: field<number>(raw, "swiglu_limit", 7, isPos, "a positive number") },
    expertBias: field<boolean>(raw, "expert_bias", false, isBool, "true or false"),
    ...(Array.isArray(invFreq) ? { ropeInvFreq: invFreq as number[] } : {}),
    ropeAttentionFactor: field<number>(raw, "rope_attention_factor", 1, isPos, "a positive number"),
    ropeInterleave: field<boolean>(raw, "rope_interleave", false, isBool, "true or false"),
    attentionScale: raw.attention_scale === undefined || raw.attention_scale === null ? null : field<number>(raw, "attention_scale", 1, isPos, "a positive number"),
    maxContext: raw.max_context_tokens === undefined || raw.max_context_tokens === null ? null : field<number>(raw, "max_context_tokens", 1, isPosInt, "a positive integer"),
  };
}

/** Canonical config key of the dense (router-less) decoder layers: a list of layer indices. */
export const DENSE_LAYERS_KEY = "dense_layers";

function denseLayersOf(c: MoeLlmConfig): boolean[] {
  const L = c.num_hidden_layers;
  const v = (c as Record<string, unknown>)[DENSE_LAYERS_KEY];
  const out = Array<boolean>(L).fill(false);
  if (v === undefined || v === null) return out;
  if (!Array.isArray(v) || !v.every((i) => Number.isInteger(i) && i >= 0 && i < L))
    throw new Error(`config ${DENSE_LAYERS_KEY} must list layer indices 0..${L - 1} (got ${JSON.stringify(v)})`);
  for (const i of v as number[]) out[i] = true;
  if (out.every(Boolean)) throw new Error(`config ${DENSE_LAYERS_KEY}: every layer is dense; MoE Studio needs at least one MoE layer`);
  return out;
}

/** Decoder indices of the MoE layers (the ones with a router), in order. */
export function moeLayerIndices(c: MoeLlmConfig): number[] {
  return architectureOf(c).denseLayers.flatMap((dense, i) => (dense ? [] : [i]));
}

/** Canonical config key of the per-layer sliding windows (see ArchitectureOptions.slidingWindows). */
export const SLIDING_WINDOW_KEY = "sliding_window_per_layer";

function slidingWindowsOf(c: MoeLlmConfig): (number | null)[] {
  const L = c.num_hidden_layers;
  const v = (c as Record<string, unknown>)[SLIDING_WINDOW_KEY];
  if (v === undefined || v === null) return Array<number | null>(L).fill(null);
  const ok = (w: unknown) => w === null || (typeof w === "number" && Number.isInteger(w) && w > 0);
  if (!Array.isArray(v) || v.length !== L || !v.every(ok))
    throw new Error(`config ${SLIDING_WINDOW_KEY} must list one window per layer (${L}), each a positive integer or null (got ${JSON.stringify(v)})`);
  return v as (number | null)[];
}

/** "Sliding-window attention …" for a config with windows, "" without. */
function windowText(windows: (number | null)[]): string {
  const byWindow = new Map<number, number[]>();
  windows.forEach((w, i) => w !== null && byWindow.set(w, [...(byWindow.get(w) ?? []), i]));
  if (byWindow.size === 0) return "";
  const parts = [...byWindow].map(([w, layers]) => `W = ${w} in ${layers.length === windows.length ? `all ${windows.length} layers` : `layer${layers.length > 1 ? "s" : ""} ${layers.join(", ")} of ${windows.length}`}`);
  const rest = windows.some((w) => w === null) ? "; full causal attention in the other layers" : "";
  return `Sliding-window attention (each token sees itself and the W - 1 tokens before it): ${parts.join("; ")}${rest}.`;
}

/** What the Routing Inspector shows under a trace: how to read its columns and weights. */
export const CONVENTION_TEXT: Record<RoutingConvention, string> = {
  uni_moe_top_p:
    "Uni-MoE-2.0 dynamic capacity: softmax over routed+null logits, Top-P chooses k experts (GRIN multipliers), shared experts always on; weights renormalised over all chosen columns.",
  softmax_topk:
    "Top-k over softmax(router logits) of the routed experts, weights = those probabilities without renormalisation (they sum to < 1: weights need not sum to 1); a shared expert, when present, is always on with weight sigmoid(its gate logit) (Qwen2-MoE).",
  softmax_topk_renorm: "Top-k over softmax(router logits) of the routed experts, the k probabilities renormalised to sum to 1 (norm_topk_prob).",
  topk_softmax: "Top-k router logits, weights = softmax over the k chosen logits (Mixtral, gpt-oss); they sum to 1.",
  deepseek_softmax:
    "DeepSeek-V2: p = softmax(router logits); top-k of p (greedy, or group-limited: only the topk_group groups with the largest p compete); weights = p × routed_scaling_factor, not renormalised (weights need not sum to 1); the shared experts are always on with weight 1.",
  deepseek_sigmoid:
    "DeepSeek-V3: s = sigmoid(router logits); experts are selected on s + e_score_correction_bias (group score = sum of its two largest, the topk_group best groups compete, then top-k); weights = the unbiased s of the chosen experts (renormalised when norm_topk_prob) × routed_scaling_factor (weights need not sum to 1); the shared experts are always on with weight 1. The trace keeps the raw logits and the bias-corrected selection scores.",
  sparsemixer:
    "Phi-3.5-MoE sparsemixer (top-2, inference): the largest logit's expert first, its weight = softmax over the experts whose logit is within 2·router_jitter_noise (relative) of it; then the same among the rest for the second; the two weights are not renormalised (weights need not sum to 1).",
};

/** The rule's parameters as the inspector names them for an MoE layer, e.g. "sigmoid + correction bias, 8 groups keep 4, top-8, × 2.5". */
export function routingRuleText(c: MoeLlmConfig, override: { topK?: number; topP?: number } = {}): string {
  const a = architectureOf(c);
  const R = c.mlp_dynamic_expert_num;
  const k = resolveTopK(c, override.topK);
  const kText = `top-${k} of ${R}${override.topK !== undefined ? " (override)" : ""}`;
  const scale = a.router.routedScaling !== 1 ? `, × ${a.router.routedScaling}` : "";
  switch (a.routing) {
    case "uni_moe_top_p": {
      const P = resolveTopP(c, override.topP);
      return P > 0 ? `Top-P ${P}${override.topP !== undefined ? " (override)" : ""} over ${R} routed + ${c.mlp_dynamic_null_expert_num} null, GRIN jitter ${c.router_jitter_noise}` : `top-${c.mlp_dynamic_top_k} (Top-P 0), GRIN jitter ${c.router_jitter_noise}`;
    }
    case "softmax_topk":
      return `softmax, ${kText}, not renormalised`;
    case "softmax_topk_renorm":
      return `softmax, ${kText}, renormalised`;
    case "topk_softmax":
      return `${kText} logits${a.router.bias ? " (router with bias)" : ""}, softmax over the chosen`;
    case "deepseek_softmax":
      return `softmax, ${a.router.topkMethod === "group_limited_greedy" ? `${a.router.nGroup} groups keep ${a.router.topkGroup} (by max), ` : "greedy, "}${kText}${scale}`;
    case "deepseek_sigmoid":
      return `sigmoid + correction bias, ${a.router.nGroup} groups keep ${a.router.topkGroup} (by top-2 sum), ${kText}${a.router.normTopk ? ", renormalised" : ""}${scale}`;
    case "sparsemixer":
      return `sparsemixer top-2 of ${R}, jitter ${c.router_jitter_noise}`;
  }
}

/** One row per decoder layer for the trace: an MoE layer names its rule, a dense layer says it has no router. */
export interface LayerRule {
  layer: number;
  kind: "moe" | "dense";
  rule: string;
}

export function layerRules(c: MoeLlmConfig, override: { topK?: number; topP?: number } = {}): LayerRule[] {
  const a = architectureOf(c);
  const moe = routingRuleText(c, override);
  return a.denseLayers.map((dense, layer) => (dense ? { layer, kind: "dense", rule: `dense MLP (intermediate ${a.denseIntermediate}), no router` } : { layer, kind: "moe", rule: moe }));
}

/** The attention variant in words ("" for plain GQA with RoPE). */
function attentionText(a: ArchitectureOptions): string {
  const parts: string[] = [];
  if (a.attention === "mla" && a.mla)
    parts.push(`Multi-head latent attention (kv_lora_rank ${a.mla.kvLoraRank}, rope dims ${a.mla.rope}${a.mla.qLoraRank ? `, q_lora_rank ${a.mla.qLoraRank}` : ""}; the KV cache holds the compressed latent).`);
  if (a.sinks) parts.push("Attention sinks: a learned logit per head in every softmax row.");
  if (a.router.bias) parts.push("The router Linear has a bias (part of the logits shown).");
  if (a.expertActivation === "clamped_swiglu") parts.push(`Experts: SwiGLU clamped at ±${a.swiglu.limit} with biases.`);
  return parts.join(" ");
}

export function conventionText(c: MoeLlmConfig): string {
  const a = architectureOf(c);
  const text = CONVENTION_TEXT[a.routing];
  const routing = a.sharedExpertGate && a.routing !== "softmax_topk" ? `${text} Shared expert always on, weight sigmoid(its gate logit) (weights need not sum to 1).` : text;
  const dense = a.denseLayers.some(Boolean) ? `Dense MLP layers (no router): ${a.denseLayers.flatMap((d, i) => (d ? [i] : [])).join(", ")}.` : "";
  return [routing, dense, attentionText(a), windowText(a.slidingWindows)].filter(Boolean).join(" ");
}

/** Canonical names of the q/k norm weights (the Qwen3/OLMoE names). */
export const qkNormNames = {
  q: (i: number) => `model.layers.${i}.self_attn.q_norm.weight`,
  k: (i: number) => `model.layers.${i}.self_attn.k_norm.weight`,
};
