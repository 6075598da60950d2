/**
 * Plain-TS reference of WavTokenizer's decode path (loops, float64), written from decoder/models.py, modules.py,
 * heads.py and spectral_ops.py: no graph builder, and the inverse FFT as a full complex DFT of the Hermitian-completed
 * spectrum (independent of the graph's cos/sin bases), overlap-add and the window envelope as torch's fold does.
 */
import { wavParamNames as n, wavParamTable, zWavTokenizerConfig, type WavTokenizerConfig } from "@/models/tts/codec-wavtokenizer";
import { SeededRandom } from "@/models/io/seeded-random";
import type { Tensor32 } from "@/models/io/weights";

/** x [Ci, T] → [Co, T], weight [Co, Ci/groups, k], zero padding (k−1)/2. */
function conv1d(x: Float64Array, Ci: number, T: number, w: Tensor32, b: Tensor32, groups = 1): Float64Array {
  const [Co, cpg, k] = w.shape as [number, number, number];
  const p = (k - 1) / 2, opg = Co / groups;
  const y = new Float64Array(Co * T);
  for (let o = 0; o < Co; o++) {
    const g0 = Math.floor(o / opg) * cpg;
    for (let t = 0; t < T; t++) {
      let acc = b.data[o]!;
      for (let ci = 0; ci < cpg; ci++)
        for (let j = 0; j < k; j++) {
          const tt = t + j - p;
          if (tt >= 0 && tt < T) acc += w.data[(o * cpg + ci) * k + j]! * x[(g0 + ci) * T + tt]!;
        }
      y[o * T + t] = acc;
    }
  }
  void Ci;
  return y;
}

function groupNorm(x: Float64Array, C: number, T: number, G: number, w: Tensor32, b: Tensor32): Float64Array {
  const y = new Float64Array(C * T), cpg = C / G;
  for (let g = 0; g < G; g++) {
    let m = 0, v = 0;
    const n0 = g * cpg * T, cnt = cpg * T;
    for (let i = 0; i < cnt; i++) m += x[n0 + i]!;
    m /= cnt;
    for (let i = 0; i < cnt; i++) v += (x[n0 + i]! - m) ** 2;
    v /= cnt;
    for (let c = g * cpg; c < (g + 1) * cpg; c++) for (let t = 0; t < T; t++) y[c * T + t] = ((x[c * T + t]! - m) / Math.sqrt(v + 1e-6)) * w.data[c]! + b.data[c]!;
  }
  return y;
}

/** LayerNorm over channels of x [C, T] (channel-first storage), then × scale + shift per channel. */
function layerNormCT(x: Float64Array, C: number, T: number, scale: ArrayLike<number>, shift: ArrayLike<number>): Float64Array {
  const y = new Float64Array(C * T);
  for (let t = 0; t < T; t++) {
    let m = 0, v = 0;
    for (let c = 0; c < C; c++) m += x[c * T + t]!;
    m /= C;
    for (let c = 0; c < C; c++) v += (x[c * T + t]! - m) ** 2;
    v /= C;
    for (let c = 0; c < C; c++) y[c * T + t] = ((x[c * T + t]! - m) / Math.sqrt(v + 1e-6)) * scale[c]! + shift[c]!;
  }
  return y;
}

const silu = (v: number) => v / (1 + Math.exp(-v));
function erf(x: number): number {
  // Numerical Recipes erfc (Chebyshev fit, fractional error < 1.2e-7)
  const t = 1 / (1 + 0.5 * Math.abs(x));
  const y = 1 - t * Math.exp(-x * x - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))));
  return x >= 0 ? y : -y;
}

/** The waveform [T·hop] of `codes`. */
export function referenceWavDecode(c: WavTokenizerConfig, W: Map<string, Tensor32>, codes: readonly number[]): Float64Array {
  const get = (name: string) => W.get(name) ?? (() => { throw new Error(`missing ${name}`); })();
  const T = codes.length, C = c.dim, Dc = c.codebook_dim, I = c.intermediate_dim, N = c.n_fft, hop = c.hop_length, K = N / 2 + 1;
  const cb = get(n.codebook);
  let x: Float64Array = new Float64Array(Dc * T);
  codes.forEach((code, t) => { for (let d = 0; d < Dc; d++) x[d * T + t] = cb.data[code * Dc + d]!; });
  x = conv1d(x, Dc, T, get(n.embed("weight")), get(n.embed("bias")));
  const res = (b: number) => {
    let h: Float64Array = groupNorm(x, C, T, c.group_norm_groups, get(n.res(b, "norm1", "weight")), get(n.res(b, "norm1", "bias"))).map(silu);
    h = conv1d(h, C, T, get(n.res(b, "conv1", "weight")), get(n.res(b, "conv1", "bias")));
    h = groupNorm(h, C, T, c.group_norm_groups, get(n.res(b, "norm2", "weight")), get(n.res(b, "norm2", "bias"))).map(silu);
    h = conv1d(h, C, T, get(n.res(b, "conv2", "weight")), get(n.res(b, "conv2", "bias")));
    x = x.map((v, i) => v + h[i]!);
  };
  res(0);
  res(1);
  {
    const h = groupNorm(x, C, T, c.group_norm_groups, get(n.attn("norm", "weight")), get(n.attn("norm", "bias")));
    const [q, k, v] = (["q", "k", "v"] as const).map((p) => conv1d(h, C, T, get(n.attn(p, "weight")), get(n.attn(p, "bias"))));
    const o = new Float64Array(C * T);
    for (let i = 0; i < T; i++) {
      const s = Array.from({ length: T }, (_, j) => {
        let dot = 0;
        for (let ch = 0; ch < C; ch++) dot += q![ch * T + i]! * k![ch * T + j]!;
        return dot / Math.sqrt(C);
      });
      const m = Math.max(...s);
      const e = s.map((z) => Math.exp(z - m));
      const sum = e.reduce((a, b) => a + b, 0);
      for (let ch = 0; ch < C; ch++) for (let j = 0; j < T; j++) o[ch * T + i] = o[ch * T + i]! + v![ch * T + j]! * (e[j]! / sum);
    }
    const p = conv1d(o, C, T, get(n.attn("proj_out", "weight")), get(n.attn("proj_out", "bias")));
    x = x.map((val, i) => val + p[i]!);
  }
  res(3);
  res(4);
  x = groupNorm(x, C, T, c.group_norm_groups, get(n.posNorm("weight")), get(n.posNorm("bias")));
  const row = (name: string) => get(name).data.subarray(c.bandwidth_id * C, (c.bandwidth_id + 1) * C);
  x = layerNormCT(x, C, T, row(n.ada("scale")), row(n.ada("shift")));
  for (let l = 0; l < c.num_layers; l++) {
    const d = conv1d(x, C, T, get(n.block(l, "dwconv.weight")), get(n.block(l, "dwconv.bias")), C);
    const y = layerNormCT(d, C, T, row(n.block(l, "norm.scale.weight")), row(n.block(l, "norm.shift.weight")));
    const w1 = get(n.block(l, "pwconv1.weight")), b1 = get(n.block(l, "pwconv1.bias")), w2 = get(n.block(l, "pwconv2.weight")), b2 = get(n.block(l, "pwconv2.bias")), gamma = get(n.block(l, "gamma"));
    for (let t = 0; t < T; t++) {
      const hid = Array.from({ length: I }, (_, i) => {
        let a = b1.data[i]!;
        for (let ch = 0; ch < C; ch++) a += w1.data[i * C + ch]! * y[ch * T + t]!;
        return 0.5 * a * (1 + erf(a / Math.SQRT2));
      });
      for (let ch = 0; ch < C; ch++) {
        let a = b2.data[ch]!;
        for (let i = 0; i < I; i++) a += w2.data[ch * I + i]! * hid[i]!;
        x[ch * T + t] = x[ch * T + t]! + gamma.data[ch]! * a;
      }
    }
  }
  x = layerNormCT(x, C, T, get(n.final("weight")).data, get(n.final("bias")).data);
  // ISTFT head
  const ow = get(n.out("weight")), ob = get(n.out("bias")), win = get(n.window).data;
  const outLen = (T - 1) * hop + N;
  const y = new Float64Array(outLen), env = new Float64Array(outLen);
  for (let t = 0; t < T; t++) {
    const spec = Array.from({ length: N + 2 }, (_, o) => {
      let a = ob.data[o]!;
      for (let ch = 0; ch < C; ch++) a += ow.data[o * C + ch]! * x[ch * T + t]!;
      return a;
    });
    const re = new Float64Array(N), im = new Float64Array(N);
    for (let kk = 0; kk < K; kk++) {
      const mag = Math.min(Math.exp(spec[kk]!), 100), p = spec[K + kk]!;
      re[kk] = mag * Math.cos(p);
      im[kk] = kk === 0 || 2 * kk === N ? 0 : mag * Math.sin(p); // irfft ignores them
    }
    for (let kk = 1; kk < N - K + 1; kk++) {
      re[N - kk] = re[kk]!;
      im[N - kk] = -im[kk]!;
    }
    for (let s = 0; s < N; s++) {
      let acc = 0;
      for (let kk = 0; kk < N; kk++) {
        const a = (2 * Math.PI * kk * s) / N;
        acc += re[kk]! * Math.cos(a) - im[kk]! * Math.sin(a);
      }
      y[t * hop + s] = y[t * hop + s]! + (acc / N) * win[s]!;
      env[t * hop + s] = env[t * hop + s]! + win[s]! ** 2;
    }
  }
  const pad = (N - hop) / 2;
  return Float64Array.from({ length: outLen - 2 * pad }, (_, i) => y[pad + i]! / env[pad + i]!);
}

/** A small config in the real layout (GroupNorm 32 groups over 64 channels, n_fft 4× hop as the release). */
export function smallWavConfig(over: Partial<WavTokenizerConfig> = {}): WavTokenizerConfig {
  return zWavTokenizerConfig.parse({ model_type: "wavtokenizer_decoder", codebook_size: 64, codebook_dim: 16, dim: 64, intermediate_dim: 96, num_layers: 2, adanorm_num_embeddings: 4, n_fft: 48, hop_length: 12, sample_rate: 480, ...over });
}

/** Seeded decode-path tensors (norm scales around 1, a Hann window as torch.hann_window (periodic)). */
export function seedWavWeights(c: WavTokenizerConfig, seed: number): Map<string, Tensor32> {
  const r = new SeededRandom(seed);
  const out = new Map<string, Tensor32>();
  for (const p of wavParamTable(c)) {
    const size = p.shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(size);
    const isScale = /norm\d?\.weight$|scale\.weight$|pos_net\.5\.weight$|final_layer_norm\.weight$/.test(p.name);
    if (p.name === n.window) for (let i = 0; i < size; i++) data[i] = 0.5 - 0.5 * Math.cos((2 * Math.PI * i) / size);
    else if (isScale) r.fillNormal(data, 0.1, 1);
    else if (p.name.endsWith("gamma")) r.fillNormal(data, 0.1, 0.3);
    else if (p.name === n.codebook) r.fillNormal(data, 1);
    else if (p.shape.length === 1 || p.name.endsWith("shift.weight")) r.fillNormal(data, 0.05);
    else r.fillNormal(data, 1 / Math.sqrt(p.shape.slice(1).reduce((a, b) => a * b, 1)));
    out.set(p.name, { shape: [...p.shape], data });
  }
  return out;
}
