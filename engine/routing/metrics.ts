/**
 * Routing metrics of a RoutingTrace (PAPER.md §6, DESIGN.md "Routing trace"), per layer.
 *
 * Notation (per layer, over the N tokens of the chosen set):
 *   - columns follow `trace.experts` (router column order); the DYNAMIC experts are the routed and null
 *     columns (D of them, Top-P chooses among these), indexed d = 0..D-1 in column order; the ROUTED
 *     experts (R of them) are the dynamic ones that carry load; shared columns are always on.
 *     Every per-expert vector and matrix below is indexed by the dynamic index d (see `experts.dynamic`).
 *   - "selects d" means mask[token, column(d)] = 1. k is `LayerTrace.k` (null included).
 *
 * Definitions:
 *   selectionCounts[d]  = #tokens selecting d.
 *   tokenShare[d]       = selectionCounts[d] / N — the share of TOKENS that chose d (Fig. 7 reading);
 *                         the entries sum to the mean k, not to 1.
 *   selectionShare[d]   = selectionCounts[d] / Σ_d selectionCounts — the share of all dynamic SELECTIONS
 *                         (Σ_d selectionCounts = Σ_tokens k for a valid trace); sums to 1.
 *   kCounts[k], kShare[k] (k = 0..D + 1) = #tokens with that k, and / N (Fig. 8); k is the model's k before
 *                         capacity drops; the last bucket holds k > D (no dynamic expert: Uni-MoE's release reports
 *                         D + 1 when Top-P is never reached). k = 0 only when every dynamic expert is banned (or a
 *                         fixed top_k of 0); Σ kShare = 1. meanK = Σ k / N (a k above D + 1 counts as D + 1).
 *   nullTokenShare      = #tokens selecting at least one null expert / N.
 *   nullOnlyShare       = #tokens whose selected dynamic experts are all null (≥ 1) / N.
 *   nullWeightMass      = mean over tokens of Σ null-column weights.
 *   sharedWeightShare   = mean over tokens of Σ shared-column weights.
 *   routedLoad[r]       = selectionCounts of the r-th routed expert (x_r; n = R).
 *   loadMean            = Σx / n.  loadCV = σ / mean with the POPULATION σ = sqrt(Σ(x − mean)² / n).
 *   maxVio              = max x / mean − 1.   jain = (Σx)² / (n · Σx²), in [1/n, 1].
 *   entropy             = mean over tokens of H = −Σ_d p_d ln p_d, p = softmax over the D dynamic
 *                         router logits (nats); entropyNormalized = entropy / ln D (0 when D = 1).
 *   coactivation        = [D × D] symmetric counts over ALL pairs of selected dynamic experts of a token
 *                         ([a, b] += 1 and [b, a] += 1 for every a ≠ b both selected: a token with k = 3
 *                         adds 3 pairs); diagonal [d, d] = selectionCounts[d]. Row-major Float64Array.
 *   top expert          = the selected dynamic expert with the largest weight (ties: lowest column; weights within
 *                         TOP_TIE = 1e-5 relative of the largest tie, so float noise does not pick among equal weights);
 *                         -1 when the token selected no dynamic expert. topCounts[d] = #tokens whose top is d.
 *   transitions         = for each layer pair (from → to) (default every (i, i + 1)): [D × D] counts,
 *                         [a, b] = #tokens with top a at `from` and top b at `to` (tokens with -1 at either
 *                         layer are left out); `tokens` = Σ counts.
 *   perToken.topExpert  = [L × N] layer-major (layer l, n-th token of the set at l·N + n).
 *
 * Edge cases (no NaN anywhere for valid input):
 *   - N = 0 (empty trace, empty filter or empty group): every count and share is 0, meanK = 0,
 *     entropy = 0, Σ kShare = 0; balance metrics as for zero load (below); perToken arrays are empty.
 *   - Zero routed load (N = 0, or every token chose only null experts, or R = 0): the load is "all equal"
 *     so loadCV = 0, maxVio = 0, jain = 1, and `hasLoad` = false so a view can grey them out.
 *   - One token, or all tokens on one routed expert (with R routed experts): loadCV = sqrt(R − 1),
 *     maxVio = R − 1, jain = 1/R (the most unfair value).
 *   - Null-only tokens count in nullTokenShare and nullOnlyShare, add no routed load, and their top
 *     expert is the null column.
 *   - Logits that are all −∞ give entropy 0 for that token; −∞ entries get p = 0.
 */
import { layerIds, type ExpertInfo, type Modality, type Phase, type RoutingTrace } from "../trace";
import {
  MODALITY_ORDER,
  PHASE_ORDER,
  accumulate,
  adjacentPairs,
  checkPairs,
  emptySums,
  expertLayout,
  orderKeys,
  type ExpertLayout,
  type LayerPair,
  type Sums,
} from "./core";

export type { LayerPair } from "./core";

/** Tokens to include; every given criterion must hold (AND). */
export interface TokenFilter {
  modality?: Modality | readonly Modality[];
  phase?: Phase | readonly Phase[];
  /** Explicit trace row indices (0-based, no duplicates); output follows this order. */
  indices?: ArrayLike<number>;
}

export type SplitKey = "modality" | "phase";

export interface MetricsOptions {
  filter?: TokenFilter;
  /** Layer pairs for the transition counts; default every adjacent pair (i, i + 1). */
  transitions?: readonly LayerPair[];
  /**
   * false: skip the router entropy (entropy and entropyNormalized are NaN) to fill it in later with
   * withEntropy(m, routerEntropySums(...)), e.g. from a Web Worker. Default true.
   */
  entropy?: boolean;
}

export interface DynamicExpert {
  /** Dynamic index d (position among routed + null columns). */
  index: number;
  /** Router column in `trace.experts`. */
  column: number;
  name: string;
  role: "routed" | "null";
}

export interface LayerMetrics {
  layer: number;
  tokens: number;
  selectionCounts: number[];
  tokenShare: number[];
  selectionShare: number[];
  totalSelections: number;
  kCounts: number[];
  kShare: number[];
  meanK: number;
  nullTokenShare: number;
  nullOnlyShare: number;
  nullWeightMass: number;
  sharedWeightShare: number;
  routedLoad: number[];
  hasLoad: boolean;
  loadMean: number;
  loadCV: number;
  maxVio: number;
  jain: number;
  entropy: number;
  entropyNormalized: number;
  coactivation: Float64Array;
  topCounts: number[];
}

export interface TransitionMetrics {
  from: number;
  to: number;
  /** [D × D] row-major: [a · D + b]. */
  counts: Float64Array;
  tokens: number;
}

export interface PerTokenMetrics {
  /** Trace row of each token of the set, in set order. */
  tokenIndices: Int32Array;
  /** [L × N] layer-major top expert (dynamic index, -1 = none). */
  topExpert: Int32Array;
}

export interface RoutingMetrics {
  /** N, the number of tokens in the set. */
  tokens: number;
  /** Token counts of the set by modality and by phase (only the values present). */
  byModality: Record<string, number>;
  byPhase: Record<string, number>;
  experts: {
    dynamic: DynamicExpert[];
    /** Dynamic indices of the routed experts (the order of `routedLoad`). */
    routed: number[];
    /** Dynamic indices of the null experts. */
    nulls: number[];
    shared: { column: number; name: string }[];
  };
  layers: LayerMetrics[];
  transitions: TransitionMetrics[];
  /** Per-token results; null when computed from an aggregate (which keeps no tokens). */
  perToken: PerTokenMetrics | null;
}

/** Trace rows matching the filter, in trace order (or in `indices` order). */
export function selectTokens(trace: RoutingTrace, filter?: TokenFilter): Int32Array {
  const N = trace.tokens.length;
  const asSet = <T>(v: T | readonly T[] | undefined) => (v === undefined ? null : new Set<T>(Array.isArray(v) ? (v as T[]) : [v as T]));
  const mods = asSet(filter?.modality);
  const phases = asSet(filter?.phase);
  const keep = (r: number) => {
    const t = trace.tokens[r]!;
    return (!mods || mods.has(t.modality)) && (!phases || phases.has(t.phase));
  };
  if (filter?.indices) {
    const idx = filter.indices;
    const seen = new Uint8Array(N);
    const out: number[] = [];
    for (let i = 0; i < idx.length; i++) {
      const r = idx[i]!;
      if (!Number.isInteger(r) || r < 0 || r >= N) throw new RangeError(`token index ${r} is outside 0..${N - 1}`);
      if (seen[r]) throw new RangeError(`token index ${r} is listed twice`);
      seen[r] = 1;
      if (keep(r)) out.push(r);
    }
    return Int32Array.from(out);
  }
  if (!mods && !phases) {
    const all = new Int32Array(N);
    for (let r = 0; r < N; r++) all[r] = r;
    return all;
  }
  const out: number[] = [];
  for (let r = 0; r < N; r++) if (keep(r)) out.push(r);
  return Int32Array.from(out);
}

/** Shapes checks the metrics rely on (cheap: lengths only). */
export function checkShapes(trace: RoutingTrace): void {
  const N = trace.tokens.length;
  const E = trace.experts.length;
  trace.layers.forEach((l, i) => {
    const want = N * E;
    for (const [name, arr, len] of [
      ["routerLogits", l.routerLogits, want],
      ["mask", l.mask, want],
      ["weights", l.weights, want],
      ["k", l.k, N],
    ] as const) {
      if (arr.length !== len) throw new RangeError(`layer ${i}: ${name} has ${arr.length} values, expected ${len} (N = ${N}, E = ${E})`);
    }
  });
}

export function expertsSummary(experts: readonly ExpertInfo[], lay: ExpertLayout): RoutingMetrics["experts"] {
  const dynamic: DynamicExpert[] = Array.from(lay.dynCols, (c, d) => ({ index: d, column: c, name: experts[c]!.name, role: experts[c]!.role as "routed" | "null" }));
  return {
    dynamic,
    routed: Array.from(lay.routedDyn),
    nulls: dynamic.filter((e) => e.role === "null").map((e) => e.index),
    shared: Array.from(lay.sharedCols, (c) => ({ column: c, name: experts[c]!.name })),
  };
}

/** Turns sums into metrics (shared by computeMetrics and RoutingAggregate.metrics). */
export function finalize(sums: Sums, experts: readonly ExpertInfo[], lay: ExpertLayout, pairs: readonly LayerPair[], perToken: PerTokenMetrics | null): RoutingMetrics {
  const N = sums.tokens;
  const { D, R } = lay;
  const per = (x: number) => (N > 0 ? x / N : 0);
  const layers = sums.layers.map((s, l): LayerMetrics => {
    const sel = Array.from(s.selections);
    const total = sel.reduce((a, b) => a + b, 0);
    const kCounts = Array.from(s.kHist);
    let kSum = 0;
    kCounts.forEach((c, k) => (kSum += c * k));
    const load = Array.from(lay.routedDyn, (d) => sel[d]!);
    let sum = 0;
    let sumSq = 0;
    let max = 0;
    for (const x of load) {
      sum += x;
      sumSq += x * x;
      if (x > max) max = x;
    }
    const hasLoad = R > 0 && sum > 0;
    let loadMean = R > 0 ? sum / R : 0;
    let loadCV = 0;
    let maxVio = 0;
    let jain = 1;
    if (hasLoad) {
      let v = 0;
      for (const x of load) v += (x - loadMean) * (x - loadMean);
      loadCV = Math.sqrt(v / R) / loadMean;
      maxVio = max / loadMean - 1;
      jain = (sum * sum) / (R * sumSq);
    } else loadMean = 0;
    const entropy = per(s.entropy);
    return {
      layer: l,
      tokens: N,
      selectionCounts: sel,
      tokenShare: sel.map(per),
      selectionShare: sel.map((c) => (total > 0 ? c / total : 0)),
      totalSelections: total,
      kCounts,
      kShare: kCounts.map(per),
      meanK: per(kSum),
      nullTokenShare: per(s.nullTokens),
      nullOnlyShare: per(s.nullOnlyTokens),
      nullWeightMass: per(s.nullWeight),
      sharedWeightShare: per(s.sharedWeight),
      routedLoad: load,
      hasLoad,
      loadMean,
      loadCV,
      maxVio,
      jain,
      entropy,
      entropyNormalized: D > 1 ? entropy / Math.log(D) : 0,
      coactivation: Float64Array.from(s.coactivation),
      topCounts: Array.from(s.topCounts),
    };
  });
  const transitions = pairs.map(([from, to], p): TransitionMetrics => {
    const counts = Float64Array.from(sums.transitions[p]!);
    let tokens = 0;
    for (let i = 0; i < counts.length; i++) tokens += counts[i]!;
    return { from, to, counts, tokens };
  });
  return {
    tokens: N,
    byModality: { ...sums.byModality },
    byPhase: { ...sums.byPhase },
    experts: expertsSummary(experts, lay),
    layers,
    transitions,
    perToken,
  };
}

function metricsOfRows(trace: RoutingTrace, lay: ExpertLayout, rows: Int32Array, pairs: readonly LayerPair[], entropy: boolean): RoutingMetrics {
  const sums = emptySums(lay, trace.layers.length, pairs.length);
  const top = accumulate(sums, lay, trace, rows, pairs, false);
  if (entropy) {
    const h = routerEntropySums(trace.layers.map((l) => l.routerLogits), lay.E, lay.dynCols, rows);
    sums.layers.forEach((s, l) => (s.entropy = h[l]!));
  }
  const m = labelLayers(finalize(sums, trace.experts, lay, pairs, { tokenIndices: rows, topExpert: top }), trace);
  if (!entropy) for (const l of m.layers) l.entropy = l.entropyNormalized = NaN;
  return m;
}

/** Reference path (core.accumulate, one loop doing everything): what the fast path is tested against. */
export function computeMetricsReference(trace: RoutingTrace, options: MetricsOptions = {}): RoutingMetrics {
  checkShapes(trace);
  const lay = expertLayout(trace.experts);
  const pairs = checkPairs(options.transitions ?? adjacentPairs(trace.layers.length), trace.layers.length);
  const rows = selectTokens(trace, options.filter);
  const sums = emptySums(lay, trace.layers.length, pairs.length);
  const top = accumulate(sums, lay, trace, rows, pairs);
  return labelLayers(finalize(sums, trace.experts, lay, pairs, { tokenIndices: rows, topExpert: top }), trace);
}

/** Metrics name each layer by its decoder index (a model with dense layers has gaps: DeepSeek's MoE layers start at 1…). */
function labelLayers(m: RoutingMetrics, trace: RoutingTrace): RoutingMetrics {
  const ids = layerIds(trace);
  m.layers.forEach((l, i) => (l.layer = ids[i]!));
  return m;
}

/**
 * Σ over `rows` of the router entropy H = −Σ_d p_d ln p_d, p = softmax over the dynamic logits, per
 * layer (nats): the part of the metrics that needs exps (D per token and layer, over half the time).
 * Self-contained (no outer references) so that a Web Worker can run its source text; the same
 * arithmetic as core.accumulate: H = ln S − Σ e_d (z_d − m) / S, e_d = exp(z_d − m).
 */
export function routerEntropySums(logits: readonly ArrayLike<number>[], E: number, dynCols: ArrayLike<number>, rows: ArrayLike<number>): Float64Array {
  const D = dynCols.length;
  const n = rows.length;
  const out = new Float64Array(logits.length);
  const zs = new Float64Array(D);
  for (let l = 0; l < logits.length; l++) {
    const z = logits[l]!;
    let ent = 0;
    for (let i = 0; i < n; i++) {
      const base = rows[i]! * E;
      let m = -Infinity;
      for (let d = 0; d < D; d++) {
        const v = z[base + dynCols[d]!]!;
        zs[d] = v;
        if (v > m) m = v;
      }
      if (m > -Infinity && m < Infinity) {
        let S = 0;
        let T = 0;
        for (let d = 0; d < D; d++) {
          const x = zs[d]! - m;
          const e = Math.exp(x);
          S += e;
          if (e > 0) T += e * x;
        }
        ent += Math.log(S) - T / S;
      }
    }
    out[l] = ent;
  }
  return out;
}

/** `m` with the entropy of each layer from `sums` (routerEntropySums over the same tokens). */
export function withEntropy(m: RoutingMetrics, sums: ArrayLike<number>): RoutingMetrics {
  const D = m.experts.dynamic.length;
  return {
    ...m,
    layers: m.layers.map((l, i) => {
      const entropy = m.tokens > 0 ? sums[i]! / m.tokens : 0;
      return { ...l, entropy, entropyNormalized: D > 1 ? entropy / Math.log(D) : 0 };
    }),
  };
}

export function splitRows(trace: RoutingTrace, rows: Int32Array, splitBy: SplitKey): Map<string, Int32Array> {
  const groups = new Map<string, number[]>();
  for (const r of rows) {
    const t = trace.tokens[r]!;
    const key = splitBy === "modality" ? t.modality : t.phase;
    let g = groups.get(key);
    if (!g) groups.set(key, (g = []));
    g.push(r);
  }
  const out = new Map<string, Int32Array>();
  for (const key of orderKeys(groups.keys(), splitBy === "modality" ? MODALITY_ORDER : PHASE_ORDER)) out.set(key, Int32Array.from(groups.get(key)!));
  return out;
}

/**
 * Metrics of the trace's tokens (all, or `filter`ed). With `splitBy`, one RoutingMetrics per modality
 * or phase present in the (filtered) set, keyed by its value, in canonical order.
 */
export function computeMetrics(trace: RoutingTrace, options: MetricsOptions & { splitBy: SplitKey }): Record<string, RoutingMetrics>;
export function computeMetrics(trace: RoutingTrace, options?: MetricsOptions & { splitBy?: undefined }): RoutingMetrics;
export function computeMetrics(trace: RoutingTrace, options: MetricsOptions & { splitBy?: SplitKey }): RoutingMetrics | Record<string, RoutingMetrics>;
export function computeMetrics(trace: RoutingTrace, options: MetricsOptions & { splitBy?: SplitKey } = {}): RoutingMetrics | Record<string, RoutingMetrics> {
  checkShapes(trace);
  const lay = expertLayout(trace.experts);
  const pairs = checkPairs(options.transitions ?? adjacentPairs(trace.layers.length), trace.layers.length);
  const rows = selectTokens(trace, options.filter);
  const entropy = options.entropy ?? true;
  if (!options.splitBy) return metricsOfRows(trace, lay, rows, pairs, entropy);
  const out: Record<string, RoutingMetrics> = {};
  for (const [key, g] of splitRows(trace, rows, options.splitBy)) out[key] = metricsOfRows(trace, lay, g, pairs, entropy);
  return out;
}

/**
 * RoutingMetrics as plain JSON for storage (the Routing Inspector node writes the "all tokens" metrics of
 * its trace so the browser need not recompute them). Counts and scalars only: the shares and the routed
 * load are derived again on reading (the same divisions as finalize), per-token results are left out.
 */
export interface MetricsJSON {
  kind: "routing-metrics";
  version: 1;
  tokens: number;
  byModality: Record<string, number>;
  byPhase: Record<string, number>;
  experts: RoutingMetrics["experts"];
  layers: {
    layer: number;
    selectionCounts: number[];
    kCounts: number[];
    nullTokenShare: number;
    nullOnlyShare: number;
    nullWeightMass: number;
    sharedWeightShare: number;
    loadCV: number;
    maxVio: number;
    jain: number;
    entropy: number;
    /** [D × D] row-major. */
    coactivation: number[];
    topCounts: number[];
  }[];
  transitions: { from: number; to: number; counts: number[] }[];
}

export function metricsToJSON(m: RoutingMetrics): MetricsJSON {
  return {
    kind: "routing-metrics",
    version: 1,
    tokens: m.tokens,
    byModality: { ...m.byModality },
    byPhase: { ...m.byPhase },
    experts: m.experts,
    layers: m.layers.map((l) => ({
      layer: l.layer,
      selectionCounts: l.selectionCounts,
      kCounts: l.kCounts,
      nullTokenShare: l.nullTokenShare,
      nullOnlyShare: l.nullOnlyShare,
      nullWeightMass: l.nullWeightMass,
      sharedWeightShare: l.sharedWeightShare,
      loadCV: l.loadCV,
      maxVio: l.maxVio,
      jain: l.jain,
      entropy: l.entropy,
      coactivation: Array.from(l.coactivation),
      topCounts: l.topCounts,
    })),
    transitions: m.transitions.map((t) => ({ from: t.from, to: t.to, counts: Array.from(t.counts) })),
  };
}

/** The RoutingMetrics of metricsToJSON's output (perToken null); throws on anything else. */
export function metricsFromJSON(input: unknown): RoutingMetrics {
  const j = input as MetricsJSON;
  if (!j || j.kind !== "routing-metrics" || j.version !== 1 || !Array.isArray(j.layers) || !Array.isArray(j.transitions)) throw new Error("not a routing-metrics file (version 1)");
  const N = j.tokens;
  const D = j.experts.dynamic.length;
  const per = (x: number) => (N > 0 ? x / N : 0);
  const layers = j.layers.map((l): LayerMetrics => {
    const sel = l.selectionCounts;
    if (sel.length !== D || l.coactivation.length !== D * D) throw new Error(`routing metrics, layer ${l.layer}: expected ${D} experts`);
    const total = sel.reduce((a, b) => a + b, 0);
    let kSum = 0;
    l.kCounts.forEach((c, k) => (kSum += c * k));
    const load = j.experts.routed.map((d) => sel[d]!);
    const R = load.length;
    const loadSum = load.reduce((a, b) => a + b, 0);
    const hasLoad = R > 0 && loadSum > 0;
    const entropy = l.entropy;
    return {
      layer: l.layer,
      tokens: N,
      selectionCounts: sel,
      tokenShare: sel.map(per),
      selectionShare: sel.map((c) => (total > 0 ? c / total : 0)),
      totalSelections: total,
      kCounts: l.kCounts,
      kShare: l.kCounts.map(per),
      meanK: per(kSum),
      nullTokenShare: l.nullTokenShare,
      nullOnlyShare: l.nullOnlyShare,
      nullWeightMass: l.nullWeightMass,
      sharedWeightShare: l.sharedWeightShare,
      routedLoad: load,
      hasLoad,
      loadMean: hasLoad ? loadSum / R : 0,
      loadCV: l.loadCV,
      maxVio: l.maxVio,
      jain: l.jain,
      entropy,
      entropyNormalized: D > 1 ? entropy / Math.log(D) : 0,
      coactivation: Float64Array.from(l.coactivation),
      topCounts: l.topCounts,
    };
  });
  const transitions = j.transitions.map((t): TransitionMetrics => {
    const counts = Float64Array.from(t.counts);
    let tokens = 0;
    for (let i = 0; i < counts.length; i++) tokens += counts[i]!;
    return { from: t.from, to: t.to, counts, tokens };
  });
  return { tokens: N, byModality: { ...j.byModality }, byPhase: { ...j.byPhase }, experts: j.experts, layers, transitions, perToken: null };
}
