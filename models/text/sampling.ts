import type { SeededRandom } from "../io/seeded-random";

export interface SamplingOptions {
  /** 0 = greedy (argmax). */
  temperature: number;
  /** Keep only the k most likely tokens (0 = off). */
  topK: number;
  /** Keep the smallest set of most likely tokens whose probability reaches p (1 = off). */
  topP: number;
}

export function argmax(logits: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < logits.length; i++) if (logits[i]! > logits[best]!) best = i;
  return best;
}

/**
 * The distribution sampling draws from: softmax(logits / T), then top-k, then top-p (nucleus) over
 * what remains, renormalised. Ties at the cut keep the lower token id first (stable sort).
 */
export function samplingDistribution(logits: ArrayLike<number>, o: SamplingOptions): Float64Array {
  const n = logits.length;
  const probs = new Float64Array(n);
  let max = -Infinity;
  for (let i = 0; i < n; i++) max = Math.max(max, logits[i]!);
  let sum = 0;
  for (let i = 0; i < n; i++) {
    probs[i] = Math.exp((logits[i]! - max) / o.temperature);
    sum += probs[i]!;
  }
  for (let i = 0; i < n; i++) probs[i]! /= sum;
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => probs[b]! - probs[a]! || a - b);
  let keep = o.topK > 0 ? Math.min(o.topK, n) : n;
  if (o.topP < 1) {
    let cum = 0;
    for (let r = 0; r < keep; r++) {
      cum += probs[order[r]!]!;
      if (cum >= o.topP) {
        keep = r + 1;
        break;
      }
    }
  }
  const out = new Float64Array(n);
  let kept = 0;
  for (let r = 0; r < keep; r++) kept += probs[order[r]!]!;
  for (let r = 0; r < keep; r++) out[order[r]!] = probs[order[r]!]! / kept;
  return out;
}

/** Picks the next token: argmax when temperature is 0, else a draw from `samplingDistribution`. */
export function sampleToken(logits: ArrayLike<number>, o: SamplingOptions, rng: SeededRandom): number {
  if (o.temperature <= 0) return argmax(logits);
  const dist = samplingDistribution(logits, o);
  let u = rng.uniform();
  let last = 0;
  for (let i = 0; i < dist.length; i++) {
    if (dist[i]! <= 0) continue;
    last = i;
    u -= dist[i]!;
    if (u < 0) return i;
  }
  return last; // rounding left a sliver of mass: the last kept token takes it
}
