/**
 * Comparison of two routing traces (e.g. a baseline and an intervention on the same prompt, or two
 * models with the same expert layout), layer by layer. Every per-layer figure is a difference b − a of
 * the metric defined in metrics.ts, each trace measured over ALL its own tokens:
 *
 *   tokenShare[d]      Δ share of tokens selecting dynamic expert d (routed and null), d in A's dynamic order
 *   kShare[k]          Δ share of tokens with k = 0..D, and k > D (the last entry)
 *   meanK              Δ mean k
 *   nullTokenShare     Δ share of tokens selecting at least one null expert
 *   sharedWeightShare  Δ mean shared-column weight
 *   loadCV, maxVio, jain, entropy   Δ of those metrics (a side with no routed load has CV 0, MaxVio 0, Jain 1)
 *
 * Experts are matched by NAME: every expert of A must appear exactly once in B with the same role, and
 * B must have no other experts (B's columns may be in another order; they are mapped onto A's order).
 * Layer counts must be equal. Otherwise `compareTraces` throws a TraceMismatchError saying what differs.
 *
 * Top-expert agreement: the common prefix is the longest run of leading tokens with the same ids in
 * both traces (P tokens). For each layer, agreement = #tokens among those P whose top expert (metrics.ts:
 * the selected dynamic expert with the largest weight, ties → lowest column; matched by name) is the same
 * in A and B, / P. Two tokens that both selected no dynamic expert count as agreeing. With P = 0 (no
 * common prefix, or an empty trace) `agreement` is null. `meanAgreement` is the mean over layers (null
 * when there are no layers or no common prefix).
 *
 * Routing differences (e.g. the same input routed in fp32 and in bf16): over the same P common tokens, per layer, the
 * tokens whose k differs and those whose set of selected experts (mask, after any capacity drops; matched by name)
 * differs, with the first MAX_LISTED of them side by side (k, selected and dropped experts in A and in B).
 * Routing agreement (`setAgreement`, e.g. a quantised model against its full-precision twin): per layer, the share of
 * the P common tokens whose expert set is identical (1 − setDiffers / P); `mean` over layers.
 *
 * Logits (`logits`): when both traces keep their next-token logits in brief (engine/routing/logits.ts), the
 * difference over the P common rows; otherwise null with `logitsNote` saying why.
 */
import type { ExpertRole, RoutingTrace } from "../trace";
import { computeMetrics, type LayerMetrics, type RoutingMetrics } from "./metrics";
import { compareLogits, logitsUncomparable, type LogitComparison } from "./logits";

export class TraceMismatchError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "TraceMismatchError";
  }
}

export interface LayerDelta {
  layer: number;
  /** [D] b − a, indexed by A's dynamic index (see `experts.dynamic`). */
  tokenShare: number[];
  /** [D + 2] b − a for k = 0..D and k > D. */
  kShare: number[];
  meanK: number;
  nullTokenShare: number;
  sharedWeightShare: number;
  loadCV: number;
  maxVio: number;
  jain: number;
  entropy: number;
}

export interface TopExpertAgreement {
  /** P: leading tokens with the same ids in both traces. */
  commonPrefix: number;
  /** [L] share of the P tokens whose top expert is unchanged, per layer. */
  perLayer: number[];
  /** [L] number of those tokens, per layer. */
  agreeing: number[];
  /** Mean of perLayer (null when L = 0). */
  mean: number | null;
}

/** One token whose routing differs at a layer: what each trace did. */
export interface TokenRouting {
  k: number;
  /** Selected experts (mask 1), by name, in column order. */
  experts: string[];
  /** Experts dropped over capacity. */
  dropped: string[];
}

export interface LayerRoutingDiff {
  layer: number;
  /** Common tokens whose k differs / whose expert set differs / either. */
  kDiffers: number;
  setDiffers: number;
  differs: number;
  /** Tokens differing in either, at most MAX_LISTED, in token order. */
  tokens: { token: number; text: string; a: TokenRouting; b: TokenRouting }[];
}

/** How many differing tokens per layer a comparison lists. */
export const MAX_LISTED = 200;

export interface TraceSide {
  model: string;
  tokens: number;
  routingPrecision?: "fp32" | "bf16";
  /** The model's weight-only quantisation label (e.g. "int4 (block 32, symmetric)"), absent for full precision. */
  quantization?: string;
}

export interface TraceComparison {
  a: TraceSide;
  b: TraceSide;
  layers: number;
  experts: {
    /** Dynamic experts in A's order: the index of every per-expert delta. */
    dynamic: { index: number; name: string; role: "routed" | "null" }[];
    shared: string[];
  };
  /** Per-layer deltas b − a. */
  perLayer: LayerDelta[];
  /** null when the traces have no common token prefix. */
  agreement: TopExpertAgreement | null;
  /** Tokens routed differently (k or expert set) per layer, over the common prefix; null without one. */
  routingDiff: LayerRoutingDiff[] | null;
  /** Share of the common tokens with the identical expert set, per layer; null without a common prefix. */
  setAgreement: { perLayer: number[]; mean: number | null } | null;
  /** Next-token logits over the common tokens; null (with logitsNote) when they cannot be compared. */
  logits: LogitComparison | null;
  logitsNote?: string;
}

export interface ComparisonSummary {
  /** Largest |Δ tokenShare| over layers and dynamic experts (signed value in `shareDelta`); first one on ties. */
  maxAbsShareDelta: number;
  shareDelta: number;
  /** Where it is; null when there is no layer or no dynamic expert. */
  layer: number | null;
  expert: string | null;
  /** Mean over layers of the top-expert agreement; null without a common prefix. */
  meanTopAgreement: number | null;
  commonPrefix: number;
  /** (token, layer) pairs of the common prefix whose k or expert set differs; null without a common prefix. */
  routedDifferently: number | null;
  /** Mean over layers of the share of common tokens with the identical expert set; null without a common prefix. */
  meanSetAgreement: number | null;
  /** Largest |Δ logit| over the common tokens' sampled ids; null when the logits cannot be compared. */
  maxAbsLogitDelta: number | null;
}

function checkExperts(a: RoutingTrace, b: RoutingTrace): Map<string, number> {
  const index = (t: RoutingTrace, which: string) => {
    const m = new Map<string, number>();
    t.experts.forEach((e, c) => {
      if (m.has(e.name)) throw new TraceMismatchError(`trace ${which} has two experts named ${JSON.stringify(e.name)} (columns ${m.get(e.name)} and ${c}); experts are matched by name`);
      m.set(e.name, c);
    });
    return m;
  };
  index(a, "A");
  const inB = index(b, "B");
  const problems: string[] = [];
  const roleOf = new Map<string, ExpertRole>(a.experts.map((e) => [e.name, e.role]));
  for (const e of a.experts) {
    const c = inB.get(e.name);
    if (c === undefined) problems.push(`${JSON.stringify(e.name)} (${e.role}) is only in A`);
    else if (b.experts[c]!.role !== e.role) problems.push(`${JSON.stringify(e.name)} is ${e.role} in A but ${b.experts[c]!.role} in B`);
  }
  for (const e of b.experts) if (!roleOf.has(e.name)) problems.push(`${JSON.stringify(e.name)} (${e.role}) is only in B`);
  if (problems.length) {
    const more = problems.length > 5 ? `; … (${problems.length} differences)` : "";
    throw new TraceMismatchError(`the traces' experts do not match by name and role (A has ${a.experts.length}, B has ${b.experts.length}): ${problems.slice(0, 5).join("; ")}${more}`);
  }
  return inB;
}

/** Longest prefix of tokens with equal ids. */
export function commonTokenPrefix(a: RoutingTrace, b: RoutingTrace): number {
  const n = Math.min(a.tokens.length, b.tokens.length);
  let p = 0;
  while (p < n && a.tokens[p]!.id === b.tokens[p]!.id) p++;
  return p;
}

/** Per-layer differences b − a and top-expert agreement over the common token prefix (see the file comment). */
export function compareTraces(a: RoutingTrace, b: RoutingTrace): TraceComparison {
  if (a.layers.length !== b.layers.length) throw new TraceMismatchError(`the traces have different layer counts: A has ${a.layers.length}, B has ${b.layers.length}`);
  checkExperts(a, b);
  const ma = computeMetrics(a, { transitions: [] });
  const mb = computeMetrics(b, { transitions: [] });
  // A's dynamic index → B's dynamic index (same name).
  const dynB = new Map(mb.experts.dynamic.map((e) => [e.name, e.index]));
  const toB = ma.experts.dynamic.map((e) => dynB.get(e.name)!);
  const D = toB.length;
  const L = a.layers.length;

  const perLayer = ma.layers.map((la, l): LayerDelta => {
    const lb = mb.layers[l]!;
    const d = (k: keyof LayerMetrics) => (lb[k] as number) - (la[k] as number);
    return {
      layer: l,
      tokenShare: toB.map((db, da) => lb.tokenShare[db]! - la.tokenShare[da]!),
      kShare: Array.from({ length: D + 2 }, (_, k) => (lb.kShare[k] ?? 0) - (la.kShare[k] ?? 0)),
      meanK: d("meanK"),
      nullTokenShare: d("nullTokenShare"),
      sharedWeightShare: d("sharedWeightShare"),
      loadCV: d("loadCV"),
      maxVio: d("maxVio"),
      jain: d("jain"),
      entropy: d("entropy"),
    };
  });

  const P = commonTokenPrefix(a, b);
  const side = (t: RoutingTrace): TraceSide => ({
    model: t.model,
    tokens: t.tokens.length,
    ...(t.routingPrecision ? { routingPrecision: t.routingPrecision } : {}),
    ...(t.quantization ? { quantization: t.quantization.label } : {}),
  });
  const diff = P === 0 ? null : routingDiff(a, b, P);
  const setShare = diff?.map((l) => 1 - l.setDiffers / P);
  const logitsNote = logitsUncomparable(a.logits, b.logits, P);
  return {
    a: side(a),
    b: side(b),
    layers: L,
    experts: {
      dynamic: ma.experts.dynamic.map((e) => ({ index: e.index, name: e.name, role: e.role })),
      shared: ma.experts.shared.map((s) => s.name),
    },
    perLayer,
    agreement: agreement(ma, mb, toB, P, L),
    routingDiff: diff,
    setAgreement: setShare ? { perLayer: setShare, mean: L > 0 ? setShare.reduce((x, y) => x + y, 0) / L : null } : null,
    logits: logitsNote === null ? compareLogits(a.logits!, b.logits!, P) : null,
    ...(logitsNote === null ? {} : { logitsNote }),
  };
}

function routingDiff(a: RoutingTrace, b: RoutingTrace, P: number): LayerRoutingDiff[] {
  const Ea = a.experts.length, Eb = b.experts.length;
  const colB = new Map(b.experts.map((e, c) => [e.name, c]));
  const toB = a.experts.map((e) => colB.get(e.name)!);
  const routingOf = (t: RoutingTrace, l: number, n: number, cols: number[]): TokenRouting => {
    const layer = t.layers[l]!;
    const E = t.experts.length;
    return {
      k: layer.k[n]!,
      experts: cols.filter((c) => layer.mask[n * E + c]).map((c) => t.experts[c]!.name),
      dropped: cols.filter((c) => layer.dropped?.[n * E + c]).map((c) => t.experts[c]!.name),
    };
  };
  const aCols = a.experts.map((_, c) => c);
  return a.layers.map((la, l) => {
    const lb = b.layers[l]!;
    let kDiffers = 0, setDiffers = 0, differs = 0;
    const tokens: LayerRoutingDiff["tokens"] = [];
    for (let n = 0; n < P; n++) {
      const k = la.k[n] !== lb.k[n];
      let set = false;
      for (let c = 0; c < Ea && !set; c++) set = la.mask[n * Ea + c] !== lb.mask[n * Eb + toB[c]!];
      if (k) kDiffers++;
      if (set) setDiffers++;
      if (k || set) differs++;
      if ((k || set) && tokens.length < MAX_LISTED) tokens.push({ token: n, text: a.tokens[n]!.text, a: routingOf(a, l, n, aCols), b: routingOf(b, l, n, toB) });
    }
    return { layer: l, kDiffers, setDiffers, differs, tokens };
  });
}

function agreement(ma: RoutingMetrics, mb: RoutingMetrics, toB: number[], P: number, L: number): TopExpertAgreement | null {
  if (P === 0) return null;
  const Na = ma.tokens, Nb = mb.tokens;
  const ta = ma.perToken!.topExpert, tb = mb.perToken!.topExpert;
  const agreeing: number[] = [];
  for (let l = 0; l < L; l++) {
    let same = 0;
    for (let n = 0; n < P; n++) {
      const x = ta[l * Na + n]!;
      const y = tb[l * Nb + n]!;
      if (x < 0 ? y < 0 : toB[x] === y) same++;
    }
    agreeing.push(same);
  }
  const perLayer = agreeing.map((s) => s / P);
  return { commonPrefix: P, perLayer, agreeing, mean: L > 0 ? perLayer.reduce((s, x) => s + x, 0) / L : null };
}

/** The headline figures of a comparison (for a one-line preview). */
export function summarizeComparison(c: TraceComparison): ComparisonSummary {
  let best = 0, signed = 0;
  let layer: number | null = null, expert: string | null = null;
  for (const l of c.perLayer) {
    l.tokenShare.forEach((v, d) => {
      if (layer === null || Math.abs(v) > best) {
        best = Math.abs(v);
        signed = v;
        layer = l.layer;
        expert = c.experts.dynamic[d]!.name;
      }
    });
  }
  return {
    maxAbsShareDelta: best,
    shareDelta: signed,
    layer,
    expert,
    meanTopAgreement: c.agreement?.mean ?? null,
    commonPrefix: c.agreement?.commonPrefix ?? 0,
    routedDifferently: c.routingDiff ? c.routingDiff.reduce((s, l) => s + l.differs, 0) : null,
    meanSetAgreement: c.setAgreement?.mean ?? null,
    maxAbsLogitDelta: c.logits?.maxAbsLogit ?? null,
  };
}
