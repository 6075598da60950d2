/**
 * Shared counting core of the routing metrics (metrics.ts) and the incremental aggregate
 * (aggregate.ts). Everything here is a sum over tokens, so two sets of sums add up to the sums of the
 * concatenated tokens; `finalize` turns sums into the metric shapes. One pass per layer over the
 * token rows, typed arrays, no per-token allocation.
 */
import type { ExpertInfo, Modality, Phase, RoutingTrace } from "../trace";

/** Column bookkeeping derived once from `trace.experts` (router column order). */
export interface ExpertLayout {
  /** Number of columns E (routed + null + shared). */
  E: number;
  /** Number of dynamic columns D (routed + null), the ones Top-P chooses among. */
  D: number;
  /** Number of routed columns R (the ones that carry load). */
  R: number;
  /** Dynamic index d → router column. */
  dynCols: Int32Array;
  /** Router column → dynamic index d, or -1 for shared columns. */
  dynOfCol: Int32Array;
  /** Dynamic index d → 1 if it is a null expert. */
  dynIsNull: Uint8Array;
  /** Routed index r → dynamic index d. */
  routedDyn: Int32Array;
  /** Router columns of the null experts. */
  nullCols: Int32Array;
  /** Router columns of the shared experts. */
  sharedCols: Int32Array;
}

export function expertLayout(experts: readonly ExpertInfo[]): ExpertLayout {
  const E = experts.length;
  const dyn: number[] = [];
  const routed: number[] = [];
  const nulls: number[] = [];
  const shared: number[] = [];
  const dynOfCol = new Int32Array(E).fill(-1);
  experts.forEach((e, c) => {
    if (e.role === "shared") shared.push(c);
    else if (e.role === "routed" || e.role === "null") {
      dynOfCol[c] = dyn.length;
      if (e.role === "routed") routed.push(dyn.length);
      else nulls.push(c);
      dyn.push(c);
    } else throw new Error(`expert ${c} (${JSON.stringify(e.name)}) has unknown role ${JSON.stringify(e.role)}`);
  });
  const D = dyn.length;
  const dynIsNull = new Uint8Array(D);
  for (let d = 0; d < D; d++) dynIsNull[d] = experts[dyn[d]!]!.role === "null" ? 1 : 0;
  return {
    E,
    D,
    R: routed.length,
    dynCols: Int32Array.from(dyn),
    dynOfCol,
    dynIsNull,
    routedDyn: Int32Array.from(routed),
    nullCols: Int32Array.from(nulls),
    sharedCols: Int32Array.from(shared),
  };
}

/** Sums for one layer over a set of tokens. */
export interface LayerSums {
  /** [D] tokens whose mask selects dynamic expert d. */
  selections: Float64Array;
  /** [D + 2] tokens with k = 0..D, and k > D (no dynamic expert: Uni-MoE's release can report D + 1) in the last (from `LayerTrace.k`). */
  kHist: Float64Array;
  /** Tokens whose mask selects at least one null expert. */
  nullTokens: number;
  /** Tokens whose selected dynamic experts are all null (and at least one). */
  nullOnlyTokens: number;
  /** Σ over tokens of the summed null-column weights. */
  nullWeight: number;
  /** Σ over tokens of the summed shared-column weights. */
  sharedWeight: number;
  /** Σ over tokens of the router entropy (nats) of softmax over the dynamic logits. */
  entropy: number;
  /** [D × D] symmetric: [a, b] = tokens selecting both a and b (a ≠ b); [a, a] = selections[a]. */
  coactivation: Float64Array;
  /** [D] tokens whose top expert (largest weight among selected dynamic experts) is d. */
  topCounts: Float64Array;
}

/** Relative difference below which two selected experts' weights tie for the top expert (metrics.ts). */
export const TOP_TIE = 1e-5;

/** Sums over a set of tokens, all layers. */
export interface Sums {
  tokens: number;
  byModality: Record<string, number>;
  byPhase: Record<string, number>;
  layers: LayerSums[];
  /** One [D × D] matrix per transition pair: [a, b] = tokens with top a at `from` and top b at `to`. */
  transitions: Float64Array[];
}

export type LayerPair = readonly [from: number, to: number];

export function adjacentPairs(numLayers: number): LayerPair[] {
  const out: LayerPair[] = [];
  for (let i = 0; i + 1 < numLayers; i++) out.push([i, i + 1]);
  return out;
}

export function checkPairs(pairs: readonly LayerPair[], numLayers: number): LayerPair[] {
  return pairs.map(([i, j]) => {
    if (!Number.isInteger(i) || !Number.isInteger(j) || i < 0 || j < 0 || i >= numLayers || j >= numLayers) {
      throw new RangeError(`transition pair [${i}, ${j}] is outside layers 0..${numLayers - 1}`);
    }
    return [i, j] as const;
  });
}

export function emptySums(lay: ExpertLayout, numLayers: number, numPairs: number): Sums {
  const D = lay.D;
  const layers: LayerSums[] = [];
  for (let l = 0; l < numLayers; l++) {
    layers.push({
      selections: new Float64Array(D),
      kHist: new Float64Array(D + 2),
      nullTokens: 0,
      nullOnlyTokens: 0,
      nullWeight: 0,
      sharedWeight: 0,
      entropy: 0,
      coactivation: new Float64Array(D * D),
      topCounts: new Float64Array(D),
    });
  }
  const transitions: Float64Array[] = [];
  for (let p = 0; p < numPairs; p++) transitions.push(new Float64Array(D * D));
  return { tokens: 0, byModality: {}, byPhase: {}, layers, transitions };
}

/** a += b (same layout, layer count and pairs). */
export function addSums(a: Sums, b: Sums): void {
  a.tokens += b.tokens;
  for (const [m, n] of Object.entries(b.byModality)) a.byModality[m] = (a.byModality[m] ?? 0) + n;
  for (const [p, n] of Object.entries(b.byPhase)) a.byPhase[p] = (a.byPhase[p] ?? 0) + n;
  const addArr = (x: Float64Array, y: Float64Array) => {
    for (let i = 0; i < x.length; i++) x[i]! += y[i]!;
  };
  a.layers.forEach((la, l) => {
    const lb = b.layers[l]!;
    addArr(la.selections, lb.selections);
    addArr(la.kHist, lb.kHist);
    la.nullTokens += lb.nullTokens;
    la.nullOnlyTokens += lb.nullOnlyTokens;
    la.nullWeight += lb.nullWeight;
    la.sharedWeight += lb.sharedWeight;
    la.entropy += lb.entropy;
    addArr(la.coactivation, lb.coactivation);
    addArr(la.topCounts, lb.topCounts);
  });
  a.transitions.forEach((t, p) => addArr(t, b.transitions[p]!));
}

/**
 * Adds the tokens `rows` (trace row indices) of `trace` to `sums`. Returns the per-token top expert
 * [L × rows.length] (layer-major; dynamic index, -1 when the token selected no dynamic expert).
 * `withEntropy: false` leaves the router entropy (the exps, over half the time) to the caller.
 */
export function accumulate(sums: Sums, lay: ExpertLayout, trace: RoutingTrace, rows: Int32Array, pairs: readonly LayerPair[], withEntropy = true): Int32Array {
  const { E, D, dynCols, dynIsNull, nullCols, sharedCols } = lay;
  const L = trace.layers.length;
  const n = rows.length;
  const top = new Int32Array(L * n);
  const list = new Int32Array(D);
  sums.tokens += n;
  for (let i = 0; i < n; i++) {
    const t = trace.tokens[rows[i]!]!;
    sums.byModality[t.modality] = (sums.byModality[t.modality] ?? 0) + 1;
    sums.byPhase[t.phase] = (sums.byPhase[t.phase] ?? 0) + 1;
  }
  for (let l = 0; l < L; l++) {
    const { routerLogits: z, mask, weights: w, k } = trace.layers[l]!;
    const s = sums.layers[l]!;
    const { selections, kHist, coactivation: co, topCounts } = s;
    let nullTokens = 0;
    let nullOnly = 0;
    let nullW = 0;
    let sharedW = 0;
    let ent = 0;
    const topOff = l * n;
    for (let i = 0; i < n; i++) {
      const r = rows[i]!;
      const base = r * E;
      const kk = k[r]!;
      if (!(kk >= 0)) throw new RangeError(`layer ${l}, token ${r}: k = ${kk} is negative`);
      kHist[Math.min(kk, D + 1)]!++;
      // Router entropy over the dynamic logits: H = ln S − Σ e_d (z_d − m) / S, e_d = exp(z_d − m).
      if (withEntropy) {
        let m = -Infinity;
        for (let d = 0; d < D; d++) {
          const v = z[base + dynCols[d]!]!;
          if (v > m) m = v;
        }
        if (m > -Infinity && m < Infinity) {
          let S = 0;
          let T = 0;
          for (let d = 0; d < D; d++) {
            const x = z[base + dynCols[d]!]! - m;
            const e = Math.exp(x);
            S += e;
            if (e > 0) T += e * x;
          }
          ent += Math.log(S) - T / S;
        }
      }
      // Selections, top expert, null use.
      let cnt = 0;
      let best = -1;
      let bw = -Infinity;
      let hasNull = false;
      let hasReal = false;
      for (let d = 0; d < D; d++) {
        const c = base + dynCols[d]!;
        if (mask[c] !== 0) {
          selections[d]!++;
          list[cnt++] = d;
          const wv = w[c]!;
          if (wv > bw) {
            bw = wv;
            best = d;
          }
          if (dynIsNull[d]) hasNull = true;
          else hasReal = true;
        }
      }
      if (best < 0 && cnt > 0) best = list[0]!; // all selected weights NaN: fall back to the first selected
      else if (cnt > 1) {
        // weights within TOP_TIE of the largest are a tie, won by the lowest column: equal weights (Uni-MoE's GRIN often
        // gives each chosen expert the same one) come out a float ulp apart on another provider or summation order
        for (let a = 0; a < cnt; a++) {
          if (w[base + dynCols[list[a]!]!]! >= bw - TOP_TIE * Math.abs(bw)) {
            best = list[a]!;
            break;
          }
        }
      }
      if (hasNull) {
        nullTokens++;
        if (!hasReal) nullOnly++;
      }
      for (let j = 0; j < nullCols.length; j++) nullW += w[base + nullCols[j]!]!;
      for (let j = 0; j < sharedCols.length; j++) sharedW += w[base + sharedCols[j]!]!;
      // Co-activation over all pairs of selected dynamic experts.
      for (let a = 0; a < cnt; a++) {
        const x = list[a]!;
        const row = x * D;
        co[row + x]!++;
        for (let b = a + 1; b < cnt; b++) {
          const y = list[b]!;
          co[row + y]!++;
          co[y * D + x]!++;
        }
      }
      top[topOff + i] = best;
      if (best >= 0) topCounts[best]!++;
    }
    s.nullTokens += nullTokens;
    s.nullOnlyTokens += nullOnly;
    s.nullWeight += nullW;
    s.sharedWeight += sharedW;
    s.entropy += ent;
  }
  pairs.forEach(([from, to], p) => {
    const m = sums.transitions[p]!;
    const a0 = from * n;
    const b0 = to * n;
    for (let i = 0; i < n; i++) {
      const a = top[a0 + i]!;
      const b = top[b0 + i]!;
      if (a >= 0 && b >= 0) m[a * D + b]!++;
    }
  });
  return top;
}

export const MODALITY_ORDER: readonly Modality[] = ["text", "image", "video", "audio", "speech"];
export const PHASE_ORDER: readonly Phase[] = ["prefill", "decode"];

/** Sorts group keys: known values in canonical order, then the rest alphabetically. */
export function orderKeys(keys: Iterable<string>, canonical: readonly string[]): string[] {
  const rank = (k: string) => {
    const i = canonical.indexOf(k);
    return i < 0 ? canonical.length : i;
  };
  return [...keys].sort((a, b) => rank(a) - rank(b) || (a < b ? -1 : a > b ? 1 : 0));
}
