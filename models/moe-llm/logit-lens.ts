/**
 * The logit lens (nostalgebraist 2020; TransformerLens' accumulated residual through the final norm and the
 * unembedding): what the model would predict if it stopped after layer i — the residual stream after layer i
 * passed through exactly what the decoder applies after its last layer: the family's final norm (RMSNorm, or
 * LayerNorm with bias) and its LM head (lm_head or the tied embedding, with the family's bias), built by the
 * decoder's own helpers (moe-llm-graph.ts decoderContext / lmHead, decoder/fused.ts fusedNorm).
 *
 * Contract with the decoder graph (all a decoder must provide, however it is built — e.g. a fused graph):
 *   MoeGraphOptions.lens adds the outputs hidden_{i} float [B,S,H], i = 0..L-1: the residual stream after layer i
 *   (attention and MoE added), before the final norm. hidden_{L-1} through the final norm and the head IS the
 *   model's logits. Off, the decoder graph is byte-identical to one built without the option.
 *
 * The lens head is a small separate graph over those states, built from the same final-norm and head weights:
 *   input  hidden float [G, M, H]        G layer slices of the same M tokens, the model's LAST layer last
 *   output top_ids int64 [G, M, K]       the K most likely next tokens of each slice (log-softmax, descending)
 *          top_logprobs float [G, M, K]  their log-probabilities (nats)
 *          final_rank int64 [G, M]       how many tokens the slice scores strictly above the final prediction
 *                                        (argmax of the last slice, first index on ties): 0 = already the top
 *          kl float [G, M]               KL(final ‖ slice) = Σ_v p_final(v) (log p_final(v) − log p_slice(v))
 * Tokens go through in chunks of M so that the [G, M, V] log-probabilities stay within a memory budget.
 */
import type { InferenceSession } from "onnxruntime-node";
import * as ort from "onnxruntime-node";
import type { LogitLens } from "@/engine/trace";
import { paramNames, type MoeLlmConfig } from "./config";
import { fusedNorm } from "./decoder/fused";
import { decoderContext, lmHead } from "./moe-llm-graph";
import { GraphBuilder } from "../onnx/builder";
import type { Ops } from "../onnx/ops";
import type { WeightSource } from "../io/weights";

/** Next-token candidates kept per layer and token. */
export const LENS_TOP_K = 5;

export const lensIo = { hidden: "hidden", topIds: "top_ids", topLogprobs: "top_logprobs", finalRank: "final_rank", kl: "kl" } as const;

/** Bumped whenever the lens head graph changes, so cached lens heads are rebuilt. */
export const LENS_HEAD_VERSION = 2;

/**
 * The lens head on `hidden` [G, M, H] (last slice = final layer): `logits` (rows [G*M, H] → [G*M, V], the decoder's
 * final norm and head), log-softmax, top-K, the rank of the final prediction and KL(final ‖ slice).
 */
export function lensHead(o: Ops, hidden: string, logits: (rows: string) => string, V: number, K: number) {
  const g = o.g;
  const H = o.shape(hidden, 2, 3);
  const rows = o.reshape(hidden, o.concat([g.ints([-1]), H], 0)); // [G*M, H]
  const gm = o.shape(hidden, 0, 2); // [G, M]
  const logp = o.logSoftmax(o.reshape(logits(rows), o.concat([gm, g.ints([V])], 0)), -1); // [G, M, V]
  const [topLogprobs, topIds] = o.topk(logp, g.ints([K]), -1); // [G, M, K]
  const G = o.shape(hidden, 0, 1);
  const final = o.slice(logp, o.sub(G, g.ints([1])), G, [0]); // [1, M, V]
  const kl = o.reduceSum(o.mul(o.exp(final), o.sub(final, logp)), [-1], 0); // [G, M]
  const top = o.expand(o.argmax(final, -1), o.concat([gm, g.ints([1])], 0)); // [G, M, 1]
  const atTop = o.gatherElements(logp, top, 2); // [G, M, 1]
  const finalRank = o.cast(o.reduceSum(o.cast(o.greater(logp, atTop), "float"), [-1], 0), "int64"); // [G, M]
  return { topIds, topLogprobs, finalRank, kl };
}

/**
 * The lens head as its own graph (see the file comment for inputs and outputs), on the canonical weights of any
 * family. `builder` lets a caller store the weights elsewhere (imported models: ONNX external data).
 */
export function buildLensHeadGraph(config: MoeLlmConfig, weights: WeightSource, k = LENS_TOP_K, builder = new GraphBuilder("logit_lens_head")): Uint8Array {
  const H = config.hidden_size, V = config.vocab_size;
  const K = Math.min(k, V);
  const ctx = decoderContext(config, weights, builder);
  const g = ctx.g;
  const hidden = g.input(lensIo.hidden, "float", ["slices", "tokens", H]);
  const out = lensHead(ctx.o, hidden, (rows) => lmHead(ctx, fusedNorm(ctx, rows, paramNames.finalNorm)), V, K);
  g.output(out.topIds, lensIo.topIds, "int64", ["slices", "tokens", K]);
  g.output(out.topLogprobs, lensIo.topLogprobs, "float", ["slices", "tokens", K]);
  g.output(out.finalRank, lensIo.finalRank, "int64", ["slices", "tokens"]);
  g.output(out.kl, lensIo.kl, "float", ["slices", "tokens"]);
  return g.toBytes();
}

/** Default budget for one chunk's [G, M, V] float tensors (the head keeps about three of them alive). */
export const CHUNK_BYTES = 48 * 1024 * 1024;

/**
 * Runs the lens head session over the residual states of N tokens (`hidden[l]` = [N*H] after layer l, the last
 * one the final layer) and returns the lens of every layer for every token.
 */
export async function runLogitLens(session: InferenceSession, config: MoeLlmConfig, hidden: readonly Float32Array[], N: number, chunkBytes = CHUNK_BYTES): Promise<LogitLens> {
  const H = config.hidden_size, V = config.vocab_size;
  const G = hidden.length;
  const K = Math.min(LENS_TOP_K, V);
  if (G === 0) throw new Error("the logit lens needs the residual states of at least one layer");
  for (const h of hidden) if (h.length !== N * H) throw new Error(`logit lens: a layer's residual states have ${h.length} values, expected ${N}×${H}`);
  const layers = Array.from({ length: G }, () => ({ topIds: new Int32Array(N * K), topLogprobs: new Float32Array(N * K), finalRank: new Int32Array(N), kl: new Float32Array(N) }));
  const M = Math.max(1, Math.min(N, Math.floor(chunkBytes / (3 * G * V * 4))));
  for (let m0 = 0; m0 < N; m0 += M) {
    const m = Math.min(M, N - m0);
    const x = new Float32Array(G * m * H);
    for (let l = 0; l < G; l++) x.set(hidden[l]!.subarray(m0 * H, (m0 + m) * H), l * m * H);
    const out = await session.run({ [lensIo.hidden]: new ort.Tensor("float32", x, [G, m, H]) });
    const ids = out[lensIo.topIds]!.data as BigInt64Array;
    const lp = out[lensIo.topLogprobs]!.data as Float32Array;
    const rank = out[lensIo.finalRank]!.data as BigInt64Array;
    const kl = out[lensIo.kl]!.data as Float32Array;
    for (let l = 0; l < G; l++) {
      const dst = layers[l]!;
      for (let i = 0; i < m * K; i++) dst.topIds[m0 * K + i] = Number(ids[l * m * K + i]!);
      dst.topLogprobs.set(lp.subarray(l * m * K, (l + 1) * m * K), m0 * K);
      for (let i = 0; i < m; i++) dst.finalRank[m0 + i] = Number(rank[l * m + i]!);
      dst.kl.set(kl.subarray(l * m, (l + 1) * m), m0);
    }
  }
  return { k: K, layers };
}
