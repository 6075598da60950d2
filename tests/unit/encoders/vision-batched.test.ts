/**
 * The vision encoder batched across images (a dataset batch's window, engine/batch/window.ts): the tiles of several
 * images in one session run give each tile the same features as a run of that tile alone, and the node inside a
 * batch window serves several records with one call and the same features as outside any window.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import * as ort from "onnxruntime-node";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BatchWindow } from "@/engine/batch/window";
import type { FeaturesValue } from "@/engine/features";
import type { ImageValue } from "@/engine/media/values";
import type { RunContext } from "@/engine/node";
import { SessionPool } from "@/engine/runtime";
import { encodeVisionTiles, encoderGraphFile, hasDynamicBatch, resolveEncoder, seedEncoderWeights, tinyVisionConfig } from "@/models/encoders/encoders-tiny";
import { buildVisionGraph } from "@/models/encoders/vision-encoder";
import { GraphBuilder, type Dim } from "@/models/onnx/builder";
import { MemoryWeights } from "@/models/io/weights";
import { SeededRandom } from "@/models/io/seeded-random";
import { visionEncoder } from "@/nodes/vision-encoder";
import { makeCtx } from "../nodes/ctx";
import { maxDiff } from "./reference";

const modelsRoot = fs.mkdtempSync(path.join(os.tmpdir(), "vision-batched-models-"));
const savedEnv = process.env.STUDIO_MODELS_DIR;
let pool: SessionPool;
let env: Awaited<ReturnType<typeof makeCtx>>;
let ctx: RunContext;

beforeAll(async () => {
  process.env.STUDIO_MODELS_DIR = modelsRoot;
  pool = new SessionPool({ executionProvider: "cpu", intraOpNumThreads: 2 });
  env = await makeCtx();
  ctx = { ...env.ctx, runtime: pool };
});
afterAll(async () => {
  await pool.close();
  await env.dispose();
  if (savedEnv === undefined) delete process.env.STUDIO_MODELS_DIR;
  else process.env.STUDIO_MODELS_DIR = savedEnv;
  fs.rmSync(modelsRoot, { recursive: true, force: true });
});

async function storeImage(width: number, height: number, seed: number): Promise<ImageValue> {
  const raw = Buffer.from(new SeededRandom(seed).fillUniform(new Float32Array(width * height * 3), 0, 256).map(Math.floor));
  const bytes = await sharp(Uint8Array.from(raw), { raw: { width, height, channels: 3 } }).png().toBuffer();
  return { kind: "image", file: await ctx.storage.write(bytes, "png"), mime: "image/png", width, height };
}

const params = visionEncoder.params.parse({}) as never;

describe("vision encoder, tiles of several images per run", () => {
  it("images of 1, 3 and 2 seeded random tiles in runs of up to 4 tiles: every tile's features as alone (≤ 1e-6)", async () => {
    const model = await resolveEncoder("vision", "uni-moe-tiny/vision");
    const S = model.info.imageSize;
    let seed = 40;
    const images = [1, 3, 2].map((n) => Array.from({ length: n }, () => new SeededRandom(seed++).fillUniform(new Float32Array(3 * S * S), -1, 1)));
    const batched = await encodeVisionTiles(model, pool, images, 4);
    const alone = await encodeVisionTiles(model, pool, images, 1);
    expect(batched.map((img) => img.length)).toEqual([1, 3, 2]);
    let diff = 0;
    batched.forEach((img, i) =>
      img.forEach((tile, t) => {
        expect(tile).toHaveLength(model.info.grid ** 2 * model.info.outDim);
        diff = Math.max(diff, maxDiff(tile, alone[i]![t]!));
      }),
    );
    console.log(`vision tiles batched (runs of 4) vs alone: max diff ${diff.toExponential(2)}`);
    expect(diff).toBeLessThanOrEqual(1e-6);
    // The tiny graph's batch dim is dynamic, so the runs of 4 did hold several tiles.
    const session = await ort.InferenceSession.create(encoderGraphFile(model), { logSeverityLevel: 3 });
    expect(hasDynamicBatch(session, model.inputName)).toBe(true);
    await session.release();
    // Different tiles give different features (the comparison above is not between equal constants).
    expect(maxDiff(batched[1]![0]!, batched[1]![1]!)).toBeGreaterThan(1e-3);
  });

  it("runs in flight at the same time each fill their own staging array, and a reused one holds only its run's tiles", async () => {
    const model = await resolveEncoder("vision", "uni-moe-tiny/vision");
    const S = model.info.imageSize;
    const tiles = (seed: number, n: number) => [Array.from({ length: n }, (_, t) => new SeededRandom(seed + t).fillUniform(new Float32Array(3 * S * S), -1, 1))];
    const a = tiles(100, 4), b = tiles(200, 4), c = tiles(300, 3);
    const alone = await Promise.all([a, b, c].map((img) => encodeVisionTiles(model, pool, img, 1)));
    // two calls in flight (their copies happen before either run); then a shorter run in an array the longer ones used
    const together = await Promise.all([encodeVisionTiles(model, pool, a, 4), encodeVisionTiles(model, pool, b, 4)]);
    const after = await encodeVisionTiles(model, pool, c, 4);
    let diff = 0;
    [...together, after].forEach((got, i) => got[0]!.forEach((tile, t) => (diff = Math.max(diff, maxDiff(tile, alone[i]![0]![t]!)))));
    expect(diff).toBeLessThanOrEqual(1e-6);
    expect(maxDiff(together[0]![0]![0]!, together[1]![0]![0]!)).toBeGreaterThan(1e-3);
  });

  it("the node inside a batch window: 3 records' images (1×1, 1×2, 2×2 grids) in one call, features as outside any window", async () => {
    const images = await Promise.all([
      storeImage(300, 300, 1),
      storeImage(760, 384, 2),
      storeImage(800, 800, 3),
    ]);
    const alone = [];
    for (const image of images) alone.push((await visionEncoder.execute({ inputs: { image }, params, ctx })).features as FeaturesValue);
    const window = new BatchWindow({ maxBatch: 8, maxTokens: 2048 });
    const together = await Promise.all(images.map((image) => window.participate(async () => (await visionEncoder.execute({ inputs: { image }, params, ctx })).features as FeaturesValue)));
    expect(window.stats.others?.["vision encoder"]).toEqual({ calls: 1, requests: 3, largest: 3, retried: 0, ms: expect.any(Number) });
    expect(window.stats).toMatchObject({ calls: 0, requests: 0 }); // no model forwards
    expect(together.map((f) => f.image)).toEqual([
      { rows: 1, cols: 1, pool: 4 },
      { rows: 1, cols: 2, pool: 4 },
      { rows: 2, cols: 2, pool: 4 },
    ]);
    for (let i = 0; i < images.length; i++) {
      expect(together[i]!.n).toBe(alone[i]!.n);
      const d = maxDiff(together[i]!.data, alone[i]!.data);
      console.log(`node record ${i}: ${alone[i]!.n} tokens, batched vs alone max diff ${d.toExponential(2)}`);
      expect(d).toBeLessThanOrEqual(1e-6);
    }
  });

  it("a plugged-in vision.onnx with a fixed batch of 1 runs one tile per session run, with the same features", async () => {
    /** The seeded tower's graph with the batch dimension fixed at 1 (as some exports are). */
    class FixedBatch extends GraphBuilder {
      override input(name: string, dtype: Parameters<GraphBuilder["input"]>[1], dims: Dim[]): string {
        return super.input(name, dtype, dims.map((d) => (d === "tiles" ? 1 : d)));
      }
    }
    const dir = path.join(modelsRoot, "local", "fixed-batch");
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, "vision.onnx"), buildVisionGraph(tinyVisionConfig, new MemoryWeights(seedEncoderWeights("vision", tinyVisionConfig)), new FixedBatch("siglip_vision")));
    fs.writeFileSync(path.join(dir, "config.json"), JSON.stringify({ image_size: 384, patch_size: 14, out_dim: 128, pool: 4 }));
    const fixed = await resolveEncoder("vision", "local/fixed-batch");
    const session = await ort.InferenceSession.create(fixed.onnxFile!, { logSeverityLevel: 3 });
    expect(hasDynamicBatch(session, fixed.inputName)).toBe(false);
    await session.release();
    const S = fixed.info.imageSize;
    const images = [2, 1].map((n, i) => Array.from({ length: n }, (_, t) => new SeededRandom(70 + 3 * i + t).fillUniform(new Float32Array(3 * S * S), -1, 1)));
    const got = await encodeVisionTiles(fixed, pool, images, 8); // would fail if it put 3 tiles into the fixed-batch input
    const ref = await encodeVisionTiles(await resolveEncoder("vision", "uni-moe-tiny/vision"), pool, images, 8);
    let diff = 0;
    got.forEach((img, i) => img.forEach((tile, t) => (diff = Math.max(diff, maxDiff(tile, ref[i]![t]!)))));
    expect(diff).toBeLessThanOrEqual(1e-6);
  });
});
