import * as ort from "onnxruntime-node";
import sharp from "sharp";
import { describe, expect, it } from "vitest";
import { ditReferenceConfig } from "@/models/dit/dit-tiny";
import { SeededRandom } from "@/models/io/seeded-random";
import { buildVaeDecoderGraph, buildVaeEncoderGraph, decodeToRgb, encodePng, rgbToTensor, seedVaeWeights, tensorToRgb, vaeImageSize, vaeParamTable, zVaeConfig, type VaeConfig } from "@/models/dit/vae";
import { MemoryWeights } from "@/models/io/weights";
import { refVaeDecode, refVaeEncode } from "./reference";

const maxAbs = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
};

async function run(bytes: Uint8Array, name: string, data: Float32Array, dims: number[]): Promise<{ data: Float32Array; dims: readonly number[] }> {
  const s = await ort.InferenceSession.create(bytes, { intraOpNumThreads: 1, logSeverityLevel: 3 });
  const out = await s.run({ [name]: new ort.Tensor("float32", data, dims) });
  const t = Object.values(out)[0]!;
  await s.release();
  return { data: t.data as Float32Array, dims: t.dims };
}

describe("tiny VAE", () => {
  it("decoder and encoder graphs agree with the plain-TS reference (small config)", async () => {
    const c: VaeConfig = zVaeConfig.parse({ latentChannels: 4, latentSize: 4, decoderChannels: [8, 6, 5], encoderChannels: [5, 7] });
    const w = seedVaeWeights(c, 3);
    const rng = new SeededRandom(4);
    const z = rng.fillNormal(new Float32Array(4 * 4 * 4));
    const dec = await run(buildVaeDecoderGraph(c, new MemoryWeights(w)), "z", z, [1, 4, 4, 4]);
    expect(dec.dims).toEqual([1, 3, 16, 16]);
    const dd = maxAbs(dec.data, refVaeDecode(c, w, z));
    const img = rng.fillUniform(new Float32Array(3 * 16 * 16), -1, 1);
    const enc = await run(buildVaeEncoderGraph(c, new MemoryWeights(w)), "image", img, [1, 3, 16, 16]);
    expect(enc.dims).toEqual([1, 4, 4, 4]);
    const de = maxAbs(enc.data, refVaeEncode(c, w, img));
    console.log(`VAE small: decoder max |Δ| ${dd.toExponential(2)}, encoder max |Δ| ${de.toExponential(2)}`);
    expect(dd).toBeLessThan(1e-4);
    expect(de).toBeLessThan(1e-4);
  });

  it("reference VAE: latent 4×32×32 → image 3×256×256 in [−1, 1] (not constant), and back to 4×32×32", async () => {
    const c = ditReferenceConfig().vae;
    expect(vaeImageSize(c)).toBe(256);
    const w = seedVaeWeights(c, 2511);
    const z = new SeededRandom(1).fillNormal(new Float32Array(4 * 32 * 32));
    const dec = await run(buildVaeDecoderGraph(c, new MemoryWeights(w)), "z", z, [1, 4, 32, 32]);
    expect(dec.dims).toEqual([1, 3, 256, 256]);
    let mn = Infinity, mx = -Infinity, sum = 0, sum2 = 0;
    for (const v of dec.data) {
      mn = Math.min(mn, v);
      mx = Math.max(mx, v);
      sum += v;
      sum2 += v * v;
    }
    const mean = sum / dec.data.length, std = Math.sqrt(sum2 / dec.data.length - mean * mean);
    console.log(`reference VAE decode: range [${mn.toFixed(3)}, ${mx.toFixed(3)}], mean ${mean.toFixed(3)}, std ${std.toFixed(3)}`);
    expect(mn).toBeGreaterThanOrEqual(-1);
    expect(mx).toBeLessThanOrEqual(1);
    expect(std).toBeGreaterThan(0.1);
    const enc = await run(buildVaeEncoderGraph(c, new MemoryWeights(w)), "image", dec.data, [1, 3, 256, 256]);
    expect(enc.dims).toEqual([1, 4, 32, 32]);
    expect(enc.data.every(Number.isFinite)).toBe(true);
    expect(vaeParamTable(c).every((p) => w.has(p.name))).toBe(true);
  });

  it("pixels: [−1, 1] CHW ↔ RGB uint8 (rounded, clamped), PNG of the right size", async () => {
    const chw = Float32Array.from([-1, 0, 1, 2, /* G */ -2, 0.5, -0.5, 1 / 127.5 - 1, /* B */ 0, 0, 0, 0]);
    const rgb = tensorToRgb(chw, 2, 2);
    expect(Array.from(rgb)).toEqual([0, 0, 128, 128, 191, 128, 255, 64, 128, 255, 1, 128]);
    const back = rgbToTensor(rgb, 2, 2);
    expect(Array.from(tensorToRgb(back, 2, 2))).toEqual(Array.from(rgb));
    const png = await encodePng(rgb, 2, 2);
    const meta = await sharp(png).metadata();
    expect([meta.format, meta.width, meta.height, meta.channels]).toEqual(["png", 2, 2, 3]);
    const decoded = await decodeToRgb(png, 2);
    expect(Array.from(decoded)).toEqual(Array.from(rgb));
    const square = await decodeToRgb(await sharp({ create: { width: 40, height: 20, channels: 4, background: { r: 10, g: 20, b: 30, alpha: 1 } } }).png().toBuffer(), 8);
    expect(square.length).toBe(8 * 8 * 3);
    expect(Array.from(square.subarray(0, 3))).toEqual([10, 20, 30]);
  });
});
