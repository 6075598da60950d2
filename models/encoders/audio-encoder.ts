/**
 * Whisper-style audio encoder + query former + projector (PAPER.md §4), as an ONNX graph.
 *
 * Letters: B chunks, M mel bins, F mel frames (2·E), E encoder frames (1500 for 30 s), d width, H heads,
 * hd = d/H, I MLP width, Q queries (200), O output dim (= the LLM's hidden size).
 *
 *   input_features [B,M,F] ─conv1 k3 s1 p1→ GELU ─conv2 k3 s2 p1→ GELU → [B,d,E] → [B,E,d] + sinusoids [E,d]
 *   encoder: L pre-LN layers  x += out(MHA(LN(x)));  x += fc2(GELU(fc1(LN(x))))          then LN
 *   query former (Whisper-decoder-style; causal self-attention only when `qformer_causal`, as the real Whisper
 *     decoder): q = queries [Q,d] broadcast to [B,Q,d];
 *     per layer  q += SelfAttn(LN(q));  q += CrossAttn(LN(q), enc);  q += fc2(GELU(fc1(LN(q))))   then LN
 *   projector: Linear d → O                                                             → features [B,Q,O]
 * Whisper's k_proj has no bias (self and cross attention alike); GELU is exact (erf).
 *
 * A ready export can be used instead: a model directory with `audio.onnx` and a config.json
 * (`zAudioOnnxConfig`); its graph takes `input_features` float32 [B,M,F] (log-mel from models/encoders/mel.ts) and
 * returns, as its first output, float32 [B,Q,O].
 */
import { z } from "zod";
import type { GraphBuilder } from "../onnx/builder";
import { EncoderGraph, type EncoderParamKind, type EncoderParamSpec } from "./vision-encoder";
import type { WeightSource } from "../io/weights";

export const zAudioConfig = z.object({
  model_type: z.string().default("whisper_qformer"),
  num_mel_bins: z.number().int().positive().default(128),
  /** Encoder frames per chunk (1500 for 30 s); the encoder takes 2× as many mel frames. */
  max_source_positions: z.number().int().positive().default(1500),
  d_model: z.number().int().positive(),
  encoder_layers: z.number().int().positive(),
  encoder_attention_heads: z.number().int().positive(),
  encoder_ffn_dim: z.number().int().positive(),
  num_queries: z.number().int().positive().default(200),
  qformer_layers: z.number().int().positive(),
  qformer_attention_heads: z.number().int().positive(),
  qformer_ffn_dim: z.number().int().positive(),
  layer_norm_eps: z.number().positive().default(1e-5),
  /**
   * Causal self-attention among the queries (query i sees queries 0..i), as in the real Whisper decoder that
   * Uni-MoE-2.0 uses as its query former. Default false (the seeded reference's unmasked query former).
   */
  qformer_causal: z.boolean().default(false),
  out_dim: z.number().int().positive(),
  seeded_untrained: z.boolean().optional(),
});
export type AudioConfig = z.infer<typeof zAudioConfig>;

export const zAudioOnnxConfig = z.object({
  num_mel_bins: z.number().int().positive().default(128),
  max_source_positions: z.number().int().positive().default(1500),
  num_queries: z.number().int().positive().default(200),
  out_dim: z.number().int().positive(),
  onnx_file: z.string().default("audio.onnx"),
  input_name: z.string().default("input_features"),
});
export type AudioOnnxConfig = z.infer<typeof zAudioOnnxConfig>;

export function melFrames(c: { max_source_positions: number }): number {
  return 2 * c.max_source_positions;
}

export function checkAudioConfig(c: AudioConfig): void {
  if (c.d_model % c.encoder_attention_heads) throw new Error(`audio config: d_model ${c.d_model} is not divisible by ${c.encoder_attention_heads} encoder heads`);
  if (c.d_model % c.qformer_attention_heads) throw new Error(`audio config: d_model ${c.d_model} is not divisible by ${c.qformer_attention_heads} query-former heads`);
}

export const audioNames = {
  conv: (i: 1 | 2, w: "weight" | "bias") => `encoder.conv${i}.${w}`,
  pos: "encoder.embed_positions.weight",
  enc: (i: number, rest: string) => `encoder.layers.${i}.${rest}`,
  encNorm: "encoder.layer_norm",
  queries: "qformer.queries",
  qf: (i: number, rest: string) => `qformer.layers.${i}.${rest}`,
  qfNorm: "qformer.layer_norm",
  proj: "projector",
};

/** Whisper's fixed sinusoidal positions: [length, channels] = [sin(t·ω_i) | cos(t·ω_i)], ω_i = 10000^(−i/(channels/2 − 1)). */
export function whisperSinusoids(length: number, channels: number): Float32Array {
  const half = channels / 2;
  const inc = Math.log(10000) / (half - 1);
  const out = new Float32Array(length * channels);
  for (let t = 0; t < length; t++)
    for (let i = 0; i < half; i++) {
      const a = t * Math.exp(-inc * i);
      out[t * channels + i] = Math.sin(a);
      out[t * channels + half + i] = Math.cos(a);
    }
  return out;
}

/** Every parameter with its shape, in file order (Linear weights are [out, in]; conv weights [out, in, k]). */
export function audioParamTable(c: AudioConfig): EncoderParamSpec[] {
  const d = c.d_model;
  const t: EncoderParamSpec[] = [
    { name: audioNames.conv(1, "weight"), shape: [d, c.num_mel_bins, 3], kind: "linear" }, // [B,M,F] → [B,d,F]
    { name: audioNames.conv(1, "bias"), shape: [d], kind: "bias" },
    { name: audioNames.conv(2, "weight"), shape: [d, d, 3], kind: "linear" }, // [B,d,F] → [B,d,E]
    { name: audioNames.conv(2, "bias"), shape: [d], kind: "bias" },
    { name: audioNames.pos, shape: [c.max_source_positions, d], kind: "sinusoid" },
  ];
  const attn = (push: (rest: string, shape: number[], kind: EncoderParamKind) => void, prefix: string) => {
    for (const p of ["q", "k", "v", "out"]) {
      push(`${prefix}.${p}_proj.weight`, [d, d], "linear");
      if (p !== "k") push(`${prefix}.${p}_proj.bias`, [d], "bias");
    }
    push(`${prefix}_layer_norm.weight`, [d], "norm");
    push(`${prefix}_layer_norm.bias`, [d], "norm_bias");
  };
  const mlp = (push: (rest: string, shape: number[], kind: EncoderParamKind) => void, ffn: number) => {
    push("fc1.weight", [ffn, d], "linear");
    push("fc1.bias", [ffn], "bias");
    push("fc2.weight", [d, ffn], "linear");
    push("fc2.bias", [d], "bias");
    push("final_layer_norm.weight", [d], "norm");
    push("final_layer_norm.bias", [d], "norm_bias");
  };
  for (let i = 0; i < c.encoder_layers; i++) {
    const L = (rest: string, shape: number[], kind: EncoderParamKind) => t.push({ name: audioNames.enc(i, rest), shape, kind });
    attn(L, "self_attn");
    mlp(L, c.encoder_ffn_dim);
  }
  t.push({ name: `${audioNames.encNorm}.weight`, shape: [d], kind: "norm" });
  t.push({ name: `${audioNames.encNorm}.bias`, shape: [d], kind: "norm_bias" });
  t.push({ name: audioNames.queries, shape: [c.num_queries, d], kind: "embed" });
  for (let i = 0; i < c.qformer_layers; i++) {
    const L = (rest: string, shape: number[], kind: EncoderParamKind) => t.push({ name: audioNames.qf(i, rest), shape, kind });
    attn(L, "self_attn");
    attn(L, "encoder_attn");
    mlp(L, c.qformer_ffn_dim);
  }
  t.push({ name: `${audioNames.qfNorm}.weight`, shape: [d], kind: "norm" });
  t.push({ name: `${audioNames.qfNorm}.bias`, shape: [d], kind: "norm_bias" });
  t.push({ name: `${audioNames.proj}.weight`, shape: [c.out_dim, d], kind: "linear" });
  t.push({ name: `${audioNames.proj}.bias`, shape: [c.out_dim], kind: "bias" });
  return t;
}

/** ONNX bytes: input_features [B,M,F] → features [B,Q,O]. */
export function buildAudioGraph(c: AudioConfig, weights: WeightSource, builder?: GraphBuilder): Uint8Array {
  checkAudioConfig(c);
  const b = new EncoderGraph("whisper_qformer", weights, builder);
  const { g, ops } = b;
  const d = c.d_model;
  const E = c.max_source_positions;
  const eps = c.layer_norm_eps;

  const mel = g.input("input_features", "float", ["chunks", c.num_mel_bins, melFrames(c)]);
  const conv = (x: string, i: 1 | 2, inCh: number, stride: number) =>
    g.op("Conv", [x, b.param(audioNames.conv(i, "weight"), [d, inCh, 3]), b.param(audioNames.conv(i, "bias"), [d])], { kernel_shape: [3], strides: [stride], pads: [1, 1] });
  const h = b.gelu(conv(b.gelu(conv(mel, 1, c.num_mel_bins, 1)), 2, d, 2)); // [B,d,E]
  let x = ops.add(ops.transpose(h, [0, 2, 1]), b.param(audioNames.pos, [E, d])); // [B,E,d]
  for (let i = 0; i < c.encoder_layers; i++) {
    g.scope = `enc${i}/`;
    const p = (rest: string) => audioNames.enc(i, rest);
    const a = b.layerNorm(x, p("self_attn_layer_norm"), d, eps);
    x = ops.add(x, b.attention(a, a, p("self_attn"), d, c.encoder_attention_heads, false));
    x = ops.add(x, b.linear(b.gelu(b.linear(b.layerNorm(x, p("final_layer_norm"), d, eps), p("fc1"), d, c.encoder_ffn_dim)), p("fc2"), c.encoder_ffn_dim, d));
  }
  g.scope = "";
  const enc = b.layerNorm(x, audioNames.encNorm, d, eps); // [B,E,d]

  const batch = ops.shape(mel, 0, 1); // [1] = B
  let causal: string | undefined;
  if (c.qformer_causal) {
    const Q = c.num_queries;
    const m = new Float32Array(Q * Q);
    for (let i = 0; i < Q; i++) for (let j = i + 1; j < Q; j++) m[i * Q + j] = -1e9;
    causal = g.initializer("qformer.causal_mask", m, [Q, Q]);
  }
  let q = ops.expand(ops.unsqueeze(b.param(audioNames.queries, [c.num_queries, d]), [0]), ops.concat([batch, g.ints([c.num_queries, d])], 0)); // [B,Q,d]
  for (let i = 0; i < c.qformer_layers; i++) {
    g.scope = `qf${i}/`;
    const p = (rest: string) => audioNames.qf(i, rest);
    const a = b.layerNorm(q, p("self_attn_layer_norm"), d, eps);
    q = ops.add(q, b.attention(a, a, p("self_attn"), d, c.qformer_attention_heads, false, causal));
    q = ops.add(q, b.attention(b.layerNorm(q, p("encoder_attn_layer_norm"), d, eps), enc, p("encoder_attn"), d, c.qformer_attention_heads, false));
    q = ops.add(q, b.linear(b.gelu(b.linear(b.layerNorm(q, p("final_layer_norm"), d, eps), p("fc1"), d, c.qformer_ffn_dim)), p("fc2"), c.qformer_ffn_dim, d));
  }
  g.scope = "";
  const y = b.linear(b.layerNorm(q, audioNames.qfNorm, d, eps), audioNames.proj, d, c.out_dim); // [B,Q,O]
  g.output(y, "features", "float", ["chunks", c.num_queries, c.out_dim]);
  return g.toBytes();
}
