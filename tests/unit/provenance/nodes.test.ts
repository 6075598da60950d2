/** The DiT and TTS nodes embed ctx.workflow in the PNG / WAV they write (and write plain files without it). */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { decodeWavMono, parseWav } from "@/engine/media/wav";
import type { RunContext } from "@/engine/node";
import { readWorkflowFromMedia, readWorkflowFromPng, readWorkflowFromWav } from "@/engine/provenance";
import { SessionPool } from "@/engine/runtime";
import { DiskStorage } from "@/engine/storage";
import type { Workflow } from "@/engine/workflow/schema";
import { generateImage } from "@/nodes/dit";
import type { LlmOutputValue } from "@/nodes/moe-llm";
import { tts, type SpeechValue } from "@/nodes/tts";
import { trickyWorkflow } from "./fixtures";

let root: string;
let storage: DiskStorage;
let pool: SessionPool;
const prevModels = process.env.STUDIO_MODELS_DIR;

beforeAll(async () => {
  root = await mkdtemp(path.join(tmpdir(), "moe-provenance-"));
  process.env.STUDIO_MODELS_DIR = path.join(root, "models");
  storage = new DiskStorage(path.join(root, "blobs"));
  pool = new SessionPool({ executionProvider: "cpu", intraOpNumThreads: 2 });
});
afterAll(async () => {
  await pool?.close();
  if (prevModels === undefined) delete process.env.STUDIO_MODELS_DIR;
  else process.env.STUDIO_MODELS_DIR = prevModels;
  if (root) await rm(root, { recursive: true, force: true });
});

function ctx(nodeId: string, workflow?: Workflow): RunContext {
  return { runId: "r", nodeId, signal: new AbortController().signal, progress: () => {}, log: () => {}, storage, runtime: pool, ...(workflow ? { workflow } : {}) };
}

const llm: LlmOutputValue = { kind: "llm-output", model: "uni-moe-tiny/tiny", text: "draw a cat", promptIds: [1], ids: [2, 3], stopReason: "eos", specialHidden: [], prefillMs: 1, decodeMs: 1 };

describe("nodes embed the workflow that made their output", () => {
  it("generate.image: the PNG carries ctx.workflow, decodes to the same pixels, and differs per workflow", async () => {
    const params = generateImage.params.parse({ steps: 2 });
    const doc = trickyWorkflow("DiT run");
    const withDoc = (await generateImage.execute({ inputs: { llm }, params, ctx: ctx("dit", doc) })).image as { file: string; width: number; height: number };
    const plain = (await generateImage.execute({ inputs: { llm }, params, ctx: ctx("dit") })).image as { file: string };
    const other = (await generateImage.execute({ inputs: { llm }, params, ctx: ctx("dit", trickyWorkflow("another")) })).image as { file: string };

    const bytes = await storage.read(withDoc.file);
    expect(readWorkflowFromPng(bytes)).toEqual(doc);
    expect(readWorkflowFromMedia(bytes)).toEqual(doc);
    expect(readWorkflowFromPng(await storage.read(plain.file))).toBeNull();
    expect(new Set([withDoc.file, plain.file, other.file]).size).toBe(3); // content ids differ per workflow

    const meta = await sharp(bytes, { failOn: "error" }).metadata();
    expect([meta.format, meta.width, meta.height]).toEqual(["png", withDoc.width, withDoc.height]);
    const a = await sharp(bytes).raw().toBuffer();
    const b = await sharp(await storage.read(plain.file)).raw().toBuffer();
    expect(Buffer.compare(a, b)).toBe(0);
  });

  it("generate.tts: the WAV carries ctx.workflow and decodes to the same samples", async () => {
    const params = tts.params.parse({ maxSeconds: 0.3 });
    const doc = trickyWorkflow("TTS run");
    const withDoc = (await tts.execute({ inputs: { text: "Hello." }, params, ctx: ctx("tts", doc) })).speech as SpeechValue;
    const plain = (await tts.execute({ inputs: { text: "Hello." }, params, ctx: ctx("tts") })).speech as SpeechValue;

    const bytes = await storage.read(withDoc.file);
    expect(readWorkflowFromWav(bytes)).toEqual(doc);
    expect(readWorkflowFromMedia(bytes)).toEqual(doc);
    const plainBytes = await storage.read(plain.file);
    expect(readWorkflowFromWav(plainBytes)).toBeNull();
    expect(withDoc.file).not.toBe(plain.file);

    expect({ ...parseWav(bytes), dataOffset: 0 }).toEqual({ ...parseWav(plainBytes), dataOffset: 0 }); // the metadata sits before the samples
    expect(decodeWavMono(bytes).samples).toEqual(decodeWavMono(plainBytes).samples);
    expect(parseWav(bytes).durationSec).toBeCloseTo(withDoc.durationSec, 10);
  });
});
