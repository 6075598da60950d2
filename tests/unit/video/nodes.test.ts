import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { FeaturesValue } from "@/engine/features";
import { ffmpegPath } from "@/engine/media/ffmpeg";
import type { AudioValue, VideoValue } from "@/engine/media/values";
import type { RunContext } from "@/engine/node";
import { SessionPool } from "@/engine/runtime";
import { audioEncoder } from "@/nodes/audio-encoder";
import { catalogue } from "@/nodes/index";
import { videoEncoder } from "@/nodes/video-encoder";
import { makeCtx } from "../nodes/ctx";

const modelsRoot = fs.mkdtempSync(path.join(os.tmpdir(), "video-models-"));
const work = fs.mkdtempSync(path.join(os.tmpdir(), "video-nodes-"));
const savedEnv = process.env.STUDIO_MODELS_DIR;
let pool: SessionPool;
let env: Awaited<ReturnType<typeof makeCtx>>;
let ctx: RunContext;

function ffmpeg(...args: string[]): void {
  execFileSync(ffmpegPath(), ["-hide_banner", "-loglevel", "error", "-y", ...args]);
}

async function store(file: string, ext: string): Promise<string> {
  return ctx.storage.write(fs.readFileSync(file), ext);
}

async function storeVideo(seconds: number, audio: boolean): Promise<VideoValue> {
  const out = path.join(work, `v${seconds}${audio ? "a" : ""}.mp4`);
  const args = ["-f", "lavfi", "-i", "testsrc=size=320x240:rate=10"];
  if (audio) args.push("-f", "lavfi", "-i", "sine=frequency=440:sample_rate=16000");
  args.push("-t", String(seconds), "-c:v", "mpeg4");
  if (audio) args.push("-c:a", "aac");
  ffmpeg(...args, out);
  return { kind: "video", file: await store(out, "mp4"), mime: "video/mp4", bytes: fs.statSync(out).size };
}

const defaults = <T extends { params: { parse(v: unknown): unknown } }>(def: T, over: Record<string, unknown> = {}) =>
  ({ ...(def.params.parse({}) as Record<string, unknown>), ...over }) as never;

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
  fs.rmSync(work, { recursive: true, force: true });
});

describe("encode.video", () => {
  it("is in the catalogue", () => {
    expect(catalogue.get("encode.video")).toBeDefined();
  });

  it("5-s clip with audio → 8 frames × pool² rows of dim 128, plus audio FEATURES", async () => {
    const video = await storeVideo(5, true);
    const out = await videoEncoder.execute({ inputs: { video }, params: defaults(videoEncoder), ctx });
    const f = out.features as FeaturesValue;
    const p = f.video!.pool;
    expect(f).toMatchObject({ kind: "features", modality: "video", dim: 128, encoder: "uni-moe-tiny/vision", video: { frames: 8 } });
    expect(f.n).toBe(8 * p * p);
    expect(f.data).toHaveLength(f.n * 128);
    expect(f.video!.secondsPerFrame).toBeCloseTo(0.625, 1);
    expect(Array.from(f.data).every(Number.isFinite)).toBe(true);
    const a = out.audio as FeaturesValue;
    expect(a).toMatchObject({ kind: "features", modality: "audio", n: 200, encoder: "uni-moe-tiny/audio", audio: { chunks: 1 } });
    expect(a.audio!.durationSec).toBeGreaterThan(4.8);
    expect(videoEncoder.summarize!(out)).toMatch(/8 frames.*200 audio tokens/);
  });

  it("20-s clip, max 16 frames, pool 2, no audio track → 16 × 4 rows and audio null", async () => {
    const video = await storeVideo(20, false);
    const out = await videoEncoder.execute({ inputs: { video }, params: defaults(videoEncoder, { maxFrames: 16, pool: 2 }), ctx });
    const f = out.features as FeaturesValue;
    expect(f.video).toEqual({ frames: 16, secondsPerFrame: 1.25, pool: 2 });
    expect(f.n).toBe(16 * 4);
    expect(out.audio).toBeNull();
    expect(videoEncoder.summarize!(out)).toMatch(/audio: null/);
  });

  it("zero-length and garbage video → clear errors", async () => {
    const empty: VideoValue = { kind: "video", file: await ctx.storage.write(new Uint8Array(0), "mp4"), mime: "video/mp4", bytes: 0 };
    await expect(videoEncoder.execute({ inputs: { video: empty }, params: defaults(videoEncoder), ctx })).rejects.toThrow(/the video could not be decoded: the file is empty/);
    const junk = Buffer.from(Array.from({ length: 2048 }, (_, i) => (i * 31 + 7) & 255));
    const garbage: VideoValue = { kind: "video", file: await ctx.storage.write(junk, "mp4"), mime: "video/mp4", bytes: junk.length };
    await expect(videoEncoder.execute({ inputs: { video: garbage }, params: defaults(videoEncoder), ctx })).rejects.toThrow(/the video could not be decoded/);
    await expect(videoEncoder.execute({ inputs: {}, params: defaults(videoEncoder), ctx })).rejects.toThrow(/connect a video/);
  });

  it("an audio track over an hour (behind a 2-s video) is refused, decoding at most an hour of it", async () => {
    const out = path.join(work, "long-audio.mov");
    // 2 s of video, 3,700 s of silence at 8 kHz: a small file whose audio would decode to ~237 MB of float32 at 16 kHz
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=64x64:rate=5:duration=2", "-f", "lavfi", "-i", "anullsrc=r=8000:cl=mono", "-t", "3700", "-c:v", "mpeg4", "-c:a", "pcm_s16le", out);
    const video: VideoValue = { kind: "video", file: await store(out, "mov"), mime: "video/quicktime", bytes: fs.statSync(out).size };
    await expect(videoEncoder.execute({ inputs: { video }, params: defaults(videoEncoder, { maxFrames: 8 }), ctx })).rejects.toThrow("the video's audio track is longer than 3600 s");
  }, 120_000);
});

describe("encode.audio through ffmpeg", () => {
  for (const [ext, mime, codec] of [
    ["mp3", "audio/mpeg", "libmp3lame"],
    ["ogg", "audio/ogg", "libvorbis"],
    ["flac", "audio/flac", "flac"],
    ["m4a", "audio/mp4", "aac"],
  ] as const) {
    it(`${ext.toUpperCase()} decodes → 200 tokens`, async () => {
      const file = path.join(work, `tone.${ext}`);
      ffmpeg("-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100", "-t", "3", "-c:a", codec, file);
      const audio: AudioValue = { kind: "audio", file: await store(file, ext), mime };
      const f = (await audioEncoder.execute({ inputs: { audio }, params: defaults(audioEncoder), ctx })).features as FeaturesValue;
      expect(f).toMatchObject({ modality: "audio", n: 200, audio: { chunks: 1 } });
      expect(f.audio!.durationSec).toBeGreaterThan(2.9);
      expect(f.audio!.durationSec).toBeLessThan(3.2);
    });
  }

  it("µ-law WAV (not read in-process) goes through ffmpeg", async () => {
    const file = path.join(work, "mulaw.wav");
    ffmpeg("-f", "lavfi", "-i", "sine=frequency=440:sample_rate=8000", "-t", "2", "-c:a", "pcm_mulaw", file);
    const audio: AudioValue = { kind: "audio", file: await store(file, "wav"), mime: "audio/wav" };
    const f = (await audioEncoder.execute({ inputs: { audio }, params: defaults(audioEncoder), ctx })).features as FeaturesValue;
    expect(f.audio!.durationSec).toBeCloseTo(2, 1);
  });

  it("garbage MP3 and over-long clips → clear errors", async () => {
    const junk = Buffer.from(Array.from({ length: 2048 }, (_, i) => (i * 31 + 7) & 255));
    const audio: AudioValue = { kind: "audio", file: await ctx.storage.write(junk, "mp3"), mime: "audio/mpeg" };
    await expect(audioEncoder.execute({ inputs: { audio }, params: defaults(audioEncoder), ctx })).rejects.toThrow(/could not be decoded/);
    const file = path.join(work, "long.ogg");
    ffmpeg("-f", "lavfi", "-i", "sine=frequency=440:sample_rate=16000", "-t", "5", "-c:a", "libvorbis", file);
    const long: AudioValue = { kind: "audio", file: await store(file, "ogg"), mime: "audio/ogg" };
    await expect(audioEncoder.execute({ inputs: { audio: long }, params: defaults(audioEncoder, { maxDurationSec: 2 }), ctx })).rejects.toThrow(/longer than 2 s/);
  });
});
