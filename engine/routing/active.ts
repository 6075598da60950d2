/**
 * Active parameters per token as an expectation over a trace's tokens: under Top-P routing the routed experts a token
 * runs vary, so a model's "active parameters" is a range (models/moe-llm/parameters.ts); a trace says what these tokens ran.
 *   expected = fixed + perRoutedExpert × Σ_layers (mean over the tokens of the routed experts selected, after drops)
 * Null experts have no parameters; shared experts are in `fixed`.
 */
import type { RoutingTrace } from "../trace";

export interface ActiveEstimate {
  expected: number;
  total: number;
  /** Mean over layers and tokens of k (as the model reports it, null experts included). */
  meanK: number;
  /** Mean over layers and tokens of the routed experts run. */
  routedPerLayer: number;
}

/** Null when the trace does not carry its model's parameter counts, or has no tokens. */
export function activeParameters(trace: RoutingTrace, rows?: ArrayLike<number>): ActiveEstimate | null {
  const p = trace.parameters;
  const N = rows ? rows.length : trace.tokens.length;
  if (!p || N === 0 || trace.layers.length === 0) return null;
  const E = trace.experts.length;
  const routed = trace.experts.flatMap((e, c) => (e.role === "routed" ? [c] : []));
  let runs = 0, kSum = 0;
  for (const l of trace.layers)
    for (let i = 0; i < N; i++) {
      const n = rows ? rows[i]! : i;
      kSum += l.k[n]!;
      for (const c of routed) runs += l.mask[n * E + c]!;
    }
  const L = trace.layers.length;
  return { expected: p.fixed + (p.perRoutedExpert * runs) / N, total: p.total, meanK: kSum / (N * L), routedPerLayer: runs / (N * L) };
}
