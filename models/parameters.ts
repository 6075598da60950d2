import { paramNames, type MoeLlmConfig } from "./config";
import { architectureOf } from "./families/conventions";
import { moeDims, moeLlmParamShapes } from "./moe-llm-graph";

export interface ParameterCounts {
  total: number;
  /** Parameters every token runs through: all but the routed experts (embeddings and head counted whole). */
  fixed: number;
  /** One routed expert of one layer. */
  perRoutedExpert: number;
  layers: number;
  /** Routed (real, non-null) experts a token runs per layer: exact for a fixed top-k without null experts, else a range. */
  routedPerLayer: { min: number; max: number };
  /** Active parameters per token: fixed + layers × routed experts × perRoutedExpert, at routedPerLayer's min and max. */
  active: { min: number; max: number };
}

/**
 * Parameters in total and active per token. Under Top-P the routed experts a token runs vary per token (Uni-MoE:
 * 0 when it picks only the null expert, up to all R), so `active` is a range; the expectation for actual inputs comes
 * from a routing trace (engine/routing/active.ts). A fixed top-k of k routes between max(0, k − null experts) and
 * min(k, R) real experts (none when k exceeds the dynamic columns).
 */
export function parameterCounts(config: MoeLlmConfig): ParameterCounts {
  const shapes = moeLlmParamShapes(config);
  const numel = (s: number[]) => s.reduce((a, b) => a * b, 1);
  let total = 0;
  for (const s of shapes.values()) total += numel(s);
  const { R, Z, D, L } = moeDims(config);
  const perRoutedExpert = R > 0 ? numel(shapes.get(paramNames.routed(0, 0, "gate"))!) * 3 : 0;
  const fixed = total - L * R * perRoutedExpert;
  const topP = architectureOf(config).routing === "uni_moe_top_p" && config.mlp_dynamic_top_p > 0;
  const k = Math.trunc(config.mlp_dynamic_top_k);
  const routedPerLayer = topP ? { min: Z > 0 ? 0 : 1, max: R } : k > D ? { min: 0, max: 0 } : { min: Math.max(0, k - Z), max: Math.min(k, R) };
  const at = (n: number) => fixed + L * n * perRoutedExpert;
  return { total, fixed, perRoutedExpert, layers: L, routedPerLayer, active: { min: at(routedPerLayer.min), max: at(routedPerLayer.max) } };
}
