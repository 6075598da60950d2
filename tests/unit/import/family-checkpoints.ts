/**
 * Tiny random checkpoints in each family's real file layout: Hugging Face config.json fields and tensor names
 * (modeling_qwen2_moe / qwen3_moe / olmoe / mixtral / deepseek_v2 / deepseek_v3 / phimoe / gpt_oss), single
 * model.safetensors or shards with model.safetensors.index.json, F32 or BF16 storage; gpt-oss also in its released
 * MXFP4 layout (uint8 `*_blocks` + `*_scales`), DeepSeek-V3 with fp8 block-quantised weights (F8_E4M3 +
 * `weight_scale_inv`), as the released checkpoints store them.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { bf16BitsToF32, f32ToBf16Bits, writeSafetensors, type FloatDtype } from "@/models/io/safetensors";
import { prng } from "../../reference/random";
import type { Tensors } from "../../reference/families/ops";
import { qwenDense, type Family as TopkFamily } from "../../reference/families/topk-moe";
import { quantFp8Blocks, quantMxfp4 } from "../../reference/quant";

export type Family = TopkFamily | "deepseek_v2" | "deepseek_v3" | "phimoe" | "gpt_oss";

const yarn = (factor: number, extra: Record<string, unknown> = {}) => ({ type: "yarn", factor, beta_fast: 32, beta_slow: 1, original_max_position_embeddings: 4096, ...extra });

export const FAMILY_CONFIGS: Record<Family, Record<string, unknown>> = {
  qwen2_moe: {
    architectures: ["Qwen2MoeForCausalLM"], model_type: "qwen2_moe", hidden_size: 32, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2,
    vocab_size: 64, rms_norm_eps: 1e-6, rope_theta: 1000000, num_experts: 8, num_experts_per_tok: 4, moe_intermediate_size: 16,
    shared_expert_intermediate_size: 48, intermediate_size: 64, norm_topk_prob: false, decoder_sparse_step: 1, mlp_only_layers: [],
    tie_word_embeddings: false, torch_dtype: "bfloat16", use_sliding_window: false, max_position_embeddings: 8192,
  },
  qwen3_moe: {
    architectures: ["Qwen3MoeForCausalLM"], model_type: "qwen3_moe", hidden_size: 32, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2,
    head_dim: 16, vocab_size: 64, rms_norm_eps: 1e-6, rope_theta: 1000000, num_experts: 16, num_experts_per_tok: 4, moe_intermediate_size: 16,
    norm_topk_prob: true, attention_bias: false, decoder_sparse_step: 1, mlp_only_layers: [], tie_word_embeddings: false, rope_scaling: null,
  },
  olmoe: {
    architectures: ["OlmoeForCausalLM"], model_type: "olmoe", hidden_size: 32, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 4,
    vocab_size: 64, rms_norm_eps: 1e-5, rope_theta: 10000, num_experts: 64, num_experts_per_tok: 8, intermediate_size: 8, norm_topk_prob: false,
    clip_qkv: null, attention_bias: false, tie_word_embeddings: false, rope_scaling: null,
  },
  mixtral: {
    architectures: ["MixtralForCausalLM"], model_type: "mixtral", hidden_size: 32, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2,
    vocab_size: 64, rms_norm_eps: 1e-5, rope_theta: 1000000, num_local_experts: 8, num_experts_per_tok: 2, intermediate_size: 24,
    sliding_window: null, tie_word_embeddings: false,
  },
  // DeepSeek-V2-Lite's shape in small: q_proj (q_lora_rank null), greedy top-k, 2 shared experts, first layer dense, its YaRN
  deepseek_v2: {
    architectures: ["DeepseekV2ForCausalLM"], model_type: "deepseek_v2", hidden_size: 32, num_hidden_layers: 3, num_attention_heads: 4, num_key_value_heads: 4,
    vocab_size: 64, rms_norm_eps: 1e-6, rope_theta: 10000, max_position_embeddings: 163840, rope_scaling: yarn(40, { mscale: 0.707, mscale_all_dim: 0.707 }),
    q_lora_rank: null, kv_lora_rank: 16, qk_nope_head_dim: 8, qk_rope_head_dim: 8, v_head_dim: 12, n_routed_experts: 8, n_shared_experts: 2,
    num_experts_per_tok: 3, moe_intermediate_size: 12, intermediate_size: 48, first_k_dense_replace: 1, moe_layer_freq: 1, topk_method: "greedy",
    n_group: 1, topk_group: 1, norm_topk_prob: false, routed_scaling_factor: 1.0, attention_bias: false, hidden_act: "silu", tie_word_embeddings: false,
  },
  // DeepSeek-V3 / Moonlight in small: q_a/q_b with q_a_layernorm, 4 groups keep 2, sigmoid + correction bias, × 2.5, its YaRN (mscale_all_dim)
  deepseek_v3: {
    architectures: ["DeepseekV3ForCausalLM"], model_type: "deepseek_v3", hidden_size: 32, num_hidden_layers: 3, num_attention_heads: 4, num_key_value_heads: 4,
    vocab_size: 64, rms_norm_eps: 1e-6, rope_theta: 10000, max_position_embeddings: 163840, rope_scaling: yarn(40, { mscale: 1.0, mscale_all_dim: 1.0 }),
    q_lora_rank: 24, kv_lora_rank: 16, qk_nope_head_dim: 8, qk_rope_head_dim: 8, v_head_dim: 8, n_routed_experts: 16, n_shared_experts: 1,
    num_experts_per_tok: 4, moe_intermediate_size: 8, intermediate_size: 40, first_k_dense_replace: 1, n_group: 4, topk_group: 2, topk_method: "noaux_tc",
    scoring_func: "sigmoid", norm_topk_prob: true, routed_scaling_factor: 2.5, rope_interleave: true, attention_bias: false, hidden_act: "silu",
    tie_word_embeddings: false, num_nextn_predict_layers: 1,
  },
  // Phi-3.5-MoE in small: LayerNorm, biases, LongRoPE (short factors within 4096 tokens), sparsemixer
  phimoe: {
    architectures: ["PhiMoEForCausalLM"], model_type: "phimoe", hidden_size: 32, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2,
    vocab_size: 64, rms_norm_eps: 1e-5, rope_theta: 10000, max_position_embeddings: 131072, original_max_position_embeddings: 4096,
    rope_scaling: { type: "longrope", short_factor: [1.0, 1.2, 2.5, 7.0], long_factor: [1.1, 1.6, 4.0, 20.0], short_mscale: 1.243163121016122, long_mscale: 1.243163121016122, original_max_position_embeddings: 4096 },
    num_local_experts: 8, num_experts_per_tok: 2, intermediate_size: 24, router_jitter_noise: 0.01, input_jitter_noise: 0.01, sliding_window: 131072,
    attention_bias: true, lm_head_bias: true, hidden_act: "silu", tie_word_embeddings: false,
  },
  // gpt-oss in small: sinks, alternating sliding (window 4) / full layers, its YaRN (truncate false), clamped SwiGLU experts
  gpt_oss: {
    architectures: ["GptOssForCausalLM"], model_type: "gpt_oss", hidden_size: 32, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, head_dim: 16,
    vocab_size: 64, rms_norm_eps: 1e-5, rope_theta: 150000, max_position_embeddings: 131072,
    rope_scaling: { rope_type: "yarn", factor: 32.0, beta_fast: 32.0, beta_slow: 1.0, truncate: false, original_max_position_embeddings: 4096 },
    num_local_experts: 8, num_experts_per_tok: 4, intermediate_size: 32, sliding_window: 4, layer_types: ["sliding_attention", "full_attention"],
    swiglu_limit: 7.0, attention_bias: true, hidden_act: "silu", tie_word_embeddings: false,
  },
};

/** Every tensor of a family checkpoint with its shape (and raw dtype when not a float), in the family's own names. */
export function familyShapes(family: Family, c: Record<string, unknown>, o: Pick<WriteOptions, "mxfp4"> = {}): Map<string, number[]> {
  if (family === "deepseek_v2" || family === "deepseek_v3") return deepseekShapes(c);
  if (family === "phimoe") return phimoeShapes(c);
  if (family === "gpt_oss") return gptOssShapes(c, !!o.mxfp4);
  return topkShapes(family, c);
}

function deepseekShapes(c: Record<string, unknown>): Map<string, number[]> {
  const g = (k: string) => c[k] as number;
  const H = g("hidden_size"), NH = g("num_attention_heads"), V = g("vocab_size"), E = g("n_routed_experts"), Im = g("moe_intermediate_size");
  const dn = g("qk_nope_head_dim"), dr = g("qk_rope_head_dim"), dv = g("v_head_dim"), R = g("kv_lora_rank"), Q = c.q_lora_rank as number | null;
  const m = new Map<string, number[]>([["model.embed_tokens.weight", [V, H]]]);
  const lin = (name: string, out: number, inn: number, bias = false) => {
    m.set(`${name}.weight`, [out, inn]);
    if (bias) m.set(`${name}.bias`, [out]);
  };
  const mlpShapes = (pre: string, I: number) => {
    lin(`${pre}gate_proj`, I, H);
    lin(`${pre}up_proj`, I, H);
    lin(`${pre}down_proj`, H, I);
  };
  const bias = c.attention_bias === true;
  for (let l = 0; l < g("num_hidden_layers"); l++) {
    const p = `model.layers.${l}.`;
    m.set(`${p}input_layernorm.weight`, [H]);
    m.set(`${p}post_attention_layernorm.weight`, [H]);
    if (Q === null) lin(`${p}self_attn.q_proj`, NH * (dn + dr), H);
    else {
      lin(`${p}self_attn.q_a_proj`, Q, H, bias);
      m.set(`${p}self_attn.q_a_layernorm.weight`, [Q]);
      lin(`${p}self_attn.q_b_proj`, NH * (dn + dr), Q);
    }
    lin(`${p}self_attn.kv_a_proj_with_mqa`, R + dr, H, bias);
    m.set(`${p}self_attn.kv_a_layernorm.weight`, [R]);
    lin(`${p}self_attn.kv_b_proj`, NH * (dn + dv), R);
    lin(`${p}self_attn.o_proj`, H, NH * dv, bias);
    if (l < g("first_k_dense_replace")) {
      mlpShapes(`${p}mlp.`, g("intermediate_size"));
      continue;
    }
    m.set(`${p}mlp.gate.weight`, [E, H]);
    if (c.model_type === "deepseek_v3") m.set(`${p}mlp.gate.e_score_correction_bias`, [E]);
    for (let e = 0; e < E; e++) mlpShapes(`${p}mlp.experts.${e}.`, Im);
    if (c.n_shared_experts) mlpShapes(`${p}mlp.shared_experts.`, Im * g("n_shared_experts"));
  }
  m.set("model.norm.weight", [H]);
  m.set("lm_head.weight", [V, H]);
  return m;
}

function phimoeShapes(c: Record<string, unknown>): Map<string, number[]> {
  const g = (k: string) => c[k] as number;
  const H = g("hidden_size"), NH = g("num_attention_heads"), KVH = g("num_key_value_heads"), V = g("vocab_size"), E = g("num_local_experts"), I = g("intermediate_size");
  const Dh = H / NH;
  const m = new Map<string, number[]>([["model.embed_tokens.weight", [V, H]]]);
  const wb = (name: string, shape: number[]) => (m.set(`${name}.weight`, shape), m.set(`${name}.bias`, [shape[0]!]));
  for (let l = 0; l < g("num_hidden_layers"); l++) {
    const p = `model.layers.${l}.`;
    wb(`${p}input_layernorm`, [H]);
    wb(`${p}post_attention_layernorm`, [H]);
    for (const [x, rows] of [["q", NH * Dh], ["k", KVH * Dh], ["v", KVH * Dh]] as const) wb(`${p}self_attn.${x}_proj`, [rows, H]);
    wb(`${p}self_attn.o_proj`, [H, NH * Dh]);
    m.set(`${p}block_sparse_moe.gate.weight`, [E, H]);
    for (let e = 0; e < E; e++) {
      m.set(`${p}block_sparse_moe.experts.${e}.w1.weight`, [I, H]);
      m.set(`${p}block_sparse_moe.experts.${e}.w2.weight`, [H, I]);
      m.set(`${p}block_sparse_moe.experts.${e}.w3.weight`, [I, H]);
    }
  }
  wb("model.norm", [H]);
  wb("lm_head", [V, H]);
  return m;
}

function gptOssShapes(c: Record<string, unknown>, mxfp4: boolean): Map<string, number[]> {
  const g = (k: string) => c[k] as number;
  const H = g("hidden_size"), NH = g("num_attention_heads"), KVH = g("num_key_value_heads"), V = g("vocab_size"), E = g("num_local_experts"), I = g("intermediate_size");
  const Dh = g("head_dim");
  const m = new Map<string, number[]>([["model.embed_tokens.weight", [V, H]]]);
  for (let l = 0; l < g("num_hidden_layers"); l++) {
    const p = `model.layers.${l}.`;
    m.set(`${p}input_layernorm.weight`, [H]);
    m.set(`${p}post_attention_layernorm.weight`, [H]);
    for (const [x, rows, inn] of [["q", NH * Dh, H], ["k", KVH * Dh, H], ["v", KVH * Dh, H], ["o", H, NH * Dh]] as const) {
      m.set(`${p}self_attn.${x}_proj.weight`, [rows, inn]);
      m.set(`${p}self_attn.${x}_proj.bias`, [rows]);
    }
    m.set(`${p}self_attn.sinks`, [NH]);
    m.set(`${p}mlp.router.weight`, [E, H]);
    m.set(`${p}mlp.router.bias`, [E]);
    const x = `${p}mlp.experts.`;
    if (mxfp4) {
      m.set(`${x}gate_up_proj_blocks`, [E, 2 * I, H / 32, 16]);
      m.set(`${x}gate_up_proj_scales`, [E, 2 * I, H / 32]);
      m.set(`${x}down_proj_blocks`, [E, H, I / 32, 16]);
      m.set(`${x}down_proj_scales`, [E, H, I / 32]);
    } else {
      m.set(`${x}gate_up_proj`, [E, H, 2 * I]);
      m.set(`${x}down_proj`, [E, I, H]);
    }
    m.set(`${x}gate_up_proj_bias`, [E, 2 * I]);
    m.set(`${x}down_proj_bias`, [E, H]);
  }
  m.set("model.norm.weight", [H]);
  m.set("lm_head.weight", [V, H]);
  return m;
}

function topkShapes(family: TopkFamily, c: Record<string, unknown>): Map<string, number[]> {
  const g = (k: string) => c[k] as number;
  const H = g("hidden_size"), NH = g("num_attention_heads"), KVH = g("num_key_value_heads"), V = g("vocab_size");
  const Dh = (c.head_dim as number | undefined) ?? H / NH;
  const E = family === "mixtral" ? g("num_local_experts") : g("num_experts");
  const I = family === "olmoe" || family === "mixtral" ? g("intermediate_size") : g("moe_intermediate_size");
  const m = new Map<string, number[]>([["model.embed_tokens.weight", [V, H]]]);
  for (let l = 0; l < g("num_hidden_layers"); l++) {
    const p = `model.layers.${l}.`;
    m.set(`${p}input_layernorm.weight`, [H]);
    m.set(`${p}post_attention_layernorm.weight`, [H]);
    m.set(`${p}self_attn.q_proj.weight`, [NH * Dh, H]);
    m.set(`${p}self_attn.k_proj.weight`, [KVH * Dh, H]);
    m.set(`${p}self_attn.v_proj.weight`, [KVH * Dh, H]);
    m.set(`${p}self_attn.o_proj.weight`, [H, NH * Dh]);
    if (family === "qwen2_moe") for (const x of ["q", "k", "v"]) m.set(`${p}self_attn.${x}_proj.bias`, [(x === "q" ? NH : KVH) * Dh]);
    if (family === "qwen3_moe") {
      m.set(`${p}self_attn.q_norm.weight`, [Dh]);
      m.set(`${p}self_attn.k_norm.weight`, [Dh]);
    }
    if (family === "olmoe") {
      m.set(`${p}self_attn.q_norm.weight`, [NH * Dh]);
      m.set(`${p}self_attn.k_norm.weight`, [KVH * Dh]);
    }
    if ((family === "qwen2_moe" || family === "qwen3_moe") && qwenDense(c, l)) {
      const Id = g("intermediate_size");
      m.set(`${p}mlp.gate_proj.weight`, [Id, H]);
      m.set(`${p}mlp.up_proj.weight`, [Id, H]);
      m.set(`${p}mlp.down_proj.weight`, [H, Id]);
      continue;
    }
    if (family === "mixtral") {
      m.set(`${p}block_sparse_moe.gate.weight`, [E, H]);
      for (let e = 0; e < E; e++) {
        m.set(`${p}block_sparse_moe.experts.${e}.w1.weight`, [I, H]);
        m.set(`${p}block_sparse_moe.experts.${e}.w2.weight`, [H, I]);
        m.set(`${p}block_sparse_moe.experts.${e}.w3.weight`, [I, H]);
      }
    } else {
      m.set(`${p}mlp.gate.weight`, [E, H]);
      for (let e = 0; e < E; e++) {
        m.set(`${p}mlp.experts.${e}.gate_proj.weight`, [I, H]);
        m.set(`${p}mlp.experts.${e}.up_proj.weight`, [I, H]);
        m.set(`${p}mlp.experts.${e}.down_proj.weight`, [H, I]);
      }
    }
    if (family === "qwen2_moe") {
      const Is = g("shared_expert_intermediate_size");
      m.set(`${p}mlp.shared_expert.gate_proj.weight`, [Is, H]);
      m.set(`${p}mlp.shared_expert.up_proj.weight`, [Is, H]);
      m.set(`${p}mlp.shared_expert.down_proj.weight`, [H, Is]);
      m.set(`${p}mlp.shared_expert_gate.weight`, [1, H]);
    }
  }
  m.set("model.norm.weight", [H]);
  m.set("lm_head.weight", [V, H]);
  return m;
}

export interface WriteOptions {
  seed?: number;
  /** Number of shards (> 1 writes model-0000i-of-0000n.safetensors + model.safetensors.index.json). */
  shards?: number;
  dtype?: FloatDtype;
  /** Tensors left out (to test the missing-tensor error). */
  omit?: string[];
  /** Extra tensors the family does not know. */
  extra?: Map<string, number[]>;
  configOverride?: Record<string, unknown>;
  /**
   * Sliding-window attention in the family's own config.json keys: mixtral `sliding_window`; qwen3_moe
   * `use_sliding_window` + `sliding_window`; qwen2_moe those + `max_window_layers` (when given). OLMoE has none.
   */
  slidingWindow?: { size: number; maxWindowLayers?: number };
  /** Generate each tensor only while it is written and keep nothing (large checkpoints); `tensors` is then empty. */
  streaming?: boolean;
  /** gpt_oss: the experts in the released MXFP4 layout (uint8 `*_blocks` + `*_scales`, quantization_config mxfp4). */
  mxfp4?: boolean;
  /** deepseek_v3: every Linear weight but the router as F8_E4M3 + `weight_scale_inv` with blocks of this size (quantization_config fp8). */
  fp8Block?: [number, number];
  /**
   * Deliberate near-ties: in every router, expert 1's row is expert 0's × (1 ± 1e-3) and expert 3's is expert 2's
   * (gpt-oss: their router biases equal too), so their logits differ by ~1e-3 for every token.
   */
  nearTies?: boolean;
}

function windowKeys(family: Family, w: WriteOptions["slidingWindow"]): Record<string, unknown> {
  if (!w) return {};
  if (family === "mixtral") return { sliding_window: w.size };
  if (family === "olmoe") throw new Error("OLMoE configs have no sliding window");
  return { use_sliding_window: true, sliding_window: w.size, ...(w.maxWindowLayers !== undefined && family === "qwen2_moe" ? { max_window_layers: w.maxWindowLayers } : {}) };
}

const ROUTER = /(\.mlp\.gate|block_sparse_moe\.gate|\.mlp\.router)\.weight$/;
/** DeepSeek-V3's fp8 checkpoints quantise every Linear of attention and the MLPs; not the router, norms, embeddings, head. */
const FP8_WEIGHT = /\.(self_attn\.(q_a|q_b|q|kv_a|kv_b|o)_proj(_with_mqa)?|mlp\.(.*\.)?(gate|up|down)_proj)\.weight$/;

/** Writes the checkpoint; returns its config and the tensors exactly as stored (bf16-rounded for BF16; raw bytes for U8/F8). */
export async function writeFamilyCheckpoint(dir: string, family: Family, o: WriteOptions = {}): Promise<{ config: Record<string, unknown>; tensors: Tensors }> {
  mkdirSync(dir, { recursive: true });
  const quantization = o.mxfp4
    ? { quantization_config: { quant_method: "mxfp4", modules_to_not_convert: ["model.layers.*.self_attn", "model.layers.*.mlp.router", "model.embed_tokens", "lm_head"] } }
    : o.fp8Block
      ? { quantization_config: { quant_method: "fp8", fmt: "e4m3", activation_scheme: "dynamic", weight_block_size: o.fp8Block } }
      : {};
  const config = { ...FAMILY_CONFIGS[family], ...windowKeys(family, o.slidingWindow), ...quantization, ...o.configOverride };
  const shapes = familyShapes(family, config, o);
  for (const [k, v] of o.extra ?? []) shapes.set(k, v);
  const rnd = prng(o.seed ?? 1);
  const tensors: Tensors = new Map();
  const round = (data: Float32Array) => (o.dtype === "BF16" ? data.map((v) => bf16BitsToF32(f32ToBf16Bits(v))) : data);
  const make = (name: string, shape: number[]) => {
    const count = shape.reduce((a, b) => a * b, 1);
    const isNorm = /norm\.weight$/.test(name);
    const scale = /\.gate\.weight$|shared_expert_gate|router\.weight$/.test(name) ? 1.5 : /sinks$/.test(name) ? 1 : /e_score_correction_bias$/.test(name) ? 0.3 : name.endsWith("bias") ? 0.1 : 1 / Math.sqrt(shape[shape.length - 1]!);
    const data = Float32Array.from({ length: count }, () => (isNorm ? 1 + 0.2 * (rnd() * 2 - 1) : scale * (rnd() * 2 - 1) * 1.7));
    if (o.nearTies && (ROUTER.test(name) || (family === "gpt_oss" && name.endsWith("mlp.router.bias")))) {
      const cols = shape.length > 1 ? shape[1]! : 1;
      for (const [a, b] of [[0, 1], [2, 3]] as const)
        for (let j = 0; j < cols; j++) data[b * cols + j] = shape.length > 1 ? data[a * cols + j]! * (1 + 1e-3 * (rnd() * 2 - 1)) : data[a * cols + j]!;
    }
    return round(data);
  };
  const names = [...shapes.keys()].filter((n) => !o.omit?.includes(n) && !n.endsWith("_scales"));
  if (!o.streaming)
    for (const name of names) {
      const shape = shapes.get(name)!;
      if (name.endsWith("_blocks")) {
        // MXFP4: random values in the [E, rows, G·32] layout convert_moe_packed_tensors expects, quantised per expert
        const [E, rows, G] = shape as [number, number, number];
        const blocks = new Uint8Array(E * rows * G * 16), scales = new Uint8Array(E * rows * G);
        for (let e = 0; e < E; e++) {
          const q = quantMxfp4(make(name, [rows, G * 32]), rows, G * 32);
          blocks.set(q.blocks, e * q.blocks.length);
          scales.set(q.scales, e * q.scales.length);
        }
        tensors.set(name, { shape, data: new Float32Array(0), raw: blocks, dtype: "U8" });
        tensors.set(name.replace(/_blocks$/, "_scales"), { shape: [E, rows, G], data: new Float32Array(0), raw: scales, dtype: "U8" });
      } else if (o.fp8Block && FP8_WEIGHT.test(name)) {
        const [rows, cols] = shape as [number, number];
        const q = quantFp8Blocks(make(name, shape), rows, cols, ...o.fp8Block);
        tensors.set(name, { shape, data: new Float32Array(0), raw: q.bytes, dtype: "F8_E4M3" });
        tensors.set(`${name}_scale_inv`, { shape: [Math.ceil(rows / o.fp8Block[0]), Math.ceil(cols / o.fp8Block[1])], data: q.scaleInv, dtype: "F32" });
      } else tensors.set(name, { shape, data: make(name, shape) });
    }
  const written = (o.streaming ? names : [...tensors.keys()]).filter((n) => !o.omit?.includes(n));
  const entry = (n: string) => {
    const t = tensors.get(n);
    return { name: n, shape: t?.shape ?? shapes.get(n)!, ...(t?.dtype ? { dtype: t.dtype } : {}), data: o.streaming ? () => make(n, shapes.get(n)!) : (t!.raw ?? t!.data) };
  };
  const shards = o.shards ?? 1;
  const dtype = o.dtype ?? "F32";
  if (shards === 1) {
    await writeSafetensors(path.join(dir, "model.safetensors"), written.map(entry), { dtype, metadata: { format: "pt" } });
  } else {
    const weightMap: Record<string, string> = {};
    const per = Math.ceil(written.length / shards);
    for (let s = 0; s < shards; s++) {
      const file = `model-${String(s + 1).padStart(5, "0")}-of-${String(shards).padStart(5, "0")}.safetensors`;
      const part = written.slice(s * per, (s + 1) * per);
      for (const n of part) weightMap[n] = file;
      await writeSafetensors(path.join(dir, file), part.map(entry), { dtype, metadata: { format: "pt" } });
    }
    writeFileSync(path.join(dir, "model.safetensors.index.json"), JSON.stringify({ metadata: { total_size: 0 }, weight_map: weightMap }, null, 2));
  }
  writeFileSync(path.join(dir, "config.json"), JSON.stringify(config, null, 2));
  return { config, tensors };
}
