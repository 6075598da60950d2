/**
 * Capacity drops recorded in a routing trace (LayerTrace.dropped: the selection was made, then dropped because the
 * expert's capacity for that forward call was full), counted per layer over a set of tokens.
 */
import type { RoutingTrace } from "../trace";

export interface LayerDrops {
  layer: number;
  /** Dropped (token, expert) assignments. */
  assignments: number;
  /** Tokens that lost at least one expert. */
  tokens: number;
  /** [E] dropped assignments per router column. */
  perExpert: number[];
}

/** Drops of the tokens `rows` (trace row indices) per layer; null when no layer of the trace records drops. */
export function dropCounts(trace: RoutingTrace, rows: ArrayLike<number>): LayerDrops[] | null {
  if (!trace.layers.some((l) => l.dropped)) return null;
  const E = trace.experts.length;
  return trace.layers.map((l, layer) => {
    const perExpert = new Array<number>(E).fill(0);
    let assignments = 0, tokens = 0;
    const d = l.dropped;
    if (d)
      for (let i = 0; i < rows.length; i++) {
        const base = rows[i]! * E;
        let lost = 0;
        for (let c = 0; c < E; c++)
          if (d[base + c]) {
            perExpert[c]!++;
            lost++;
          }
        assignments += lost;
        if (lost) tokens++;
      }
    return { layer, assignments, tokens, perExpert };
  });
}

/** Names of the experts `row` lost at `layer` (empty without drops). */
export function droppedExperts(trace: RoutingTrace, layer: number, row: number): string[] {
  const d = trace.layers[layer]?.dropped;
  if (!d) return [];
  const E = trace.experts.length;
  return trace.experts.filter((_, c) => d[row * E + c]).map((e) => e.name);
}
