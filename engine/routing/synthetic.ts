/**
 * Seeded synthetic routing traces (for tests and benchmarks): valid masks, k and weights following the
 * Uni-MoE-2.0 dynamic-capacity convention (PAPER.md §2) with unit GRIN multipliers:
 * p = softmax over the dynamic logits; k = smallest k whose sorted cumulative p reaches P; the top-k
 * dynamic experts by logit are chosen; g = softmax of the logits over the chosen + shared columns;
 * dynamic weight = (p_e / Σ_chosen p) · Σ_chosen g, shared weight = g. Rows sum to 1.
 */
import type { ExpertInfo, LayerTrace, Modality, Phase, RoutingTrace, TraceToken } from "../trace";

export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface SyntheticOptions {
  seed?: number;
  layers?: number;
  tokens?: number;
  routed?: number;
  nulls?: number;
  shared?: number;
  /** Top-P threshold (default 0.7). */
  P?: number;
  /** Logit scale: larger → peakier routing, smaller k (default 2). */
  scale?: number;
  /** Modalities drawn per token (default text, image, audio). */
  modalities?: readonly Modality[];
  /** Share of tokens (the last ones) in the decode phase (default 0.25). */
  decodeShare?: number;
}

export function syntheticExperts(routed: number, nulls: number, shared: number): ExpertInfo[] {
  const out: ExpertInfo[] = [];
  for (let i = 0; i < routed; i++) out.push({ name: `E${i + 1}`, role: "routed" });
  for (let i = 0; i < nulls; i++) out.push({ name: nulls === 1 ? "null" : `null${i}`, role: "null" });
  for (let i = 0; i < shared; i++) out.push({ name: `S${i + 1}`, role: "shared" });
  return out;
}

export function syntheticTrace(o: SyntheticOptions = {}): RoutingTrace {
  const rnd = mulberry32(o.seed ?? 1);
  const L = o.layers ?? 4;
  const N = o.tokens ?? 32;
  const experts = syntheticExperts(o.routed ?? 4, o.nulls ?? 1, o.shared ?? 2);
  const E = experts.length;
  const D = (o.routed ?? 4) + (o.nulls ?? 1);
  const P = o.P ?? 0.7;
  const scale = o.scale ?? 2;
  const mods = o.modalities ?? ["text", "image", "audio"];
  const decodeFrom = Math.round(N * (1 - (o.decodeShare ?? 0.25)));
  const tokens: TraceToken[] = [];
  for (let n = 0; n < N; n++) {
    const phase: Phase = n >= decodeFrom ? "decode" : "prefill";
    const modality = phase === "decode" ? "text" : mods[Math.floor(rnd() * mods.length)]!;
    tokens.push({ id: Math.floor(rnd() * 1000), text: `t${n}`, modality, position: [n, n, n], phase });
  }
  const normal = () => Math.sqrt(-2 * Math.log(1 - rnd())) * Math.cos(2 * Math.PI * rnd());
  const order = new Int32Array(D);
  const p = new Float64Array(D);
  const g = new Float64Array(E);
  const layers: LayerTrace[] = [];
  for (let l = 0; l < L; l++) {
    const bias = Float64Array.from({ length: E }, () => normal());
    const routerLogits = new Float32Array(N * E);
    const mask = new Uint8Array(N * E);
    const weights = new Float32Array(N * E);
    const k = new Int32Array(N);
    for (let n = 0; n < N; n++) {
      const b = n * E;
      for (let c = 0; c < E; c++) routerLogits[b + c] = scale * (normal() + bias[c]!);
      let m = -Infinity;
      for (let d = 0; d < D; d++) m = Math.max(m, routerLogits[b + d]!);
      let s = 0;
      for (let d = 0; d < D; d++) s += p[d] = Math.exp(routerLogits[b + d]! - m);
      for (let d = 0; d < D; d++) {
        p[d]! /= s;
        order[d] = d;
      }
      order.sort((x, y) => p[y]! - p[x]! || x - y);
      let kk = 0;
      let cum = 0;
      while (kk < D && (kk === 0 || cum < P)) cum += p[order[kk++]!]!;
      k[n] = kk;
      for (let i = 0; i < kk; i++) mask[b + order[i]!] = 1;
      for (let c = D; c < E; c++) mask[b + c] = 1;
      let gm = -Infinity;
      for (let c = 0; c < E; c++) if (mask[b + c]) gm = Math.max(gm, routerLogits[b + c]!);
      let gs = 0;
      for (let c = 0; c < E; c++) gs += g[c] = mask[b + c] ? Math.exp(routerLogits[b + c]! - gm) : 0;
      let gDyn = 0;
      let pSel = 0;
      for (let i = 0; i < kk; i++) {
        gDyn += g[order[i]!]! / gs;
        pSel += p[order[i]!]!;
      }
      for (let i = 0; i < kk; i++) weights[b + order[i]!] = (p[order[i]!]! / pSel) * gDyn;
      for (let c = D; c < E; c++) weights[b + c] = g[c]! / gs;
    }
    layers.push({ routerLogits, mask, weights, k });
  }
  return { kind: "routing-trace", model: "synthetic", convention: "synthetic Uni-MoE-style dynamic capacity (seeded)", experts, tokens, layers };
}
