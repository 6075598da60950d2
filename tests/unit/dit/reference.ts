/**
 * Independent plain-TS references (float64 loops, no graph builder, no shared helpers) of the DiT
 * forward and the VAE convolutions, following the conventions documented in models/dit/dit.ts and
 * models/dit/dit-graph.ts.
 */
import type { DitConfig } from "@/models/dit/dit";
import type { VaeConfig } from "@/models/dit/vae";
import type { Tensor32 } from "@/models/io/weights";

type W = Map<string, Tensor32>;

function get(w: W, name: string): Float32Array {
  const t = w.get(name);
  if (!t) throw new Error(`reference: missing ${name}`);
  return t.data;
}

/** x: [n, inp] → [n, out] with PyTorch weight [out, inp]. */
function linear(x: Float64Array, n: number, inp: number, out: number, wt: Float32Array, b: Float32Array): Float64Array {
  const y = new Float64Array(n * out);
  for (let r = 0; r < n; r++)
    for (let o = 0; o < out; o++) {
      let s = b[o]!;
      for (let i = 0; i < inp; i++) s += x[r * inp + i]! * wt[o * inp + i]!;
      y[r * out + o] = s;
    }
  return y;
}

const silu = (a: Float64Array): Float64Array => a.map((v) => v / (1 + Math.exp(-v)));
const gelu = (a: Float64Array) => a.map((v) => 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3))));

function layerNorm(x: Float64Array, n: number, D: number, eps: number): Float64Array {
  const y = new Float64Array(n * D);
  for (let r = 0; r < n; r++) {
    let m = 0;
    for (let d = 0; d < D; d++) m += x[r * D + d]!;
    m /= D;
    let v = 0;
    for (let d = 0; d < D; d++) v += (x[r * D + d]! - m) ** 2;
    v /= D;
    for (let d = 0; d < D; d++) y[r * D + d] = (x[r * D + d]! - m) / Math.sqrt(v + eps);
  }
  return y;
}

/** q [nq, D], k/v [nk, D] → [nq, D]. */
function attention(q: Float64Array, k: Float64Array, v: Float64Array, nq: number, nk: number, D: number, heads: number): Float64Array {
  const hd = D / heads;
  const out = new Float64Array(nq * D);
  const s = new Float64Array(nk);
  for (let h = 0; h < heads; h++)
    for (let i = 0; i < nq; i++) {
      let mx = -Infinity;
      for (let j = 0; j < nk; j++) {
        let dot = 0;
        for (let e = 0; e < hd; e++) dot += q[i * D + h * hd + e]! * k[j * D + h * hd + e]!;
        s[j] = dot / Math.sqrt(hd);
        mx = Math.max(mx, s[j]!);
      }
      let z = 0;
      for (let j = 0; j < nk; j++) z += s[j] = Math.exp(s[j]! - mx);
      for (let e = 0; e < hd; e++) {
        let acc = 0;
        for (let j = 0; j < nk; j++) acc += (s[j]! / z) * v[j * D + h * hd + e]!;
        out[i * D + h * hd + e] = acc;
      }
    }
  return out;
}

export interface RefDitInput {
  batch: number;
  x: Float32Array;
  source: Float32Array;
  t: number[];
  img: Float32Array;
  task: Float32Array;
}

/** One DiT forward for each batch row → v [B, C, S, S]. */
export function refDitForward(c: DitConfig, w: W, inp: RefDitInput): Float32Array {
  const C = c.latentChannels, S = c.latentSize, p = c.patchSize, G = S / p, N = G * G, D = c.hidden;
  const M = c.condTokens, K = c.taskTokens, L = c.llmHidden, F = c.freqDim, I = D * c.mlpRatio, eps = c.layerNormEps;
  const out = new Float32Array(inp.batch * C * S * S);
  const wn = (n: string) => get(w, n);
  for (let b = 0; b < inp.batch; b++) {
    // patch embed (conv p×p stride p over noisy ‖ source) + 2-D sin-cos position embedding
    let h = new Float64Array(N * D);
    const pw = wn("x_embedder.proj.weight"), pb = wn("x_embedder.proj.bias");
    const lat = (ch: number, r: number, col: number) =>
      ch < C ? inp.x[((b * C + ch) * S + r) * S + col]! : inp.source[((b * C + ch - C) * S + r) * S + col]!;
    for (let gi = 0; gi < G; gi++)
      for (let gj = 0; gj < G; gj++)
        for (let d = 0; d < D; d++) {
          let s = pb[d]!;
          for (let ch = 0; ch < 2 * C; ch++)
            for (let pi = 0; pi < p; pi++) for (let pj = 0; pj < p; pj++) s += pw[((d * 2 * C + ch) * p + pi) * p + pj]! * lat(ch, gi * p + pi, gj * p + pj);
          const half = D / 2, quarter = D / 4;
          const pos = d < half ? gi : gj;
          const k = d % half;
          const omega = (kk: number) => Math.pow(10000, -kk / quarter);
          s += k < quarter ? Math.sin(pos * omega(k)) : Math.cos(pos * omega(k - quarter));
          h[(gi * G + gj) * D + d] = s;
        }
    // conditioning
    const temb = new Float64Array(F);
    for (let k = 0; k < F / 2; k++) {
      const a = inp.t[b]! * c.timeScale * Math.exp((-Math.log(10000) * k) / (F / 2));
      temb[k] = Math.cos(a);
      temb[F / 2 + k] = Math.sin(a);
    }
    const tvec = linear(silu(linear(temb, 1, F, D, wn("t_embedder.mlp.0.weight"), wn("t_embedder.mlp.0.bias"))), 1, D, D, wn("t_embedder.mlp.2.weight"), wn("t_embedder.mlp.2.bias"));
    const tm = new Float64Array(L);
    for (let k = 0; k < K; k++) for (let l = 0; l < L; l++) tm[l] = tm[l]! + inp.task[(b * K + k) * L + l]! / K;
    const tv = linear(silu(linear(tm, 1, L, D, wn("task_projector.0.weight"), wn("task_projector.0.bias"))), 1, D, D, wn("task_projector.2.weight"), wn("task_projector.2.bias"));
    const cvec = silu(tvec.map((v, i) => v + tv[i]!));
    const imgRows = Float64Array.from(inp.img.subarray(b * M * L, (b + 1) * M * L));
    const y = linear(silu(linear(imgRows, M, L, D, wn("img_projector.0.weight"), wn("img_projector.0.bias"))), M, D, D, wn("img_projector.2.weight"), wn("img_projector.2.bias"));

    const modulate = (x: Float64Array, shift: Float64Array, scale: Float64Array) => {
      const ln = layerNorm(x, N, D, eps);
      for (let r = 0; r < N; r++) for (let d = 0; d < D; d++) ln[r * D + d] = ln[r * D + d]! * (1 + scale[d]!) + shift[d]!;
      return ln;
    };
    for (let i = 0; i < c.depth; i++) {
      const pn = (part: string, wb: string) => wn(`blocks.${i}.${part}.${wb}`);
      const lin = (x: Float64Array, n: number, part: string, out: number, inpD: number) => linear(x, n, inpD, out, pn(part, "weight"), pn(part, "bias"));
      const ada = lin(cvec, 1, "adaLN_modulation.1", 6 * D, D);
      const chunk = (j: number) => ada.subarray(j * D, (j + 1) * D);
      // self-attention
      const qkv = lin(modulate(h, chunk(0), chunk(1)), N, "attn.qkv", 3 * D, D);
      const q = new Float64Array(N * D), k = new Float64Array(N * D), v = new Float64Array(N * D);
      for (let r = 0; r < N; r++)
        for (let d = 0; d < D; d++) {
          q[r * D + d] = qkv[r * 3 * D + d]!;
          k[r * D + d] = qkv[r * 3 * D + D + d]!;
          v[r * D + d] = qkv[r * 3 * D + 2 * D + d]!;
        }
      const sa = lin(attention(q, k, v, N, N, D, c.heads), N, "attn.proj", D, D);
      h = h.map((val, j) => val + chunk(2)[j % D]! * sa[j]!);
      // cross-attention
      const cq = lin(layerNorm(h, N, D, eps), N, "cross_attn.q", D, D);
      const kv = lin(y, M, "cross_attn.kv", 2 * D, D);
      const ck = new Float64Array(M * D), cv = new Float64Array(M * D);
      for (let r = 0; r < M; r++)
        for (let d = 0; d < D; d++) {
          ck[r * D + d] = kv[r * 2 * D + d]!;
          cv[r * D + d] = kv[r * 2 * D + D + d]!;
        }
      const ca = lin(attention(cq, ck, cv, N, M, D, c.heads), N, "cross_attn.proj", D, D);
      h = h.map((val, j) => val + ca[j]!);
      // MLP
      const m = lin(gelu(lin(modulate(h, chunk(3), chunk(4)), N, "mlp.fc1", I, D)), N, "mlp.fc2", D, I);
      h = h.map((val, j) => val + chunk(5)[j % D]! * m[j]!);
    }
    const fada = linear(cvec, 1, D, 2 * D, wn("final_layer.adaLN_modulation.1.weight"), wn("final_layer.adaLN_modulation.1.bias"));
    const o = linear(modulate(h, fada.subarray(0, D), fada.subarray(D)), N, D, p * p * C, wn("final_layer.linear.weight"), wn("final_layer.linear.bias"));
    for (let gi = 0; gi < G; gi++)
      for (let gj = 0; gj < G; gj++)
        for (let pi = 0; pi < p; pi++)
          for (let pj = 0; pj < p; pj++)
            for (let ch = 0; ch < C; ch++) out[((b * C + ch) * S + gi * p + pi) * S + gj * p + pj] = o[(gi * G + gj) * p * p * C + (pi * p + pj) * C + ch]!;
  }
  return out;
}

/** x [ci, H, W] → [co, H', W'] (3×3, padding 1). */
function conv3(x: Float64Array, ci: number, H: number, Wd: number, wt: Float32Array, bias: Float32Array, co: number, stride: number): { y: Float64Array; H: number; W: number } {
  const Ho = Math.floor((H + 2 - 3) / stride) + 1, Wo = Math.floor((Wd + 2 - 3) / stride) + 1;
  const y = new Float64Array(co * Ho * Wo);
  for (let o = 0; o < co; o++)
    for (let r = 0; r < Ho; r++)
      for (let c = 0; c < Wo; c++) {
        let s = bias[o]!;
        for (let i = 0; i < ci; i++)
          for (let kr = 0; kr < 3; kr++)
            for (let kc = 0; kc < 3; kc++) {
              const rr = r * stride + kr - 1, cc = c * stride + kc - 1;
              if (rr < 0 || rr >= H || cc < 0 || cc >= Wd) continue;
              s += wt[((o * ci + i) * 3 + kr) * 3 + kc]! * x[(i * H + rr) * Wd + cc]!;
            }
        y[(o * Ho + r) * Wo + c] = s;
      }
  return { y, H: Ho, W: Wo };
}

function up2(x: Float64Array, ch: number, H: number, Wd: number): Float64Array {
  const y = new Float64Array(ch * 4 * H * Wd);
  for (let i = 0; i < ch; i++) for (let r = 0; r < 2 * H; r++) for (let c = 0; c < 2 * Wd; c++) y[(i * 2 * H + r) * 2 * Wd + c] = x[(i * H + (r >> 1)) * Wd + (c >> 1)]!;
  return y;
}

/** VAE decoder of one latent [C, s, s] → [3, R, R]. */
export function refVaeDecode(c: VaeConfig, w: W, z: Float32Array): Float32Array {
  const dc = c.decoderChannels;
  let H = c.latentSize;
  let x: Float64Array = silu(conv3(Float64Array.from(z), c.latentChannels, H, H, get(w, "decoder.conv_in.weight"), get(w, "decoder.conv_in.bias"), dc[0]!, 1).y);
  for (let i = 1; i < dc.length; i++) {
    x = up2(x, dc[i - 1]!, H, H);
    H *= 2;
    x = silu(conv3(x, dc[i - 1]!, H, H, get(w, `decoder.up.${i - 1}.conv.weight`), get(w, `decoder.up.${i - 1}.conv.bias`), dc[i]!, 1).y);
  }
  const o = conv3(x, dc[dc.length - 1]!, H, H, get(w, "decoder.conv_out.weight"), get(w, "decoder.conv_out.bias"), c.imageChannels, 1).y;
  return Float32Array.from(o, Math.tanh);
}

/** VAE encoder of one image [3, R, R] → [C, s, s]. */
export function refVaeEncode(c: VaeConfig, w: W, img: Float32Array): Float32Array {
  let H = c.latentSize * 2 ** c.encoderChannels.length;
  let x: Float64Array = Float64Array.from(img);
  let ci = c.imageChannels;
  c.encoderChannels.forEach((co, i) => {
    const r = conv3(x, ci, H, H, get(w, `encoder.down.${i}.conv.weight`), get(w, `encoder.down.${i}.conv.bias`), co, 2);
    x = silu(r.y);
    H = r.H;
    ci = co;
  });
  return Float32Array.from(conv3(x, ci, H, H, get(w, "encoder.conv_out.weight"), get(w, "encoder.conv_out.bias"), c.latentChannels, 1).y);
}
