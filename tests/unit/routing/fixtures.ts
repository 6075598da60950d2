import type { ExpertInfo, LayerTrace, RoutingTrace, TraceToken } from "../../../engine/trace";

/** Builds a LayerTrace from per-token rows. */
export function layer(rows: { z: number[]; m: number[]; w: number[]; k: number }[]): LayerTrace {
  return {
    routerLogits: Float32Array.from(rows.flatMap((r) => r.z)),
    mask: Uint8Array.from(rows.flatMap((r) => r.m)),
    weights: Float32Array.from(rows.flatMap((r) => r.w)),
    k: Int32Array.from(rows.map((r) => r.k)),
  };
}

export function tok(id: number, text: string, modality: TraceToken["modality"], phase: TraceToken["phase"]): TraceToken {
  return { id, text, modality, position: [id, id, id], phase };
}

/** Columns [R0, R1, N, S]: 2 routed, 1 null, 1 shared. */
export const EXPERTS4: ExpertInfo[] = [
  { name: "R0", role: "routed" },
  { name: "R1", role: "routed" },
  { name: "N", role: "null" },
  { name: "S", role: "shared" },
];

/**
 * 3 tokens × 2 layers × [R0, R1, N, S].
 *   t0 text prefill, t1 image prefill, t2 text decode.
 * Layer 0: t0 {R0} k1 w [.6 0 0 .4]; t1 {R0,R1,N} k3 w [.15 .25 .1 .5]; t2 {N} k1 (null-only) w [0 0 .7 .3]
 * Layer 1: t0 {R1,N} k2 w [0 .5 .25 .25]; t1 {R1} k1 w [0 .8 0 .2]; t2 {R0,R1} k2 w [.3 .3 0 .4] (weight tie)
 */
export function handTrace(): RoutingTrace {
  return {
    kind: "routing-trace",
    model: "hand",
    convention: "hand-written",
    experts: EXPERTS4,
    tokens: [tok(0, "Hi", "text", "prefill"), tok(1, "<img>", "image", "prefill"), tok(2, "yo", "text", "decode")],
    layers: [
      layer([
        { z: [2, 0, 0, 5], m: [1, 0, 0, 1], w: [0.6, 0, 0, 0.4], k: 1 },
        { z: [1, 1, 0, 3], m: [1, 1, 1, 1], w: [0.15, 0.25, 0.1, 0.5], k: 3 },
        { z: [0, 0, 3, 1], m: [0, 0, 1, 1], w: [0, 0, 0.7, 0.3], k: 1 },
      ]),
      layer([
        { z: [0, 0, 0, 0], m: [0, 1, 1, 1], w: [0, 0.5, 0.25, 0.25], k: 2 },
        { z: [0, 3, 0, 0], m: [0, 1, 0, 1], w: [0, 0.8, 0, 0.2], k: 1 },
        { z: [3, 0, 0, 0], m: [1, 1, 0, 1], w: [0.3, 0.3, 0, 0.4], k: 2 },
      ]),
    ],
  };
}

/** Entropies (nats) of softmax over the dynamic logits used above, computed by hand (see test). */
export const H = {
  z200: 0.6655726818986875, // [2,0,0] or any permutation
  z110: 1.0173572075552149, // [1,1,0]
  z300: 0.3665939608827352, // [3,0,0] or any permutation
  z000: Math.log(3), // uniform over 3: 1.0986122886681096
};

/** Strips what an aggregate cannot have (per-token output) for comparisons. */
export function countsOnly<T extends { perToken: unknown }>(m: T): Omit<T, "perToken"> {
  const { perToken: _omit, ...rest } = m;
  return rest;
}
