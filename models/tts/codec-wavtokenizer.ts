/**
 * WavTokenizer's decode path (RELEASED.md §1.11; jishengpeng/WavTokenizer decoder/{models,modules,heads,spectral_ops}.py),
 * the codec of the released MoE-TTS: 40 codes/s, 4096 codes, 24 kHz. Codes [T] → waveform [T·hop]:
 *   x = codebook[codes]ᵀ                                              [1, Dc, T]
 *   x = Conv1d(Dc→C, k7, p3)                                          backbone.embed
 *   pos_net: ResnetBlock ×2, AttnBlock, ResnetBlock ×2, GroupNorm     (GroupNorm(32, eps 1e-6), SiLU, Conv1d k3 p1;
 *            attention: 1×1 q/k/v, softmax over time of qᵀk·C^−½, proj_out, residual)
 *   x = AdaLayerNorm(x) (LayerNorm eps 1e-6 without affine, × scale[bw] + shift[bw], bw = bandwidth_id 0)
 *   12 × ConvNeXt: dwconv k7 → AdaLayerNorm → Linear C→I → GELU (erf) → Linear I→C → ·gamma → + residual
 *   final LayerNorm (eps 1e-6, affine)
 *   head: Linear C→n_fft+2 → mag, phase (n_fft/2+1 each); S = min(exp(mag), 100)·(cos p + i sin p)
 *         irfft(n_fft) per frame (imaginary parts of the DC and Nyquist bins ignored, as torch), × Hann window,
 *         overlap-add with hop, trim (n_fft − hop)/2 each side ("same"), ÷ the overlap-added window².
 * irfft is two MatMuls with constant [n_fft/2+1, n_fft] cos/sin bases; the overlap-add is n_fft/hop shifted Pads.
 */
import * as ort from "onnxruntime-node";
import { z } from "zod";
import { GraphBuilder } from "../onnx/builder";
import { Ops } from "../onnx/ops";
import { checkedWeight } from "./tts-graph";
import type { WeightSource } from "../io/weights";

export const WAVTOKENIZER_MODEL_TYPE = "wavtokenizer_decoder";

export const zWavTokenizerConfig = z.object({
  model_type: z.literal(WAVTOKENIZER_MODEL_TYPE),
  codebook_size: z.number().int().positive(),
  codebook_dim: z.number().int().positive(),
  dim: z.number().int().positive(),
  intermediate_dim: z.number().int().positive(),
  num_layers: z.number().int().positive(),
  adanorm_num_embeddings: z.number().int().positive(),
  n_fft: z.number().int().positive(),
  hop_length: z.number().int().positive(),
  padding: z.literal("same").default("same"),
  sample_rate: z.number().int().positive().default(24000),
  bandwidth_id: z.number().int().nonnegative().default(0),
  group_norm_groups: z.number().int().positive().default(32),
  /** Where hop_length came from: the checkpoint's yaml, or the n_fft/4 default when there was none. */
  hop_source: z.string().optional(),
});
export type WavTokenizerConfig = z.infer<typeof zWavTokenizerConfig>;

export function checkWavTokenizerConfig(c: WavTokenizerConfig): WavTokenizerConfig {
  const bad = (m: string) => new Error(`WavTokenizer config: ${m}`);
  if (c.n_fft <= c.hop_length) throw bad(`n_fft ${c.n_fft} must exceed hop_length ${c.hop_length}`);
  if (c.n_fft % c.hop_length !== 0) throw bad(`n_fft ${c.n_fft} must be a multiple of hop_length ${c.hop_length} (overlap-add in whole hops)`);
  if ((c.n_fft - c.hop_length) % 2 !== 0) throw bad(`n_fft − hop_length must be even ("same" padding trims half of it each side)`);
  if (c.dim % c.group_norm_groups !== 0) throw bad(`dim ${c.dim} is not a multiple of the ${c.group_norm_groups} GroupNorm groups`);
  if (c.bandwidth_id >= c.adanorm_num_embeddings) throw bad(`bandwidth_id ${c.bandwidth_id} ≥ adanorm_num_embeddings ${c.adanorm_num_embeddings}`);
  return c;
}

export const wavParamNames = {
  codebook: "feature_extractor.encodec.quantizer.vq.layers.0._codebook.embed",
  embed: (k: "weight" | "bias") => `backbone.embed.${k}`,
  res: (b: number, p: "norm1" | "conv1" | "norm2" | "conv2", k: "weight" | "bias") => `backbone.pos_net.${b}.${p}.${k}`,
  attn: (p: "norm" | "q" | "k" | "v" | "proj_out", k: "weight" | "bias") => `backbone.pos_net.2.${p}.${k}`,
  posNorm: (k: "weight" | "bias") => `backbone.pos_net.5.${k}`,
  ada: (p: "scale" | "shift") => `backbone.norm.${p}.weight`,
  block: (i: number, p: "dwconv.weight" | "dwconv.bias" | "norm.scale.weight" | "norm.shift.weight" | "pwconv1.weight" | "pwconv1.bias" | "pwconv2.weight" | "pwconv2.bias" | "gamma") => `backbone.convnext.${i}.${p}`,
  final: (k: "weight" | "bias") => `backbone.final_layer_norm.${k}`,
  out: (k: "weight" | "bias") => `head.out.${k}`,
  window: "head.istft.window",
};

/** The decode path's tensors with their PyTorch shapes (Conv1d [out, in/groups, k], Linear [out, in]). */
export function wavParamTable(c: WavTokenizerConfig): { name: string; shape: number[] }[] {
  const n = wavParamNames, C = c.dim, I = c.intermediate_dim, A = c.adanorm_num_embeddings;
  const t: { name: string; shape: number[] }[] = [
    { name: n.codebook, shape: [c.codebook_size, c.codebook_dim] },
    { name: n.embed("weight"), shape: [C, c.codebook_dim, 7] },
    { name: n.embed("bias"), shape: [C] },
  ];
  for (const b of [0, 1, 3, 4])
    for (const p of ["norm1", "conv1", "norm2", "conv2"] as const) {
      t.push({ name: n.res(b, p, "weight"), shape: p.startsWith("conv") ? [C, C, 3] : [C] });
      t.push({ name: n.res(b, p, "bias"), shape: [C] });
    }
  for (const p of ["norm", "q", "k", "v", "proj_out"] as const) {
    t.push({ name: n.attn(p, "weight"), shape: p === "norm" ? [C] : [C, C, 1] });
    t.push({ name: n.attn(p, "bias"), shape: [C] });
  }
  t.push({ name: n.posNorm("weight"), shape: [C] }, { name: n.posNorm("bias"), shape: [C] });
  t.push({ name: n.ada("scale"), shape: [A, C] }, { name: n.ada("shift"), shape: [A, C] });
  for (let i = 0; i < c.num_layers; i++) {
    t.push(
      { name: n.block(i, "dwconv.weight"), shape: [C, 1, 7] },
      { name: n.block(i, "dwconv.bias"), shape: [C] },
      { name: n.block(i, "norm.scale.weight"), shape: [A, C] },
      { name: n.block(i, "norm.shift.weight"), shape: [A, C] },
      { name: n.block(i, "pwconv1.weight"), shape: [I, C] },
      { name: n.block(i, "pwconv1.bias"), shape: [I] },
      { name: n.block(i, "pwconv2.weight"), shape: [C, I] },
      { name: n.block(i, "pwconv2.bias"), shape: [C] },
      { name: n.block(i, "gamma"), shape: [C] },
    );
  }
  t.push({ name: n.final("weight"), shape: [C] }, { name: n.final("bias"), shape: [C] });
  t.push({ name: n.out("weight"), shape: [c.n_fft + 2, C] }, { name: n.out("bias"), shape: [c.n_fft + 2] });
  t.push({ name: n.window, shape: [c.n_fft] });
  return t;
}

/**
 * The config from the decode path's tensor shapes plus, when the checkpoint's yaml gave them, hop_length and the
 * sample rate (model.init_args.head.init_args / model.init_args.sample_rate); without a yaml hop = n_fft/4.
 */
export function wavConfigFromShapes(shapeOf: (name: string) => number[] | undefined, yaml?: { hop_length?: number; sample_rate?: number; padding?: string }): WavTokenizerConfig {
  const n = wavParamNames;
  const need = (name: string) => {
    const s = shapeOf(name);
    if (!s) throw new Error(`the WavTokenizer checkpoint has no ${name}`);
    return s;
  };
  let layers = 0;
  while (shapeOf(n.block(layers, "gamma"))) layers++;
  if (yaml?.padding !== undefined && yaml.padding !== "same") throw new Error(`ISTFT padding "${yaml.padding}" is not supported (the released codec uses "same")`);
  const nfft = need(n.window)[0]!;
  return checkWavTokenizerConfig(
    zWavTokenizerConfig.parse({
      model_type: WAVTOKENIZER_MODEL_TYPE,
      codebook_size: need(n.codebook)[0],
      codebook_dim: need(n.codebook)[1],
      dim: need(n.embed("weight"))[0],
      intermediate_dim: need(n.block(0, "pwconv1.weight"))[0],
      num_layers: layers,
      adanorm_num_embeddings: need(n.ada("scale"))[0],
      n_fft: nfft,
      hop_length: yaml?.hop_length ?? nfft / 4,
      sample_rate: yaml?.sample_rate ?? 24000,
      hop_source: yaml?.hop_length !== undefined ? "yaml" : "n_fft/4 (no yaml beside the checkpoint)",
    }),
  );
}

export const wavIo = { codes: "codes", waveform: "waveform" };

/** irfft bases [n_fft/2+1, n_fft]: frame = Re·cosBasis + Im·sinBasis (torch.fft.irfft, norm "backward"). */
export function irfftBases(N: number): { cos: Float32Array; sin: Float32Array } {
  const K = N / 2 + 1;
  const cos = new Float32Array(K * N), sin = new Float32Array(K * N);
  for (let k = 0; k < K; k++) {
    const ck = k === 0 || 2 * k === N ? 1 : 2;
    for (let t = 0; t < N; t++) {
      const a = (2 * Math.PI * ((k * t) % N)) / N;
      cos[k * N + t] = (ck * Math.cos(a)) / N;
      sin[k * N + t] = k === 0 || 2 * k === N ? 0 : (-ck * Math.sin(a)) / N;
    }
  }
  return { cos, sin };
}

/** Builds the decoder graph: codes int64 [T] → waveform float [T·hop_length]. */
export function buildWavTokenizerGraph(config: WavTokenizerConfig, weights: WeightSource, builder?: GraphBuilder): Uint8Array {
  const c = checkWavTokenizerConfig(config);
  const g = builder ?? new GraphBuilder("wavtokenizer_decoder");
  const o = new Ops(g);
  const n = wavParamNames;
  const shapes = new Map(wavParamTable(c).map((p) => [p.name, p.shape]));
  const w = (name: string) => g.initializer(name, checkedWeight(weights, name, shapes.get(name)!).data, shapes.get(name)!);
  const C = c.dim, G = c.group_norm_groups, N = c.n_fft, hop = c.hop_length, K = N / 2 + 1, r = N / hop;
  const conv = (x: string, wName: string, bName: string, k: number, group = 1) => g.op("Conv", [x, w(wName), w(bName)], { kernel_shape: [k], pads: [(k - 1) / 2, (k - 1) / 2], group });
  const perChannel = (name: string) => o.reshape(w(name), g.ints([C, 1])); // [C] → [C,1] to scale [1,C,T]
  const groupNorm = (x: string, wName: string, bName: string) => {
    const grouped = o.reshape(x, g.ints([1, G, -1]));
    const mean = o.reduceMean(grouped, [2]);
    const centred = o.sub(grouped, mean);
    const v = o.reduceMean(o.mul(centred, centred), [2]);
    const normed = o.reshape(o.div(centred, o.sqrt(o.add(v, g.scalar(1e-6)))), o.shape(x));
    return o.add(o.mul(normed, perChannel(wName)), perChannel(bName));
  };
  const layerNorm = (x: string, scale: string, shift: string) => g.op("LayerNormalization", [x, scale, shift], { axis: -1, epsilon: { f: 1e-6 } });
  const adaRow = (name: string) => {
    const t = checkedWeight(weights, name, shapes.get(name)!);
    return g.initializer(`${name}[${c.bandwidth_id}]`, t.data.slice(c.bandwidth_id * C, (c.bandwidth_id + 1) * C), [C]);
  };
  const gelu = (x: string) => o.mul(o.mul(x, g.scalar(0.5)), o.add(g.op("Erf", [o.mul(x, g.scalar(Math.SQRT1_2))]), g.scalar(1)));

  const codes = g.input(wavIo.codes, "int64", ["codes"]);
  let x = o.unsqueeze(o.transpose(o.gather(w(n.codebook), codes), [1, 0]), [0]); // [1,Dc,T]
  x = conv(x, n.embed("weight"), n.embed("bias"), 7); // [1,C,T]
  g.scope = "pos_net/";
  const resnet = (b: number) => {
    let h = conv(o.silu(groupNorm(x, n.res(b, "norm1", "weight"), n.res(b, "norm1", "bias"))), n.res(b, "conv1", "weight"), n.res(b, "conv1", "bias"), 3);
    h = conv(o.silu(groupNorm(h, n.res(b, "norm2", "weight"), n.res(b, "norm2", "bias"))), n.res(b, "conv2", "weight"), n.res(b, "conv2", "bias"), 3);
    x = o.add(x, h);
  };
  resnet(0);
  resnet(1);
  const hn = groupNorm(x, n.attn("norm", "weight"), n.attn("norm", "bias"));
  const [q, k, v] = (["q", "k", "v"] as const).map((p) => conv(hn, n.attn(p, "weight"), n.attn(p, "bias"), 1));
  const att = o.softmax(o.mul(o.matmul(o.transpose(q!, [0, 2, 1]), k!), g.scalar(1 / Math.sqrt(C))), 2); // [1,Tq,Tk]
  x = o.add(x, conv(o.matmul(v!, o.transpose(att, [0, 2, 1])), n.attn("proj_out", "weight"), n.attn("proj_out", "bias"), 1));
  resnet(3);
  resnet(4);
  x = groupNorm(x, n.posNorm("weight"), n.posNorm("bias"));
  g.scope = "";
  let h = layerNorm(o.transpose(x, [0, 2, 1]), adaRow(n.ada("scale")), adaRow(n.ada("shift"))); // [1,T,C]
  for (let i = 0; i < c.num_layers; i++) {
    g.scope = `convnext${i}/`;
    const d = o.transpose(conv(o.transpose(h, [0, 2, 1]), n.block(i, "dwconv.weight"), n.block(i, "dwconv.bias"), 7, C), [0, 2, 1]); // [1,T,C]
    const y = layerNorm(d, adaRow(n.block(i, "norm.scale.weight")), adaRow(n.block(i, "norm.shift.weight")));
    const mlp = o.linear(gelu(o.linear(o.squeeze(y, [0]), w(n.block(i, "pwconv1.weight")), w(n.block(i, "pwconv1.bias")))), w(n.block(i, "pwconv2.weight")), w(n.block(i, "pwconv2.bias"))); // [T,C]
    h = o.add(h, o.unsqueeze(o.mul(mlp, w(n.block(i, "gamma"))), [0]));
  }
  g.scope = "head/";
  const feats = layerNorm(o.squeeze(h, [0]), w(n.final("weight")), w(n.final("bias"))); // [T,C]
  const [magLog, phase] = o.split(o.linear(feats, w(n.out("weight")), w(n.out("bias"))), [K, K], 1) as [string, string]; // [T,K] each
  const mag = o.min(o.exp(magLog), g.scalar(100));
  const bases = irfftBases(N);
  const frames = o.add(o.matmul(o.mul(mag, o.cos(phase)), g.const(bases.cos, [K, N], "float", "irfft_cos")), o.matmul(o.mul(mag, o.sin(phase)), g.const(bases.sin, [K, N], "float", "irfft_sin"))); // [T,N]
  const win = w(n.window);
  // overlap-add in whole hops: frame t's part j lands in hop block t + j; blocks [T + r − 1, hop]
  const overlapAdd = (f: string) => {
    const parts = o.split(o.reshape(f, g.ints([-1, r, hop])), Array(r).fill(1), 1);
    return parts.map((p, j) => g.op("Pad", [o.squeeze(p, [1]), g.ints([j, 0, r - 1 - j, 0])])).reduce((a, b) => o.add(a, b));
  };
  const y = overlapAdd(o.mul(frames, win));
  const env = overlapAdd(o.expand(o.unsqueeze(o.mul(win, win), [0]), o.shape(frames)));
  const pad = (N - hop) / 2;
  const trim = (t: string) => o.slice(o.reshape(t, g.ints([-1])), [pad], [-pad], [0]);
  g.output(o.div(trim(y), trim(env)), wavIo.waveform, "float", ["samples"]);
  g.scope = "";
  return g.toBytes();
}

/** What the TTS needs of a codec: codes (0..codebookSize−1) → a waveform of codes × samplesPerCode samples. */
export interface CodecDecoder {
  readonly sampleRate: number;
  readonly samplesPerCode: number;
  readonly codebookSize: number;
  decode(codes: readonly number[]): Promise<Float32Array>;
}

/** Runs the WavTokenizer decoder graph. */
export class WavTokenizerRunner implements CodecDecoder {
  constructor(
    readonly config: WavTokenizerConfig,
    readonly session: ort.InferenceSession,
  ) {}
  get sampleRate(): number {
    return this.config.sample_rate;
  }
  get samplesPerCode(): number {
    return this.config.hop_length;
  }
  get codebookSize(): number {
    return this.config.codebook_size;
  }
  async decode(codes: readonly number[]): Promise<Float32Array> {
    if (codes.length === 0) return new Float32Array(0);
    const bad = codes.find((v) => !Number.isInteger(v) || v < 0 || v >= this.config.codebook_size);
    if (bad !== undefined) throw new Error(`WavTokenizer: code ${bad} is outside 0..${this.config.codebook_size - 1}`);
    const out = await this.session.run({ [wavIo.codes]: new ort.Tensor("int64", BigInt64Array.from(codes, (v) => BigInt(v)), [codes.length]) });
    return out[wavIo.waveform]!.data as Float32Array;
  }
}
