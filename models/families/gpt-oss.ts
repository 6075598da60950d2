/**
 * gpt-oss (gpt-oss-20b / -120b), read as Hugging Face transformers reads it:
 * src/transformers/models/gpt_oss/modeling_gpt_oss.py (read at commit 00d4b3d2), configuration_gpt_oss.py (02b8f42b),
 * integrations/mxfp4.py (`convert_moe_packed_tensors`, `Mxfp4GptOssExperts`). Rules (class / function):
 * - `GptOssAttention`: q/k/v/o with biases (attention_bias, default true), head_dim from the config, scale
 *   head_dim^-0.5, rotate-half RoPE (`_apply_rotary_emb`), YaRN from rope_scaling (families/rope.ts; the released
 *   config: factor 32, beta_fast 32, beta_slow 1, truncate false, original 4096), `sinks` (one logit per head) joining
 *   each softmax row (`eager_attention_forward`: cat, softmax, drop the sink column); sliding window
 *   (sliding_window, default 128) in the layer_types "sliding_attention" layers, which `GptOssConfig.__post_init__`
 *   sets to the even layers when config.json has no layer_types.
 * - `GptOssTopKRouter`: logits = Linear with bias; top-k of the logits; softmax over the k values.
 * - `GptOssExperts.forward`: gate_up_proj [E, H, 2I] (x @ W) + bias, gate = columns 0::2, up = 1::2 (interleaved:
 *   the import separates them), gate clamped above at swiglu_limit, up to ±swiglu_limit,
 *   glu = gate · sigmoid(swiglu_alpha · gate), (up + 1) · glu @ down_proj [E, I, H] + bias; the whole expert output
 *   (bias included) is multiplied by its routing weight.
 * - The released MXFP4 layout: `gate_up_proj_blocks` [E, 2I, H/32, 16] + `_scales` [E, 2I, H/32] (uint8), same for
 *   down_proj [E, H, I/32, 16]; `convert_moe_packed_tensors` dequantises to [E, 2I, H] then transposes to the
 *   [E, H, 2I] parameter, so before the transpose row r is output column r (import/dequant.ts).
 */
import { bool, C, canonicalConfig, decoderRules, num, same, takes, windowSize, type MappingRule } from "./common";
import type { Family } from "./family";

const E = "model.layers.{i}.mlp.experts.";
const bias = (p: string) => C.routed(p).replace(/\.weight$/, ".bias");

const expertRules: MappingRule[] = [
  // the dequantised (bf16) layout
  { from: `${E}gate_up_proj`, to: C.routed("gate"), stacked: true, take: takes.colsT(false), also: [{ to: C.routed("up"), take: takes.colsT(true) }] },
  { from: `${E}gate_up_proj_bias`, to: bias("gate"), stacked: true, take: takes.rows(false), also: [{ to: bias("up"), take: takes.rows(true) }] },
  { from: `${E}down_proj`, to: C.routed("down"), stacked: true, take: takes.transpose },
  { from: `${E}down_proj_bias`, to: bias("down"), stacked: true },
  // the released MXFP4 layout (before convert_moe_packed_tensors' transpose: rows = output columns)
  { from: `${E}gate_up_proj_blocks`, to: C.routed("gate"), stacked: true, mxfp4Scales: `${E}gate_up_proj_scales`, take: takes.rows(false), also: [{ to: C.routed("up"), take: takes.rows(true) }] },
  { from: `${E}gate_up_proj_scales`, to: null, note: "MXFP4 exponents, read with gate_up_proj_blocks" },
  { from: `${E}down_proj_blocks`, to: C.routed("down"), stacked: true, mxfp4Scales: `${E}down_proj_scales` },
  { from: `${E}down_proj_scales`, to: null, note: "MXFP4 exponents, read with down_proj_blocks" },
];

export const gptOss: Family = {
  name: "gpt_oss",
  modelTypes: ["gpt_oss"],
  title: "gpt-oss (top-k router with bias, attention sinks, sliding/full layers, YaRN, clamped SwiGLU, MXFP4 experts)",
  toConfig(raw) {
    const L = num(raw, "num_hidden_layers");
    const types = raw.layer_types ?? Array.from({ length: L }, (_, i) => ((i + 1) % 2 ? "sliding_attention" : "full_attention"));
    if (!Array.isArray(types) || types.length !== L || !types.every((t) => t === "sliding_attention" || t === "full_attention"))
      throw new Error(`gpt_oss: config.json "layer_types" must list "sliding_attention" or "full_attention" for each of the ${L} layers (got ${JSON.stringify(raw.layer_types)})`);
    const W = raw.sliding_window === null ? null : windowSize(raw, "sliding_window", "gpt_oss", 128);
    const attentionBias = bool(raw, "attention_bias", true);
    return canonicalConfig(raw, {
      family: "gpt_oss",
      experts: num(raw, "num_local_experts", 128),
      topK: num(raw, "num_experts_per_tok", 4),
      expertIntermediate: num(raw, "intermediate_size"),
      routing: "topk_softmax",
      attentionBias,
      ropeTheta: 150000,
      rmsEps: 1e-5,
      slidingWindows: types.map((t) => (t === "sliding_attention" ? W : null)),
      extra: {
        router_bias: true,
        attention_sinks: true,
        attention_output_bias: attentionBias,
        expert_activation: "clamped_swiglu",
        expert_bias: true,
        swiglu_alpha: num(raw, "swiglu_alpha", 1.702),
        swiglu_limit: num(raw, "swiglu_limit", 7),
      },
    });
  },
  rules: [
    ...decoderRules({ bias: true, qkNorm: false }),
    ...same("model.layers.{i}.self_attn.o_proj.bias", "model.layers.{i}.self_attn.sinks"),
    { from: "model.layers.{i}.mlp.router.weight", to: C.router },
    { from: "model.layers.{i}.mlp.router.bias", to: C.router.replace(/\.weight$/, ".bias") },
    ...expertRules,
  ],
};
