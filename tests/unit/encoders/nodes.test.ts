import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { FeaturesValue } from "@/engine/features";
import type { AudioValue, ImageValue } from "@/engine/media/values";
import type { RunContext } from "@/engine/node";
import { SessionPool } from "@/engine/runtime";
import { encoderReferenceDir, resolveEncoder, seedEncoderWeights, tinyVisionConfig } from "@/models/encoders/encoders-tiny";
import { preprocessImage } from "@/models/encoders/image-preprocess";
import { layersUsed } from "@/models/encoders/vision-encoder";
import { audioEncoder } from "@/nodes/audio-encoder";
import { visionEncoder } from "@/nodes/vision-encoder";
import { makeCtx } from "../nodes/ctx";
import { refAdaptivePool, refVisionTile } from "./reference";

const modelsRoot = fs.mkdtempSync(path.join(os.tmpdir(), "encoders-models-"));
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

async function storeImage(width: number, height: number, fill: (x: number, y: number) => [number, number, number]): Promise<ImageValue> {
  const raw = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) raw.set(fill(x, y), (y * width + x) * 3);
  const bytes = await sharp(raw, { raw: { width, height, channels: 3 } }).png().toBuffer();
  return { kind: "image", file: await ctx.storage.write(bytes, "png"), mime: "image/png", width, height };
}

/** A PCM-16 WAV; `lie` overrides the data chunk's size field. */
function wav(samples: Float32Array, rate: number, channels = 1, lie?: number): Uint8Array {
  const dataBytes = samples.length * 2;
  const b = Buffer.alloc(44 + dataBytes);
  b.write("RIFF", 0);
  b.writeUInt32LE(36 + dataBytes, 4);
  b.write("WAVEfmt ", 8);
  b.writeUInt32LE(16, 16);
  b.writeUInt16LE(1, 20);
  b.writeUInt16LE(channels, 22);
  b.writeUInt32LE(rate, 24);
  b.writeUInt32LE(rate * channels * 2, 28);
  b.writeUInt16LE(channels * 2, 32);
  b.writeUInt16LE(16, 34);
  b.write("data", 36);
  b.writeUInt32LE(lie ?? dataBytes, 40);
  for (let i = 0; i < samples.length; i++) b.writeInt16LE(Math.max(-32768, Math.min(32767, Math.round(samples[i]! * 32767))), 44 + 2 * i);
  return b;
}

async function storeWav(seconds: number, rate: number, lie?: number): Promise<AudioValue> {
  const x = Float32Array.from({ length: Math.round(seconds * rate) }, (_, i) => 0.3 * Math.sin((2 * Math.PI * 440 * i) / rate) + 0.1 * Math.sin((2 * Math.PI * 3100 * i) / rate));
  return { kind: "audio", file: await ctx.storage.write(wav(x, rate, 1, lie), "wav"), mime: "audio/wav", sampleRate: rate, channels: 1, durationSec: seconds };
}

const defaults = <T extends { params: { parse(v: unknown): unknown } }>(def: T, over: Record<string, unknown> = {}) =>
  ({ ...(def.params.parse({}) as Record<string, unknown>), ...over }) as never;

describe("encode.vision", () => {
  it("1×2 tiles × 4² tokens at hidden 128; builds uni-moe-tiny/vision on first use; first tile matches the reference", async () => {
    const image = await storeImage(768, 384, (x) => (x < 384 ? [230, 40, 20] : [(x * 3) & 255, 90, 200]));
    const messages: string[] = [];
    const out = await visionEncoder.execute({ inputs: { image }, params: defaults(visionEncoder), ctx: { ...ctx, progress: (_f, m) => m && messages.push(m) } });
    const f = out.features as FeaturesValue;
    expect(f).toMatchObject({ kind: "features", modality: "image", n: 2 * 16, dim: 128, encoder: "uni-moe-tiny/vision", image: { rows: 1, cols: 2, pool: 4 } });
    expect(f.data).toHaveLength(32 * 128);
    expect(messages.some((m) => m.includes("tile 2/2"))).toBe(true);
    const dir = encoderReferenceDir("vision", modelsRoot);
    for (const file of ["config.json", "model.safetensors", "manifest.json"]) expect(fs.existsSync(path.join(dir, file))).toBe(true);
    expect(fs.readdirSync(path.join(modelsRoot, ".graphs")).filter((n) => n.endsWith(".onnx"))).toHaveLength(1);

    // Whole pipeline vs the plain-TS reference with freshly seeded weights (= what was written to disk).
    const pre = await preprocessImage(await ctx.storage.read(image.file));
    const ref = refAdaptivePool(refVisionTile({ ...tinyVisionConfig, layers_run: layersUsed(tinyVisionConfig) }, seedEncoderWeights("vision", tinyVisionConfig), pre.tiles[0]!), 27, 128, 4);
    let diff = 0;
    for (let i = 0; i < ref.length; i++) diff = Math.max(diff, Math.abs(ref[i]! - f.data[i]!));
    console.log(`encode.vision tile 0 vs reference: max diff ${diff.toExponential(2)}`);
    expect(diff).toBeLessThan(1e-4);
    expect(visionEncoder.summarize!(out)).toBe("32 image tokens × 128 (1×2 tiles, 4×4 each)");
  });

  it("pool override and grid list change the token count (s² per tile × tiles)", async () => {
    const image = await storeImage(900, 900, (x, y) => [x & 255, y & 255, 128]);
    const f = (await visionEncoder.execute({ inputs: { image }, params: defaults(visionEncoder, { pool: 2 }), ctx })).features as FeaturesValue;
    expect(f.image).toEqual({ rows: 2, cols: 2, pool: 2 });
    expect(f.n).toBe(4 * 4);
    const g = (await visionEncoder.execute({ inputs: { image }, params: defaults(visionEncoder, { grids: "1x1", pool: 3 }), ctx })).features as FeaturesValue;
    expect([g.image, g.n]).toEqual([{ rows: 1, cols: 1, pool: 3 }, 9]);
  });

  it("fingerprint is the model's content hash", async () => {
    const fp = await visionEncoder.fingerprint!(defaults(visionEncoder), ctx.storage);
    expect(fp).toMatch(/^[0-9a-f]{64}$/);
    expect(fp).toBe((await resolveEncoder("vision", "uni-moe-tiny/vision")).contentHash);
    expect(await audioEncoder.fingerprint!(defaults(audioEncoder), ctx.storage)).not.toBe(fp);
  });

  it("clear errors: truncated PNG, bad grids, no image, wrong kind of model, cancellation", async () => {
    const good = await storeImage(300, 200, (x, y) => [(x * 7) & 255, (y * 13) & 255, (x ^ y) & 255]);
    const bytes = await ctx.storage.read(good.file);
    const cut: ImageValue = { ...good, file: await ctx.storage.write(bytes.subarray(0, Math.floor(bytes.length * 0.6)), "png") };
    await expect(visionEncoder.execute({ inputs: { image: cut }, params: defaults(visionEncoder), ctx })).rejects.toThrow(/the input image is not a readable PNG image/);
    // a JPEG cut in its pixel data: the header check passes, the one full decode (the preprocessing) names the failure
    const jpeg = await sharp(Buffer.from(bytes)).jpeg().toBuffer();
    const cutJpeg: ImageValue = { ...good, mime: "image/jpeg", file: await ctx.storage.write(jpeg.subarray(0, Math.floor(jpeg.length * 0.6)), "jpg") };
    await expect(visionEncoder.execute({ inputs: { image: cutJpeg }, params: defaults(visionEncoder), ctx })).rejects.toThrow(/the input image could not be decoded: .+/);
    await expect(visionEncoder.execute({ inputs: { image: good }, params: defaults(visionEncoder, { grids: "2 by 2" }), ctx })).rejects.toThrow(/rows x cols/);
    await expect(visionEncoder.execute({ inputs: {}, params: defaults(visionEncoder), ctx })).rejects.toThrow(/connect an image/);
    await expect(visionEncoder.execute({ inputs: { image: good }, params: defaults(visionEncoder, { model: "uni-moe-tiny/audio" }), ctx })).rejects.toThrow(/not a vision encoder/);
    await expect(visionEncoder.execute({ inputs: { image: good }, params: defaults(visionEncoder, { model: "../etc" }), ctx })).rejects.toThrow(/outside the models directory/);
    const ac = new AbortController();
    ac.abort(new Error("cancelled by the user"));
    await expect(visionEncoder.execute({ inputs: { image: good }, params: defaults(visionEncoder), ctx: { ...ctx, signal: ac.signal } })).rejects.toThrow(/cancelled by the user/);
  });

  it("runs a plugged-in vision.onnx (a copy of the built graph) the same way", async () => {
    const built = await resolveEncoder("vision", "uni-moe-tiny/vision");
    const { encoderGraphFile } = await import("@/models/encoders/encoders-tiny");
    const dir = path.join(modelsRoot, "local", "siglip-export");
    fs.mkdirSync(dir, { recursive: true });
    fs.copyFileSync(encoderGraphFile(built), path.join(dir, "vision.onnx"));
    fs.writeFileSync(path.join(dir, "config.json"), JSON.stringify({ image_size: 384, patch_size: 14, out_dim: 128, pool: 4 }));
    const image = await storeImage(400, 380, (x, y) => [x & 255, (x + y) & 255, 30]);
    const a = (await visionEncoder.execute({ inputs: { image }, params: defaults(visionEncoder), ctx })).features as FeaturesValue;
    const b = (await visionEncoder.execute({ inputs: { image }, params: defaults(visionEncoder, { model: "local/siglip-export" }), ctx })).features as FeaturesValue;
    expect(b.encoder).toBe("local/siglip-export");
    expect(b.n).toBe(a.n);
    expect(Array.from(b.data)).toEqual(Array.from(a.data));
  });
});

describe("encode.audio", () => {
  it("65 s at 22.05 kHz → 3 chunks × 200 tokens at hidden 128", async () => {
    const audio = await storeWav(65, 22050);
    const fractions: number[] = [];
    const out = await audioEncoder.execute({ inputs: { audio }, params: defaults(audioEncoder), ctx: { ...ctx, progress: (f) => fractions.push(f) } });
    const f = out.features as FeaturesValue;
    expect(f).toMatchObject({ kind: "features", modality: "audio", n: 600, dim: 128, encoder: "uni-moe-tiny/audio", audio: { chunks: 3 } });
    expect(f.audio!.durationSec).toBeCloseTo(65, 6);
    expect(f.data).toHaveLength(600 * 128);
    expect(f.data.every(Number.isFinite)).toBe(true);
    expect(fractions.at(-1)).toBe(1);
    expect(fractions.every((v, i) => i === 0 || v >= fractions[i - 1]!)).toBe(true);
    expect(fs.existsSync(path.join(encoderReferenceDir("audio", modelsRoot), "manifest.json"))).toBe(true);
  }, 60_000);

  it("a short 16-kHz clip is one chunk of 200 tokens; same input, same features", async () => {
    const audio = await storeWav(2.5, 16000);
    const a = (await audioEncoder.execute({ inputs: { audio }, params: defaults(audioEncoder), ctx })).features as FeaturesValue;
    expect([a.n, a.audio!.chunks]).toEqual([200, 1]);
    const b = (await audioEncoder.execute({ inputs: { audio }, params: defaults(audioEncoder), ctx })).features as FeaturesValue;
    expect(Array.from(b.data)).toEqual(Array.from(a.data));
  });

  it("clear errors: too long, undecodable, lying header, cancellation", async () => {
    const long = await storeWav(65, 8000);
    await expect(audioEncoder.execute({ inputs: { audio: long }, params: defaults(audioEncoder, { maxDurationSec: 60 }), ctx })).rejects.toThrow(/65\.0 s long; the limit is 60 s/);
    // Non-WAV audio goes through ffmpeg; bytes that are no audio at all get its reason.
    const garbage = await ctx.storage.write(Buffer.from("this is not an mp3 file at all, just text ".repeat(50)), "mp3");
    const mp3: AudioValue = { kind: "audio", file: garbage, mime: "audio/mpeg" };
    await expect(audioEncoder.execute({ inputs: { audio: mp3 }, params: defaults(audioEncoder), ctx })).rejects.toThrow(/could not be decoded/);
    const liar = await storeWav(1, 16000, 10_000_000);
    await expect(audioEncoder.execute({ inputs: { audio: liar }, params: defaults(audioEncoder), ctx })).rejects.toThrow(/not a readable WAV file: the audio data is truncated/);
    await expect(audioEncoder.execute({ inputs: {}, params: defaults(audioEncoder), ctx })).rejects.toThrow(/connect an audio clip/);
    const ac = new AbortController();
    ac.abort(new Error("cancelled by the user"));
    const short = await storeWav(1, 16000);
    await expect(audioEncoder.execute({ inputs: { audio: short }, params: defaults(audioEncoder), ctx: { ...ctx, signal: ac.signal } })).rejects.toThrow(/cancelled by the user/);
  });
});
