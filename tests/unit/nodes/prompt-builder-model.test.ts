/**
 * The Prompt Builder tokenises for the model that runs the sequence. A tiny Uni-MoE-2.0-Omni (grin_qwen2_vl)
 * checkpoint with its vision + audio towers and a Qwen2-VL-style tokenizer.json (byte-level BPE, Qwen2-VL's special
 * tokens + the audio markers, Qwen2's chat template) is imported; image + audio → Vision/Audio Encoder
 * (<ref>/vision, <ref>/audio) → Prompt Builder (model = ref) → MoE-LLM (model = ref) runs through the real executor,
 * and the result is checked against the tokenizer, the RoPE rule and a direct MoeLlmRunner forward on embeddings
 * assembled here from the checkpoint's own embedding table.
 */
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { encodeWav16 } from "@/models/io/wav-write";
import os from "node:os";
import path from "node:path";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { catalogInfo } from "@/app/server/catalog";
import { Executor } from "@/engine/executor";
import type { FeaturesValue } from "@/engine/features";
import { computePositionIds, type Layout } from "@/engine/rope/positions";
import { SessionPool } from "@/engine/runtime";
import type { SequenceValue } from "@/engine/sequence";
import { DiskStorage } from "@/engine/storage";
import type { RoutingTrace } from "@/engine/trace";
import { loadWorkflow } from "@/engine/workflow/load";
import { CURRENT_SCHEMA_VERSION, type Workflow } from "@/engine/workflow/schema";
import { writeDefaults } from "@/models/defaults";
import { audioParamTable, zAudioConfig } from "@/models/encoders/audio-encoder";
import { seedEncoderWeights } from "@/models/encoders/encoders-tiny";
import { importCheckpoint } from "@/models/import/import";
import { MoeLlmRunner } from "@/models/moe-llm/moe-llm-session";
import { buildSequence } from "@/models/text/prompt";
import { BYTE_TOKENIZER_HASH } from "@/models/text/prompt-tokenizer";
import { writeSafetensors } from "@/models/io/safetensors";
import { byteTokenizer } from "@/models/text/tokenizer";
import { loadTokenizer } from "@/models/text/tokenizer-json";
import { visionParamTable, zVisionConfig } from "@/models/encoders/vision-encoder";
import type { Tensor32 } from "@/models/io/weights";
import { catalogue } from "@/nodes";
import { checkSequenceTokenizer, moeLlm, type LlmOutputValue } from "@/nodes/moe-llm";
import { promptBuilder } from "@/nodes/prompt-builder";
import { makeQwen2Mini } from "@/tests/fixtures/tokenizers/make-qwen2-mini";
import { randomConfig, randomWeights } from "../../reference/random";
import { makeCtx } from "./ctx";

const tmp = mkdtempSync(path.join(os.tmpdir(), "prompt-builder-model-"));
const saved = process.env.STUDIO_MODELS_DIR;
const REF = "grin_qwen2_vl/omni";
const pool = new SessionPool({ executionProvider: "cpu", intraOpNumThreads: 1 });

const llm = randomConfig(31, { vocab_size: 320, mlp_dynamic_null_expert_num: 1, mlp_fixed_expert_num: 2, tie_word_embeddings: false, model_type: "grin_qwen2_vl" });
const H = llm.hidden_size;
const W = randomWeights(llm, 32);
const visionConfigJson = { model_type: "siglip_vision_model", image_size: 70, patch_size: 14, hidden_size: 24, intermediate_size: 40, num_attention_heads: 3, num_hidden_layers: 2, layer_norm_eps: 1e-6, hidden_act: "gelu_pytorch_tanh" };
const audioConfigJson = { model_type: "whisper", num_mel_bins: 16, max_source_positions: 1500, max_target_positions: 200, d_model: 24, encoder_layers: 1, encoder_attention_heads: 3, encoder_ffn_dim: 40, decoder_layers: 1, decoder_attention_heads: 2, decoder_ffn_dim: 32, vocab_size: 50 };
// 200 queries per 30-s chunk: Uni-MoE-2.0's whisper_query_tokens_size, which the uni-moe RoPE rule assumes per audio chunk.
const Q = 200;

/** Qwen2-VL's added tokens in its order (151643…), then the audio markers Uni-MoE-2.0 adds; here after qwen2-mini's 267 ids. */
const QWEN2_VL_SPECIALS = [
  "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>", "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>",
  "<|vision_start|>", "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>", "<|audio_start|>", "<|audio_end|>", "<|audio_pad|>",
];
const qwen2Template = (JSON.parse(readFileSync(path.resolve(__dirname, "../../fixtures/chat-templates/templates.json"), "utf8")) as { templates: Record<string, { template: string }> }).templates.qwen2!.template;

function tokenizerFiles(specials: readonly string[]): { tokenizer: Record<string, unknown>; config: Record<string, unknown> } {
  const { tokenizer, config } = makeQwen2Mini();
  const first = (tokenizer.added_tokens as { id: number }[])[0]!.id;
  const added = specials.map((content, i) => ({ id: first + i, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true }));
  return { tokenizer: { ...tokenizer, added_tokens: added }, config: { ...config, added_tokens_decoder: {}, chat_template: qwen2Template, eos_token: "<|im_end|>", pad_token: "<|endoftext|>" } };
}
const specialId = (name: string) => 267 + QWEN2_VL_SPECIALS.indexOf(name);

function towerTensors(): Map<string, Tensor32> {
  const H2 = H;
  const vc = zVisionConfig.parse({ ...visionConfigJson, projector_hidden_size: 20, out_dim: H2 });
  const ac = zAudioConfig.parse({ ...audioConfigJson, num_queries: Q, qformer_layers: 1, qformer_attention_heads: 2, qformer_ffn_dim: 32, out_dim: H2 });
  const vision = seedEncoderWeights("vision", vc, 41);
  for (const p of visionParamTable(vc)) if (p.kind === "linear" || p.kind === "embed") vision.get(p.name)!.data.forEach((v, i, a) => (a[i] = v * 10));
  const audio = seedEncoderWeights("audio", ac, 42);
  for (const p of audioParamTable(ac)) if (p.kind === "linear" || p.kind === "embed") audio.get(p.name)!.data.forEach((v, i, a) => (a[i] = v * 10));
  const out = new Map<string, Tensor32>();
  for (const [name, t] of vision) out.set(name.startsWith("mm_projector.") ? name.replace("mm_projector.", "vision_aligner.") : `vision_tower.vision_tower.${name}`, t);
  out.set("vision_tower.vision_tower.vision_model.post_layernorm.weight", { shape: [24], data: new Float32Array(24).fill(1) });
  out.set("vision_tower.vision_tower.vision_model.post_layernorm.bias", { shape: [24], data: new Float32Array(24) });
  for (const [name, t] of audio) {
    if (name === "qformer.queries") out.set("audio_aligner.query_tokens", { shape: [1, Q, 24], data: t.data });
    else if (name.startsWith("encoder.")) out.set(`audio_tower.audio_tower.${name.slice("encoder.".length)}`, t);
    else if (name.startsWith("qformer.")) out.set(`audio_aligner.decoder.audio_decoder.${name.slice("qformer.".length)}`, t);
    else out.set(`audio_aligner.${name}`, t);
  }
  out.set("audio_aligner.decoder.audio_decoder.embed_positions.weight", { shape: [Q, 24], data: new Float32Array(Q * 24).map((_, i) => Math.sin(i) * 0.5) });
  out.set("audio_aligner.decoder.audio_decoder.embed_tokens.weight", { shape: [50, 24], data: new Float32Array(50 * 24).map((_, i) => Math.cos(i) * 0.02) });
  return out;
}

async function writeOmniCheckpoint(dir: string): Promise<void> {
  mkdirSync(dir, { recursive: true });
  const tensors = new Map<string, Tensor32>(W.names().map((n) => [n, W.get(n)]));
  for (const [k, v] of towerTensors()) tensors.set(k, v);
  await writeSafetensors(path.join(dir, "model.safetensors"), [...tensors].map(([name, t]) => ({ name, shape: t.shape, data: t.data })), { metadata: { format: "pt" } });
  const raw = { ...llm, architectures: ["GrinQwen2VLOutForConditionalGeneration"], vision_config: visionConfigJson, audio_config: audioConfigJson, whisper_query_tokens_size: Q, whisper_projector_type: "linear", whisper_hidden_size: 24 };
  writeFileSync(path.join(dir, "config.json"), JSON.stringify(raw));
  const { tokenizer, config } = tokenizerFiles(QWEN2_VL_SPECIALS);
  writeFileSync(path.join(dir, "tokenizer.json"), JSON.stringify(tokenizer));
  writeFileSync(path.join(dir, "tokenizer_config.json"), JSON.stringify(config));
}

function wavBytes(seconds: number, rate = 16000): Buffer {
  const pcm = Float32Array.from({ length: seconds * rate }, (_, i) => 0.3 * Math.sin((2 * Math.PI * 440 * i) / rate) + 0.1 * Math.sin((2 * Math.PI * 3100 * i) / rate));
  return Buffer.from(encodeWav16(pcm, { sampleRate: rate }));
}

let storage: DiskStorage;
let imageKey: string;
let audioKey: string;

beforeAll(async () => {
  process.env.STUDIO_MODELS_DIR = path.join(tmp, "models");
  await writeOmniCheckpoint(path.join(tmp, "Uni-MoE-2.0-Omni"));
  const imported = await importCheckpoint(path.join(tmp, "Uni-MoE-2.0-Omni"), { name: "omni" });
  expect(imported.ref).toBe(REF);
  storage = new DiskStorage(path.join(tmp, "files"));
  const raw = Buffer.alloc(140 * 70 * 3);
  for (let y = 0; y < 70; y++) for (let x = 0; x < 140; x++) raw.set([(x * 5) & 255, (y * 7) & 255, x < 70 ? 200 : 30], (y * 140 + x) * 3);
  imageKey = await storage.write(await sharp(raw, { raw: { width: 140, height: 70, channels: 3 } }).png().toBuffer(), "png");
  audioKey = await storage.write(wavBytes(2), "wav");
}, 120_000);
afterAll(async () => {
  await pool.close();
  if (saved === undefined) delete process.env.STUDIO_MODELS_DIR;
  else process.env.STUDIO_MODELS_DIR = saved;
  rmSync(tmp, { recursive: true, force: true });
});

const node = (id: string, type: string, params: Record<string, unknown> = {}) => ({ id, type, typeVersion: 1, params, position: { x: 0, y: 0 } });
const edge = (source: string, sourceSocket: string, target: string, targetSocket: string) => ({ id: `${source}.${sourceSocket}:${target}.${targetSocket}`, source, sourceSocket, target, targetSocket });

function omniWorkflow(promptModel: string, llmParams: Record<string, unknown> = {}): Workflow {
  return {
    schemaVersion: CURRENT_SCHEMA_VERSION,
    name: "omni on the imported model",
    nodes: [
      node("image", "input.image", { file: imageKey }),
      node("audio", "input.audio", { file: audioKey }),
      node("text", "input.text", { text: "hello world" }),
      node("vision", "encode.vision", { model: `${REF}/vision`, pool: 2 }),
      node("audioEnc", "encode.audio", { model: `${REF}/audio` }),
      node("prompt", "prompt.builder", { model: promptModel }),
      node("llm", "model.moe-llm", { model: REF, maxNewTokens: 3, ...llmParams }),
    ],
    edges: [
      edge("image", "image", "vision", "image"),
      edge("audio", "audio", "audioEnc", "audio"),
      edge("vision", "features", "prompt", "image"),
      edge("audioEnc", "features", "prompt", "audio"),
      edge("text", "text", "prompt", "text"),
      edge("prompt", "sequence", "llm", "sequence"),
    ],
    notes: [],
  } as unknown as Workflow;
}

const executor = () => new Executor({ catalogue, storage, runtime: pool, concurrency: 1, memoryProbe: false });

describe("Prompt Builder → MoE-LLM on an imported Uni-MoE-2.0-Omni checkpoint", () => {
  let run: Awaited<ReturnType<Executor["run"]>>;

  it("image + audio → encoders → Prompt Builder (model = ref) → MoE-LLM runs through the executor with the model's tokenizer ids and positions", async () => {
    run = await executor().run(omniWorkflow(REF), { runId: "omni" });
    expect(run.error).toBeUndefined();
    expect(run.status).toBe("finished");
    const seq = run.outputs.get("prompt")!.sequence as SequenceValue;
    const image = run.outputs.get("vision")!.features as FeaturesValue;
    const audio = run.outputs.get("audioEnc")!.features as FeaturesValue;
    const tok = loadTokenizer(path.join(tmp, "models", REF));
    expect(seq.tokenizer).toEqual({ model: REF, hash: expect.stringMatching(/^json:/) });

    // Expected ids, assembled here: the model's chat template (Qwen2's, with its default system turn) around the
    // placeholders, text pieces through tokenizer.encode, marker ids straight from the tokenizer.json table.
    const full = "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n<image>\n<audio>\nhello world<|im_end|>\n<|im_start|>assistant\n";
    expect(seq.text).toBe(full);
    const [p0, p1, p2] = full.split(/<image>|<audio>/) as [string, string, string];
    const [e0, e1, e2] = [tok.encode(p0), tok.encode(p1), tok.encode(p2)];
    expect(tok.encode("hello world")).toEqual([259, 264]); // qwen2-mini's merges: "hello", "Ġworld"
    const vs = specialId("<|vision_start|>"), ve = specialId("<|vision_end|>"), ip = specialId("<|image_pad|>");
    const as = specialId("<|audio_start|>"), ae = specialId("<|audio_end|>"), ap = specialId("<|audio_pad|>");
    const expectedIds = [...e0, vs, ...Array(image.n).fill(ip), ve, ...e1, as, ...Array(audio.n).fill(ap), ae, ...e2];
    expect(seq.ids).toEqual(expectedIds);
    expect(seq.ids).not.toEqual(buildSequence(byteTokenizer, { template: "<image>\n<audio>\nhello world", system: "", image, audio, mode: "uni-moe" }).ids);
    const layout: Layout = [
      { kind: "text", tokens: e0.length + 1 },
      { kind: "image", rows: image.image!.rows, cols: image.image!.cols, pool: image.image!.pool },
      { kind: "text", tokens: 1 + e1.length + 1 },
      { kind: "audio", chunks: audio.audio!.chunks },
      { kind: "text", tokens: 1 + e2.length },
    ];
    const pos = computePositionIds(layout, "uni-moe");
    expect(seq.positions).toEqual({ t: pos.t, h: pos.h, w: pos.w });

    const out = run.outputs.get("llm")!.output as LlmOutputValue;
    expect(out.promptIds).toEqual(expectedIds);
    expect(out.promptText).toBe(full);
    expect(out.promptFormat).toBe(`sequence from the Prompt Builder, tokenised for ${REF}`);
    expect(run.nodes.get("prompt")!.summary).toContain(`for ${REF}`);
  }, 180_000);

  it("the MoE-LLM's prompt pass equals a direct MoeLlmRunner forward on the same ids/embeds (router logits of every layer, first greedy token)", async () => {
    const seq = run.outputs.get("prompt")!.sequence as SequenceValue;
    const image = run.outputs.get("vision")!.features as FeaturesValue;
    const audio = run.outputs.get("audioEnc")!.features as FeaturesValue;
    // Embeddings from the source checkpoint's table, encoder rows in order at the pad positions.
    const table = W.get("model.embed_tokens.weight").data;
    const embeds = new Float32Array(seq.ids.length * H);
    const rows = [image, audio];
    let r = 0, row = 0;
    seq.ids.forEach((id, i) => {
      if (seq.modality[i] === "text") embeds.set(table.subarray(id * H, (id + 1) * H), i * H);
      else {
        if (row === rows[r]!.n) [r, row] = [r + 1, 0];
        embeds.set(rows[r]!.data.subarray(row * H, (row + 1) * H), i * H);
        row++;
      }
    });
    // the node routes an imported Uni-MoE-2.0 checkpoint in bf16, as the release (its Routing precision "model")
    expect((run.outputs.get("llm")!.trace as RoutingTrace).routingPrecision).toBe("bf16");
    const runner = await MoeLlmRunner.create(llm, W, { moe: "sparse", trace: true, kvCache: true, embeds: true, routingPrecision: "bf16" }, { intraOpNumThreads: 1 });
    try {
      const n = seq.ids.length;
      const direct = await runner.forward({ batch: 1, seq: n, embeds, positions: [...seq.positions.t, ...seq.positions.h, ...seq.positions.w] });
      const trace = run.outputs.get("llm")!.trace as RoutingTrace;
      const E = direct.trace![0]!.routerLogits.length / n;
      let diff = 0;
      trace.layers.forEach((l, i) => {
        for (let j = 0; j < n * E; j++) diff = Math.max(diff, Math.abs(l.routerLogits[j]! - direct.trace![i]!.routerLogits[j]!));
      });
      const V = llm.vocab_size;
      const last = direct.logits.subarray((n - 1) * V, n * V);
      const argmax = last.indexOf(Math.max(...last));
      console.log(`omni pipeline: ${n} prompt tokens (${image.n} image, ${audio.n} audio rows); max |router logits − direct| = ${diff.toExponential(2)}`);
      expect(diff).toBeLessThan(1e-4);
      expect((run.outputs.get("llm")!.output as LlmOutputValue).ids[0]).toBe(argmax);
    } finally {
      await runner.release();
    }
  }, 120_000);

  it("a Prompt Builder left on uni-moe-tiny/tiny feeding the imported model fails the MoE-LLM, naming both models", async () => {
    const bad = await executor().run(omniWorkflow("uni-moe-tiny/tiny"), { runId: "mismatch" });
    expect(bad.status).toBe("failed");
    const err = bad.nodes.get("llm")!.error!;
    expect(err).toContain("the sequence was tokenised for uni-moe-tiny/tiny's tokenizer but this node runs grin_qwen2_vl/omni");
    expect(err).toContain("set the Prompt Builder's model to grin_qwen2_vl/omni");
  }, 120_000);

  it("sequence records: a model sharing the tokenizer accepts; a record-less (old) sequence only suits byte-tokenizer models", () => {
    const seq = run.outputs.get("prompt")!.sequence as SequenceValue;
    const twin = path.join(tmp, "models", "twin", "same-tokenizer");
    mkdirSync(twin, { recursive: true });
    copyFileSync(path.join(tmp, "models", REF, "tokenizer.json"), path.join(twin, "tokenizer.json"));
    expect(() => checkSequenceTokenizer(seq, "twin/same-tokenizer", loadTokenizer(twin), 320)).not.toThrow();
    const old = { ...seq, tokenizer: undefined };
    expect(() => checkSequenceTokenizer(old, REF, loadTokenizer(path.join(tmp, "models", REF)), 320)).toThrow(/records no tokenizer.*set the Prompt Builder's model to grin_qwen2_vl\/omni/);
    const byteSeq = { ...buildSequence(byteTokenizer, { template: "hi", system: "", mode: "uni-moe" }), tokenizer: undefined };
    expect(() => checkSequenceTokenizer(byteSeq, "uni-moe-tiny/tiny", byteTokenizer, 320)).not.toThrow();
    expect(() => checkSequenceTokenizer({ ...seq, ids: [...seq.ids, 400] }, REF, loadTokenizer(path.join(tmp, "models", REF)), 320)).toThrow(/id 400, outside grin_qwen2_vl\/omni's vocabulary of 320/);
  });

  it("a tokenizer without the audio markers fails the Prompt Builder naming the marker and the model", async () => {
    const dir = path.join(tmp, "models", "plain", "no-audio");
    mkdirSync(dir, { recursive: true });
    writeFileSync(path.join(dir, "config.json"), JSON.stringify(llm));
    const { tokenizer, config } = tokenizerFiles(QWEN2_VL_SPECIALS.filter((t) => !t.startsWith("<|audio")));
    writeFileSync(path.join(dir, "tokenizer.json"), JSON.stringify(tokenizer));
    writeFileSync(path.join(dir, "tokenizer_config.json"), JSON.stringify(config));
    const audio = run.outputs.get("audioEnc")!.features as FeaturesValue;
    const env = await makeCtx();
    try {
      const params = promptBuilder.params.parse({ model: "plain/no-audio" });
      await expect(promptBuilder.execute({ inputs: { audio, text: "hi" }, params, ctx: env.ctx })).rejects.toThrow(
        'the tokenizer of model "plain/no-audio" has no "<|audio_start|>" token, which marks audio input',
      );
      // Without audio the same model builds text + image sequences.
      const image = run.outputs.get("vision")!.features as FeaturesValue;
      const ok = (await promptBuilder.execute({ inputs: { image, text: "hi" }, params, ctx: env.ctx })).sequence as SequenceValue;
      expect(ok.modality.filter((m) => m === "image")).toHaveLength(image.n);
    } finally {
      await env.dispose();
    }
  });

  it("chatTemplate: chatml skips the model's template (same tokenizer); features of another width are refused naming the model", async () => {
    const image = run.outputs.get("vision")!.features as FeaturesValue;
    const env = await makeCtx();
    try {
      const params = promptBuilder.params.parse({ model: REF, chatTemplate: "chatml" });
      const seq = (await promptBuilder.execute({ inputs: { image, text: "hi" }, params, ctx: env.ctx })).sequence as SequenceValue;
      expect(seq.text).toBe("<|im_start|>user\n<image>\nhi<|im_end|>\n<|im_start|>assistant\n");
      expect(seq.ids[0]).toBe(specialId("<|im_start|>"));
      expect(seq.tokenizer!.model).toBe(REF);
      const wide = { ...image, dim: H + 1, data: new Float32Array(image.n * (H + 1)) };
      await expect(promptBuilder.execute({ inputs: { image: wide }, params, ctx: env.ctx })).rejects.toThrow(`the LLM's hidden size is ${H} (model "${REF}")`);
    } finally {
      await env.dispose();
    }
  });

  it("the Prompt Builder's cache fingerprint follows the tokenizer file and the chat template", async () => {
    const fp = (p: Record<string, unknown>) => promptBuilder.fingerprint!(promptBuilder.params.parse(p), storage);
    expect(await fp({})).toBe(BYTE_TOKENIZER_HASH);
    const withTemplate = await fp({ model: REF });
    const chatml = await fp({ model: REF, chatTemplate: "chatml" });
    expect(chatml).toMatch(/^json:[0-9a-f]{16}$/);
    expect(withTemplate.startsWith(`${chatml}:`)).toBe(true);
    const dir = path.join(tmp, "models", "plain", "retokenised");
    mkdirSync(dir, { recursive: true });
    writeFileSync(path.join(dir, "config.json"), JSON.stringify(llm));
    writeFileSync(path.join(dir, "tokenizer.json"), JSON.stringify(tokenizerFiles(QWEN2_VL_SPECIALS).tokenizer));
    expect(await fp({ model: "plain/retokenised", chatTemplate: "chatml" })).toBe(chatml);
    writeFileSync(path.join(dir, "tokenizer.json"), JSON.stringify(tokenizerFiles([...QWEN2_VL_SPECIALS].reverse()).tokenizer));
    // same size as before: a fresh mtime so no cache keyed on (mtime, size) can serve the old file within the same millisecond
    const later = new Date(Date.now() + 60_000);
    utimesSync(path.join(dir, "tokenizer.json"), later, later);
    expect(await fp({ model: "plain/retokenised", chatTemplate: "chatml" })).not.toBe(chatml);
  });

  it("generation_config.json's eos_token_id list stops generation at a sampled id", async () => {
    const env = await makeCtx();
    const ctx = { ...env.ctx, runtime: pool };
    const dir = path.join(tmp, "models", REF);
    const sequence = run.outputs.get("prompt")!.sequence as SequenceValue;
    const params = moeLlm.params.parse({ model: REF, maxNewTokens: 8, temperature: 1.5, seed: 11 });
    try {
      rmSync(path.join(dir, "generation_config.json"), { force: true });
      const fingerprint = () => moeLlm.fingerprint!(params, storage);
      const before = await fingerprint();
      const free = (await moeLlm.execute({ inputs: { sequence }, params, ctx })).output as LlmOutputValue;
      // The first sampled id that does not occur earlier and is not already a stop token (ChatML's markers).
      const chatStops = [specialId("<|im_end|>"), specialId("<|endoftext|>")];
      const k = free.ids.findIndex((id, i) => i > 0 && !free.ids.slice(0, i).includes(id) && !chatStops.includes(id));
      expect(k, `sampled ${free.ids.join(",")}`).toBeGreaterThan(0);
      writeFileSync(path.join(dir, "generation_config.json"), JSON.stringify({ bos_token_id: 151643, eos_token_id: [319, free.ids[k]], do_sample: true }));
      const stopped = (await moeLlm.execute({ inputs: { sequence }, params, ctx })).output as LlmOutputValue;
      expect(stopped.ids).toEqual(free.ids.slice(0, k + 1));
      expect(stopped.stopReason).toBe("stop-token");
      expect(await fingerprint()).not.toBe(before); // a cached answer is not reused across stop-token changes
      writeFileSync(path.join(dir, "generation_config.json"), JSON.stringify({ eos_token_id: free.ids[k] }));
      expect(((await moeLlm.execute({ inputs: { sequence }, params, ctx })).output as LlmOutputValue).ids).toEqual(free.ids.slice(0, k + 1));
      writeFileSync(path.join(dir, "generation_config.json"), JSON.stringify({ eos_token_id: "</s>" }));
      await expect(moeLlm.execute({ inputs: { sequence }, params, ctx })).rejects.toThrow(/generation_config\.json: eos_token_id must be a token id or a list/);
    } finally {
      rmSync(path.join(dir, "generation_config.json"), { force: true });
      await env.dispose();
    }
  }, 120_000);
});

describe("defaults", () => {
  it("an old document (Prompt Builder without model/chatTemplate) loads on uni-moe-tiny/tiny and yields the same byte-tokenizer ids as before", async () => {
    const doc = {
      schemaVersion: CURRENT_SCHEMA_VERSION,
      name: "saved before the Prompt Builder had a model",
      nodes: [node("prompt", "prompt.builder", { template: "<image>\n<audio>\n{text}", system: "Be brief.", ropeMode: "uni-moe" })],
      edges: [],
      notes: [],
    };
    const { workflow, problems } = loadWorkflow(doc, catalogue);
    expect(problems.filter((p) => p.severity === "error")).toEqual([]);
    const params = promptBuilder.params.parse(workflow!.nodes[0]!.params);
    expect(params).toMatchObject({ model: "uni-moe-tiny/tiny", chatTemplate: "model" });
    const env = await makeCtx();
    try {
      const seq = (await promptBuilder.execute({ inputs: { text: "hi" }, params, ctx: env.ctx })).sequence as SequenceValue;
      // What the Prompt Builder wrote before it had a model: ChatML through the byte tokenizer.
      expect(seq.ids).toEqual(byteTokenizer.encode("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"));
      expect(seq.tokenizer).toEqual({ model: "uni-moe-tiny/tiny", hash: BYTE_TOKENIZER_HASH });
    } finally {
      await env.dispose();
    }
  });

  it("new Prompt Builders start on the MoE-LLM's default model from the Models page (their own entry wins)", () => {
    const pb = () => catalogInfo().nodes.find((n) => n.type === "prompt.builder")!.defaults.model;
    const llmDefault = () => catalogInfo().nodes.find((n) => n.type === "model.moe-llm")!.defaults.model;
    writeDefaults({});
    expect(pb()).toBe("uni-moe-tiny/tiny");
    writeDefaults({ "model.moe-llm": REF });
    expect([pb(), llmDefault()]).toEqual([REF, REF]);
    writeDefaults({ "model.moe-llm": REF, "prompt.builder": "uni-moe-tiny/small" });
    expect(pb()).toBe("uni-moe-tiny/small");
    writeDefaults({});
  });
});
