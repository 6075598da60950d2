import { paramNames, type MoeLlmConfig } from "./config";
import { architectureOf, moeLayerIndices } from "../families/conventions";
import { moeDims, moeLlmParamShapes } from "./moe-llm-graph";

export interface ParameterCounts {
  total: number;
  /** Parameters every token runs through: all but the routed experts (embeddings and head counted whole). */
  fixed: number;
  /** One routed expert of one layer. */
  perRoutedExpert: number;
  /** MoE layers (dense, router-less layers run their whole MLP and count in `fixed`). */
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
 * min(k, R) real experts (none when k exceeds the dynamic columns). Dense layers' MLPs are always active.
 */
export function parameterCounts(config: MoeLlmConfig): ParameterCounts {
  const shapes = moeLlmParamShapes(config);
  const numel = (s: number[] | undefined) => (s ?? []).reduce((a, b) => a * b, s ? 1 : 0);
  let total = 0;
  for (const s of shapes.values()) total += numel(s);
  const { R, Z, D } = moeDims(config);
  const moe = moeLayerIndices(config);
  const kinds = [["gate", "weight"], ["up", "weight"], ["down", "weight"], ["gate", "bias"], ["up", "bias"], ["down", "bias"]] as const;
  const perRoutedExpert = R > 0 && moe.length > 0 ? kinds.reduce((a, [p, kind]) => a + numel(shapes.get(paramNames.routed(moe[0]!, 0, p, kind))), 0) : 0;
  const fixed = total - moe.length * R * perRoutedExpert;
  const topP = architectureOf(config).routing === "uni_moe_top_p" && config.mlp_dynamic_top_p > 0;
  const k = Math.trunc(config.mlp_dynamic_top_k);
  const routedPerLayer = topP ? { min: Z > 0 ? 0 : 1, max: R } : k > D ? { min: 0, max: 0 } : { min: Math.max(0, k - Z), max: Math.min(k, R) };
  const at = (n: number) => fixed + moe.length * n * perRoutedExpert;
  return { total, fixed, perRoutedExpert, layers: moe.length, routedPerLayer, active: { min: at(routedPerLayer.min), max: at(routedPerLayer.max) } };
}
