/**
 * A compact record of a run's next-token logits, kept in the routing trace so two runs can be compared (e.g. a
 * quantised model and its full-precision twin) without storing [tokens × vocabulary] floats:
 *
 *   for every trace token t, the logits row computed at t (it predicts token t + 1):
 *     values[t, s]  the logit of vocabulary id ids[s], for SAMPLE ids spread evenly over the vocabulary
 *                   (ids[s] = floor(s · V / S), S = min(V, LOGIT_SAMPLE)), the same ids for every model of that vocabulary
 *     top[t]        the argmax over the whole vocabulary (lowest id on ties) and topLogit[t] its logit
 *     lse[t]        log Σ exp over the whole vocabulary (so log-probabilities follow: logit − lse)
 *
 * Comparison (compareLogits) over the first P rows of two sketches (P: the traces' common token prefix, where both
 * rows were computed from the same tokens): |Δ logit| and |Δ log-probability| over the sampled ids (exact at those
 * ids; the max over the whole vocabulary can only be larger), and the share of rows with the same argmax.
 */

export const LOGIT_SAMPLE = 256;

export interface LogitSketch {
  vocab: number;
  /** [S] the sampled vocabulary ids. */
  ids: Int32Array;
  /** [N × S] row-major. */
  values: Float32Array;
  /** [N] */
  top: Int32Array;
  topLogit: Float32Array;
  lse: Float32Array;
}

export function sampleIds(V: number): Int32Array {
  const S = Math.min(V, LOGIT_SAMPLE);
  return Int32Array.from({ length: S }, (_, s) => Math.floor((s * V) / S));
}

/** The sketch of `rows` logits rows [rows × V] (row-major). */
export function sketchLogits(logits: ArrayLike<number>, V: number, rows: number): LogitSketch {
  if (logits.length < rows * V) throw new Error(`sketchLogits: ${logits.length} logits for ${rows} rows × ${V}`);
  const ids = sampleIds(V);
  const S = ids.length;
  const values = new Float32Array(rows * S), top = new Int32Array(rows), topLogit = new Float32Array(rows), lse = new Float32Array(rows);
  for (let r = 0; r < rows; r++) {
    const o = r * V;
    let best = 0;
    for (let v = 1; v < V; v++) if (logits[o + v]! > logits[o + best]!) best = v;
    const mx = logits[o + best]!;
    let sum = 0;
    for (let v = 0; v < V; v++) sum += Math.exp(logits[o + v]! - mx);
    top[r] = best;
    topLogit[r] = mx;
    lse[r] = mx + Math.log(sum);
    for (let s = 0; s < S; s++) values[r * S + s] = logits[o + ids[s]!]!;
  }
  return { vocab: V, ids, values, top, topLogit, lse };
}

const cat = <T extends Float32Array | Int32Array>(x: T, y: T): T => {
  const out = new (x.constructor as new (n: number) => T)(x.length + y.length);
  out.set(x);
  out.set(y, x.length);
  return out;
};

/** Rows of `b` after rows of `a` (same vocabulary). */
export function appendSketch(a: LogitSketch, b: LogitSketch): LogitSketch {
  if (a.vocab !== b.vocab) throw new Error(`logit sketches of vocabularies ${a.vocab} and ${b.vocab}`);
  return { vocab: a.vocab, ids: a.ids, values: cat(a.values, b.values), top: cat(a.top, b.top), topLogit: cat(a.topLogit, b.topLogit), lse: cat(a.lse, b.lse) };
}

export const sketchRows = (s: LogitSketch) => s.top.length;

export interface LogitComparison {
  /** Rows compared (the common token prefix) and vocabulary ids sampled per row. */
  rows: number;
  sampled: number;
  /** Over rows × sampled ids: largest and mean |Δ logit| (B − A), and the same for log-probabilities. */
  maxAbsLogit: number;
  meanAbsLogit: number;
  maxAbsLogprob: number;
  meanAbsLogprob: number;
  /** The largest |logit| of A over those entries, for scale. */
  maxAbsLogitA: number;
  /** Share of rows whose argmax (over the whole vocabulary) is the same. */
  top1Agreement: number;
}

/** Why two traces' logits cannot be compared, or null when they can. */
export function logitsUncomparable(a: LogitSketch | undefined, b: LogitSketch | undefined, commonPrefix: number): string | null {
  if (!a || !b) return `trace ${!a ? "A" : "B"} records no logits (only MoE-LLM runs made since logits were kept in traces do)`;
  if (a.vocab !== b.vocab) return `the models' vocabularies differ (${a.vocab} and ${b.vocab} ids), so their logits do not line up`;
  if (commonPrefix === 0) return "the traces have no common tokens: logits compare only where both runs read the same tokens (run the same prompt, or score the same text, on both models)";
  return null;
}

/** Compares the first `rows` rows of two sketches of the same vocabulary (see the file comment). */
export function compareLogits(a: LogitSketch, b: LogitSketch, rows: number): LogitComparison {
  const n = Math.min(rows, sketchRows(a), sketchRows(b));
  const S = a.ids.length;
  let maxL = 0, sumL = 0, maxP = 0, sumP = 0, maxA = 0, same = 0;
  for (let r = 0; r < n; r++) {
    if (a.top[r] === b.top[r]) same++;
    for (let s = 0; s < S; s++) {
      const x = a.values[r * S + s]!, y = b.values[r * S + s]!;
      const dl = Math.abs(y - x), dp = Math.abs(y - b.lse[r]! - (x - a.lse[r]!));
      maxL = Math.max(maxL, dl);
      maxP = Math.max(maxP, dp);
      maxA = Math.max(maxA, Math.abs(x));
      sumL += dl;
      sumP += dp;
    }
  }
  const cells = Math.max(1, n * S);
  return { rows: n, sampled: S, maxAbsLogit: maxL, meanAbsLogit: sumL / cells, maxAbsLogprob: maxP, meanAbsLogprob: sumP / cells, maxAbsLogitA: maxA, top1Agreement: n > 0 ? same / n : 0 };
}
