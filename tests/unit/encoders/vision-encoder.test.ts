import * as ort from "onnxruntime-node";
import { afterAll, describe, expect, it } from "vitest";
import { seedEncoderWeights, tinyVisionConfig } from "@/models/encoders/encoders-tiny";
import { SeededRandom } from "@/models/io/seeded-random";
import { adaptiveAvgPool2d, adaptiveBins, buildVisionGraph, gridSide, layersUsed, visionParamTable, zVisionConfig, type VisionConfig } from "@/models/encoders/vision-encoder";
import { MemoryWeights } from "@/models/io/weights";
import { maxDiff, refAdaptivePool, refVisionTile } from "./reference";

const sessions: ort.InferenceSession[] = [];
afterAll(async () => {
  for (const s of sessions) await s.release();
});

/** Seeded weights; `gain` scales weights and embeddings (not norms) so activations are O(1) and the nonlinearities matter. */
async function run(c: VisionConfig, seed: number, tiles: number, gain = 1) {
  const weights = seedEncoderWeights("vision", c, seed);
  for (const p of visionParamTable(c)) if (p.kind === "linear" || p.kind === "embed") weights.get(p.name)!.data.forEach((v, i, a) => (a[i] = v * gain));
  const session = await ort.InferenceSession.create(buildVisionGraph(c, new MemoryWeights(weights)), { intraOpNumThreads: 1, logSeverityLevel: 3 });
  sessions.push(session);
  const S = c.image_size;
  const input = new SeededRandom(seed + 100).fillUniform(new Float32Array(tiles * 3 * S * S), -1, 1);
  const out = await session.run({ pixel_values: new ort.Tensor("float32", input, [tiles, 3, S, S]) });
  const y = out.features!;
  const G = gridSide(c);
  expect(y.dims).toEqual([tiles, G * G, c.out_dim]);
  const got = y.data as Float32Array;
  const per = G * G * c.out_dim;
  const ref = { layers_run: layersUsed(c), ...c };
  let diff = 0;
  let poolDiff = 0;
  const pooled = adaptiveAvgPool2d(got, tiles, G, c.out_dim, c.pool);
  for (let t = 0; t < tiles; t++) {
    const r = refVisionTile(ref, weights, input.subarray(t * 3 * S * S, (t + 1) * 3 * S * S));
    diff = Math.max(diff, maxDiff(got.subarray(t * per, (t + 1) * per), r));
    const s2 = c.pool * c.pool * c.out_dim;
    poolDiff = Math.max(poolDiff, maxDiff(pooled.subarray(t * s2, (t + 1) * s2), refAdaptivePool(r, G, c.out_dim, c.pool)));
  }
  return { diff, poolDiff, scale: Math.max(...Array.from(got, Math.abs)) };
}

describe("vision encoder graph vs the plain-TS reference", () => {
  it("tiny (384², patch 14 → 729 patches, 2 of 3 layers, pool 4): one seeded random tile within 1e-4", async () => {
    const r = await run(tinyVisionConfig, 7, 1);
    console.log(`vision tiny: max |onnx − ref| = ${r.diff.toExponential(2)} (patch features), ${r.poolDiff.toExponential(2)} (pooled); max |y| = ${r.scale.toFixed(3)}`);
    expect(r.diff).toBeLessThan(1e-4);
    expect(r.poolDiff).toBeLessThan(1e-4);
  });

  it("a small config with exact GELU, 2 tiles, pool 3 of a 5×5 grid, weights ×10 (O(1) activations)", async () => {
    const c = zVisionConfig.parse({
      image_size: 70, patch_size: 14, hidden_size: 24, intermediate_size: 40, num_attention_heads: 3, num_hidden_layers: 2,
      hidden_act: "gelu", projector_hidden_size: 20, out_dim: 12, pool: 3,
    });
    expect(layersUsed(c)).toBe(1); // the last layer is dropped by default
    const r = await run(c, 3, 2, 10);
    console.log(`vision small: max |onnx − ref| = ${r.diff.toExponential(2)}, pooled ${r.poolDiff.toExponential(2)}; max |y| = ${r.scale.toFixed(3)}`);
    expect(r.diff).toBeLessThan(1e-4);
    expect(r.poolDiff).toBeLessThan(1e-4);
  });
});

describe("adaptive average pooling", () => {
  it("splits 27 into bins as torch.nn.AdaptiveAvgPool2d", () => {
    expect(adaptiveBins(27, 4)).toEqual([[0, 7], [6, 14], [13, 21], [20, 27]]);
    expect(adaptiveBins(27, 3)).toEqual([[0, 9], [9, 18], [18, 27]]);
    expect(adaptiveBins(27, 27)[5]).toEqual([5, 6]);
    expect(adaptiveBins(27, 1)).toEqual([[0, 27]]);
    expect(() => adaptiveBins(27, 28)).toThrow();
  });

  it("averages the right patches, tile by tile, rows in raster order", () => {
    // 2 tiles of a 3×3 grid, dim 1: value = tile*100 + row*3 + col; pooled to 2×2: bins [0,2) [1,3).
    const x = Float32Array.from({ length: 18 }, (_, i) => Math.floor(i / 9) * 100 + (i % 9));
    const y = Array.from(adaptiveAvgPool2d(x, 2, 3, 1, 2));
    expect(y).toEqual([2, 3, 5, 6, 102, 103, 105, 106]);
  });
});

describe("parameter table", () => {
  it("has SigLIP's names and shapes", () => {
    const t = new Map(visionParamTable(tinyVisionConfig).map((p) => [p.name, p.shape]));
    expect(t.get("vision_model.embeddings.patch_embedding.weight")).toEqual([64, 3, 14, 14]);
    expect(t.get("vision_model.embeddings.position_embedding.weight")).toEqual([729, 64]);
    expect(t.get("vision_model.encoder.layers.2.mlp.fc1.weight")).toEqual([256, 64]);
    expect(t.get("mm_projector.2.weight")).toEqual([128, 128]);
    expect(t.size).toBe(3 + 3 * 16 + 4);
  });
});
