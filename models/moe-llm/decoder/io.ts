import type { RoutingPrecision } from "../../onnx/bf16";

/** Options and input/output names of the decoder graph (moe-llm-graph.ts documents them). */
export interface MoeGraphOptions {
  /** "sparse": each routed expert runs only on the tokens that chose it; "dense": every expert on every token, masked. */
  moe: "sparse" | "dense";
  /** Adds the per-layer routing outputs. */
  trace: boolean;
  /** Adds past_key/value inputs and present_key/value outputs. */
  kvCache: boolean;
  /** Takes inputs_embeds [B,S,H] instead of input_ids [B,S]. */
  embeds?: boolean;
  /** Adds hidden_{i} [B,S,H]: the residual stream after layer i, before the final norm (the logit lens reads it: models/logit-lens.ts). */
  lens?: boolean;
  /**
   * Batched prefill with padding: adds attention_mask int64 [B, T] (1 = real token, 0 = padding; T = past + new).
   * Padded keys are hidden from every query; padded tokens get no dynamic expert in Uni-MoE routing (as released).
   */
  padding?: boolean;
  /** The reference graph of plain ONNX ops instead of the fused one (decoder/fused.ts); absent = fused. */
  unfused?: boolean;
  /**
   * The device-resident variant of the fused graph (WebGPU): every node has a kernel on the GPU providers and no int64
   * shape arithmetic is left for the CPU (token rows from float counts, rotary positions through a float table, lengths
   * as the inputs seqlens_k / total_sequence_length, which MoeLlmRunner feeds). GroupQueryAttention families without
   * padding or dense layers.
   */
  gpu?: boolean;
  /**
   * Built for ONNX Runtime's WebGPU provider: every GroupQueryAttention computes its softmax as smooth_softmax with a
   * head_sink that takes no weight (decoder/fused.ts NULL_SINK: the same values, another kernel path). Absent on the CPU.
   */
  webgpu?: boolean;
  /**
   * The routed experts of the fused graph as ONE com.microsoft MoE node (ONNX Runtime's MoE operator, fed the routing
   * weights as log-probabilities: it runs each token through only the experts with a non-zero weight). Fixed shapes;
   * SwiGLU experts of one size. Absent = `moe` decides.
   */
  expertsOp?: boolean;
  /**
   * The decode-step form of the device-resident graph (the CPU decode twin): one new token of one sequence. Its past
   * keys/values are read in place (past_key_i / past_value_i [past, kvH·D], position-major: the first rows of the
   * runner's store); there are no present outputs: the token's own keys/values come back packed as new_keys /
   * new_values [L, kvH·D], and the trace packed by MoE layer (router_logits, mask, weights [M,E], k [M]).
   * GroupQueryAttention families without windows or sinks (decoder/fused.ts decodeStepAttention).
   */
  decodeStep?: boolean;
  /** Arithmetic of the Uni-MoE routing (grin-routing.ts); absent = "fp32". */
  routingPrecision?: RoutingPrecision;
}

/** Graph input/output names. */
export const io = {
  ids: "input_ids",
  embeds: "inputs_embeds",
  positions: "position_ids",
  attentionMask: "attention_mask",
  routerBias: "router_bias",
  ban: "ban_mask",
  force: "force_mask",
  topP: "top_p",
  /** top-k override (float [1]; <= 0 keeps the config's k); top-k routers only */
  topK: "top_k",
  /** device-resident graph (gpu): int32 [B] total length − 1 per sequence, and int32 [] total length (past + new) */
  seqlensK: "seqlens_k",
  totalLength: "total_sequence_length",
  pastKey: (i: number) => `past_key_${i}`,
  pastValue: (i: number) => `past_value_${i}`,
  presentKey: (i: number) => `present_key_${i}`,
  presentValue: (i: number) => `present_value_${i}`,
  logits: "logits",
  lastHidden: "last_hidden",
  routerLogits: (i: number) => `router_logits_${i}`,
  mask: (i: number) => `mask_${i}`,
  weights: (i: number) => `weights_${i}`,
  k: (i: number) => `k_${i}`,
  /** DeepSeek-V3: the bias-corrected selection scores [N, routed] */
  scores: (i: number) => `scores_${i}`,
  /** decode step (MoeGraphOptions.decodeStep): the new token's keys / values of every layer [L, kvH·D] */
  newKeys: "new_keys",
  newValues: "new_values",
  /** decode step: the trace of every MoE layer, one row each (router_logits / mask / weights [M,E], k int64 [M]) */
  packedTrace: { routerLogits: "router_logits", mask: "mask", weights: "weights", k: "k" },
  /** with `lens`: the residual stream after layer i [B,S,H] */
  hidden: (i: number) => `hidden_${i}`,
  /** Uni-MoE with token_drop: 1 where a selection was dropped over capacity [N,E] */
  dropped: (i: number) => `dropped_${i}`,
};

