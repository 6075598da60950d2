/**
 * The logit lens with plain loops in float64 (nothing from models/): each layer's residual rows through the final
 * norm (RMSNorm, or LayerNorm with bias) and the LM head (with its bias when the family has one), log-softmax, the
 * top K, the rank of the final layer's prediction and KL(final ‖ layer). The LAST entry of `hidden` is the final layer.
 */
import { layerNorm, linear, rmsNorm } from "./families/ops";

export interface LensHeadWeights {
  norm: ArrayLike<number>;
  /** LayerNorm families: the final norm's bias (RMSNorm without it) */
  normBias?: ArrayLike<number>;
  eps: number;
  /** [V, H] row-major: lm_head, or the embedding when tied */
  head: ArrayLike<number>;
  headBias?: ArrayLike<number>;
}

export interface LensCell {
  ids: number[];
  logprobs: number[];
  rank: number;
  kl: number;
}

/** [layer][token] of the lens of N tokens; `hidden[l]` holds N rows of H values. */
export function referenceLens(w: LensHeadWeights, hidden: ArrayLike<number>[], N: number, H: number, V: number, K: number): LensCell[][] {
  const logp = hidden.map((x) =>
    Array.from({ length: N }, (_, n) => {
      const row = Array.from({ length: H }, (_, i) => Number(x[n * H + i]!));
      const normed = w.normBias ? layerNorm(row, w.norm, w.normBias, w.eps) : rmsNorm(row, w.norm, w.eps);
      const logits = linear(normed, w.head, V, w.headBias);
      const mx = Math.max(...logits);
      const lse = mx + Math.log(logits.reduce((a, b) => a + Math.exp(b - mx), 0));
      return logits.map((v) => v - lse);
    }),
  );
  const final = logp[logp.length - 1]!;
  return logp.map((lp) =>
    lp.map((row, n) => {
      const order = [...row.keys()].sort((a, b) => row[b]! - row[a]! || a - b);
      const fTop = final[n]!.indexOf(Math.max(...final[n]!));
      return {
        ids: order.slice(0, K),
        logprobs: order.slice(0, K).map((v) => row[v]!),
        rank: row.filter((v) => v > row[fTop]!).length,
        kl: final[n]!.reduce((a, f, v) => a + Math.exp(f) * (f - row[v]!), 0),
      };
    }),
  );
}
