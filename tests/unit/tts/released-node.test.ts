/**
 * The MoE-TTS node on an imported Omni speech generator (grin_qwen2_vl/omni/speech) and an imported WavTokenizer:
 * the LLM output's speech span is chunked at punctuation, decoded in release mode (capacity drops in the trace) and
 * in cached mode, and decoded to a WAV of codes × hop samples; the codec comes from the Models page's choice.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SessionPool } from "@/engine/runtime";
import { decodeWavMono } from "@/engine/media/wav";
import { importWavTokenizer } from "@/models/tts/codec-wavtokenizer-model";
import { writeDefaults } from "@/models/defaults";
import { importCheckpoint } from "@/models/import/import";
import { byteTokenizer } from "@/models/text/tokenizer";
import { TTS_CODEC_DEFAULT_KEY, tts, type SpeechValue } from "@/nodes/tts";
import type { RoutingTrace } from "@/engine/trace";
import { makeCtx } from "../nodes/ctx";
import { writeOmniSpeechCheckpoint } from "./omni-speech";
import { lightningCheckpoint, writeTorchCheckpoint } from "./torch-ckpt-writer";
import { seedWavWeights, smallWavConfig } from "./wavtokenizer-reference";

const tmp = mkdtempSync(path.join(os.tmpdir(), "tts-node-rel-"));
const saved = process.env.STUDIO_MODELS_DIR;
const pool = new SessionPool();

beforeAll(async () => {
  process.env.STUDIO_MODELS_DIR = path.join(tmp, "models");
  await writeOmniSpeechCheckpoint(path.join(tmp, "omni"));
  await importCheckpoint(path.join(tmp, "omni"), { name: "omni" });
  const codecDir = path.join(tmp, "speech_gen");
  mkdirSync(codecDir);
  const c = smallWavConfig({ codebook_size: 64, n_fft: 400, hop_length: 100, sample_rate: 4000 }); // 40 codes/s
  writeTorchCheckpoint(path.join(codecDir, "wavtokenizer_large_unify_600_24k.ckpt"), lightningCheckpoint(seedWavWeights(c, 3)));
  writeFileSync(path.join(codecDir, "wavtokenizer.yaml"), "model:\n  init_args:\n    sample_rate: 4000\n    head:\n      init_args: { n_fft: 400, hop_length: 100, padding: same }\n");
  await importWavTokenizer(codecDir, { name: "wt" });
}, 120_000);
afterAll(async () => {
  await pool.close();
  if (saved === undefined) delete process.env.STUDIO_MODELS_DIR;
  else process.env.STUDIO_MODELS_DIR = saved;
  rmSync(tmp, { recursive: true, force: true });
});

const tok = byteTokenizer;
const span = `<|speech_start|>Language: English; Speaker: Jenny;<|speech_prompt|>Hello there, this is a first sentence. And 3.5 is a number!<|speech_end|><|im_end|>`;
const llm = { kind: "llm-output", model: "grin_qwen2_vl/omni", text: span, promptIds: [], ids: tok.encode(span), stopReason: "stop-token", specialHidden: [], prefillMs: 0, decodeMs: 0 };

describe("MoE-TTS node on a released speech generator", () => {
  for (const mode of ["release", "cached"] as const) {
    it(`${mode} mode: chunks at punctuation, a WAV of codes × hop samples, a trace with k = 2 and the capacity drops`, async () => {
      writeDefaults({ [TTS_CODEC_DEFAULT_KEY]: "wavtokenizer/wt" });
      const { ctx, logs, dispose } = await makeCtx();
      ctx.runtime = pool;
      try {
        const params = tts.params.parse({ model: "grin_qwen2_vl/omni/speech", mode, maxSeconds: 1.5 });
        const out = (await tts.execute({ inputs: { llm }, params, ctx })) as { speech: SpeechValue; trace: RoutingTrace };
        const s = out.speech;
        expect(s.mode).toBe(mode);
        expect(s.codec).toBe("wavtokenizer/wt");
        expect(s.chunks.length).toBeGreaterThanOrEqual(2);
        expect(s.chunks[0]!.style).toBe("Language: English; Speaker: Jenny;");
        expect(s.chunks.every((c) => c.text.endsWith(".") || c.text.endsWith("!") || c.text.endsWith(","))).toBe(true);
        const codes = s.chunks.reduce((a, c) => a + c.codes, 0);
        expect(codes).toBeGreaterThan(0);
        expect(codes).toBeLessThanOrEqual(60);
        const wav = decodeWavMono(await ctx.storage.read(s.file));
        expect(wav.info.sampleRate).toBe(4000);
        expect(wav.samples.length).toBe(codes * 100);
        const t = out.trace;
        expect(t.experts.map((e) => e.name)).toEqual(["E1", "E2", "E3", "E4"]);
        const N = t.tokens.length;
        for (const l of t.layers) {
          expect(l.mask.length).toBe(N * 4);
          expect(l.dropped!.length).toBe(N * 4);
          expect([...l.k].every((k) => k === 2)).toBe(true);
          for (let i = 0; i < N; i++) expect(l.mask[i * 4]! + l.mask[i * 4 + 1]! + l.mask[i * 4 + 2]! + l.mask[i * 4 + 3]! + l.dropped![i * 4]! + l.dropped![i * 4 + 1]! + l.dropped![i * 4 + 2]! + l.dropped![i * 4 + 3]!).toBe(2);
        }
        if (mode === "release") expect(s.drops).toBeGreaterThan(0);
        else {
          expect(s.drops).toBe(0);
          expect(logs.join("\n")).toContain("differs from the released inference");
        }
        expect(tts.summarize!(out)).toContain(`${mode} mode`);
      } finally {
        await dispose();
      }
    }, 120_000);
  }

  it("without a codec chosen anywhere the node says what to do", async () => {
    writeDefaults({});
    const { ctx, dispose } = await makeCtx();
    ctx.runtime = pool;
    try {
      await expect(tts.execute({ inputs: { llm }, params: tts.params.parse({ model: "grin_qwen2_vl/omni/speech" }), ctx })).rejects.toThrow(/needs a codec: import a WavTokenizer/);
    } finally {
      await dispose();
    }
  });
});
