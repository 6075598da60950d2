/**
 * A generated Uni-MoE-2.0-Omni checkpoint with its MoE-TTS (`speech_generator.*`, released layout) imports with nothing
 * unclaimed, unused or missing; the speech generator lands in `<ref>/speech` and its graph (built from the imported
 * speech.safetensors with external data) matches the plain-TS reference; a missing speech tensor is named.
 */
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { importCheckpoint, inspectCheckpoint } from "@/models/import/import";
import { SafetensorsWeights, writeSafetensors } from "@/models/io/safetensors";
import { speechDims } from "@/models/tts/tts-released";
import { listSpeechModels, resolveSpeechRef, speechRunner } from "@/models/tts/tts-released-model";
import { conditioningRows, speechCapacity, teacherForced } from "@/models/tts/tts-released-run";
import { referenceSpeechForward, seedSpeechWeights, speechCodes } from "./released-reference";
import { writeOmniSpeechCheckpoint } from "./omni-speech";

const tmp = mkdtempSync(path.join(os.tmpdir(), "tts-import-"));
const saved = process.env.STUDIO_MODELS_DIR;
const src = path.join(tmp, "Uni-MoE-2.0-Omni");
let speech: Awaited<ReturnType<typeof writeOmniSpeechCheckpoint>>["speech"];

beforeAll(async () => {
  process.env.STUDIO_MODELS_DIR = path.join(tmp, "models");
  ({ speech } = await writeOmniSpeechCheckpoint(src));
}, 60_000);
afterAll(() => {
  if (saved === undefined) delete process.env.STUDIO_MODELS_DIR;
  else process.env.STUDIO_MODELS_DIR = saved;
  rmSync(tmp, { recursive: true, force: true });
});

describe("Omni checkpoint with speech_generator.*", () => {
  it("inspect: every speech_generator tensor is claimed (speech/…), none unused or missing", () => {
    const map = inspectCheckpoint(src);
    expect(map.unclaimed.map((t) => t.name)).toEqual([]);
    expect(map.unused.map((t) => t.name)).toEqual([]);
    expect(map.missing).toEqual([]);
    expect(map.speech?.transformer_num_blocks).toBe(speech.transformer_num_blocks);
    const claimed = map.tensors.filter((t) => t.name.startsWith("speech_generator."));
    expect(claimed.length).toBe(22 * speech.transformer_num_blocks + 7);
    expect(claimed.every((t) => t.canonical === `speech/${t.name.slice("speech_generator.".length)}`)).toBe(true);
  });

  it("import writes <ref>/speech; its graph matches the plain-TS reference (teacher-forced, release mode)", async () => {
    const r = await importCheckpoint(src, { name: "omni" });
    expect(r.manifest.speech?.ref).toBe("grin_qwen2_vl/omni/speech");
    expect(listSpeechModels()).toContain("grin_qwen2_vl/omni/speech");
    const model = resolveSpeechRef("grin_qwen2_vl/omni/speech")!;
    expect(model.config).toMatchObject({ idim: speech.idim, odim: speech.odim, source_layout: "omni" });
    const runner = await speechRunner(model, { kvCache: false, dropout: false });
    const input = { text_ids: [72, 101, 108, 108, 111, 46], prompt_ids: [76, 97], prefix_codes: null, codes: [3, 60, 7, 7, 1], mode: { attention: "none" as const, steps: "single" as const, capacity: "train" as const } };
    const out = await teacherForced(runner, input);
    const W = seedSpeechWeights(speech, 19);
    const cond = conditioningRows(speech, input.text_ids, input.prompt_ids, null);
    const rows = [...cond, { kind: "audio" as const, id: speechCodes(speech).SOS }, ...input.codes.map((id) => ({ kind: "audio" as const, id }))];
    const ref = referenceSpeechForward(speech, W, rows, cond.length, { attention: "none", cap: speechCapacity(speech, rows.length, "train") });
    const { Vo } = speechDims(speech);
    let d = 0;
    out.logits.forEach((row, t) => row.forEach((v, j) => (d = Math.max(d, Math.abs(v - ref.logits[(cond.length + t) * Vo + j]!)))));
    console.log(`imported speech generator: max |Δlogits| ${d.toExponential(2)}`);
    expect(d).toBeLessThanOrEqual(1e-4);
    expect(out.layers.map((l) => l.mask.flat())).toEqual(ref.routing.map((x) => Array.from(x.mask)));
  }, 60_000);

  it("a missing speech tensor is named, and the import refuses", async () => {
    const broken = path.join(tmp, "broken");
    await writeOmniSpeechCheckpoint(broken);
    const w = new SafetensorsWeights(broken);
    const names = w.names().filter((n) => n !== "speech_generator.layers.1.mlp.deepspeed_moe.experts.deepspeed_experts.2.up_proj.weight");
    const entries = names.map((n) => ({ name: n, shape: w.info(n).shape, data: w.get(n).data }));
    w.close();
    await writeSafetensors(path.join(broken, "model.safetensors"), entries);
    const map = inspectCheckpoint(broken);
    expect(map.missing.map((m) => m.expected)).toEqual(["speech_generator.layers.1.mlp.deepspeed_moe.experts.deepspeed_experts.2.up_proj.weight"]);
    await expect(importCheckpoint(broken, { name: "broken" })).rejects.toThrow(/deepspeed_experts\.2\.up_proj/);
  });

  it("a config without the speech generator's fields is refused naming them", () => {
    const cfg = JSON.parse(readFileSync(path.join(src, "config.json"), "utf8")) as Record<string, unknown>;
    const dir = path.join(tmp, "nofields");
    rmSync(dir, { recursive: true, force: true });
    cpSync(src, dir, { recursive: true });
    delete cfg.transformer_kv_heads;
    writeFileSync(path.join(dir, "config.json"), JSON.stringify(cfg));
    expect(() => inspectCheckpoint(dir)).toThrow(/transformer_kv_heads/);
  });
});

describe("standalone Uni-MoE-TTS layout (speech_gen_ep2.bin)", () => {
  it("imports from a torch.save state_dict with speech_generator.* keys (sizes from the tensors, head size 64) and matches the reference", async () => {
    const { writeTorchCheckpoint } = await import("./torch-ckpt-writer");
    const { importStandaloneSpeech, openSpeechDir } = await import("@/models/tts/tts-released-model");
    const { smallSpeechConfig } = await import("./released-reference");
    const cfg = smallSpeechConfig({ source_layout: "standalone", transformer_attention_dim: 128, encoder_output_dim: 128, transformer_attention_heads: 2, transformer_kv_heads: 1, speech_start_token_id: 151668, speech_end_token_id: 151669, speech_prompt_token_id: 151670, speech_split_token_id: 151671, llm_vocab_size: 151936 });
    const W = seedSpeechWeights(cfg, 23);
    const dir = path.join(tmp, "Uni-MoE-TTS");
    mkdirSync(dir, { recursive: true });
    writeTorchCheckpoint(path.join(dir, "speech_gen_ep2.bin"), { dict: [...W].map(([n, t]) => [`speech_generator.${n}`, { tensor: t }]) as never, ordered: true }, "speech_gen_ep2");
    const r = await importStandaloneSpeech(dir, { name: "tts" });
    expect(r.ref).toBe("uni_moe_tts/tts");
    expect(r.config).toMatchObject({ transformer_attention_heads: 2, transformer_kv_heads: 1, transformer_num_blocks: 2, odim: 64, source_layout: "standalone" });
    expect(listSpeechModels()).toContain("uni_moe_tts/tts");
    const model = openSpeechDir(r.dir, r.ref);
    const out = await teacherForced(await speechRunner(model, { kvCache: false, dropout: false }), { text_ids: [1, 2, 3], prompt_ids: [4], prefix_codes: null, codes: [5, 6], mode: { attention: "none", steps: "single", capacity: "train" } });
    const cond = conditioningRows(r.config, [1, 2, 3], [4], null);
    const rows = [...cond, { kind: "audio" as const, id: speechCodes(r.config).SOS }, { kind: "audio" as const, id: 5 }, { kind: "audio" as const, id: 6 }];
    const ref = referenceSpeechForward(r.config, W, rows, cond.length, { attention: "none", cap: speechCapacity(r.config, rows.length, "train") });
    const { Vo } = speechDims(r.config);
    let d = 0;
    out.logits.forEach((row, t) => row.forEach((v, j) => (d = Math.max(d, Math.abs(v - ref.logits[(cond.length + t) * Vo + j]!)))));
    expect(d).toBeLessThanOrEqual(1e-4);
  }, 60_000);
});
