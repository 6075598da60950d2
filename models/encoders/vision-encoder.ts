/**
 * SigLIP-style vision encoder + MLP projector (PAPER.md §4), as an ONNX graph.
 *
 * Letters: T tiles, S image side (384), P patch (14), G = S/P patches per side (27), N = G² patches (729),
 * D vision width, I MLP width, H heads, hd = D/H, Q projector hidden, O output dim (= the LLM's hidden size).
 *
 *   pixel_values [T,3,S,S] ─Conv P×P stride P→ [T,D,G,G] → [T,N,D] + position_embedding [N,D]
 *   L' pre-LN layers (L' = num_layers_used; the real model drops the last of its L layers, and no
 *   post-layernorm follows, as LLaVA-OneVision's SigLIP tower):
 *       x = x + out_proj(MHA(LN1(x)));  x = x + fc2(act(fc1(LN2(x))))
 *   projector: fc0 [D→Q] → GELU (exact) → fc2 [Q→O]              → features [T,N,O]
 * Pooling to s×s per tile (s = config.pool, or a caller's override) is done after the graph by
 * `adaptiveAvgPool2d`, exactly as torch.nn.AdaptiveAvgPool2d: output bin i covers input rows
 * [floor(i·G/s), ceil((i+1)·G/s)) and likewise for columns, averaged with equal weights. For G = 27, s = 4:
 * row bins [0,7) [6,14) [13,21) [20,27) — neighbouring bins overlap when s does not divide G.
 * Tokens come out tile by tile, raster order inside a tile (row-major over the s×s bins).
 *
 * A real SigLIP export can be used instead (see `zVisionOnnxConfig`): a model directory with `vision.onnx`
 * and a config.json. Its graph must take `pixel_values` float32 [T,3,S,S] (already normalised, mean = std = 0.5)
 * and return, as its first output, float32 [T,N,O]: projected patch features before pooling.
 */
import { z } from "zod";
import { GraphBuilder } from "../onnx/builder";
import { Ops } from "../onnx/ops";
import type { WeightSource } from "../io/weights";

export const zVisionConfig = z.object({
  model_type: z.string().default("siglip_vision_model"),
  image_size: z.number().int().positive().default(384),
  patch_size: z.number().int().positive().default(14),
  num_channels: z.literal(3).default(3),
  hidden_size: z.number().int().positive(),
  intermediate_size: z.number().int().positive(),
  num_attention_heads: z.number().int().positive(),
  /** Layers stored in the weights. */
  num_hidden_layers: z.number().int().positive(),
  /** Layers run; the real model drops the last one. Default num_hidden_layers − 1 (at least 1). */
  num_layers_used: z.number().int().positive().optional(),
  layer_norm_eps: z.number().positive().default(1e-6),
  hidden_act: z.enum(["gelu_pytorch_tanh", "gelu"]).default("gelu_pytorch_tanh"),
  projector_hidden_size: z.number().int().positive(),
  /** Output size = the LLM's hidden size. */
  out_dim: z.number().int().positive(),
  /** Pooled side s: s×s tokens per tile. */
  pool: z.number().int().positive().default(4),
  seeded_untrained: z.boolean().optional(),
});
export type VisionConfig = z.infer<typeof zVisionConfig>;

/** config.json of a directory that holds a ready `vision.onnx` (see the file comment). */
export const zVisionOnnxConfig = z.object({
  image_size: z.number().int().positive().default(384),
  patch_size: z.number().int().positive().default(14),
  out_dim: z.number().int().positive(),
  pool: z.number().int().positive().default(4),
  onnx_file: z.string().default("vision.onnx"),
  input_name: z.string().default("pixel_values"),
});
export type VisionOnnxConfig = z.infer<typeof zVisionOnnxConfig>;

/** Patches per side (27 for 384/14; SigLIP's conv drops the 6-px remainder). */
export function gridSide(c: { image_size: number; patch_size: number }): number {
  return Math.floor(c.image_size / c.patch_size);
}

export function layersUsed(c: VisionConfig): number {
  const n = c.num_layers_used ?? Math.max(1, c.num_hidden_layers - 1);
  if (n > c.num_hidden_layers) throw new Error(`vision config: num_layers_used ${n} > num_hidden_layers ${c.num_hidden_layers}`);
  return n;
}

export function checkVisionConfig(c: VisionConfig): void {
  if (c.hidden_size % c.num_attention_heads) throw new Error(`vision config: hidden_size ${c.hidden_size} is not divisible by ${c.num_attention_heads} heads`);
  if (c.pool > gridSide(c)) throw new Error(`vision config: pool ${c.pool} exceeds the ${gridSide(c)}-patch grid`);
  layersUsed(c);
}

// ---------------------------------------------------------------------------------------------
// Parameter table (HF SigLIP names; projector as LLaVA's mlp2x_gelu)

export type EncoderParamKind = "linear" | "bias" | "norm" | "norm_bias" | "embed" | "sinusoid";

export interface EncoderParamSpec {
  name: string;
  shape: number[];
  kind: EncoderParamKind;
}

export const visionNames = {
  patchW: "vision_model.embeddings.patch_embedding.weight",
  patchB: "vision_model.embeddings.patch_embedding.bias",
  pos: "vision_model.embeddings.position_embedding.weight",
  layer: (i: number, rest: string) => `vision_model.encoder.layers.${i}.${rest}`,
  proj: (i: 0 | 2, w: "weight" | "bias") => `mm_projector.${i}.${w}`,
};

/** Every parameter with its shape, in file order (Linear weights are [out, in]). */
export function visionParamTable(c: VisionConfig): EncoderParamSpec[] {
  const D = c.hidden_size;
  const I = c.intermediate_size;
  const P = c.patch_size;
  const N = gridSide(c) ** 2;
  const t: EncoderParamSpec[] = [
    { name: visionNames.patchW, shape: [D, c.num_channels, P, P], kind: "linear" }, // [T,3,S,S] → [T,D,G,G]
    { name: visionNames.patchB, shape: [D], kind: "bias" },
    { name: visionNames.pos, shape: [N, D], kind: "embed" },
  ];
  for (let i = 0; i < c.num_hidden_layers; i++) {
    const L = (rest: string, shape: number[], kind: EncoderParamKind) => t.push({ name: visionNames.layer(i, rest), shape, kind });
    L("layer_norm1.weight", [D], "norm");
    L("layer_norm1.bias", [D], "norm_bias");
    for (const p of ["q", "k", "v", "out"]) {
      L(`self_attn.${p}_proj.weight`, [D, D], "linear");
      L(`self_attn.${p}_proj.bias`, [D], "bias");
    }
    L("layer_norm2.weight", [D], "norm");
    L("layer_norm2.bias", [D], "norm_bias");
    L("mlp.fc1.weight", [I, D], "linear");
    L("mlp.fc1.bias", [I], "bias");
    L("mlp.fc2.weight", [D, I], "linear");
    L("mlp.fc2.bias", [D], "bias");
  }
  t.push({ name: visionNames.proj(0, "weight"), shape: [c.projector_hidden_size, D], kind: "linear" });
  t.push({ name: visionNames.proj(0, "bias"), shape: [c.projector_hidden_size], kind: "bias" });
  t.push({ name: visionNames.proj(2, "weight"), shape: [c.out_dim, c.projector_hidden_size], kind: "linear" });
  t.push({ name: visionNames.proj(2, "bias"), shape: [c.out_dim], kind: "bias" });
  return t;
}

// ---------------------------------------------------------------------------------------------
// Transformer pieces shared with the audio encoder (models/encoders/audio-encoder.ts)

/** Graph helpers over [B, N, K] activations, reading PyTorch-layout weights from a WeightSource. */
export class EncoderGraph {
  readonly g: GraphBuilder;
  readonly ops: Ops;

  /** `builder`: where the graph goes (default an in-memory GraphBuilder; import passes an external-data one). */
  constructor(
    name: string,
    readonly w: WeightSource,
    builder?: GraphBuilder,
  ) {
    this.g = builder ?? new GraphBuilder(name);
    this.ops = new Ops(this.g);
  }

  /** A weight as an initializer under its own name, shape checked. */
  param(name: string, shape: number[]): string {
    const t = this.w.get(name);
    if (t.shape.join(",") !== shape.join(",")) throw new Error(`weight "${name}" has shape [${t.shape}], expected [${shape}]`);
    return this.g.initializer(name, t.data, t.shape);
  }

  /** x: [B,N,K], weight [O,K] (+ bias [O]) → [B,N,O] (the weight is stored transposed, [K,O], for MatMul). */
  linear(x: string, prefix: string, inDim: number, outDim: number, bias = true): string {
    const t = this.w.get(`${prefix}.weight`);
    if (t.shape.join(",") !== `${outDim},${inDim}`) throw new Error(`weight "${prefix}.weight" has shape [${t.shape}], expected [${outDim},${inDim}]`);
    const wt = new Float32Array(inDim * outDim);
    for (let o = 0; o < outDim; o++) for (let k = 0; k < inDim; k++) wt[k * outDim + o] = t.data[o * inDim + k]!;
    const y = this.ops.matmul(x, this.g.initializer(`${prefix}.weight`, wt, [inDim, outDim]));
    return bias ? this.ops.add(y, this.param(`${prefix}.bias`, [outDim])) : y;
  }

  /** x: [..., D] → LayerNorm over the last axis with weight/bias [D]. */
  layerNorm(x: string, prefix: string, dim: number, eps: number): string {
    return this.g.op("LayerNormalization", [x, this.param(`${prefix}.weight`, [dim]), this.param(`${prefix}.bias`, [dim])], { axis: -1, epsilon: { f: eps } });
  }

  /** Exact GELU: x · ½(1 + erf(x/√2)); "gelu_pytorch_tanh": x · ½(1 + tanh(√(2/π)(x + 0.044715x³))). */
  gelu(x: string, act: "gelu" | "gelu_pytorch_tanh" = "gelu"): string {
    const { ops, g } = this;
    if (act === "gelu") return ops.mul(ops.mul(x, g.scalar(0.5)), ops.add(g.scalar(1), g.op("Erf", [ops.mul(x, g.scalar(Math.SQRT1_2))])));
    const inner = ops.mul(ops.add(x, ops.mul(g.op("Pow", [x, g.scalar(3)]), g.scalar(0.044715))), g.scalar(Math.sqrt(2 / Math.PI)));
    return ops.mul(ops.mul(x, g.scalar(0.5)), ops.add(g.scalar(1), g.op("Tanh", [inner])));
  }

  /**
   * Multi-head attention, no mask. xq: [B,Nq,D], xkv: [B,Nk,D] → [B,Nq,D].
   * Weights `${prefix}.{q,k,v,out}_proj.{weight,bias}`; `kBias` false for Whisper's bias-free k_proj.
   * `mask`: an additive [Nq,Nk] score mask (0 or a large negative), e.g. the causal mask of a Whisper decoder.
   */
  attention(xq: string, xkv: string, prefix: string, dim: number, heads: number, kBias = true, mask?: string): string {
    const { ops, g } = this;
    const hd = dim / heads;
    const split = g.ints([0, 0, heads, hd]);
    const q = ops.transpose(ops.reshape(this.linear(xq, `${prefix}.q_proj`, dim, dim), split), [0, 2, 1, 3]); // [B,H,Nq,hd]
    const k = ops.transpose(ops.reshape(this.linear(xkv, `${prefix}.k_proj`, dim, dim, kBias), split), [0, 2, 3, 1]); // [B,H,hd,Nk]
    const v = ops.transpose(ops.reshape(this.linear(xkv, `${prefix}.v_proj`, dim, dim), split), [0, 2, 1, 3]); // [B,H,Nk,hd]
    const scores = ops.mul(ops.matmul(q, k), g.scalar(1 / Math.sqrt(hd))); // [B,H,Nq,Nk]
    const probs = ops.softmax(mask ? ops.add(scores, mask) : scores, -1);
    const ctx = ops.reshape(ops.transpose(ops.matmul(probs, v), [0, 2, 1, 3]), g.ints([0, 0, dim])); // [B,Nq,D]
    return this.linear(ctx, `${prefix}.out_proj`, dim, dim);
  }
}

// ---------------------------------------------------------------------------------------------
// The graph

/** ONNX bytes: pixel_values [T,3,S,S] → features [T,N,O] (projected, not pooled). */
export function buildVisionGraph(c: VisionConfig, weights: WeightSource, builder?: GraphBuilder): Uint8Array {
  checkVisionConfig(c);
  const b = new EncoderGraph("siglip_vision", weights, builder);
  const { g, ops } = b;
  const D = c.hidden_size;
  const I = c.intermediate_size;
  const G = gridSide(c);
  const N = G * G;
  const S = c.image_size;
  const P = c.patch_size;

  const pixels = g.input("pixel_values", "float", ["tiles", 3, S, S]);
  const patches = g.op("Conv", [pixels, b.param(visionNames.patchW, [D, 3, P, P]), b.param(visionNames.patchB, [D])], { kernel_shape: [P, P], strides: [P, P] }); // [T,D,G,G]
  let x = ops.add(ops.transpose(ops.reshape(patches, g.ints([0, D, N])), [0, 2, 1]), b.param(visionNames.pos, [N, D])); // [T,N,D]
  for (let i = 0; i < layersUsed(c); i++) {
    g.scope = `l${i}/`;
    const p = (rest: string) => visionNames.layer(i, rest);
    const h1 = b.layerNorm(x, p("layer_norm1"), D, c.layer_norm_eps);
    x = ops.add(x, b.attention(h1, h1, p("self_attn"), D, c.num_attention_heads));
    x = ops.add(x, b.linear(b.gelu(b.linear(b.layerNorm(x, p("layer_norm2"), D, c.layer_norm_eps), p("mlp.fc1"), D, I), c.hidden_act), p("mlp.fc2"), I, D));
  }
  g.scope = "proj/";
  const h = b.gelu(b.linear(x, "mm_projector.0", D, c.projector_hidden_size), "gelu");
  const y = b.linear(h, "mm_projector.2", c.projector_hidden_size, c.out_dim); // [T,N,O]
  g.scope = "";
  g.output(y, "features", "float", ["tiles", N, c.out_dim]);
  return g.toBytes();
}

// ---------------------------------------------------------------------------------------------
// Pooling (plain TS; see the file comment)

/** torch.nn.AdaptiveAvgPool bins of `n` inputs into `s` outputs: [start, end) per output. */
export function adaptiveBins(n: number, s: number): [number, number][] {
  if (!(s >= 1 && s <= n)) throw new Error(`adaptive pooling: cannot pool ${n} into ${s} bins`);
  return Array.from({ length: s }, (_, i) => [Math.floor((i * n) / s), Math.ceil(((i + 1) * n) / s)]);
}

/**
 * x: [T, G·G, O] patch rows (raster order) → [T, s·s, O]: each tile's G×G grid average-pooled to s×s,
 * rows in raster order.
 */
export function adaptiveAvgPool2d(x: Float32Array, tiles: number, G: number, dim: number, s: number): Float32Array {
  if (x.length !== tiles * G * G * dim) throw new Error(`adaptiveAvgPool2d: ${x.length} values for [${tiles}, ${G * G}, ${dim}]`);
  const bins = adaptiveBins(G, s);
  const out = new Float32Array(tiles * s * s * dim);
  const acc = new Float64Array(dim);
  for (let t = 0; t < tiles; t++) {
    for (let i = 0; i < s; i++) {
      const [r0, r1] = bins[i]!;
      for (let j = 0; j < s; j++) {
        const [c0, c1] = bins[j]!;
        acc.fill(0);
        for (let r = r0; r < r1; r++)
          for (let c = c0; c < c1; c++) {
            const base = ((t * G + r) * G + c) * dim;
            for (let d = 0; d < dim; d++) acc[d]! += x[base + d]!;
          }
        const inv = 1 / ((r1 - r0) * (c1 - c0));
        const o = ((t * s + i) * s + j) * dim;
        for (let d = 0; d < dim; d++) out[o + d] = acc[d]! * inv;
      }
    }
  }
  return out;
}
