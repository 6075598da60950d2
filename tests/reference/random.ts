import { type MoeLlmConfig, paramNames, zMoeLlmConfig } from "@/models/moe-llm/config";
import { MemoryWeights, type Tensor32 } from "@/models/io/weights";

/** mulberry32: a small seeded PRNG, values in [0, 1). */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A small random Uni-MoE-like config (head_dim 8 or 16, 2-3 layers, 4-8 routed experts). */
export function randomConfig(seed: number, over: Partial<MoeLlmConfig> = {}): MoeLlmConfig {
  const r = prng(seed * 7919 + 1);
  const pick = <T,>(xs: T[]): T => xs[Math.floor(r() * xs.length)]!;
  const kvh = pick([1, 2]);
  const heads = kvh * pick([1, 2, 4]);
  const hd = pick([8, 16]);
  const half = hd / 2;
  const st = 1 + Math.floor(r() * (half - 2));
  const sh = 1 + Math.floor(r() * (half - st - 1));
  return zMoeLlmConfig.parse({
    hidden_size: pick([32, 48, 64]),
    num_hidden_layers: pick([2, 3]),
    num_attention_heads: heads,
    num_key_value_heads: kvh,
    head_dim: hd,
    vocab_size: pick([40, 64, 97]),
    rope_theta: pick([10_000, 1_000_000]),
    rope_scaling: { type: "mrope", mrope_section: [st, sh, half - st - sh] },
    mlp_dynamic_expert_num: pick([4, 6, 8]),
    mlp_dynamic_null_expert_num: pick([0, 1, 1, 2]),
    mlp_fixed_expert_num: pick([1, 2]),
    dynamic_intermediate_size: pick([16, 24, 32]),
    shared_intermediate_size: pick([8, 16]),
    mlp_dynamic_top_p: pick([0.5, 0.7, 0.9]),
    tie_word_embeddings: r() < 0.3,
    ...over,
  });
}

/** Seeded random weights with O(1) activations for every parameter of the config. */
export function randomWeights(c: MoeLlmConfig, seed: number, routerScale = 2): MemoryWeights {
  const r = prng(seed);
  const m = new Map<string, Tensor32>();
  const uni = (shape: number[], scale: number, offset = 0): Tensor32 => {
    const n = shape.reduce((a, b) => a * b, 1);
    return { shape, data: Float32Array.from({ length: n }, () => offset + (r() * 2 - 1) * scale) };
  };
  const H = c.hidden_size, hd = c.head_dim ?? H / c.num_attention_heads;
  const NH = c.num_attention_heads, KVH = c.num_key_value_heads;
  const E = c.mlp_dynamic_expert_num + c.mlp_dynamic_null_expert_num + c.mlp_fixed_expert_num;
  const I = c.dynamic_intermediate_size, Is = c.shared_intermediate_size;
  const lin = (o: number, i: number, gain = 1) => uni([o, i], (gain * Math.sqrt(3)) / Math.sqrt(i));
  m.set(paramNames.embed, uni([c.vocab_size, H], 1));
  for (let i = 0; i < c.num_hidden_layers; i++) {
    m.set(paramNames.inputNorm(i), uni([H], 0.2, 1));
    m.set(paramNames.postNorm(i), uni([H], 0.2, 1));
    m.set(paramNames.attn(i, "q", "weight"), lin(NH * hd, H));
    m.set(paramNames.attn(i, "q", "bias"), uni([NH * hd], 0.3));
    m.set(paramNames.attn(i, "k", "weight"), lin(KVH * hd, H));
    m.set(paramNames.attn(i, "k", "bias"), uni([KVH * hd], 0.3));
    m.set(paramNames.attn(i, "v", "weight"), lin(KVH * hd, H));
    m.set(paramNames.attn(i, "v", "bias"), uni([KVH * hd], 0.3));
    m.set(paramNames.attn(i, "o", "weight"), lin(H, NH * hd, 0.5));
    m.set(paramNames.router(i), lin(E, H, routerScale));
    for (let e = 0; e < c.mlp_dynamic_expert_num; e++) {
      m.set(paramNames.routed(i, e, "gate"), lin(I, H));
      m.set(paramNames.routed(i, e, "up"), lin(I, H));
      m.set(paramNames.routed(i, e, "down"), lin(H, I, 0.5));
    }
    for (let s = 0; s < c.mlp_fixed_expert_num; s++) {
      m.set(paramNames.shared(i, s, "gate"), lin(Is, H));
      m.set(paramNames.shared(i, s, "up"), lin(Is, H));
      m.set(paramNames.shared(i, s, "down"), lin(H, Is, 0.5));
    }
  }
  m.set(paramNames.finalNorm, uni([H], 0.2, 1));
  if (!c.tie_word_embeddings) m.set(paramNames.lmHead, lin(c.vocab_size, H, 2));
  return new MemoryWeights(m);
}

/** Random token ids in [0, V). */
export function randomIds(n: number, V: number, seed: number): number[] {
  const r = prng(seed);
  return Array.from({ length: n }, () => Math.floor(r() * V));
}
