/**
 * Plain-TS reference forwards of the vision and audio encoders: loops over Float64 accumulators, no graph
 * builder, written from the architecture description (not from the graph code). Weights are read by their
 * HF names from a Map.
 */
import { expect } from "vitest";
import type { Tensor32 } from "@/models/io/weights";

type W = Map<string, Tensor32>;
const get = (w: W, name: string): Float32Array => {
  const t = w.get(name);
  if (!t) throw new Error(`reference: missing weight ${name}`);
  return t.data;
};

/** erf with |error| < 1e-12: Taylor series below 3, continued fraction for erfc above. */
export function erf(x: number): number {
  const ax = Math.abs(x);
  if (ax < 3) {
    let term = ax;
    let sum = ax;
    for (let n = 1; n < 100; n++) {
      term *= (-ax * ax) / n;
      const t = term / (2 * n + 1);
      sum += t;
      if (Math.abs(t) < 1e-17) break;
    }
    return Math.sign(x) * (2 / Math.sqrt(Math.PI)) * sum;
  }
  // erfc(x) = exp(−x²)/√π · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + 2/(x + …)))))
  let f = ax;
  for (let k = 60; k >= 1; k--) f = ax + k / 2 / f;
  const erfc = Math.exp(-ax * ax) / Math.sqrt(Math.PI) / f;
  return Math.sign(x) * (1 - erfc);
}

export const gelu = (x: number) => 0.5 * x * (1 + erf(x / Math.SQRT2));
export const geluTanh = (x: number) => 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x * x * x)));

/** x: [N, K] → [N, O] with weight [O, K] and bias [O] (or none). */
export function linear(x: Float64Array, N: number, K: number, weight: Float32Array, bias: Float32Array | undefined, O: number): Float64Array {
  const y = new Float64Array(N * O);
  for (let n = 0; n < N; n++)
    for (let o = 0; o < O; o++) {
      let s = bias ? bias[o]! : 0;
      for (let k = 0; k < K; k++) s += x[n * K + k]! * weight[o * K + k]!;
      y[n * O + o] = s;
    }
  return y;
}

/** LayerNorm over rows of [N, D]. */
export function layerNorm(x: Float64Array, N: number, D: number, g: Float32Array, b: Float32Array, eps: number): Float64Array {
  const y = new Float64Array(N * D);
  for (let n = 0; n < N; n++) {
    let mean = 0;
    for (let d = 0; d < D; d++) mean += x[n * D + d]!;
    mean /= D;
    let v = 0;
    for (let d = 0; d < D; d++) v += (x[n * D + d]! - mean) ** 2;
    const inv = 1 / Math.sqrt(v / D + eps);
    for (let d = 0; d < D; d++) y[n * D + d] = (x[n * D + d]! - mean) * inv * g[d]! + b[d]!;
  }
  return y;
}

/** Unmasked multi-head attention: q rows [Nq, D] attend over kv rows [Nk, D]; weights under `prefix`. */
export function attention(w: W, prefix: string, xq: Float64Array, Nq: number, xkv: Float64Array, Nk: number, D: number, H: number, kBias: boolean): Float64Array {
  const hd = D / H;
  const q = linear(xq, Nq, D, get(w, `${prefix}.q_proj.weight`), get(w, `${prefix}.q_proj.bias`), D);
  const k = linear(xkv, Nk, D, get(w, `${prefix}.k_proj.weight`), kBias ? get(w, `${prefix}.k_proj.bias`) : undefined, D);
  const v = linear(xkv, Nk, D, get(w, `${prefix}.v_proj.weight`), get(w, `${prefix}.v_proj.bias`), D);
  const ctx = new Float64Array(Nq * D);
  const scores = new Float64Array(Nk);
  const scale = 1 / Math.sqrt(hd);
  for (let h = 0; h < H; h++)
    for (let i = 0; i < Nq; i++) {
      let max = -Infinity;
      for (let j = 0; j < Nk; j++) {
        let s = 0;
        for (let e = 0; e < hd; e++) s += q[i * D + h * hd + e]! * k[j * D + h * hd + e]!;
        scores[j] = s * scale;
        if (scores[j]! > max) max = scores[j]!;
      }
      let z = 0;
      for (let j = 0; j < Nk; j++) {
        scores[j] = Math.exp(scores[j]! - max);
        z += scores[j]!;
      }
      for (let e = 0; e < hd; e++) {
        let s = 0;
        for (let j = 0; j < Nk; j++) s += scores[j]! * v[j * D + h * hd + e]!;
        ctx[i * D + h * hd + e] = s / z;
      }
    }
  return linear(ctx, Nq, D, get(w, `${prefix}.out_proj.weight`), get(w, `${prefix}.out_proj.bias`), D);
}

function addInPlace<T extends Float64Array>(a: T, b: Float64Array): T {
  for (let i = 0; i < a.length; i++) a[i]! += b[i]!;
  return a;
}

function mlp(w: W, p: string, x: Float64Array, N: number, D: number, I: number, act: (v: number) => number, fc1 = "fc1", fc2 = "fc2"): Float64Array {
  const h = linear(x, N, D, get(w, `${p}.${fc1}.weight`), get(w, `${p}.${fc1}.bias`), I).map(act);
  return linear(h, N, I, get(w, `${p}.${fc2}.weight`), get(w, `${p}.${fc2}.bias`), D);
}

export interface RefVisionConfig {
  image_size: number;
  patch_size: number;
  hidden_size: number;
  intermediate_size: number;
  num_attention_heads: number;
  layers_run: number;
  layer_norm_eps: number;
  hidden_act: "gelu" | "gelu_pytorch_tanh";
  projector_hidden_size: number;
  out_dim: number;
}

/** One tile [3, S, S] → projected patch features [G·G, O] (before pooling). */
export function refVisionTile(c: RefVisionConfig, w: W, tile: Float32Array): Float64Array {
  const S = c.image_size;
  const P = c.patch_size;
  const G = Math.floor(S / P);
  const N = G * G;
  const D = c.hidden_size;
  const pw = get(w, "vision_model.embeddings.patch_embedding.weight");
  const pb = get(w, "vision_model.embeddings.patch_embedding.bias");
  const pos = get(w, "vision_model.embeddings.position_embedding.weight");
  let x = new Float64Array(N * D);
  for (let gy = 0; gy < G; gy++)
    for (let gx = 0; gx < G; gx++) {
      const n = gy * G + gx;
      for (let d = 0; d < D; d++) {
        let s = pb[d]!;
        for (let ch = 0; ch < 3; ch++)
          for (let ky = 0; ky < P; ky++)
            for (let kx = 0; kx < P; kx++) s += tile[ch * S * S + (gy * P + ky) * S + gx * P + kx]! * pw[((d * 3 + ch) * P + ky) * P + kx]!;
        x[n * D + d] = s + pos[n * D + d]!;
      }
    }
  const act = c.hidden_act === "gelu" ? gelu : geluTanh;
  for (let i = 0; i < c.layers_run; i++) {
    const p = `vision_model.encoder.layers.${i}`;
    const h = layerNorm(x, N, D, get(w, `${p}.layer_norm1.weight`), get(w, `${p}.layer_norm1.bias`), c.layer_norm_eps);
    x = addInPlace(x, attention(w, `${p}.self_attn`, h, N, h, N, D, c.num_attention_heads, true));
    const h2 = layerNorm(x, N, D, get(w, `${p}.layer_norm2.weight`), get(w, `${p}.layer_norm2.bias`), c.layer_norm_eps);
    x = addInPlace(x, mlp(w, `${p}.mlp`, h2, N, D, c.intermediate_size, act));
  }
  const q = linear(x, N, D, get(w, "mm_projector.0.weight"), get(w, "mm_projector.0.bias"), c.projector_hidden_size).map(gelu);
  return linear(q, N, c.projector_hidden_size, get(w, "mm_projector.2.weight"), get(w, "mm_projector.2.bias"), c.out_dim);
}

/** Adaptive average pooling of a G×G grid of rows [G·G, D] to s×s, written from the torch definition. */
export function refAdaptivePool(x: ArrayLike<number>, G: number, D: number, s: number): Float64Array {
  const out = new Float64Array(s * s * D);
  for (let i = 0; i < s; i++)
    for (let j = 0; j < s; j++) {
      const r0 = Math.floor((i * G) / s);
      const r1 = Math.ceil(((i + 1) * G) / s);
      const c0 = Math.floor((j * G) / s);
      const c1 = Math.ceil(((j + 1) * G) / s);
      for (let d = 0; d < D; d++) {
        let sum = 0;
        for (let r = r0; r < r1; r++) for (let cc = c0; cc < c1; cc++) sum += x[(r * G + cc) * D + d]!;
        out[(i * s + j) * D + d] = sum / ((r1 - r0) * (c1 - c0));
      }
    }
  return out;
}

export interface RefAudioConfig {
  num_mel_bins: number;
  max_source_positions: number;
  d_model: number;
  encoder_layers: number;
  encoder_attention_heads: number;
  encoder_ffn_dim: number;
  num_queries: number;
  qformer_layers: number;
  qformer_attention_heads: number;
  qformer_ffn_dim: number;
  layer_norm_eps: number;
  out_dim: number;
}

/** conv1d, kernel 3, padding 1: x [Cin, L] → [Cout, floor((L − 1)/stride) + 1]. */
export function conv1d(x: Float64Array, Cin: number, L: number, weight: Float32Array, bias: Float32Array, Cout: number, stride: number): { y: Float64Array; L: number } {
  const Lo = Math.floor((L + 2 - 3) / stride) + 1;
  const y = new Float64Array(Cout * Lo);
  for (let o = 0; o < Cout; o++)
    for (let t = 0; t < Lo; t++) {
      let s = bias[o]!;
      for (let ci = 0; ci < Cin; ci++)
        for (let k = 0; k < 3; k++) {
          const src = t * stride + k - 1;
          if (src >= 0 && src < L) s += x[ci * L + src]! * weight[(o * Cin + ci) * 3 + k]!;
        }
      y[o * Lo + t] = s;
    }
  return { y, L: Lo };
}

/** One chunk's log-mel [M, F] → features [Q, O]. Positions: Whisper's sinusoids, recomputed here. */
export function refAudioChunk(c: RefAudioConfig, w: W, mel: Float32Array): Float64Array {
  const d = c.d_model;
  const F = 2 * c.max_source_positions;
  const c1 = conv1d(Float64Array.from(mel), c.num_mel_bins, F, get(w, "encoder.conv1.weight"), get(w, "encoder.conv1.bias"), d, 1);
  const c2 = conv1d(c1.y.map(gelu), d, c1.L, get(w, "encoder.conv2.weight"), get(w, "encoder.conv2.bias"), d, 2);
  const E = c2.L;
  if (E !== c.max_source_positions) throw new Error(`reference: ${E} encoder frames`);
  let x = new Float64Array(E * d);
  const half = d / 2;
  for (let t = 0; t < E; t++)
    for (let ch = 0; ch < d; ch++) {
      const i = ch % half;
      const angle = t / 10000 ** (i / (half - 1));
      x[t * d + ch] = gelu(c2.y[ch * E + t]!) + (ch < half ? Math.sin(angle) : Math.cos(angle));
    }
  const eps = c.layer_norm_eps;
  const ln = (v: Float64Array, n: number, name: string) => layerNorm(v, n, d, get(w, `${name}.weight`), get(w, `${name}.bias`), eps);
  for (let i = 0; i < c.encoder_layers; i++) {
    const p = `encoder.layers.${i}`;
    const h = ln(x, E, `${p}.self_attn_layer_norm`);
    x = addInPlace(x, attention(w, `${p}.self_attn`, h, E, h, E, d, c.encoder_attention_heads, false));
    x = addInPlace(x, mlp(w, p, ln(x, E, `${p}.final_layer_norm`), E, d, c.encoder_ffn_dim, gelu));
  }
  const enc = ln(x, E, "encoder.layer_norm");
  const Q = c.num_queries;
  let q = Float64Array.from(get(w, "qformer.queries"));
  for (let i = 0; i < c.qformer_layers; i++) {
    const p = `qformer.layers.${i}`;
    const h = ln(q, Q, `${p}.self_attn_layer_norm`);
    q = addInPlace(q, attention(w, `${p}.self_attn`, h, Q, h, Q, d, c.qformer_attention_heads, false));
    q = addInPlace(q, attention(w, `${p}.encoder_attn`, ln(q, Q, `${p}.encoder_attn_layer_norm`), Q, enc, E, d, c.qformer_attention_heads, false));
    q = addInPlace(q, mlp(w, p, ln(q, Q, `${p}.final_layer_norm`), Q, d, c.qformer_ffn_dim, gelu));
  }
  return linear(ln(q, Q, "qformer.layer_norm"), Q, d, get(w, "projector.weight"), get(w, "projector.bias"), c.out_dim);
}

/** Largest |a − b|; the lengths must match (asserted). */
export function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}
