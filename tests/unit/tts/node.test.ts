import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseWav, decodeWavMono } from "@/engine/media/wav";
import type { RunContext } from "@/engine/node";
import { traceProblems } from "@/engine/routing/export";
import { SessionPool } from "@/engine/runtime";
import { DiskStorage } from "@/engine/storage";
import { isRoutingTrace, type RoutingTrace } from "@/engine/trace";
import { ensureTtsReferenceModel, ttsReferenceDir } from "@/models/tts/tts-tiny";
import { describeValue } from "@/nodes/preview";
import { catalogue } from "@/nodes/index";
import { routingInspector, type RoutingReport } from "@/nodes/routing-inspector";
import { tts, type SpeechValue } from "@/nodes/tts";

const LLM_OUTPUT = { kind: "llm-output", model: "uni-moe-tiny/tiny", text: "", promptIds: [], ids: [], stopReason: "eos", specialHidden: [], prefillMs: 0, decodeMs: 0 };

const root = fs.mkdtempSync(path.join(os.tmpdir(), "tts-node-"));
const prevModels = process.env.STUDIO_MODELS_DIR;
let pool: SessionPool;

beforeAll(() => {
  process.env.STUDIO_MODELS_DIR = path.join(root, "models");
  pool = new SessionPool({ intraOpNumThreads: 1, executionProvider: "cpu" });
});
afterAll(() => {
  if (prevModels === undefined) delete process.env.STUDIO_MODELS_DIR;
  else process.env.STUDIO_MODELS_DIR = prevModels;
  fs.rmSync(root, { recursive: true, force: true });
});

function makeCtx(signal = new AbortController().signal) {
  const storage = new DiskStorage(path.join(root, "files"));
  const progress: { f: number; m?: string }[] = [];
  const logs: string[] = [];
  const ctx: RunContext = { runId: "r", nodeId: "tts", signal, storage, runtime: pool, progress: (f, m) => progress.push({ f, m }), log: (m) => logs.push(m) };
  return { ctx, storage, progress, logs };
}

describe("generate.tts node", () => {
  it("is in the catalogue with its sockets", () => {
    expect(catalogue.get("generate.tts")).toBe(tts);
    expect(tts.inputs.llm).toMatchObject({ type: "LLM_OUTPUT", optional: true });
    expect(tts.inputs.text).toMatchObject({ type: "TEXT", optional: true });
    expect(tts.outputs).toEqual({ speech: { type: "SPEECH" }, trace: { type: "ROUTING_TRACE" } });
    expect(tts.params.parse({})).toMatchObject({ model: "uni-moe-tiny/tts", maxSeconds: 4, temperature: 0 });
  });

  it("speaks an LLM span into a playable WAV of the expected duration, with a routing trace", async () => {
    const { ctx, storage, progress, logs } = makeCtx();
    // a whole LLM output (the node refuses what is not one: engine/values/llm-output.ts)
    const llm = { ...LLM_OUTPUT, text: "Sure!<|speech_start|>Language: English; Speaker: A;<|speech_prompt|>Hello there. Bye!<|speech_end|><|im_end|>" };
    const params = tts.params.parse({ maxSeconds: 1 });
    const out = await tts.execute({ inputs: { llm }, params, ctx });
    const speech = out.speech as SpeechValue;
    const trace = out.trace as RoutingTrace;

    const codes = speech.chunks.reduce((a, c) => a + c.codes, 0);
    expect(speech.chunks.map((c) => [c.style, c.text])).toEqual([
      ["Language: English; Speaker: A;", "Hello there."],
      ["Language: English; Speaker: A;", "Bye!"],
    ]);
    expect(codes).toBeGreaterThan(0);
    expect(codes).toBeLessThanOrEqual(40);
    expect(speech).toMatchObject({ kind: "audio", mime: "audio/wav", sampleRate: 24000, channels: 1 });
    expect(speech.durationSec).toBeCloseTo(codes / 40, 10);
    if (speech.chunks.every((c) => c.stopReason === "max-tokens")) expect(speech.durationSec).toBeCloseTo(1, 10);

    const bytes = await storage.read(speech.file);
    expect(speech.file).toMatch(/^[0-9a-f]{64}\.wav$/);
    const info = parseWav(bytes);
    expect(info).toMatchObject({ sampleRate: 24000, channels: 1, bitsPerSample: 16, format: "pcm", frames: codes * 600 });
    expect(info.durationSec).toBeCloseTo(speech.durationSec, 10);
    const { samples } = decodeWavMono(bytes);
    expect(samples.some((x) => Math.abs(x) > 0.01)).toBe(true);

    expect(isRoutingTrace(trace)).toBe(true);
    expect(trace.model).toBe("uni-moe-tiny/tts");
    expect(trace.tokens.filter((t) => t.phase === "decode")).toHaveLength(codes);
    expect(traceProblems(trace)).toEqual([]);
    // the Routing Inspector reads it like an LLM trace: 4 routed experts, k = 2 everywhere
    const report = (await routingInspector.execute({ inputs: { trace }, params: {}, ctx })).report as RoutingReport;
    expect(report.experts).toEqual(["E1", "E2", "E3", "E4"].map((name) => ({ name, role: "routed" })));
    expect(report.perLayer.map((l) => l.meanK)).toEqual([2, 2, 2, 2]);

    expect(progress.at(-1)!.f).toBe(1);
    expect(progress.filter((p) => p.m?.startsWith("codec token"))).toHaveLength(codes);
    expect(logs).toEqual([]);
    expect(describeValue(speech)).toMatchObject({ type: "audio", file: speech.file, mime: "audio/wav", sampleRate: 24000, channels: 1, durationSec: speech.durationSec });
    expect(tts.summarize!(out)).toMatch(/s of speech in 2 chunk/);

    // the reference model was built once, atomically, with a manifest; the fingerprint is its content hash
    const dir = ttsReferenceDir();
    expect(fs.readdirSync(dir).sort()).toEqual(["codec.safetensors", "config.json", "manifest.json", "model.safetensors"]);
    expect(JSON.parse(fs.readFileSync(path.join(dir, "manifest.json"), "utf8")).label).toBe("seeded, untrained");
    expect((await ensureTtsReferenceModel()).built).toBe(false);
    expect(await tts.fingerprint!(params, storage)).toMatch(/^[0-9a-f]{64}$/);
  });

  it("speaks TEXT deterministically (greedy), and sampling depends on the seed", async () => {
    const { ctx } = makeCtx();
    const run = async (p: object) => (await tts.execute({ inputs: { text: "One. Two." }, params: tts.params.parse({ maxSeconds: 0.5, ...p }), ctx })).speech as SpeechValue;
    const a = await run({});
    const b = await run({});
    expect(a.file).toBe(b.file);
    const s1 = await run({ temperature: 1, seed: 1 });
    const s1b = await run({ temperature: 1, seed: 1 });
    const s2 = await run({ temperature: 1, seed: 2 });
    expect(s1.file).toBe(s1b.file);
    expect(s1.file).not.toBe(s2.file);
    expect(a.chunks[0]!.style).toBe("Language: English; Speaker: default;");
  });

  it("explains an LLM output without a speech span, and stops when cancelled", async () => {
    const { ctx } = makeCtx();
    await expect(tts.execute({ inputs: { llm: { ...LLM_OUTPUT, text: "no span" } }, params: tts.params.parse({}), ctx })).rejects.toThrow(
      "the LLM output has no <|speech_start|> … <|speech_end|> span; connect TEXT instead, or prompt the model to speak",
    );
    const ac = new AbortController();
    const c2 = makeCtx(ac.signal);
    c2.ctx.progress = (_f, m) => {
      if (m?.startsWith("codec token 3 ")) ac.abort(new Error("run cancelled"));
    };
    await expect(tts.execute({ inputs: { text: "Long enough text." }, params: tts.params.parse({}), ctx: c2.ctx })).rejects.toThrow("run cancelled");
  });
});
