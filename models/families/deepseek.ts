/**
 * DeepSeek-V2 (DeepSeek-V2-Lite) and the DeepSeek-V3 architecture (also Moonlight-16B-A3B), read as Hugging Face
 * transformers reads them:
 * - src/transformers/models/deepseek_v2/modeling_deepseek_v2.py (read at commit 0233e509) and configuration_deepseek_v2.py
 * - src/transformers/models/deepseek_v3/modeling_deepseek_v3.py (commit 00b676f8) and configuration_deepseek_v3.py (001f85b3)
 * Rules (file: class / function):
 * - Attention: multi-head latent attention (`DeepseekV2Attention` / `DeepseekV3Attention.__init__`, `forward`):
 *   q_proj when q_lora_rank is null, else q_a_proj (+ bias when attention_bias) → q_a_layernorm → q_b_proj;
 *   kv_a_proj_with_mqa (+ bias) → [kv latent | k_pe]; kv_a_layernorm; kv_b_proj → [k_nope | v] per head; o_proj
 *   (+ bias). The two RMSNorms use their class default eps 1e-6 (`DeepseekV2RMSNorm(config.q_lora_rank)`), not
 *   rms_norm_eps. See models/moe-llm/decoder/attention.ts mlaAttention for the graph and its KV cache.
 * - RoPE over qk_rope_head_dim (the configs set `head_dim = qk_rope_head_dim`): V2 rotates consecutive pairs as complex
 *   numbers (`apply_rotary_emb`: view_as_complex, freqs_cis = polar(1, freqs) × attention_scaling); V3 with
 *   `rope_interleave` (default true) de-interleaves then rotates halves (`apply_rotary_pos_emb_interleave`), without
 *   it rotates halves (`apply_rotary_pos_emb`). Scaling: YaRN (families/rope.ts), cos/sin × attention_factor.
 * - Attention scale: qk_head_dim^-0.5 (qk_head_dim = nope + rope). V3 only (`DeepseekV3Attention.__init__`): when
 *   rope_scaling is set and has mscale_all_dim, × yarn_get_mscale(rope_scaling["factor"], mscale_all_dim)². The V2
 *   class has no such factor (DeepSeek's own V2 code does: a difference of transformers we follow).
 * - Layers `layer_idx < first_k_dense_replace` are a dense MLP of intermediate_size (`DeepseekV2DecoderLayer` /
 *   `DeepseekV3DecoderLayer.__init__`); the others an MoE block with n_routed_experts experts of moe_intermediate_size
 *   and one shared MLP of moe_intermediate_size × n_shared_experts added without a gate (`DeepseekV2Moe.forward` /
 *   `DeepseekV3MoE.forward`: `hidden_states + self.shared_experts(residuals)`).
 * - V2 routing (`DeepseekV2Moe.route_tokens_to_experts`): softmax(router logits) in fp32; topk_method "greedy" or
 *   "group_limited_greedy" (group score = max; non-selected groups masked_fill 0.0); weights × routed_scaling_factor,
 *   never renormalised (norm_topk_prob is not read: a config asking for it is refused rather than silently ignored).
 * - V3 routing (`DeepseekV3TopkRouter.forward`, `get_topk_indices`): sigmoid(router logits); selection on
 *   scores + e_score_correction_bias, group score = sum of the group's top 2, topk_group groups kept (others
 *   masked_fill 0.0), top-k; weights = the unbiased scores gathered, / (sum + 1e-20) when norm_topk_prob,
 *   × routed_scaling_factor. topk_method is not read by transformers (always this rule); scoring_func must be sigmoid.
 * - The checkpoint's `model.layers.{num_hidden_layers}.*` (V3's multi-token-prediction layer) is not part of the
 *   model (`DeepseekV3Model._keys_to_ignore_on_load_unexpected`): claimed and listed as unused.
 */
import type { MoeLlmConfig } from "../moe-llm/config";
import { bool, C, canonicalConfig, decoderRules, num, same, type MappingRule, type Raw } from "./common";
import { ropeScalingOf, yarnMscale } from "./rope";
import type { Family } from "./family";

function str(raw: Raw, key: string, fallback: string): string {
  const v = raw[key] ?? fallback;
  if (typeof v !== "string") throw new Error(`config.json: "${key}" must be a string (got ${JSON.stringify(raw[key])})`);
  return v;
}

function deepseekConfig(raw: Raw, family: "deepseek_v2" | "deepseek_v3"): MoeLlmConfig {
  const v3 = family === "deepseek_v3";
  const act = raw.hidden_act ?? "silu";
  if (act !== "silu") throw new Error(`${family}: hidden_act "${String(act)}" is not supported (SwiGLU with silu only)`);
  if (raw.mlp_bias === true) throw new Error(`${family}: mlp_bias true is not supported (no released checkpoint uses it)`);
  if (raw.n_routed_experts === null || raw.num_experts_per_tok === null) throw new Error(`${family}: n_routed_experts / num_experts_per_tok null describe a dense model, not an MoE`);
  if (raw.moe_layer_freq !== undefined && raw.moe_layer_freq !== 1)
    throw new Error(`${family}: moe_layer_freq ${String(raw.moe_layer_freq)} is not supported (transformers does not read it; DeepSeek's own code would place MoE layers differently)`);
  const L = num(raw, "num_hidden_layers");
  const firstDense = num(raw, "first_k_dense_replace", v3 ? 3 : 0);
  if (!Number.isInteger(firstDense) || firstDense < 0 || firstDense >= L) throw new Error(`${family}: first_k_dense_replace ${firstDense} must be 0..${L - 1} (at least one MoE layer)`);
  const R = num(raw, "n_routed_experts", v3 ? 256 : 64);
  const sharedN = raw.n_shared_experts === null ? 0 : num(raw, "n_shared_experts", v3 ? 1 : 2);
  const moeI = num(raw, "moe_intermediate_size", v3 ? 2048 : 1407);
  const qLora = raw.q_lora_rank === undefined ? 1536 : raw.q_lora_rank === null ? null : num(raw, "q_lora_rank");
  const nope = num(raw, "qk_nope_head_dim", 128), rope = num(raw, "qk_rope_head_dim", 64), v = num(raw, "v_head_dim", 128);
  const attentionBias = bool(raw, "attention_bias", false);
  let routing: Record<string, unknown>;
  if (v3) {
    const scoring = str(raw, "scoring_func", "sigmoid");
    if (scoring !== "sigmoid") throw new Error(`deepseek_v3: scoring_func "${scoring}" is not supported (transformers' DeepseekV3TopkRouter always uses sigmoid)`);
    routing = { topk_method: "noaux_tc", n_group: num(raw, "n_group", 8), topk_group: num(raw, "topk_group", 4), norm_topk_prob: bool(raw, "norm_topk_prob", true), routed_scaling_factor: num(raw, "routed_scaling_factor", 2.5) };
  } else {
    const method = str(raw, "topk_method", "greedy");
    if (method !== "greedy" && method !== "group_limited_greedy") throw new Error(`deepseek_v2: topk_method "${method}" is not supported (DeepseekV2Moe knows "greedy" and "group_limited_greedy")`);
    if (bool(raw, "norm_topk_prob", false)) throw new Error("deepseek_v2: norm_topk_prob true is refused: transformers' DeepseekV2Moe never renormalises while DeepSeek's own code would");
    routing = { topk_method: method, routed_scaling_factor: num(raw, "routed_scaling_factor", 1), ...(method === "group_limited_greedy" ? { n_group: num(raw, "n_group"), topk_group: num(raw, "topk_group") } : {}) };
  }
  // DeepseekV3Attention.__init__: softmax scale × yarn_get_mscale(factor, mscale_all_dim)² when rope_scaling has mscale_all_dim
  const rs = ropeScalingOf(raw);
  const mscaleAll = rs && typeof rs.mscale_all_dim === "number" ? rs.mscale_all_dim : 0;
  const scale = v3 && rs && mscaleAll ? Math.pow(nope + rope, -0.5) * yarnMscale(num(rs, "factor"), mscaleAll) ** 2 : undefined;
  return canonicalConfig(raw, {
    family,
    experts: R,
    topK: num(raw, "num_experts_per_tok"),
    expertIntermediate: moeI,
    routing: v3 ? "deepseek_sigmoid" : "deepseek_softmax",
    attentionBias,
    ...(sharedN > 0 ? { shared: { intermediate: moeI * sharedN, gated: false } } : {}),
    ropeTheta: 10000,
    rmsEps: 1e-6,
    rotaryDim: rope,
    dense: { layers: Array.from({ length: firstDense }, (_, i) => i), intermediate: num(raw, "intermediate_size") },
    extra: {
      ...routing,
      attention_type: "mla",
      q_lora_rank: qLora,
      kv_lora_rank: num(raw, "kv_lora_rank", 512),
      qk_nope_head_dim: nope,
      qk_rope_head_dim: rope,
      v_head_dim: v,
      attention_output_bias: attentionBias,
      rope_interleave: v3 ? bool(raw, "rope_interleave", true) : true,
      ...(scale !== undefined ? { attention_scale: scale } : {}),
    },
  });
}

const attnNames = ["q_a_proj", "q_b_proj", "kv_a_proj_with_mqa", "kv_b_proj"].map((p) => `model.layers.{i}.self_attn.${p}.weight`);
const rules = (v3: boolean): MappingRule[] => [
  ...decoderRules({ bias: false, qkNorm: false }).filter((r) => !/self_attn\.[kv]_proj/.test(r.from)),
  ...same(...attnNames, "model.layers.{i}.self_attn.q_a_layernorm.weight", "model.layers.{i}.self_attn.kv_a_layernorm.weight"),
  ...same(...["q_a_proj", "kv_a_proj_with_mqa", "o_proj"].map((p) => `model.layers.{i}.self_attn.${p}.bias`)),
  { from: C.router, to: C.router },
  ...(v3 ? same("model.layers.{i}.mlp.gate.e_score_correction_bias") : []),
  ...["gate", "up", "down"].map((p) => ({ from: `model.layers.{i}.mlp.experts.{e}.${p}_proj.weight`, to: C.routed(p) })),
  ...["gate", "up", "down"].map((p) => ({ from: `model.layers.{i}.mlp.shared_experts.${p}_proj.weight`, to: C.shared(0, p) })),
  ...same(...["gate", "up", "down"].map((p) => `model.layers.{i}.mlp.${p}_proj.weight`)),
];

export const deepseekV2: Family = {
  name: "deepseek_v2",
  modelTypes: ["deepseek_v2"],
  title: "DeepSeek-V2 (MLA, softmax top-k greedy or group-limited, routed scaling, shared experts, dense first layers)",
  toConfig: (raw) => deepseekConfig(raw, "deepseek_v2"),
  rules: rules(false),
};

export const deepseekV3: Family = {
  name: "deepseek_v3",
  modelTypes: ["deepseek_v3"],
  title: "DeepSeek-V3 / Moonlight (MLA, sigmoid scores with a selection-only bias, group-limited top-k, routed scaling)",
  toConfig: (raw) => deepseekConfig(raw, "deepseek_v3"),
  rules: rules(true),
};
