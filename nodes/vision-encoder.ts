import { z } from "zod";
import type { FeaturesValue } from "../engine/features";
import { defineNode } from "../engine/node";
import { inspectMedia, UploadError } from "../engine/uploads";
import { currentBatchWindow } from "../engine/batch/window";
import { DEFAULT_VISION_MODEL, encodeVisionTiles, resolveEncoder, withEncoder } from "../models/encoders/encoders-tiny";
import { DEFAULT_GRIDS_TEXT, parseGrids, preprocessImage } from "../models/encoders/image-preprocess";
import { adaptiveAvgPool2d } from "../models/encoders/vision-encoder";
import "./params";

/**
 * Image → FEATURES: any-resolution 384-px tiles through the SigLIP-style encoder and projector, each tile
 * pooled to s×s tokens (tile by tile, raster order inside a tile), already at the LLM's hidden size.
 */
export const visionEncoder = defineNode({
  type: "encode.vision",
  typeVersion: 1,
  title: "Vision Encoder",
  category: "Encoders",
  description:
    "SigLIP-style vision encoder: splits the image into 384×384 tiles on the best-fitting grid, encodes each tile and pools it to s×s tokens at the LLM's hidden size. uni-moe-tiny/vision is seeded, untrained.",
  inputs: { image: { type: "IMAGE", label: "image" } },
  outputs: { features: { type: "FEATURES" } },
  params: z.object({
    model: z
      .string()
      .min(1)
      .default(DEFAULT_VISION_MODEL)
      .meta({ label: "Vision model", description: "uni-moe-tiny/vision (seeded, untrained), an imported Uni-MoE-2.0-Omni tower (<family>/<name>/vision, e.g. grin_qwen2_vl/omni/vision), or a folder in the models directory with config.json + model.safetensors or vision.onnx" }),
    grids: z
      .string()
      .max(1000)
      .default(DEFAULT_GRIDS_TEXT)
      .meta({ label: "Tile grids (rows x cols)", description: "Candidates; the one with the most effective resolution (then least wasted area) is used" }),
    pool: z.number().int().min(0).max(27).default(0).meta({ label: "Pooled side s (0 = model's)", step: 1 }),
  }),
  async fingerprint(params) {
    return (await resolveEncoder("vision", params.model)).contentHash;
  },
  async execute({ inputs, params, ctx }) {
    if (!ctx.runtime) throw new Error("no ONNX Runtime layer is attached to this run");
    const image = inputs.image;
    const grids = parseGrids(params.grids);
    ctx.progress(0, "loading the vision model");
    const model = await resolveEncoder("vision", params.model);
    const { imageSize, grid, outDim } = model.info;
    const pool = params.pool || model.info.pool;
    if (pool > grid) throw new Error(`pool ${pool} is larger than the model's ${grid}×${grid} patch grid`);

    // Check first: a damaged stored file gets the same clear message as at upload (the header, format and pixel
    // limit; the pixels themselves are decoded once, by the preprocessing, which names a failure the same way).
    if (!(await ctx.storage.exists(image.file))) throw new Error(`file ${image.file} is missing from the data directory; upload it again`);
    const bytes = await ctx.storage.read(image.file);
    try {
      await inspectMedia(bytes, { expectedKind: "image", name: "the input image", skipSizeLimit: true, decodePixels: false });
    } catch (err) {
      if (err instanceof UploadError) throw new Error(err.message);
      throw err;
    }
    ctx.signal.throwIfAborted();
    const pre = await preprocessImage(bytes, { grids, tileSize: imageSize, name: "the input image" });
    const tiles = pre.tiles.length;
    const perTile = pool * pool * outDim;
    const data = new Float32Array(tiles * perTile);
    const window = currentBatchWindow();
    if (window) {
      // A dataset batch: this image's tiles run together with the other records' images (one session run per up
      // to MAX_TILES_PER_RUN tiles), each tile's result the same as alone.
      ctx.progress(0, `${tiles} tile(s) (${pre.rows}×${pre.cols} grid), encoded with the batch's other images`);
      const runtime = ctx.runtime;
      const outs = await window.submit(`encode.vision\0${model.ref}\0${model.contentHash}`, pre.tiles, tiles, (images: Float32Array[][]) => encodeVisionTiles(model, runtime, images), { stats: "vision encoder", early: true });
      outs.forEach((out, t) => data.set(adaptiveAvgPool2d(out, 1, grid, outDim, pool), t * perTile));
    } else {
      await withEncoder(model, ctx.runtime, async (run) => {
        for (let t = 0; t < tiles; t++) {
          ctx.signal.throwIfAborted();
          ctx.progress(t / tiles, `tile ${t + 1}/${tiles} (${pre.rows}×${pre.cols} grid)`);
          const out = await run(pre.tiles[t]!, [1, 3, imageSize, imageSize]);
          if (out.dims.join(",") !== `1,${grid * grid},${outDim}`) {
            throw new Error(`vision model "${params.model}" returned [${out.dims}], expected [1, ${grid * grid}, ${outDim}]`);
          }
          data.set(adaptiveAvgPool2d(out.data, 1, grid, outDim, pool), t * perTile);
        }
      });
    }
    ctx.progress(1, `${tiles} tile(s) → ${tiles * pool * pool} tokens`);
    const features: FeaturesValue = {
      kind: "features",
      modality: "image",
      data,
      n: tiles * pool * pool,
      dim: outDim,
      encoder: params.model,
      image: { rows: pre.rows, cols: pre.cols, pool },
    };
    return { features };
  },
  summarize(outputs) {
    const f = outputs.features;
    if (!f?.image) return "no features";
    const { rows, cols, pool } = f.image;
    return `${f.n} image tokens × ${f.dim} (${rows}×${cols} tiles, ${pool}×${pool} each)`;
  },
});
