import { z } from "zod";

/**
 * config.json of a Uni-MoE-2.0-style MoE-LLM (field names as in the real checkpoints' config).
 * Router columns are ordered [routed 0..R-1, null 0..N-1, shared 0..S-1].
 */
export const zMoeLlmConfig = z.object({
  model_type: z.string().default("uni_moe_tiny"),
  hidden_size: z.number().int().positive(),
  num_hidden_layers: z.number().int().positive(),
  num_attention_heads: z.number().int().positive(),
  num_key_value_heads: z.number().int().positive(),
  /** Defaults to hidden_size / num_attention_heads. */
  head_dim: z.number().int().positive().optional(),
  vocab_size: z.number().int().positive(),
  rms_norm_eps: z.number().positive().default(1e-6),
  rope_theta: z.number().positive().default(1_000_000),
  rope_scaling: z.object({ type: z.string().optional(), mrope_section: z.array(z.number().int().nonnegative()).length(3) }).passthrough(),
  mlp_dynamic_expert_num: z.number().int().positive(),
  mlp_dynamic_null_expert_num: z.number().int().nonnegative().default(1),
  mlp_fixed_expert_num: z.number().int().nonnegative().default(2),
  dynamic_intermediate_size: z.number().int().positive(),
  shared_intermediate_size: z.number().int().positive(),
  /** Top-P threshold; 0 means fixed top-k (mlp_dynamic_top_k). */
  mlp_dynamic_top_p: z.number().min(0).max(1).default(0.7),
  /**
   * Experts per token when Top-P is 0, truncated to an integer as the release does (grin:566); 0 or above the
   * dynamic columns routes no dynamic expert. Release configs may hold 0 or 0.0 (read only when Top-P is 0).
   */
  mlp_dynamic_top_k: z.number().min(0).default(2),
  router_jitter_noise: z.number().min(0).default(0.01),
  token_drop: z.boolean().default(false),
  capacity_factor: z.number().min(0).default(1),
  min_capacity: z.number().int().nonnegative().default(8),
  tie_word_embeddings: z.boolean().default(false),
  /** Our own additions (absent in real configs are fine). */
  seeded_untrained: z.boolean().optional(),
}).passthrough();

export type MoeLlmConfig = z.infer<typeof zMoeLlmConfig>;

/**
 * The routing Top-P of a run (dynamic-capacity routers): the override, else the model's own P. Resolved here once; the
 * node and the CLI pass the override as given (null/absent = the model's P).
 */
export function resolveTopP(c: MoeLlmConfig, override: number | null | undefined): number {
  return override ?? c.mlp_dynamic_top_p;
}

/** The experts per token of a run (fixed top-k routers): the override, else the model's k. Resolved here once, like Top-P. */
export function resolveTopK(c: MoeLlmConfig, override: number | null | undefined): number {
  return override ?? c.mlp_dynamic_top_k;
}

export function headDim(c: MoeLlmConfig): number {
  return c.head_dim ?? c.hidden_size / c.num_attention_heads;
}

/** Column layout of the router: names and roles, in router order. */
export function expertColumns(c: MoeLlmConfig): { name: string; role: "routed" | "null" | "shared" }[] {
  const cols: { name: string; role: "routed" | "null" | "shared" }[] = [];
  for (let e = 0; e < c.mlp_dynamic_expert_num; e++) cols.push({ name: `E${e + 1}`, role: "routed" });
  for (let e = 0; e < c.mlp_dynamic_null_expert_num; e++) cols.push({ name: `Null${e + 1}`, role: "null" });
  for (let e = 0; e < c.mlp_fixed_expert_num; e++) cols.push({ name: `Shared${e + 1}`, role: "shared" });
  return cols;
}

/** Parameter names in the real Uni-MoE-2.0 layout (and the HF names the other families' extra tensors keep). */
export const paramNames = {
  embed: "model.embed_tokens.weight",
  finalNorm: "model.norm.weight",
  /** LayerNorm families (Phi-3.5-MoE) */
  finalNormBias: "model.norm.bias",
  lmHead: "lm_head.weight",
  lmHeadBias: "lm_head.bias",
  inputNorm: (i: number) => `model.layers.${i}.input_layernorm.weight`,
  postNorm: (i: number) => `model.layers.${i}.post_attention_layernorm.weight`,
  /** The bias of a LayerNorm weight name. */
  normBias: (weightName: string) => weightName.replace(/\.weight$/, ".bias"),
  attn: (i: number, p: "q" | "k" | "v" | "o", kind: "weight" | "bias") => `model.layers.${i}.self_attn.${p}_proj.${kind}`,
  /** gpt-oss: one learned sink logit per head */
  sinks: (i: number) => `model.layers.${i}.self_attn.sinks`,
  /** DeepSeek multi-head latent attention (HF names) */
  mla: (i: number, p: "q_a_proj" | "q_b_proj" | "kv_a_proj_with_mqa" | "kv_b_proj" | "q_a_layernorm" | "kv_a_layernorm", kind: "weight" | "bias" = "weight") => `model.layers.${i}.self_attn.${p}.${kind}`,
  router: (i: number) => `model.layers.${i}.mlp.gate.weight`,
  /** gpt-oss router bias */
  routerBias: (i: number) => `model.layers.${i}.mlp.gate.bias`,
  /** DeepSeek-V3 selection bias */
  scoreCorrection: (i: number) => `model.layers.${i}.mlp.gate.e_score_correction_bias`,
  /** A dense (router-less) layer's MLP (HF names) */
  dense: (i: number, p: "gate" | "up" | "down") => `model.layers.${i}.mlp.${p}_proj.weight`,
  shared: (i: number, s: number, p: "gate" | "up" | "down") => `model.layers.${i}.mlp.fixed_real_moe.${s}.${p}_proj.weight`,
  routed: (i: number, e: number, p: "gate" | "up" | "down", kind: "weight" | "bias" = "weight") => `model.layers.${i}.mlp.dynamic_real_moe.deepspeed_moe.experts.deepspeed_experts.${e}.${p}_proj.${kind}`,
};
