/**
 * What the family tables (table.ts, deepseek.ts, phimoe.ts, gpt-oss.ts) share: mapping-rule types, the canonical
 * tensor-name patterns, config.json readers and the canonical config of a fixed-k family.
 */
import { zMoeLlmConfig, type MoeLlmConfig } from "../moe-llm/config";
import type { Tensor32 } from "../io/weights";
import { DENSE_LAYERS_KEY, SLIDING_WINDOW_KEY, type QkNorm, type RoutingConvention } from "./conventions";
import { ropeSpec } from "./rope";

/** A checkpoint tensor and the rule of its family that claimed it (inspect-checkpoint lists these). */
export interface TensorClaim {
  name: string;
  shape: number[];
  dtype: string;
  file: string;
  /** The rule's `from` pattern, or null when no rule matched (unclaimed). */
  rule: string | null;
  /** Canonical name it feeds (null: claimed but not used, or unclaimed); a stacked tensor's keeps `{e}`. */
  canonical: string | null;
  part: number;
  note?: string;
}

/** A layout change from a checkpoint tensor (or one expert's slice of it) to its canonical tensor. */
export interface Take {
  /** What the canonical tensor's shape is, given the source's (without reading anything). */
  shape(source: number[]): number[];
  apply(t: Tensor32): Tensor32;
}

export interface MappingRule {
  from: string;
  to: string | null;
  part?: number;
  /** Why a claimed tensor is not used (for `to: null`), or how it is read. */
  note?: string;
  /**
   * `from` stacks the experts along its first dimension and `to` has `{e}`: one canonical tensor per slice, each read
   * alone (gpt-oss `mlp.experts.gate_up_proj` [E, H, 2I]).
   */
  stacked?: boolean;
  /** Turns the tensor (or its expert slice) as read, fp32, into the canonical layout. */
  take?: Take;
  /** More canonical tensors from the same source tensor (e.g. gate and up from a fused gate_up). */
  also?: { to: string; take: Take }[];
  /** MXFP4: `from` holds the uint8 blocks, this pattern (same `{i}`) the exponents; dequantised on read (import/dequant.ts). */
  mxfp4Scales?: string;
}

/** Canonical names (families/conventions.ts and config.ts paramNames, as patterns). */
export const C = {
  embed: "model.embed_tokens.weight",
  norm: "model.norm.weight",
  lmHead: "lm_head.weight",
  inNorm: "model.layers.{i}.input_layernorm.weight",
  postNorm: "model.layers.{i}.post_attention_layernorm.weight",
  attn: (p: string, kind = "weight") => `model.layers.{i}.self_attn.${p}_proj.${kind}`,
  qNorm: "model.layers.{i}.self_attn.q_norm.weight",
  kNorm: "model.layers.{i}.self_attn.k_norm.weight",
  router: "model.layers.{i}.mlp.gate.weight",
  routed: (p: string) => `model.layers.{i}.mlp.dynamic_real_moe.deepspeed_moe.experts.deepspeed_experts.{e}.${p}_proj.weight`,
  shared: (s: number, p: string) => `model.layers.{i}.mlp.fixed_real_moe.${s}.${p}_proj.weight`,
};

/** Rules every Llama-style decoder shares (embeddings, norms, attention projections). */
export function decoderRules(opts: { bias: boolean; qkNorm: boolean }): MappingRule[] {
  const r: MappingRule[] = [
    { from: C.embed, to: C.embed },
    { from: C.norm, to: C.norm },
    { from: C.lmHead, to: C.lmHead },
    { from: C.inNorm, to: C.inNorm },
    { from: C.postNorm, to: C.postNorm },
    ...["q", "k", "v", "o"].map((p) => ({ from: C.attn(p), to: C.attn(p) })),
    { from: "model.layers.{i}.self_attn.rotary_emb.inv_freq", to: null, note: "recomputed from rope_theta" },
  ];
  if (opts.bias) r.push(...["q", "k", "v"].map((p) => ({ from: C.attn(p, "bias"), to: C.attn(p, "bias") })));
  if (opts.qkNorm) r.push({ from: C.qNorm, to: C.qNorm }, { from: C.kNorm, to: C.kNorm });
  return r;
}

/** HF-style `mlp.experts.{e}.{gate,up,down}_proj` experts and an `mlp.gate` router. */
export const hfExpertRules: MappingRule[] = [
  { from: "model.layers.{i}.mlp.gate.weight", to: C.router, part: 0 },
  ...["gate", "up", "down"].map((p) => ({ from: `model.layers.{i}.mlp.experts.{e}.${p}_proj.weight`, to: C.routed(p) })),
];

export type Raw = Record<string, unknown>;

export function num(raw: Raw, key: string, fallback?: number): number {
  const v = raw[key] ?? fallback;
  if (typeof v !== "number" || !Number.isFinite(v)) throw new Error(`config.json: "${key}" must be a number (got ${JSON.stringify(raw[key])})`);
  return v;
}

export function bool(raw: Raw, key: string, fallback: boolean): boolean {
  const v = raw[key] ?? fallback;
  if (typeof v !== "boolean") throw new Error(`config.json: "${key}" must be true or false (got ${JSON.stringify(raw[key])})`);
  return v;
}

/** A sliding-window size from config.json: a positive integer, else an error naming the key. */
export function windowSize(raw: Raw, key: string, family: string, fallback?: number): number {
  const v = raw[key] ?? fallback;
  if (typeof v !== "number" || !Number.isInteger(v) || v <= 0) throw new Error(`${family}: config.json "${key}" must be a positive integer (the sliding-window size in tokens), got ${JSON.stringify(raw[key])}`);
  return v;
}

/** What a fixed-k family's canonical config needs beyond config.json's common fields. */
export interface CanonicalSpec {
  family: string;
  experts: number;
  topK: number;
  expertIntermediate: number;
  routing: RoutingConvention;
  qkNorm?: QkNorm;
  attentionBias: boolean;
  /** Shared experts as one fused MLP (Qwen2-MoE: gated by sigmoid of its own router row; DeepSeek: weight 1). */
  shared?: { intermediate: number; gated: boolean };
  ropeTheta: number;
  rmsEps: number;
  /** q/k head dim when config.json has no head_dim (default hidden / heads). */
  headDim?: number;
  /** Rotated dims (default the head dim; MLA: qk_rope_head_dim). */
  rotaryDim?: number;
  /** Per-layer sliding window (null = full causal); absent = no window anywhere. */
  slidingWindows?: (number | null)[];
  /** Dense (router-less) decoder layers and their MLP's intermediate size. */
  dense?: { layers: number[]; intermediate: number };
  /** Further canonical fields (families/conventions.ts ArchitectureOptions). */
  extra?: Record<string, unknown>;
}

/**
 * Canonical config of a fixed-k family: 1D RoPE is M-RoPE with one section over the rotated dims (all three position
 * rows equal), with YaRN / LongRoPE frequencies from families/rope.ts when config.json asks for them.
 */
export function canonicalConfig(raw: Raw, s: CanonicalSpec): MoeLlmConfig {
  const H = num(raw, "hidden_size"), NH = num(raw, "num_attention_heads");
  const Dh = s.headDim ?? num(raw, "head_dim", H / NH);
  const rotary = s.rotaryDim ?? Dh;
  const theta = num(raw, "rope_theta", s.ropeTheta);
  return zMoeLlmConfig.parse({
    model_type: s.family,
    hidden_size: H,
    num_hidden_layers: num(raw, "num_hidden_layers"),
    num_attention_heads: NH,
    num_key_value_heads: num(raw, "num_key_value_heads", NH),
    head_dim: rotary,
    vocab_size: num(raw, "vocab_size"),
    rms_norm_eps: num(raw, "rms_norm_eps", s.rmsEps),
    rope_theta: theta,
    rope_scaling: { type: "default", mrope_section: [rotary / 2, 0, 0] },
    ...ropeSpec(raw, s.family, theta, rotary),
    mlp_dynamic_expert_num: s.experts,
    mlp_dynamic_null_expert_num: 0,
    mlp_fixed_expert_num: s.shared ? 1 : 0,
    dynamic_intermediate_size: s.expertIntermediate,
    shared_intermediate_size: s.shared?.intermediate ?? 1,
    mlp_dynamic_top_p: 0,
    mlp_dynamic_top_k: s.topK,
    router_jitter_noise: 0,
    token_drop: false,
    tie_word_embeddings: bool(raw, "tie_word_embeddings", false),
    routing_convention: s.routing,
    shared_expert_gate: !!s.shared?.gated,
    qk_norm: s.qkNorm ?? "none",
    attention_bias: s.attentionBias,
    eos_token_id: raw.eos_token_id,
    bos_token_id: raw.bos_token_id,
    ...(s.slidingWindows?.some((w) => w !== null) ? { [SLIDING_WINDOW_KEY]: s.slidingWindows } : {}),
    ...(s.dense && s.dense.layers.length > 0 ? { [DENSE_LAYERS_KEY]: s.dense.layers, dense_intermediate_size: s.dense.intermediate } : {}),
    ...s.extra,
  });
}

/** An identity rule for each name pattern (the checkpoint uses the canonical name). */
export const same = (...names: string[]): MappingRule[] => names.map((n) => ({ from: n, to: n }));

const take = (shape: (s: number[]) => number[], apply: (t: Tensor32) => Float32Array): Take => ({ shape, apply: (t) => ({ shape: shape(t.shape), data: apply(t) }) });

/** Layout changes of stacked expert tensors (gpt-oss). */
export const takes = {
  /** [r, c] → [c, r] */
  transpose: take(
    ([r, c]) => [c!, r!],
    (t) => {
      const [r, c] = t.shape as [number, number];
      const out = new Float32Array(r * c);
      for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) out[j * r + i] = t.data[i * c + j]!;
      return out;
    },
  ),
  /** [rows, 2n] → the even (or odd) columns, transposed: [n, rows] (x @ W with interleaved gate/up columns) */
  colsT: (odd: boolean): Take =>
    take(
      ([r, c]) => [c! / 2, r!],
      (t) => {
        const [r, c] = t.shape as [number, number];
        const out = new Float32Array((c / 2) * r);
        for (let i = 0; i < r; i++) for (let j = 0; j < c / 2; j++) out[j * r + i] = t.data[i * c + 2 * j + (odd ? 1 : 0)]!;
        return out;
      },
    ),
  /** [2n, cols] (or [2n]) → the even (or odd) rows: [n, cols] */
  rows: (odd: boolean): Take =>
    take(
      ([r, ...rest]) => [r! / 2, ...rest],
      (t) => {
        const width = t.shape.slice(1).reduce((a, b) => a * b, 1);
        const out = new Float32Array(t.data.length / 2);
        for (let j = 0; j < t.shape[0]! / 2; j++) out.set(t.data.subarray((2 * j + (odd ? 1 : 0)) * width, (2 * j + (odd ? 1 : 0) + 1) * width), j * width);
        return out;
      },
    ),
};

/**
 * Dense layers of Qwen2-MoE / Qwen3-MoE (Qwen2MoeDecoderLayer / Qwen3MoeDecoderLayer.__init__): layer i is an MoE
 * block iff `i not in mlp_only_layers and num_experts > 0 and (i + 1) % decoder_sparse_step == 0`, else a dense MLP
 * with `intermediate_size`.
 */
export function qwenDenseLayers(raw: Raw, family: string): { layers: number[]; intermediate: number } | undefined {
  const L = num(raw, "num_hidden_layers");
  const only = raw.mlp_only_layers ?? [];
  if (!Array.isArray(only) || !only.every((i) => Number.isInteger(i) && i >= 0)) throw new Error(`${family}: config.json "mlp_only_layers" must list layer indices (got ${JSON.stringify(raw.mlp_only_layers)})`);
  const step = num(raw, "decoder_sparse_step", 1);
  if (!Number.isInteger(step) || step < 1) throw new Error(`${family}: config.json "decoder_sparse_step" must be a positive integer (got ${JSON.stringify(raw.decoder_sparse_step)})`);
  const layers = Array.from({ length: L }, (_, i) => i).filter((i) => only.includes(i) || (i + 1) % step !== 0);
  return layers.length > 0 ? { layers, intermediate: num(raw, "intermediate_size") } : undefined;
}
