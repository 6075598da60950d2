import type { MoeLlmConfig } from "../config";

/**
 * How a family's router turns logits into expert weights. Stored in the canonical config.json of an
 * imported model (`routing_convention`), read by the graph builder and written into every routing trace.
 *
 * - uni_moe_top_p: Uni-MoE-2.0 dynamic capacity (PAPER.md §2): Top-P over routed+null columns, GRIN multipliers.
 * - softmax_topk: p = softmax over all routed logits, the top-k p are the weights as they are (no renormalisation).
 * - softmax_topk_renorm: the same, then the k weights are divided by their sum.
 * - topk_softmax: softmax over the k chosen logits (Mixtral); equal to softmax_topk_renorm, kept apart for the name.
 */
export type RoutingConvention = "uni_moe_top_p" | "softmax_topk" | "softmax_topk_renorm" | "topk_softmax";
/** Where a family normalises queries and keys: not at all, per head over head_dim (Qwen3), or over the whole projection (OLMoE). */
export type QkNorm = "none" | "per_head" | "full";

export interface ArchitectureOptions {
  routing: RoutingConvention;
  /** qwen2_moe: the shared expert's weight is sigmoid(its own gate logit), the last router column. */
  sharedExpertGate: boolean;
  qkNorm: QkNorm;
  /** q/k/v projections have a bias (Qwen2 family). */
  attentionBias: boolean;
  /**
   * Sliding-window attention per layer (length num_hidden_layers): W = query i sees key j iff j <= i and i - j < W
   * (itself and the W - 1 keys before it); null = full causal attention. From the canonical config's
   * `sliding_window_per_layer` (absent = no window anywhere); the family tables fill it from config.json.
   */
  slidingWindows: (number | null)[];
}

const ROUTINGS: readonly RoutingConvention[] = ["uni_moe_top_p", "softmax_topk", "softmax_topk_renorm", "topk_softmax"];
const QK_NORMS: readonly QkNorm[] = ["none", "per_head", "full"];

/** The architecture switches of a config; configs without them (the reference family, Uni-MoE-2.0) get Uni-MoE's. */
export function architectureOf(c: MoeLlmConfig): ArchitectureOptions {
  const raw = c as Record<string, unknown>;
  const routing = (raw.routing_convention ?? "uni_moe_top_p") as RoutingConvention;
  const qkNorm = (raw.qk_norm ?? "none") as QkNorm;
  if (!ROUTINGS.includes(routing)) throw new Error(`config routing_convention "${String(routing)}" is not one of ${ROUTINGS.join(", ")}`);
  if (!QK_NORMS.includes(qkNorm)) throw new Error(`config qk_norm "${String(qkNorm)}" is not one of ${QK_NORMS.join(", ")}`);
  return { routing, qkNorm, sharedExpertGate: raw.shared_expert_gate === true, attentionBias: raw.attention_bias !== false, slidingWindows: slidingWindowsOf(c) };
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
    "Top-k over softmax(router logits) of the routed experts, weights = those probabilities without renormalisation (they sum to < 1); a shared expert, when present, is always on with weight sigmoid(its gate logit) (Qwen2-MoE).",
  softmax_topk_renorm: "Top-k over softmax(router logits) of the routed experts, the k probabilities renormalised to sum to 1 (norm_topk_prob).",
  topk_softmax: "Top-k router logits, weights = softmax over the k chosen logits (Mixtral); they sum to 1.",
};

export function conventionText(c: MoeLlmConfig): string {
  const a = architectureOf(c);
  const text = CONVENTION_TEXT[a.routing];
  const routing = a.sharedExpertGate && a.routing !== "softmax_topk" ? `${text} Shared expert always on, weight sigmoid(its gate logit).` : text;
  const window = windowText(a.slidingWindows);
  return window ? `${routing} ${window}` : routing;
}

/** Canonical names of the q/k norm weights (the Qwen3/OLMoE names). */
export const qkNormNames = {
  q: (i: number) => `model.layers.${i}.self_attn.q_norm.weight`,
  k: (i: number) => `model.layers.${i}.self_attn.k_norm.weight`,
};
