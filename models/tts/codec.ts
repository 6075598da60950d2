import * as ort from "onnxruntime-node";
import { GraphBuilder } from "../onnx/builder";
import { Ops } from "../onnx/ops";
import { checkedWeight, type CodecConfig } from "./tts-graph";
import type { WeightSource } from "../io/weights";
import { SESSION_CONFIG_ENTRIES } from "@/engine/runtime/providers";

/**
 * Codec decoder, WavTokenizer-shaped (one codebook, 40 codes/s, 24 kHz) but tiny: instead of
 * WavTokenizer's Vocos backbone + iSTFT head it uses a plain upsampling stack, which is enough for a
 * seeded reference (its output is noise-like; the point is the shapes, the timing and the plumbing).
 *
 * Letters: T codes, D codebook dim, C_j channels, s_j strides (Π s_j = samples per code, 600).
 *
 *   codes int64 [T] (0..codebook_size-1)
 *   x = codebook[codes]                                        [T,D] → [1,D,T]
 *   x = Conv1d(D→C_0, k=7, pad 3)                              [1,C_0,T]
 *   per stage j: x = LeakyReLU(x)
 *                x = ConvTranspose1d(C_j→C_{j+1}, k=2s, stride s)[:, :, ⌊s/2⌋ : -⌈s/2⌉]   [1,C_{j+1},T·Πs]
 *                x = x + Conv1d(C_{j+1}→C_{j+1}, k=3, pad 1)(LeakyReLU(x))            (residual unit)
 *   x = clip(tanh(Conv1d(C_last→1, k=7, pad 3)(LeakyReLU(x))), -1, 1)   [1,1,T·600] → waveform [T·600], |x| ≤ 1
 *
 * A ConvTranspose1d with kernel 2s and stride s gives s·T + s samples; cropping ⌊s/2⌋ in front and
 * ⌈s/2⌉ at the end leaves exactly s·T, so the output length is always codes × samples_per_code.
 */

export const codecParamNames = {
  codebook: "codec.codebook",
  convIn: (kind: "weight" | "bias") => `codec.conv_in.${kind}`,
  up: (j: number, kind: "weight" | "bias") => `codec.up.${j}.conv_t.${kind}`,
  res: (j: number, kind: "weight" | "bias") => `codec.up.${j}.res.${kind}`,
  convOut: (kind: "weight" | "bias") => `codec.conv_out.${kind}`,
};

export type CodecParamKind = "codebook" | "conv" | "bias";

/** Every codec parameter with its PyTorch shape (Conv1d [out,in,k], ConvTranspose1d [in,out,k]). */
export function codecParamTable(c: CodecConfig): { name: string; shape: number[]; kind: CodecParamKind; fanIn: number }[] {
  const n = codecParamNames, C = c.channels;
  const t: { name: string; shape: number[]; kind: CodecParamKind; fanIn: number }[] = [
    { name: n.codebook, shape: [c.codebook_size, c.codebook_dim], kind: "codebook", fanIn: 1 },
    { name: n.convIn("weight"), shape: [C[0]!, c.codebook_dim, 7], kind: "conv", fanIn: c.codebook_dim * 7 },
    { name: n.convIn("bias"), shape: [C[0]!], kind: "bias", fanIn: 1 },
  ];
  c.strides.forEach((s, j) => {
    // a ConvTranspose output sample sees about in·k/s inputs
    t.push({ name: n.up(j, "weight"), shape: [C[j]!, C[j + 1]!, 2 * s], kind: "conv", fanIn: C[j]! * 2 });
    t.push({ name: n.up(j, "bias"), shape: [C[j + 1]!], kind: "bias", fanIn: 1 });
    t.push({ name: n.res(j, "weight"), shape: [C[j + 1]!, C[j + 1]!, 3], kind: "conv", fanIn: C[j + 1]! * 3 });
    t.push({ name: n.res(j, "bias"), shape: [C[j + 1]!], kind: "bias", fanIn: 1 });
  });
  const last = C[C.length - 1]!;
  t.push({ name: n.convOut("weight"), shape: [1, last, 7], kind: "conv", fanIn: last * 7 });
  t.push({ name: n.convOut("bias"), shape: [1], kind: "bias", fanIn: 1 });
  return t;
}

export const codecIo = { codes: "codes", waveform: "waveform" };

/** Builds the codec decoder graph: codes int64 [T] → waveform float [T·samples_per_code]. */
export function buildCodecGraph(c: CodecConfig, weights: WeightSource): Uint8Array {
  const g = new GraphBuilder("uni_moe_tts_codec");
  const o = new Ops(g);
  const shapes = new Map(codecParamTable(c).map((p) => [p.name, p.shape]));
  const w = (name: string) => g.initializer(name, checkedWeight(weights, name, shapes.get(name)!).data, shapes.get(name)!);
  const n = codecParamNames;
  const leaky = (t: string) => g.op("LeakyRelu", [t], { alpha: { f: c.leaky_slope } });
  const conv = (t: string, wName: string, bName: string, k: number) => g.op("Conv", [t, w(wName), w(bName)], { kernel_shape: [k], pads: [(k - 1) / 2, (k - 1) / 2] });

  const codes = g.input(codecIo.codes, "int64", ["codes"]);
  let x = o.unsqueeze(o.transpose(o.gather(w(n.codebook), codes), [1, 0]), [0]); // [1,D,T]
  x = conv(x, n.convIn("weight"), n.convIn("bias"), 7); // [1,C0,T]
  c.strides.forEach((s, j) => {
    g.scope = `up${j}/`;
    const up = g.op("ConvTranspose", [leaky(x), w(n.up(j, "weight")), w(n.up(j, "bias"))], { kernel_shape: [2 * s], strides: [s] }); // [1,C,s·T+s]
    x = o.slice(up, [Math.floor(s / 2)], [-Math.ceil(s / 2)], [2]); // [1,C,s·T]
    x = o.add(x, conv(leaky(x), n.res(j, "weight"), n.res(j, "bias"), 3));
  });
  g.scope = "";
  // tanh bounds the amplitude; Max/Min guard against ORT's fast tanh returning 1 + 1 ulp. Not Clip: ORT's WebGPU
  // provider fuses Conv → Tanh → Clip into one Conv whose activation is the Clip alone, dropping the tanh.
  const bound = (t: string) => g.op("Min", [g.op("Max", [t, g.scalar(-1)]), g.scalar(1)]);
  const y = bound(g.op("Tanh", [conv(leaky(x), n.convOut("weight"), n.convOut("bias"), 7)])); // [1,1,T·600]
  g.output(o.reshape(y, g.ints([-1])), codecIo.waveform, "float", ["samples"]);
  return g.toBytes();
}

/** Runs the codec graph. */
export class CodecRunner {
  private constructor(
    readonly config: CodecConfig,
    readonly session: ort.InferenceSession,
  ) {}

  static async create(config: CodecConfig, weights: WeightSource, sessionOptions: ort.InferenceSession.SessionOptions = {}): Promise<CodecRunner> {
    const session = await ort.InferenceSession.create(buildCodecGraph(config, weights), { graphOptimizationLevel: "all", logSeverityLevel: 3, extra: SESSION_CONFIG_ENTRIES, ...sessionOptions });
    return new CodecRunner(config, session);
  }

  /** Wraps a session made elsewhere (e.g. the engine's session pool) from `buildCodecGraph(config, …)`. */
  static fromSession(config: CodecConfig, session: ort.InferenceSession): CodecRunner {
    return new CodecRunner(config, session);
  }

  /** Codes (0..codebook_size-1, not vocab ids) → waveform of exactly codes.length × samples_per_code samples. */
  async decode(codes: readonly number[]): Promise<Float32Array> {
    if (codes.length === 0) return new Float32Array(0);
    for (const code of codes) {
      if (!Number.isInteger(code) || code < 0 || code >= this.config.codebook_size) throw new Error(`codec: code ${code} is outside 0..${this.config.codebook_size - 1}`);
    }
    const out = await this.session.run({ [codecIo.codes]: new ort.Tensor("int64", BigInt64Array.from(codes, (v) => BigInt(v)), [codes.length]) });
    const wave = out[codecIo.waveform]!.data as Float32Array;
    const want = codes.length * this.config.samples_per_code;
    if (wave.length !== want) throw new Error(`codec: produced ${wave.length} samples, expected ${want}`);
    return wave;
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}
