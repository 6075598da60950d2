/**
 * Attention blocks shared by the graphs that have them (the MoE-TTS decoders, models/tts/tts-graph.ts and
 * tts-released.ts; the MoE-LLM decoder's variants in models/moe-llm/decoder/attention.ts have the same core):
 * half-split RoPE, the grouped-query attention core, and Qwen2-style GQA self-attention with a packed q/k/v
 * projection. RMSNorm is `Ops.rmsNorm`.
 *
 * Dimension letters: B batch, S new tokens, P past tokens, T = P + S keys, N = B*S, H hidden, NH query heads,
 * KVH key/value heads, G = NH/KVH, Dh head dim.
 */
import type { Ops } from "./ops";

/**
 * Half-split ("rotate_half") RoPE with positions `pos` int64 [B,S]: returns t [B,heads,S,Dh] → rotated, using
 * cos/sin of cat(freqs, freqs) with inv_freq_j = 1/θ^(2j/Dh) (Qwen2 / Llama).
 */
export function halfSplitRope(o: Ops, pos: string, Dh: number, theta: number): (t: string) => string {
  const g = o.g;
  const half = Dh / 2;
  const invFreq = Array.from({ length: half }, (_, j) => 1 / Math.pow(theta, (2 * j) / Dh));
  const f = o.mul(o.unsqueeze(o.cast(pos, "float"), [2]), g.const(invFreq, [half])); // [B,S,half]
  const emb = o.unsqueeze(o.concat([f, f], 2), [1]); // [B,1,S,Dh]
  const cos = o.cos(emb), sin = o.sin(emb);
  return (t) => o.add(o.mul(t, cos), o.mul(o.concat([o.neg(o.slice(t, [half], [Dh], [3])), o.slice(t, [0], [half], [3])], 3), sin));
}

/**
 * The grouped-query attention core: q [B,NH,S,Dh], k and v [B,KVH,T,Dh] → [N,NH·Dh] (heads merged, before o_proj).
 * Query head h reads KV head ⌊h/G⌋ (repeat_interleave), without copying k/v: q is viewed as [B,KVH,G,S,Dh].
 * scores = (q·scale)·kᵀ [B,KVH,G,S,T]; `probs(scores)` turns them into attention weights (default: softmax over T
 * after adding `bias`, broadcast onto the scores).
 */
export function groupedQueryAttention(
  o: Ops,
  a: { q: string; k: string; v: string; NH: number; KVH: number; Dh: number; scale?: number; bias?: string; probs?: (scores: string) => string },
): string {
  const g = o.g;
  const { NH, KVH, Dh } = a;
  const G = NH / KVH;
  const q5 = o.reshape(o.mul(a.q, g.scalar(a.scale ?? 1 / Math.sqrt(Dh))), g.ints([0, KVH, G, -1, Dh])); // [B,KVH,G,S,Dh]
  const kT = o.unsqueeze(o.transpose(a.k, [0, 1, 3, 2]), [2]); // [B,KVH,1,Dh,T]
  const scores = o.matmul(q5, kT); // [B,KVH,G,S,T]
  const probs = a.probs ? a.probs(scores) : o.softmax(a.bias ? o.add(scores, a.bias) : scores, -1);
  const att = o.matmul(probs, o.unsqueeze(a.v, [2])); // [B,KVH,G,S,Dh]
  return o.reshape(o.transpose(o.reshape(att, g.ints([0, NH, -1, Dh])), [0, 2, 1, 3]), g.ints([-1, NH * Dh])); // [N,NH*Dh]
}

/**
 * Qwen2 GQA self-attention of one layer: h [N,H] (normed) → out [N,H] (o_proj applied, no bias). q/k/v come from
 * one packed projection qkvW [(NH+2KVH)·Dh, H] + qkvB; query head h reads KV head ⌊h/(NH/KVH)⌋ (repeat_interleave).
 * scores = q·kᵀ/√Dh + bias [S,T], softmax, then × keep [1,NH,S,T] when given (attention dropout), · v.
 * Returns the layer's keys/values [B,KVH,T,Dh] (past ‖ new) for a KV cache.
 */
export function gqaAttention(
  o: Ops,
  a: { h: string; bsShape: string; qkvW: string; qkvB: string; oW: string; NH: number; KVH: number; Dh: number; rope: (t: string) => string; bias: string; past?: { key: string; value: string }; keep?: string },
): { out: string; key: string; value: string } {
  const g = o.g;
  const { NH, KVH, Dh } = a;
  const G = NH / KVH;
  const proj = o.linear(a.h, a.qkvW, a.qkvB); // [N,(NH+2KVH)*Dh]
  const heads = o.transpose(o.reshape(proj, o.concat([a.bsShape, g.ints([NH + 2 * KVH, Dh])], 0)), [0, 2, 1, 3]); // [B,NH+2KVH,S,Dh]
  const [qk, v0] = o.split(heads, [NH + KVH, KVH], 1) as [string, string];
  const [q, k0] = o.split(a.rope(qk), [NH, KVH], 1) as [string, string]; // [B,NH,S,Dh], [B,KVH,S,Dh]
  const k = a.past ? o.concat([a.past.key, k0], 2) : k0; // [B,KVH,T,Dh]
  const v = a.past ? o.concat([a.past.value, v0], 2) : v0;
  const keep = a.keep;
  const probs = (scores: string) => {
    const p = o.softmax(o.add(scores, a.bias), -1); // [B,KVH,G,S,T]
    return keep ? o.mul(p, o.reshape(keep, o.concat([g.ints([1, KVH, G]), o.shape(keep, 2, 4)], 0))) : p;
  };
  const merged = groupedQueryAttention(o, { q, k, v, NH, KVH, Dh, probs });
  return { out: o.linear(merged, a.oW), key: k, value: v };
}
