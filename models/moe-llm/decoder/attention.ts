import { headDim, paramNames, type MoeLlmConfig } from "../config";
import { architectureOf, qkNormNames } from "../../families/conventions";
import { catRows, weight, type DecoderContext } from "./tensors";
import { io } from "./io";
import { groupedQueryAttention } from "../../onnx/attention";

/**
 * The attention variants of the decoder, each one self-contained function over a DecoderContext:
 * - gqaAttention: grouped-query attention with RoPE (Qwen2/3-MoE, OLMoE, Mixtral, Uni-MoE, Phi-3.5-MoE, gpt-oss), with
 *   the per-family switches: q/k/v and o biases, q/k RMSNorm (per head or over the projection), sliding windows
 *   (AttentionMasks.forLayer) and gpt-oss's attention sinks.
 * - mlaAttention: DeepSeek-V2/V3 multi-head latent attention.
 * Dimension letters as in moe-llm-graph.ts; T = P + S keys.
 */

/** Per-layer KV-cache tensors [B, heads, T, dim]: GQA keeps K and V per KV head; MLA the latent and the rope key (see mlaAttention). */
export function kvCacheDims(c: MoeLlmConfig): { key: [number, number]; value: [number, number] } {
  const a = architectureOf(c);
  if (a.mla) return { key: [1, a.mla.kvLoraRank], value: [1, a.mla.rope] };
  return { key: [c.num_key_value_heads, headDim(c)], value: [c.num_key_value_heads, headDim(c)] };
}

/** Every attention parameter of layer i with its PyTorch shape. */
export function attentionParamShapes(c: MoeLlmConfig, i: number, m: Map<string, number[]>): void {
  const a = architectureOf(c);
  const H = c.hidden_size, NH = c.num_attention_heads;
  if (a.mla) {
    const { qLoraRank: Q, kvLoraRank: R, nope, rope, v } = a.mla;
    if (Q === null) m.set(paramNames.attn(i, "q", "weight"), [NH * (nope + rope), H]);
    else {
      m.set(paramNames.mla(i, "q_a_proj"), [Q, H]);
      if (a.attentionBias) m.set(paramNames.mla(i, "q_a_proj", "bias"), [Q]);
      m.set(paramNames.mla(i, "q_a_layernorm"), [Q]);
      m.set(paramNames.mla(i, "q_b_proj"), [NH * (nope + rope), Q]);
    }
    m.set(paramNames.mla(i, "kv_a_proj_with_mqa"), [R + rope, H]);
    if (a.attentionBias) m.set(paramNames.mla(i, "kv_a_proj_with_mqa", "bias"), [R + rope]);
    m.set(paramNames.mla(i, "kv_a_layernorm"), [R]);
    m.set(paramNames.mla(i, "kv_b_proj"), [NH * (nope + v), R]);
    m.set(paramNames.attn(i, "o", "weight"), [H, NH * v]);
    if (a.outputBias) m.set(paramNames.attn(i, "o", "bias"), [H]);
    return;
  }
  const KVH = c.num_key_value_heads, Dh = headDim(c);
  for (const [p, rows] of [["q", NH * Dh], ["k", KVH * Dh], ["v", KVH * Dh]] as const) {
    m.set(paramNames.attn(i, p, "weight"), [rows, H]);
    if (a.attentionBias) m.set(paramNames.attn(i, p, "bias"), [rows]);
  }
  m.set(paramNames.attn(i, "o", "weight"), [H, NH * Dh]);
  if (a.outputBias) m.set(paramNames.attn(i, "o", "bias"), [H]);
  if (a.qkNorm !== "none") {
    m.set(qkNormNames.q(i), [a.qkNorm === "full" ? NH * Dh : Dh]);
    m.set(qkNormNames.k(i), [a.qkNorm === "full" ? KVH * Dh : Dh]);
  }
  if (a.sinks) m.set(paramNames.sinks(i), [NH]);
}

/** What every layer's attention shares: the batch shape, the rotary tables and the masks. */
export interface AttentionInputs {
  /** int64 [2] = [B, S] */
  bsShape: string;
  kvCache: boolean;
  rope: Rope;
  /** The additive [S, T] mask of a layer (causal, or causal within its sliding window). */
  mask(layer: number): string;
  /** Batched prefill with padding: float [B,1,1,T], PAD_BIAS at padded keys, 0 elsewhere (absent: no padding). */
  pad?: string;
}

/**
 * The additive bias of a padded key. Finite, so a query row whose keys are all padding (a left-padded row's own pads)
 * stays finite, and small enough for fp16 graphs; exp of it underflows to exactly 0 next to any real score.
 */
export const PAD_BIAS = -30000;

/** scores [B, ..., S, T] + the layer's mask (+ the padding bias [B,1,1,T] broadcast over the middle dims). */
function masked(ctx: DecoderContext, inputs: AttentionInputs, i: number, scores: string, rank: number): string {
  const { o, g } = ctx;
  const s = o.add(scores, inputs.mask(i));
  if (!inputs.pad) return s;
  return o.add(s, rank === 5 ? o.unsqueeze(inputs.pad, [1]) : inputs.pad);
}

/**
 * Rotary tables cos, sin [B,1,S,Dr] (Dr = rotated dims = 2 · Σ mrope_section). Frequencies: the canonical config's
 * `rope_inv_freq` (YaRN / LongRoPE, families/rope.ts) or 1/theta^(2j/Dr); cos and sin are multiplied by
 * `rope_attention_factor` (transformers multiplies its cos/sin by the rope init's attention_scaling). Section j of the
 * Dr/2 pairs takes its position from axis t, h or w (M-RoPE; the 1D families have one section).
 */
export interface Rope {
  cos: string;
  sin: string;
  dim: number;
}

/** The rotary frequencies (Dr/2 of them) and the [3, Dr/2] 0/1 table saying which position axis each one reads. */
export function ropeFrequencies(ctx: DecoderContext): { invFreq: number[]; select: number[] } {
  const { c, arch } = ctx;
  const sec = c.rope_scaling.mrope_section;
  const half = sec[0]! + sec[1]! + sec[2]!;
  const invFreq = arch.ropeInvFreq ?? Array.from({ length: half }, (_, j) => 1 / Math.pow(c.rope_theta, (2 * j) / (2 * half)));
  if (invFreq.length !== half) throw new Error(`rope_inv_freq has ${invFreq.length} frequencies, the rotary dims need ${half}`);
  const axisOf = (j: number) => (j < sec[0]! ? 0 : j < sec[0]! + sec[1]! ? 1 : 2);
  return { invFreq, select: Array.from({ length: 3 * half }, (_, q) => (axisOf(q % half) === Math.floor(q / half) ? 1 : 0)) };
}

export function ropeTables(ctx: DecoderContext, pos: string): Rope {
  const { o, g, arch } = ctx;
  const { invFreq, select } = ropeFrequencies(ctx);
  const half = invFreq.length;
  const dim = 2 * half;
  const freqs = o.mul(o.unsqueeze(o.cast(pos, "float"), [3]), g.const(invFreq, [half])); // [3,B,S,half]
  const f = o.reduceSum(o.mul(freqs, g.const(select, [3, 1, 1, half])), [0], 0); // [B,S,half]
  const emb = o.unsqueeze(o.concat([f, f], 2), [1]); // [B,1,S,Dr]
  const factor = arch.ropeAttentionFactor;
  const scaled = (t: string) => (factor === 1 ? t : o.mul(t, g.scalar(factor)));
  return { cos: scaled(o.cos(emb)), sin: scaled(o.sin(emb)), dim };
}

/** Rotate-half RoPE on t [B,heads,S,Dr] (transformers' apply_rotary_pos_emb / gpt-oss _apply_rotary_emb). */
export function applyRope(ctx: DecoderContext, rope: Rope, t: string): string {
  const o = ctx.o;
  const half = rope.dim / 2;
  const rot = o.concat([o.neg(o.slice(t, [half], [rope.dim], [3])), o.slice(t, [0], [half], [3])], 3);
  return o.add(o.mul(t, rope.cos), o.mul(rot, rope.sin));
}

/** Past ++ new along T (and the present outputs) for one cache tensor [B,heads,S,dim] → [B,heads,T,dim]. */
function withCache(ctx: DecoderContext, inputs: AttentionInputs, i: number, which: "key" | "value", t: string): string {
  if (!inputs.kvCache) return t;
  const [heads, dim] = kvCacheDims(ctx.c)[which];
  const past = which === "key" ? (i === 0 ? io.pastKey(0) : ctx.g.input(io.pastKey(i), "float", ["batch", heads, "past", dim])) : ctx.g.input(io.pastValue(i), "float", ["batch", heads, "past", dim]);
  const all = ctx.o.concat([past, t], 2);
  ctx.g.output(all, which === "key" ? io.presentKey(i) : io.presentValue(i), "float", ["batch", heads, "total", dim]);
  return all;
}

/** The past_key_0 input, declared before the layers (its length P is the masks' offset). */
export function declarePastKey0(ctx: DecoderContext): string {
  const [heads, dim] = kvCacheDims(ctx.c).key;
  return ctx.g.input(io.pastKey(0), "float", ["batch", heads, "past", dim]);
}

/** softmax over the keys, with gpt-oss's sink logit per head as an extra column whose probability is dropped. */
function attentionProbs(ctx: DecoderContext, i: number, scores: string, heads5?: [number, number]): string {
  const { o, g, arch } = ctx;
  if (!arch.sinks) return o.softmax(scores, -1);
  // eager_attention_forward (modeling_gpt_oss): cat([attn_weights, sinks]) → softmax → drop the last column
  const [KVH, G] = heads5!;
  const sinks = o.reshape(ctx.w(paramNames.sinks(i)), g.ints([1, KVH, G, 1, 1])); // head h = kv·G + g
  const rowShape = o.concat([o.shape(scores, 0, 4), g.ints([1])], 0);
  const probs = o.softmax(o.concat([scores, o.expand(sinks, rowShape)], 4), -1);
  const T = o.shape(scores, 4, 5);
  return o.slice(probs, [0], T, [4]);
}

/**
 * Grouped-query attention of layer i on h [N,H] → [N,H] (before the residual). q/k/v fused in one Linear (rows
 * [q; k; v]); OLMoE's q/k RMSNorm over the whole projection, Qwen3's per head; RoPE on q and k; scores × scale
 * (1/sqrt(Dh), or the config's attention_scale) + the layer's mask; gpt-oss sinks in the softmax; o_proj (+ bias).
 */
export function gqaAttention(ctx: DecoderContext, inputs: AttentionInputs, i: number, h: string): string {
  const { o, g, c, arch } = ctx;
  const H = c.hidden_size, NH = c.num_attention_heads, KVH = c.num_key_value_heads, G = NH / KVH, Dh = headDim(c);
  const fused = (kind: "weight" | "bias") => {
    const parts = (["q", "k", "v"] as const).map((p) => weight(ctx.ws, ctx.shapes, paramNames.attn(i, p, kind)));
    const rows = parts.reduce((a, t) => a + t.shape[0]!, 0);
    return g.initializer(`l${i}.qkv_proj.${kind}`, catRows(parts.map((t) => t.data)), kind === "weight" ? [rows, H] : [rows]);
  };
  let qkv = o.linear(h, fused("weight"), arch.attentionBias ? fused("bias") : undefined); // [N,(NH+2KVH)*Dh]
  if (arch.qkNorm === "full") {
    const [q, k, v] = o.split(qkv, [NH * Dh, KVH * Dh, KVH * Dh], 1) as [string, string, string];
    qkv = o.concat([o.rmsNorm(q, ctx.w(qkNormNames.q(i)), c.rms_norm_eps), o.rmsNorm(k, ctx.w(qkNormNames.k(i)), c.rms_norm_eps), v], 1);
  }
  let heads = o.transpose(o.reshape(qkv, o.concat([inputs.bsShape, g.ints([NH + 2 * KVH, Dh])], 0)), [0, 2, 1, 3]); // [B,NH+2KVH,S,Dh]
  if (arch.qkNorm === "per_head") {
    const [qh, kh, vh] = o.split(heads, [NH, KVH, KVH], 1) as [string, string, string];
    heads = o.concat([o.rmsNorm(qh, ctx.w(qkNormNames.q(i)), c.rms_norm_eps), o.rmsNorm(kh, ctx.w(qkNormNames.k(i)), c.rms_norm_eps), vh], 1);
  }
  const [qk, v0] = o.split(heads, [NH + KVH, KVH], 1) as [string, string];
  const [q, k0] = o.split(applyRope(ctx, inputs.rope, qk), [NH, KVH], 1) as [string, string]; // [B,NH,S,Dh], [B,KVH,S,Dh]
  const k = withCache(ctx, inputs, i, "key", k0);
  const v = withCache(ctx, inputs, i, "value", v0);
  const scale = arch.attentionScale ?? 1 / Math.sqrt(Dh);
  const probs = (scores: string) => attentionProbs(ctx, i, masked(ctx, inputs, i, scores, 5), [KVH, G]); // [B,KVH,G,S,T]
  const merged = groupedQueryAttention(o, { q, k, v, NH, KVH, Dh, scale, probs }); // [N,NH*Dh]
  return o.linear(merged, ctx.w(paramNames.attn(i, "o", "weight")), arch.outputBias ? ctx.w(paramNames.attn(i, "o", "bias")) : undefined);
}

/** The RMSNorms inside MLA (q_a_layernorm, kv_a_layernorm) are built with their class default eps, 1e-6, not rms_norm_eps. */
const MLA_NORM_EPS = 1e-6;

/**
 * Rows of a [rows, in] weight (or [rows] bias) with each head's rope block de-interleaved: the pairs (x0,x1),(x2,x3)…
 * become [x0,x2,…,x1,x3,…], so rotate-half RoPE on them gives a fixed permutation of what the pair rotation gives.
 * Both q and k are permuted alike, so q·k is unchanged. This is DeepSeek-V2's complex rotation
 * (modeling_deepseek_v2 apply_rotary_emb: view_as_complex over consecutive pairs) and DeepSeek-V3's rope_interleave
 * (modeling_deepseek_v3 apply_rotary_pos_emb_interleave: view(d/2, 2).transpose), done once on the weights.
 */
function deinterleaveRope(data: Float32Array, cols: number, blocks: { start: number; dim: number }[]): Float32Array {
  const out = data.slice();
  for (const { start, dim } of blocks)
    for (let j = 0; j < dim; j++) {
      const from = start + (j < dim / 2 ? 2 * j : 2 * (j - dim / 2) + 1);
      out.set(data.subarray(from * cols, (from + 1) * cols), (start + j) * cols);
    }
  return out;
}

/**
 * DeepSeek multi-head latent attention of layer i on h [N,H] → [N,H], following DeepseekV2Attention /
 * DeepseekV3Attention.forward (transformers modeling_deepseek_v2.py / modeling_deepseek_v3.py):
 *   q = q_proj(h), or q_b_proj(q_a_layernorm(q_a_proj(h)))           → per head [q_nope (dn) | q_pe (dr)]
 *   [c | k_pe] = kv_a_proj_with_mqa(h); c = kv_a_layernorm(c)         (c: kv_lora_rank R; k_pe: dr, shared by all heads)
 *   kv_b_proj(c) → per head [k_nope (dn) | v (dv)]; k = [k_nope | rope(k_pe)], q = [q_nope | rope(q_pe)]
 *   softmax(q·k · scale + mask) · v → o_proj. scale = (dn + dr)^-0.5, or the config's attention_scale (V3 with YaRN:
 *   × yarn_get_mscale(factor, mscale_all_dim)²).
 * KV cache: the compressed latent c (R values) as past_key [B,1,P,R] and the rotated k_pe (dr) as past_value [B,1,P,dr]
 * per token and layer, instead of the expanded k and v (NH·(dn + dr + dv) values) transformers' DynamicCache keeps:
 * for DeepSeek-V3, 576 floats per token and layer instead of 40,960. Attention is computed in the absorbed form,
 * algebraically equal to the expanded one because kv_b_proj has no bias: with W_UK, W_UV the k and v rows of
 * kv_b_proj per head, q_nope·(W_UK c) = (W_UKᵀ q_nope)·c and Σ p (W_UV c) = W_UV (Σ p c), so the scores are
 * [W_UKᵀ q_nope | q_pe] · [c | k_pe] and the output is W_UV (probs · c) per head.
 */
export function mlaAttention(ctx: DecoderContext, inputs: AttentionInputs, i: number, h: string): string {
  const { o, g, c, arch } = ctx;
  const { qLoraRank: Q, kvLoraRank: R, nope: dn, rope: dr, v: dv } = arch.mla!;
  const NH = c.num_attention_heads;
  const interleaved = (name: string, blocks: { start: number; dim: number }[]) => {
    const t = weight(ctx.ws, ctx.shapes, name);
    const cols = t.shape.length > 1 ? t.shape[1]! : 1;
    return g.initializer(name, arch.ropeInterleave ? deinterleaveRope(t.data, cols, blocks) : t.data, t.shape);
  };
  const qRope = Array.from({ length: NH }, (_, hh) => ({ start: hh * (dn + dr) + dn, dim: dr }));
  let q: string;
  if (Q === null) q = o.linear(h, interleaved(paramNames.attn(i, "q", "weight"), qRope));
  else {
    const qa = o.linear(h, ctx.w(paramNames.mla(i, "q_a_proj")), arch.attentionBias ? ctx.w(paramNames.mla(i, "q_a_proj", "bias")) : undefined);
    q = o.linear(o.rmsNorm(qa, ctx.w(paramNames.mla(i, "q_a_layernorm")), MLA_NORM_EPS), interleaved(paramNames.mla(i, "q_b_proj"), qRope));
  }
  const qh = o.transpose(o.reshape(q, o.concat([inputs.bsShape, g.ints([NH, dn + dr])], 0)), [0, 2, 1, 3]); // [B,NH,S,dn+dr]
  const [qNope, qPe] = o.split(qh, [dn, dr], 3) as [string, string];
  const kvRope = [{ start: R, dim: dr }];
  const kvA = o.linear(h, interleaved(paramNames.mla(i, "kv_a_proj_with_mqa"), kvRope), arch.attentionBias ? interleaved(paramNames.mla(i, "kv_a_proj_with_mqa", "bias"), kvRope) : undefined); // [N,R+dr]
  const [cRaw, kPeRaw] = o.split(kvA, [R, dr], 1) as [string, string];
  const one = (t: string, dim: number) => o.unsqueeze(o.reshape(t, o.concat([inputs.bsShape, g.ints([dim])], 0)), [1]); // [B,1,S,dim]
  const latent = withCache(ctx, inputs, i, "key", one(o.rmsNorm(cRaw, ctx.w(paramNames.mla(i, "kv_a_layernorm")), MLA_NORM_EPS), R)); // [B,1,T,R]
  const kPe = withCache(ctx, inputs, i, "value", applyRope(ctx, inputs.rope, one(kPeRaw, dr))); // [B,1,T,dr]
  // kv_b_proj [NH*(dn+dv), R] → W_UK [NH,dn,R] and W_UVᵀ [NH,R,dv]
  const kvb = weight(ctx.ws, ctx.shapes, paramNames.mla(i, "kv_b_proj"));
  const uk = new Float32Array(NH * dn * R), uvT = new Float32Array(NH * R * dv);
  for (let hh = 0; hh < NH; hh++) {
    const base = hh * (dn + dv) * R;
    uk.set(kvb.data.subarray(base, base + dn * R), hh * dn * R);
    for (let r = 0; r < R; r++) for (let j = 0; j < dv; j++) uvT[hh * R * dv + r * dv + j] = kvb.data[base + (dn + j) * R + r]!;
  }
  const wUK = g.initializer(`l${i}.kv_b_proj.uk`, uk, [NH, dn, R]);
  const wUVT = g.initializer(`l${i}.kv_b_proj.uv_t`, uvT, [NH, R, dv]);
  const scale = arch.attentionScale ?? 1 / Math.sqrt(dn + dr);
  const qCat = o.mul(o.concat([o.matmul(qNope, wUK), applyRope(ctx, inputs.rope, qPe)], 3), g.scalar(scale)); // [B,NH,S,R+dr]
  const kCatT = o.transpose(o.concat([latent, kPe], 3), [0, 1, 3, 2]); // [B,1,R+dr,T]
  const probs = o.softmax(masked(ctx, inputs, i, o.matmul(qCat, kCatT), 4), -1); // [B,NH,S,T]
  const ctxV = o.matmul(o.matmul(probs, latent), wUVT); // [B,NH,S,dv]
  const merged = o.reshape(o.transpose(ctxV, [0, 2, 1, 3]), g.ints([-1, NH * dv])); // [N,NH*dv]
  return o.linear(merged, ctx.w(paramNames.attn(i, "o", "weight")), arch.outputBias ? ctx.w(paramNames.attn(i, "o", "bias")) : undefined);
}
