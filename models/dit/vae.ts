/**
 * Tiny seeded VAE for the DiT's latent space (PAPER §5: "latent decoded by a VAE"): config, parameter
 * table, seeded init, ONNX graphs, and the pixel conversions around them. Seeded and untrained: it maps
 * latents to colourful structured noise, not to photographs.
 *
 * Decoder  z [B, C, s, s] → conv3×3 → SiLU → (nearest-upsample ×2 → conv3×3 → SiLU) × U → conv3×3 → tanh
 *          → image [B, 3, s·2^U, s·2^U] in [−1, 1]       (4×32×32 → 3×256×256 with U = 3)
 * Encoder  image [B, 3, R, R] in [−1, 1] → (conv3×3 stride 2 → SiLU) × U → conv3×3 → z [B, C, R/2^U, R/2^U]
 *          (the latent "mean"; no sampling, no scaling factor)
 * Pixels ↔ tensors: RGB uint8 v ↔ v/127.5 − 1, channel-major (CHW); output rounds and clamps.
 */
import sharp from "sharp";
import { z } from "zod";
import { GraphBuilder } from "../onnx/builder";
import { Layers } from "./dit-graph";
import { SeededRandom, deriveSeed } from "../io/seeded-random";
import type { Tensor32, WeightSource } from "../io/weights";

export const zVaeConfig = z.object({
  latentChannels: z.number().int().positive().default(4),
  latentSize: z.number().int().positive().default(32),
  imageChannels: z.number().int().positive().default(3),
  /** Decoder widths: conv_in → [0], then one ×2 upsample stage per later entry. */
  decoderChannels: z.array(z.number().int().positive()).min(1).default([64, 48, 32, 16]),
  /** Encoder widths: one stride-2 stage per entry. */
  encoderChannels: z.array(z.number().int().positive()).min(1).default([16, 32, 64]),
});
export type VaeConfig = z.infer<typeof zVaeConfig>;

/** Image side produced by the decoder. */
export const vaeImageSize = (c: VaeConfig) => c.latentSize * 2 ** (c.decoderChannels.length - 1);

export function checkVaeConfig(c: VaeConfig): VaeConfig {
  if (c.encoderChannels.length !== c.decoderChannels.length - 1) {
    throw new Error(`VAE config: the encoder needs ${c.decoderChannels.length - 1} stride-2 stages to mirror the decoder, has ${c.encoderChannels.length}`);
  }
  return c;
}

export interface VaeParamSpec {
  name: string;
  shape: number[];
  kind: "conv" | "bias";
  fanIn: number;
  /** Init gain: √2 before SiLU, 1 for the output convs (the decoder's feeds tanh). */
  gain: number;
}

/** Every VAE parameter ([out, in, 3, 3] convs), decoder first. */
export function vaeParamTable(c: VaeConfig): VaeParamSpec[] {
  checkVaeConfig(c);
  const t: VaeParamSpec[] = [];
  const conv = (name: string, co: number, ci: number, gain = Math.SQRT2) => {
    t.push({ name: `${name}.weight`, shape: [co, ci, 3, 3], kind: "conv", fanIn: ci * 9, gain });
    t.push({ name: `${name}.bias`, shape: [co], kind: "bias", fanIn: ci * 9, gain });
  };
  const dc = c.decoderChannels;
  conv("decoder.conv_in", dc[0]!, c.latentChannels);
  for (let i = 1; i < dc.length; i++) conv(`decoder.up.${i - 1}.conv`, dc[i]!, dc[i - 1]!);
  conv("decoder.conv_out", c.imageChannels, dc[dc.length - 1]!, 1);
  let ci = c.imageChannels;
  c.encoderChannels.forEach((co, i) => {
    conv(`encoder.down.${i}.conv`, co, ci);
    ci = co;
  });
  conv("encoder.conv_out", c.latentChannels, ci, 1);
  return t;
}

/** Weights N(0, gain²/fanIn) (He-style, so SiLU stacks keep their scale), biases N(0, 0.1²). */
export function seedVaeTensor(spec: VaeParamSpec, seed: number): Tensor32 {
  const n = spec.shape.reduce((a, b) => a * b, 1);
  const rng = new SeededRandom(deriveSeed(seed, spec.name));
  const std = spec.kind === "bias" ? 0.1 : spec.gain / Math.sqrt(spec.fanIn);
  return { shape: [...spec.shape], data: rng.fillNormal(new Float32Array(n), std) };
}

export function seedVaeWeights(c: VaeConfig, seed: number): Map<string, Tensor32> {
  return new Map(vaeParamTable(c).map((p) => [p.name, seedVaeTensor(p, seed)]));
}

/** Decoder graph: input `z` [B, C, s, s] → output `image` [B, 3, R, R] in [−1, 1]. */
export function buildVaeDecoderGraph(c: VaeConfig, w: WeightSource): Uint8Array {
  checkVaeConfig(c);
  const g = new GraphBuilder("tiny-vae-decoder");
  const l = new Layers(g, w);
  const s = c.latentSize;
  const R = vaeImageSize(c);
  const dc = c.decoderChannels;
  let h = g.input("z", "float", ["B", c.latentChannels, s, s]);
  h = l.silu(l.conv(h, "decoder.conv_in.weight", "decoder.conv_in.bias", dc[0]!, c.latentChannels, 3));
  const scales = g.const([1, 1, 2, 2], [4], "float", "scales");
  for (let i = 1; i < dc.length; i++) {
    g.scope = `up${i - 1}/`;
    const up = g.op("Resize", [h, "", scales], { mode: "nearest", coordinate_transformation_mode: "asymmetric", nearest_mode: "floor" });
    h = l.silu(l.conv(up, `decoder.up.${i - 1}.conv.weight`, `decoder.up.${i - 1}.conv.bias`, dc[i]!, dc[i - 1]!, 3));
  }
  g.scope = "out/";
  const out = g.op("Tanh", [l.conv(h, "decoder.conv_out.weight", "decoder.conv_out.bias", c.imageChannels, dc[dc.length - 1]!, 3)]);
  g.output(out, "image", "float", ["B", c.imageChannels, R, R]);
  return g.toBytes();
}

/** Encoder graph: input `image` [B, 3, R, R] in [−1, 1] → output `z` [B, C, s, s]. */
export function buildVaeEncoderGraph(c: VaeConfig, w: WeightSource): Uint8Array {
  checkVaeConfig(c);
  const g = new GraphBuilder("tiny-vae-encoder");
  const l = new Layers(g, w);
  const R = vaeImageSize(c);
  let h = g.input("image", "float", ["B", c.imageChannels, R, R]);
  let ci = c.imageChannels;
  c.encoderChannels.forEach((co, i) => {
    g.scope = `down${i}/`;
    h = l.silu(l.conv(h, `encoder.down.${i}.conv.weight`, `encoder.down.${i}.conv.bias`, co, ci, 3, 2, 1));
    ci = co;
  });
  g.scope = "out/";
  h = l.conv(h, "encoder.conv_out.weight", "encoder.conv_out.bias", c.latentChannels, ci, 3);
  g.output(h, "z", "float", ["B", c.latentChannels, c.latentSize, c.latentSize]);
  return g.toBytes();
}

// ---------------------------------------------------------------------------------------------
// Pixels

/** [3, R, R] in [−1, 1] → interleaved RGB uint8 [R, R, 3]: round((x + 1)·127.5), clamped. */
export function tensorToRgb(chw: Float32Array, width: number, height: number): Uint8Array {
  const plane = width * height;
  if (chw.length !== 3 * plane) throw new Error(`expected 3×${height}×${width} values, got ${chw.length}`);
  const out = new Uint8Array(3 * plane);
  for (let ch = 0; ch < 3; ch++)
    for (let i = 0; i < plane; i++) {
      const v = Math.round((chw[ch * plane + i]! + 1) * 127.5);
      out[i * 3 + ch] = v < 0 ? 0 : v > 255 ? 255 : v;
    }
  return out;
}

/** Interleaved RGB uint8 [R, R, 3] → [3, R, R] in [−1, 1]. */
export function rgbToTensor(rgb: Uint8Array, width: number, height: number): Float32Array {
  const plane = width * height;
  if (rgb.length !== 3 * plane) throw new Error(`expected ${height}×${width}×3 bytes, got ${rgb.length}`);
  const out = new Float32Array(3 * plane);
  for (let i = 0; i < plane; i++) for (let ch = 0; ch < 3; ch++) out[ch * plane + i] = rgb[i * 3 + ch]! / 127.5 - 1;
  return out;
}

/** PNG bytes of interleaved RGB pixels. */
export async function encodePng(rgb: Uint8Array, width: number, height: number): Promise<Buffer> {
  return sharp(Buffer.from(rgb.buffer, rgb.byteOffset, rgb.byteLength), { raw: { width, height, channels: 3 } }).png().toBuffer();
}

/** Any image sharp reads → RGB uint8 at size×size (centre crop to a square, flattened onto black if it has alpha). */
export async function decodeToRgb(bytes: Uint8Array, size: number): Promise<Uint8Array> {
  const { data, info } = await sharp(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength), { failOn: "error" })
    .flatten({ background: "#000000" })
    .removeAlpha()
    .toColourspace("srgb")
    .resize(size, size, { fit: "cover", position: "centre" })
    .raw()
    .toBuffer({ resolveWithObject: true });
  if (info.channels !== 3 || info.width !== size || info.height !== size) throw new Error(`decoded to ${info.width}×${info.height}×${info.channels}, expected ${size}×${size}×3`);
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}
