/**
 * Loops the family references share (fp64 accumulation): Linear, RMSNorm, LayerNorm, softmax, SwiGLU and causal
 * attention over per-token, per-head vectors. Nothing here comes from models/.
 */

/** A checkpoint's tensors by their own names: float data as fp32 values, other dtypes (U8, F8_E4M3) as raw bytes. */
export type Tensors = Map<string, { shape: number[]; data: Float32Array; raw?: Uint8Array; dtype?: string }>;

export interface RefLayerRouting {
  /** Decoder index of this MoE layer. */
  layer: number;
  routerLogits: number[][];
  mask: number[][];
  weights: number[][];
  k: number[];
  /** DeepSeek-V3: the selection scores [S][R] */
  scores?: number[][];
}

export interface RefResult {
  /** [S][V] */
  logits: number[][];
  /** MoE layers only, in order */
  layers: RefLayerRouting[];
  /** [L][S][H] the residual stream after each decoder layer (dense layers included), before the final norm */
  hidden: number[][][];
}

export type Cfg = Record<string, unknown>;
export const n = (c: Cfg, k: string, d?: number) => (c[k] ?? d) as number;

export function get(t: Tensors, name: string): Float32Array {
  const v = t.get(name);
  if (!v) throw new Error(`reference: tensor ${name} missing`);
  return v.data;
}

export const has = (t: Tensors, name: string) => t.has(name);

/** y[o] = Σ_i W[o,i] x[i] (+ b[o]); W is [out,in] row-major. */
export function linear(x: number[], w: ArrayLike<number>, out: number, bias?: ArrayLike<number>): number[] {
  const inn = x.length;
  const y = new Array<number>(out).fill(0);
  for (let o = 0; o < out; o++) {
    let s = bias ? bias[o]! : 0;
    for (let i = 0; i < inn; i++) s += w[o * inn + i]! * x[i]!;
    y[o] = s;
  }
  return y;
}

export function rmsNorm(x: number[], w: ArrayLike<number>, eps: number): number[] {
  const ms = x.reduce((a, v) => a + v * v, 0) / x.length;
  const r = 1 / Math.sqrt(ms + eps);
  return x.map((v, i) => v * r * w[i]!);
}

export function layerNorm(x: number[], w: ArrayLike<number>, b: ArrayLike<number>, eps: number): number[] {
  const mean = x.reduce((a, v) => a + v, 0) / x.length;
  const variance = x.reduce((a, v) => a + (v - mean) ** 2, 0) / x.length;
  return x.map((v, i) => ((v - mean) / Math.sqrt(variance + eps)) * w[i]! + b[i]!);
}

export const silu = (v: number) => v / (1 + Math.exp(-v));
export const sigmoid = (v: number) => 1 / (1 + Math.exp(-v));

export function softmax(x: number[]): number[] {
  const m = Math.max(...x);
  const e = x.map((v) => (v === -Infinity ? 0 : Math.exp(v - m)));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / s);
}

export function mlp(x: number[], gate: ArrayLike<number>, up: ArrayLike<number>, down: ArrayLike<number>, I: number): number[] {
  const g = linear(x, gate, I), u = linear(x, up, I);
  return linear(g.map((v, i) => silu(v) * u[i]!), down, x.length);
}

/** Descending order of the columns, ties to the lower index. */
export const order = (v: number[]) => [...v.keys()].sort((a, b) => v[b]! - v[a]! || a - b);

/**
 * Causal attention: q[s][head] (Dq), k[t][kvHead], v[t][kvHead] (Dv); query s sees keys max(0, s - W + 1)..s.
 * `sink[head]`: an extra logit in each softmax row whose probability is dropped (gpt-oss).
 * Returns per token the heads' outputs concatenated.
 */
export function attention(q: number[][][], k: number[][][], v: number[][][], scale: number, window: number | null, sink?: ArrayLike<number>): number[][] {
  const NH = q[0]!.length, KVH = k[0]!.length;
  return q.map((qs, s) => {
    const out: number[] = [];
    for (let h = 0; h < NH; h++) {
      const kv = Math.floor(h / (NH / KVH));
      const first = window === null ? 0 : Math.max(0, s - window + 1);
      const keys = Array.from({ length: s + 1 - first }, (_, j) => first + j);
      const scores = keys.map((t) => qs[h]!.reduce((a, x, d) => a + x * k[t]![kv]![d]!, 0) * scale);
      const p = softmax(sink ? [...scores, sink[h]!] : scores);
      const Dv = v[0]![kv]!.length;
      for (let d = 0; d < Dv; d++) out.push(keys.reduce((a, t, j) => a + p[j]! * v[t]![kv]![d]!, 0));
    }
    return out;
  });
}

/** Splits a flat vector into `heads` rows of `dim`. */
export const heads = (a: number[], count: number, dim: number) => Array.from({ length: count }, (_, h) => a.slice(h * dim, (h + 1) * dim));

/** The token embeddings of `ids`: one row of model.embed_tokens.weight each. */
export function embed(t: Tensors, ids: number[], H: number): number[][] {
  const emb = get(t, "model.embed_tokens.weight");
  return ids.map((id) => Array.from(emb.subarray(id * H, (id + 1) * H)));
}

/** Appends one token's routing row to a layer's record. */
export function recordRow(r: RefLayerRouting, row: { logits: number[]; mask: number[]; weights: number[]; k: number }): void {
  r.routerLogits.push(row.logits);
  r.mask.push(row.mask);
  r.weights.push(row.weights);
  r.k.push(row.k);
}
