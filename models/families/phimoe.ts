/**
 * Phi-3.5-MoE, read as Hugging Face transformers reads it: src/transformers/models/phimoe/modeling_phimoe.py (read at
 * commit 008f5c8c) and configuration_phimoe.py (040e1a7e). Rules (class / function):
 * - `PhimoeDecoderLayer` / `PhimoeModel.norm`: nn.LayerNorm with weight and bias, eps = rms_norm_eps.
 * - `PhimoeAttention`: head_dim = hidden_size / num_attention_heads; q/k/v/o biases when attention_bias; scores /
 *   sqrt(head_dim); sliding window (`_prepare_4d_causal_attention_mask_with_cache_position`: key j hidden when
 *   j <= q - sliding_window) in every layer when sliding_window is set.
 * - `PhimoeRotaryEmbedding.forward`: rope_scaling "longrope" uses the short factors and short_mscale (cos/sin ×
 *   mscale) while the context (cache_position[-1] + 1) is at most original_max_position_embeddings; longer contexts
 *   would switch every position to the long factors, which are not implemented: such inputs are refused.
 * - `PhimoeSparseMoeBlock` + `sparsemixer(training=False)`: top-2 sparsemixer on the router logits with
 *   jitter_eps = router_jitter_noise (models/moe-llm/decoder/routers.ts sparsemixerRouting); experts w1/w3/w2 SwiGLU;
 *   input_jitter_noise applies in training only.
 * - `PhimoeForCausalLM.lm_head`: bias when lm_head_bias.
 */
import { bool, C, canonicalConfig, decoderRules, num, same, windowSize } from "./common";
import type { Family } from "./family";

export const phimoe: Family = {
  name: "phimoe",
  modelTypes: ["phimoe"],
  title: "Phi-3.5-MoE (sparsemixer top-2, LayerNorm, attention and lm_head biases, LongRoPE short factors)",
  toConfig(raw) {
    const act = raw.hidden_act ?? "silu";
    if (act !== "silu") throw new Error(`phimoe: hidden_act "${String(act)}" is not supported`);
    const H = num(raw, "hidden_size"), NH = num(raw, "num_attention_heads"), L = num(raw, "num_hidden_layers");
    const topK = num(raw, "num_experts_per_tok", 2);
    if (topK !== 2) throw new Error(`phimoe: num_experts_per_tok ${topK}: the sparsemixer is defined for top-2 only (transformers raises "top_k must be equal to 2")`);
    const attentionBias = bool(raw, "attention_bias", false);
    const W = raw.sliding_window === undefined || raw.sliding_window === null ? null : windowSize(raw, "sliding_window", "phimoe");
    const config = canonicalConfig(raw, {
      family: "phimoe",
      experts: num(raw, "num_local_experts", 16),
      topK,
      expertIntermediate: num(raw, "intermediate_size"),
      routing: "sparsemixer",
      attentionBias,
      ropeTheta: 1e6,
      rmsEps: 1e-5,
      headDim: H / NH,
      slidingWindows: Array<number | null>(L).fill(W),
      extra: { norm_type: "layer", attention_output_bias: attentionBias, lm_head_bias: bool(raw, "lm_head_bias", false) },
    });
    return { ...config, router_jitter_noise: num(raw, "router_jitter_noise", 0.01) };
  },
  rules: [
    ...decoderRules({ bias: true, qkNorm: false }),
    ...same("model.layers.{i}.self_attn.o_proj.bias", "model.norm.bias", "lm_head.bias", "model.layers.{i}.input_layernorm.bias", "model.layers.{i}.post_attention_layernorm.bias"),
    { from: "model.layers.{i}.block_sparse_moe.gate.weight", to: C.router },
    { from: "model.layers.{i}.block_sparse_moe.experts.{e}.w1.weight", to: C.routed("gate") },
    { from: "model.layers.{i}.block_sparse_moe.experts.{e}.w3.weight", to: C.routed("up") },
    { from: "model.layers.{i}.block_sparse_moe.experts.{e}.w2.weight", to: C.routed("down") },
  ],
};
