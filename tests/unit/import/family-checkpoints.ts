/**
 * Tiny random checkpoints in each family's real file layout: Hugging Face config.json fields and tensor names
 * (modeling_qwen2_moe / qwen3_moe / olmoe / mixtral), single model.safetensors or shards with
 * model.safetensors.index.json, F32 or BF16 storage.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { bf16BitsToF32, f32ToBf16Bits, writeSafetensors, type FloatDtype } from "@/models/safetensors";
import { prng } from "../../reference/random";
import type { Family, Tensors } from "../../reference/families/topk-moe";

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
};

/** Every tensor of a family checkpoint with its shape, in the family's own names. */
export function familyShapes(family: Family, c: Record<string, unknown>): Map<string, number[]> {
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
}

function windowKeys(family: Family, w: WriteOptions["slidingWindow"]): Record<string, unknown> {
  if (!w) return {};
  if (family === "mixtral") return { sliding_window: w.size };
  if (family === "olmoe") throw new Error("OLMoE configs have no sliding window");
  return { use_sliding_window: true, sliding_window: w.size, ...(w.maxWindowLayers !== undefined && family === "qwen2_moe" ? { max_window_layers: w.maxWindowLayers } : {}) };
}

/** Writes the checkpoint; returns its config and the tensors exactly as stored (bf16-rounded for BF16). */
export async function writeFamilyCheckpoint(dir: string, family: Family, o: WriteOptions = {}): Promise<{ config: Record<string, unknown>; tensors: Tensors }> {
  mkdirSync(dir, { recursive: true });
  const config = { ...FAMILY_CONFIGS[family], ...windowKeys(family, o.slidingWindow), ...o.configOverride };
  const shapes = familyShapes(family, config);
  for (const [k, v] of o.extra ?? []) shapes.set(k, v);
  const rnd = prng(o.seed ?? 1);
  const tensors: Tensors = new Map();
  const make = (name: string, shape: number[]) => {
    const count = shape.reduce((a, b) => a * b, 1);
    const isNorm = /norm\.weight$/.test(name);
    const scale = /\.gate\.weight$|shared_expert_gate/.test(name) ? 1.5 : name.endsWith("bias") ? 0.1 : 1 / Math.sqrt(shape[shape.length - 1]!);
    let data = Float32Array.from({ length: count }, () => (isNorm ? 1 + 0.2 * (rnd() * 2 - 1) : scale * (rnd() * 2 - 1) * 1.7));
    if (o.dtype === "BF16") data = data.map((v) => bf16BitsToF32(f32ToBf16Bits(v)));
    return data;
  };
  const names = [...shapes.keys()].filter((n) => !o.omit?.includes(n));
  if (!o.streaming) for (const name of names) tensors.set(name, { shape: shapes.get(name)!, data: make(name, shapes.get(name)!) });
  const entry = (n: string) => ({ name: n, shape: shapes.get(n)!, data: o.streaming ? () => make(n, shapes.get(n)!) : tensors.get(n)!.data });
  const shards = o.shards ?? 1;
  const dtype = o.dtype ?? "F32";
  if (shards === 1) {
    await writeSafetensors(path.join(dir, "model.safetensors"), names.map(entry), { dtype, metadata: { format: "pt" } });
  } else {
    const weightMap: Record<string, string> = {};
    const per = Math.ceil(names.length / shards);
    for (let s = 0; s < shards; s++) {
      const file = `model-${String(s + 1).padStart(5, "0")}-of-${String(shards).padStart(5, "0")}.safetensors`;
      const part = names.slice(s * per, (s + 1) * per);
      for (const n of part) weightMap[n] = file;
      await writeSafetensors(path.join(dir, file), part.map(entry), { dtype, metadata: { format: "pt" } });
    }
    writeFileSync(path.join(dir, "model.safetensors.index.json"), JSON.stringify({ metadata: { total_size: 0 }, weight_map: weightMap }, null, 2));
  }
  writeFileSync(path.join(dir, "config.json"), JSON.stringify(config, null, 2));
  return { config, tensors };
}
