/**
 * Plain-TS reference of the MoE-TTS decoder (loops, float64 accumulation; no graph builder), for
 * checking the ONNX graph. One full forward over a sequence (batch 1, no cache, causal attention).
 */
import { ttsParamNames as n, type TtsConfig } from "@/models/tts/tts-graph";
import type { Tensor32 } from "@/models/io/weights";

export interface RefLayerRouting {
  /** [S*X] */
  logits: Float64Array;
  mask: Uint8Array;
  weights: Float64Array;
  k: number[];
}

/** x: [S,In], w: [Out,In] (PyTorch Linear), b?: [Out] → [S,Out] */
export function linear(x: Float64Array, S: number, In: number, w: Tensor32, b?: Tensor32): Float64Array {
  const Out = w.shape[0]!;
  const y = new Float64Array(S * Out);
  for (let s = 0; s < S; s++)
    for (let o = 0; o < Out; o++) {
      let acc = b ? b.data[o]! : 0;
      for (let i = 0; i < In; i++) acc += x[s * In + i]! * w.data[o * In + i]!;
      y[s * Out + o] = acc;
    }
  return y;
}

/** x: [S,H] → x / sqrt(mean(x²) + eps) * w */
export function rmsNorm(x: Float64Array, S: number, H: number, w: Tensor32, eps: number): Float64Array {
  const y = new Float64Array(S * H);
  for (let s = 0; s < S; s++) {
    let ms = 0;
    for (let h = 0; h < H; h++) ms += x[s * H + h]! ** 2;
    const r = 1 / Math.sqrt(ms / H + eps);
    for (let h = 0; h < H; h++) y[s * H + h] = x[s * H + h]! * r * w.data[h]!;
  }
  return y;
}

const silu = (v: number) => v / (1 + Math.exp(-v));

/** Forward over ids at positions; returns logits [S*V] and per-layer routing. */
export function referenceForward(c: TtsConfig, W: Map<string, Tensor32>, ids: number[], positions: number[]): { logits: Float64Array; routing: RefLayerRouting[] } {
  const get = (name: string) => {
    const t = W.get(name);
    if (!t) throw new Error(`missing ${name}`);
    return t;
  };
  const S = ids.length, H = c.hidden_size, NH = c.num_attention_heads, KVH = c.num_key_value_heads, Dh = c.head_dim, X = c.num_experts, K = c.num_experts_per_tok, I = c.intermediate_size, V = c.vocab_size;
  const G = NH / KVH, half = Dh / 2;
  const emb = get(n.embed);
  let x = new Float64Array(S * H);
  for (let s = 0; s < S; s++) for (let h = 0; h < H; h++) x[s * H + h] = emb.data[ids[s]! * H + h]!;

  // rotate-half RoPE on one head vector (in place)
  const rope = (v: Float64Array, off: number, p: number) => {
    const tmp = Array.from({ length: Dh }, (_, d) => v[off + d]!);
    for (let j = 0; j < half; j++) {
      const ang = p / Math.pow(c.rope_theta, (2 * j) / Dh);
      const cs = Math.cos(ang), sn = Math.sin(ang);
      v[off + j] = tmp[j]! * cs - tmp[j + half]! * sn;
      v[off + j + half] = tmp[j + half]! * cs + tmp[j]! * sn;
    }
  };

  const routing: RefLayerRouting[] = [];
  for (let l = 0; l < c.num_hidden_layers; l++) {
    // attention
    const h = rmsNorm(x, S, H, get(n.inputNorm(l)), c.rms_norm_eps);
    const q = linear(h, S, H, get(n.attn(l, "q", "weight")), get(n.attn(l, "q", "bias"))); // [S,NH*Dh]
    const k = linear(h, S, H, get(n.attn(l, "k", "weight")), get(n.attn(l, "k", "bias"))); // [S,KVH*Dh]
    const v = linear(h, S, H, get(n.attn(l, "v", "weight")), get(n.attn(l, "v", "bias")));
    for (let s = 0; s < S; s++) {
      for (let hd = 0; hd < NH; hd++) rope(q, (s * NH + hd) * Dh, positions[s]!);
      for (let hd = 0; hd < KVH; hd++) rope(k, (s * KVH + hd) * Dh, positions[s]!);
    }
    const att = new Float64Array(S * NH * Dh);
    for (let hd = 0; hd < NH; hd++) {
      const kv = Math.floor(hd / G);
      for (let i = 0; i < S; i++) {
        const scores: number[] = [];
        for (let j = 0; j <= i; j++) {
          let dot = 0;
          for (let d = 0; d < Dh; d++) dot += q[(i * NH + hd) * Dh + d]! * k[(j * KVH + kv) * Dh + d]!;
          scores.push(dot / Math.sqrt(Dh));
        }
        const m = Math.max(...scores);
        const e = scores.map((sc) => Math.exp(sc - m));
        const z = e.reduce((a, b) => a + b, 0);
        for (let d = 0; d < Dh; d++) {
          let acc = 0;
          for (let j = 0; j <= i; j++) acc += (e[j]! / z) * v[(j * KVH + kv) * Dh + d]!;
          att[(i * NH + hd) * Dh + d] = acc;
        }
      }
    }
    const o = linear(att, S, NH * Dh, get(n.attn(l, "o", "weight")));
    x = x.map((xv, i) => xv + o[i]!);

    // MoE: softmax over X logits, top-K (ties: lower index), renormalised
    const h2 = rmsNorm(x, S, H, get(n.postNorm(l)), c.rms_norm_eps);
    const z = linear(h2, S, H, get(n.router(l)));
    const r: RefLayerRouting = { logits: z, mask: new Uint8Array(S * X), weights: new Float64Array(S * X), k: [] };
    const y = new Float64Array(S * H);
    for (let s = 0; s < S; s++) {
      const zs = Array.from({ length: X }, (_, e) => z[s * X + e]!);
      const m = Math.max(...zs);
      const ex = zs.map((v2) => Math.exp(v2 - m));
      const sum = ex.reduce((a, b) => a + b, 0);
      const p = ex.map((v2) => v2 / sum);
      const order = Array.from({ length: X }, (_, e) => e).sort((a, b) => p[b]! - p[a]! || a - b);
      const chosen = order.slice(0, K);
      const tot = chosen.reduce((a, e) => a + p[e]!, 0);
      r.k.push(K);
      for (const e of chosen) {
        const we = p[e]! / tot;
        r.mask[s * X + e] = 1;
        r.weights[s * X + e] = we;
        // SwiGLU expert e on token s
        const gw = get(n.expert(l, e, "gate")), uw = get(n.expert(l, e, "up")), dw = get(n.expert(l, e, "down"));
        const act = new Float64Array(I);
        for (let i = 0; i < I; i++) {
          let gg = 0, uu = 0;
          for (let hh = 0; hh < H; hh++) {
            gg += h2[s * H + hh]! * gw.data[i * H + hh]!;
            uu += h2[s * H + hh]! * uw.data[i * H + hh]!;
          }
          act[i] = silu(gg) * uu;
        }
        for (let hh = 0; hh < H; hh++) {
          let acc = 0;
          for (let i = 0; i < I; i++) acc += act[i]! * dw.data[hh * I + i]!;
          y[s * H + hh] = y[s * H + hh]! + we * acc;
        }
      }
    }
    routing.push(r);
    x = x.map((xv, i) => xv + y[i]!);
  }
  const hn = rmsNorm(x, S, H, get(n.finalNorm), c.rms_norm_eps);
  const logits = linear(hn, S, H, get(n.lmHead));
  if (logits.length !== S * V) throw new Error("bad logits size");
  return { logits, routing };
}

/** Largest |a - b| over two arrays of equal length. */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}
