/**
 * Uni-MoE-2.0-Omni's encoder towers: a tiny random checkpoint in the real file layout (LLM under `model.`,
 * `vision_tower.vision_tower.vision_model.…` + `vision_aligner.{0,2}`, `audio_tower.audio_tower.…` +
 * `audio_aligner.{decoder.audio_decoder.…, query_tokens, projector}`, config.json with vision_config /
 * audio_config) imports with nothing unclaimed; the written vision and audio graphs match the plain-TS encoder
 * references (tests/unit/encoders/reference.ts) on seeded inputs; a missing tower tensor is named.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { encodeWav16 } from "@/models/io/wav-write";
import os from "node:os";
import path from "node:path";
import * as ort from "onnxruntime-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { audioParamTable, whisperSinusoids, zAudioConfig } from "@/models/encoders/audio-encoder";
import { resolveEncoder, seedEncoderWeights } from "@/models/encoders/encoders-tiny";
import { importCheckpoint, inspectCheckpoint } from "@/models/import/import";
import { writeSafetensors } from "@/models/io/safetensors";
import { SeededRandom } from "@/models/io/seeded-random";
import { visionParamTable, zVisionConfig } from "@/models/encoders/vision-encoder";
import type { Tensor32 } from "@/models/io/weights";
import sharp from "sharp";
import type { FeaturesValue } from "@/engine/features";
import { decodeWavMono } from "@/engine/media/wav";
import { SessionPool } from "@/engine/runtime";
import { DEFAULT_GRIDS_TEXT, parseGrids, preprocessImage } from "@/models/encoders/image-preprocess";
import { chunkSamples, logMelChunk, resample, SAMPLE_RATE } from "@/models/encoders/mel";
import { audioEncoder } from "@/nodes/audio-encoder";
import { visionEncoder } from "@/nodes/vision-encoder";
import { makeCtx } from "../nodes/ctx";
import { attention, conv1d, gelu, layerNorm, linear, maxDiff, refAdaptivePool, refVisionTile } from "../encoders/reference";
import { randomConfig, randomWeights } from "../../reference/random";

const tmp = mkdtempSync(path.join(os.tmpdir(), "import-towers-"));
const saved = process.env.STUDIO_MODELS_DIR;
const sessions: ort.InferenceSession[] = [];
afterAll(async () => {
  for (const s of sessions) await s.release();
  if (saved === undefined) delete process.env.STUDIO_MODELS_DIR;
  else process.env.STUDIO_MODELS_DIR = saved;
  rmSync(tmp, { recursive: true, force: true });
});

const llm = randomConfig(31, { mlp_dynamic_null_expert_num: 1, mlp_fixed_expert_num: 2, tie_word_embeddings: false, model_type: "grin_qwen2_vl" });
const H = llm.hidden_size;
// SigLipVisionConfig / WhisperConfig fields as they appear in the real config.json (tiny sizes).
const visionConfigJson = { model_type: "siglip_vision_model", image_size: 70, patch_size: 14, hidden_size: 24, intermediate_size: 40, num_attention_heads: 3, num_hidden_layers: 3, layer_norm_eps: 1e-6, hidden_act: "gelu_pytorch_tanh" };
const audioConfigJson = { model_type: "whisper", num_mel_bins: 16, max_source_positions: 1500, max_target_positions: 12, d_model: 24, encoder_layers: 2, encoder_attention_heads: 3, encoder_ffn_dim: 40, decoder_layers: 2, decoder_attention_heads: 2, decoder_ffn_dim: 32, vocab_size: 50 };
const Q = 10;
const PROJ_HIDDEN = 20;

// Tower weights under the encoder builders' names (all 3 stored vision layers; the tower runs 2), ×10 gain on
// Linear/embedding weights so activations are O(1) and the nonlinearities matter (as tests/unit/encoders do).
const vcFull = zVisionConfig.parse({ ...visionConfigJson, projector_hidden_size: PROJ_HIDDEN, out_dim: H });
const acFull = zAudioConfig.parse({ ...audioConfigJson, num_queries: Q, qformer_layers: 2, qformer_attention_heads: 2, qformer_ffn_dim: 32, out_dim: H });
const vision = seedEncoderWeights("vision", vcFull, 41);
for (const p of visionParamTable(vcFull)) if (p.kind === "linear" || p.kind === "embed") vision.get(p.name)!.data.forEach((v, i, a) => (a[i] = v * 10));
const audio = seedEncoderWeights("audio", acFull, 42);
for (const p of audioParamTable(acFull)) if (p.kind === "linear" || p.kind === "embed") audio.get(p.name)!.data.forEach((v, i, a) => (a[i] = v * 10));
const rnd = new SeededRandom(43);
const decPositions = rnd.fillNormal(new Float32Array(12 * 24), 0.5, 0);

/** The real checkpoint's name of each tower tensor (the inverse of the table's rules), plus the extras the real checkpoint carries. */
function realTowerTensors(): Map<string, Tensor32> {
  const out = new Map<string, Tensor32>();
  for (const [name, t] of vision) {
    const real = name.startsWith("mm_projector.") ? name.replace("mm_projector.", "vision_aligner.") : `vision_tower.vision_tower.${name}`;
    out.set(real, t);
  }
  out.set("vision_tower.vision_tower.vision_model.post_layernorm.weight", { shape: [24], data: new Float32Array(24).fill(1) });
  out.set("vision_tower.vision_tower.vision_model.post_layernorm.bias", { shape: [24], data: new Float32Array(24) });
  for (const [name, t] of audio) {
    if (name === "qformer.queries") out.set("audio_aligner.query_tokens", { shape: [1, Q, 24], data: t.data });
    else if (name.startsWith("encoder.")) out.set(`audio_tower.audio_tower.${name.slice("encoder.".length)}`, t);
    else if (name.startsWith("qformer.")) out.set(`audio_aligner.decoder.audio_decoder.${name.slice("qformer.".length)}`, t);
    else out.set(`audio_aligner.${name}`, t); // projector.{weight,bias}
  }
  out.set("audio_aligner.decoder.audio_decoder.embed_positions.weight", { shape: [12, 24], data: decPositions });
  out.set("audio_aligner.decoder.audio_decoder.embed_tokens.weight", { shape: [50, 24], data: rnd.fillNormal(new Float32Array(50 * 24), 0.02, 0) });
  return out;
}

async function writeCheckpoint(dir: string, omit: string[] = []): Promise<void> {
  mkdirSync(dir, { recursive: true });
  const W = randomWeights(llm, 32);
  const tensors = new Map<string, Tensor32>(W.names().map((n) => [n, W.get(n)]));
  for (const [k, v] of realTowerTensors()) tensors.set(k, v);
  const names = [...tensors.keys()].filter((n) => !omit.includes(n));
  // two shards with an index, as the released checkpoint
  const half = Math.ceil(names.length / 2);
  const weightMap: Record<string, string> = {};
  for (const [s, part] of [names.slice(0, half), names.slice(half)].entries()) {
    const file = `model-0000${s + 1}-of-00002.safetensors`;
    for (const n of part) weightMap[n] = file;
    await writeSafetensors(path.join(dir, file), part.map((n) => ({ name: n, shape: tensors.get(n)!.shape, data: tensors.get(n)!.data })), { metadata: { format: "pt" } });
  }
  writeFileSync(path.join(dir, "model.safetensors.index.json"), JSON.stringify({ metadata: {}, weight_map: weightMap }));
  const raw = { ...llm, architectures: ["GrinQwen2VLOutForConditionalGeneration"], vision_config: visionConfigJson, audio_config: audioConfigJson, whisper_query_tokens_size: Q, whisper_projector_type: "linear", whisper_hidden_size: 24 };
  writeFileSync(path.join(dir, "config.json"), JSON.stringify(raw));
}

/**
 * The real Whisper encoder + Whisper decoder as query former, written from Hugging Face's definitions with the
 * reference's helpers: decoder input = query_tokens + embed_positions[0:Q]; self-attention causal (query i
 * attends to queries 0..i: the reference's unmasked attention run on that prefix); then the linear projector.
 */
function refWhisperQformer(mel: Float32Array): Float64Array {
  const w = audio;
  const g = (n: string) => w.get(n)!.data;
  const { d_model: d, num_mel_bins: M, max_source_positions: E } = acFull;
  const c1 = conv1d(Float64Array.from(mel), M, 2 * E, g("encoder.conv1.weight"), g("encoder.conv1.bias"), d, 1);
  const c2 = conv1d(c1.y.map(gelu), d, c1.L, g("encoder.conv2.weight"), g("encoder.conv2.bias"), d, 2);
  const pos = whisperSinusoids(E, d);
  let x = new Float64Array(E * d);
  for (let t = 0; t < E; t++) for (let ch = 0; ch < d; ch++) x[t * d + ch] = gelu(c2.y[ch * E + t]!) + pos[t * d + ch]!;
  const ln = (v: Float64Array, n: number, name: string) => layerNorm(v, n, d, g(`${name}.weight`), g(`${name}.bias`), 1e-5);
  const add = (a: Float64Array, b: Float64Array) => a.map((v, i) => v + b[i]!);
  const mlp = (p: string, v: Float64Array, n: number, I: number) => linear(linear(v, n, d, g(`${p}.fc1.weight`), g(`${p}.fc1.bias`), I).map(gelu), n, I, g(`${p}.fc2.weight`), g(`${p}.fc2.bias`), d);
  for (let i = 0; i < acFull.encoder_layers; i++) {
    const p = `encoder.layers.${i}`;
    const h = ln(x, E, `${p}.self_attn_layer_norm`);
    x = add(x, attention(w, `${p}.self_attn`, h, E, h, E, d, acFull.encoder_attention_heads, false));
    x = add(x, mlp(p, ln(x, E, `${p}.final_layer_norm`), E, acFull.encoder_ffn_dim));
  }
  const enc = ln(x, E, "encoder.layer_norm");
  const qt = g("qformer.queries");
  let q = Float64Array.from({ length: Q * d }, (_, i) => qt[i]! + decPositions[i]!);
  for (let i = 0; i < acFull.qformer_layers; i++) {
    const p = `qformer.layers.${i}`;
    const h = ln(q, Q, `${p}.self_attn_layer_norm`);
    const sa = new Float64Array(Q * d);
    for (let r = 0; r < Q; r++) sa.set(attention(w, `${p}.self_attn`, h.subarray(r * d, (r + 1) * d), 1, h.subarray(0, (r + 1) * d), r + 1, d, acFull.qformer_attention_heads, false), r * d);
    q = add(q, sa);
    q = add(q, attention(w, `${p}.encoder_attn`, ln(q, Q, `${p}.encoder_attn_layer_norm`), Q, enc, E, d, acFull.qformer_attention_heads, false));
    q = add(q, mlp(p, ln(q, Q, `${p}.final_layer_norm`), Q, acFull.qformer_ffn_dim));
  }
  return linear(ln(q, Q, "qformer.layer_norm"), Q, d, g("projector.weight"), g("projector.bias"), H);
}

const src = path.join(tmp, "Uni-MoE-2.0-Omni");
let imported: Awaited<ReturnType<typeof importCheckpoint>>;

beforeAll(async () => {
  process.env.STUDIO_MODELS_DIR = path.join(tmp, "models");
  await writeCheckpoint(src);
  imported = await importCheckpoint(src, { name: "omni" });
}, 60_000);

/** 2.5 s of two sines as a 16-bit mono WAV. */
function sineWav(rate: number): Buffer {
  const pcm = Float32Array.from({ length: 2.5 * rate }, (_, i) => 0.3 * Math.sin((2 * Math.PI * 440 * i) / rate) + 0.1 * Math.sin((2 * Math.PI * 3100 * i) / rate));
  return Buffer.from(encodeWav16(pcm, { sampleRate: rate }));
}

describe("grin_qwen2_vl towers (Uni-MoE-2.0-Omni vision + audio)", () => {
  it("every tensor is claimed; both towers are detected with configs from config.json; the towers are written beside the LLM", () => {
    const map = inspectCheckpoint(src);
    expect(map.unclaimed.map((t) => t.name)).toEqual([]);
    expect(map.missing).toEqual([]);
    // the stored last vision layer (dropped by the tower) is claimed but unused
    expect(new Set(map.unused.map((t) => t.name.replace(/^.*layers\.2\..*$/, "layer2")))).toEqual(new Set(["layer2"]));
    expect(map.towers.map((t) => t.kind)).toEqual(["vision", "audio"]);
    const v = map.towers[0]!.config as typeof vcFull;
    expect([v.num_layers_used, v.projector_hidden_size, v.out_dim, v.hidden_act]).toEqual([2, PROJ_HIDDEN, H, "gelu_pytorch_tanh"]);
    const a = map.towers[1]!.config as typeof acFull;
    expect([a.num_queries, a.qformer_layers, a.qformer_causal, a.out_dim, a.num_mel_bins]).toEqual([Q, 2, true, H, 16]);

    expect(imported.ref).toBe("grin_qwen2_vl/omni");
    expect(imported.unclaimed).toEqual([]);
    expect(imported.manifest.towers?.map((t) => t.ref)).toEqual(["grin_qwen2_vl/omni/vision", "grin_qwen2_vl/omni/audio"]);
    for (const f of ["vision/vision.onnx", "vision/vision.onnx.data", "vision/config.json", "audio/audio.onnx", "audio/audio.onnx.data", "audio/config.json", "model.onnx"])
      expect(existsSync(path.join(imported.dir, f)), f).toBe(true);
    expect(JSON.parse(readFileSync(path.join(imported.dir, "audio/config.json"), "utf8")).qformer_causal).toBe(true);
  });

  it("the imported vision tower (selected as grin_qwen2_vl/omni/vision) matches the plain-TS SigLIP reference within 1e-4", async () => {
    const model = await resolveEncoder("vision", "grin_qwen2_vl/omni/vision");
    expect(model.source).toBe("onnx");
    expect(model.info).toEqual({ imageSize: 70, patchSize: 14, grid: 5, outDim: H, pool: 4 });
    const session = await ort.InferenceSession.create(model.onnxFile!, { intraOpNumThreads: 1, logSeverityLevel: 3 });
    sessions.push(session);
    const tiles = 2;
    const S = 70;
    const input = new SeededRandom(44).fillUniform(new Float32Array(tiles * 3 * S * S), -1, 1);
    const out = (await session.run({ pixel_values: new ort.Tensor("float32", input, [tiles, 3, S, S]) })).features!;
    expect(out.dims).toEqual([tiles, 25, H]);
    const got = out.data as Float32Array;
    let diff = 0;
    const per = 25 * H;
    for (let t = 0; t < tiles; t++) {
      const ref = refVisionTile({ ...vcFull, layers_run: 2 }, vision, input.subarray(t * 3 * S * S, (t + 1) * 3 * S * S));
      diff = Math.max(diff, maxDiff(got.subarray(t * per, (t + 1) * per), ref));
    }
    const scale = Math.max(...Array.from(got, Math.abs));
    console.log(`imported vision tower: max |onnx − ref| = ${diff.toExponential(2)}; max |y| = ${scale.toFixed(3)}`);
    expect(scale).toBeGreaterThan(0.1);
    expect(diff).toBeLessThan(1e-4);
  });

  it("the imported audio tower (grin_qwen2_vl/omni/audio: Whisper encoder + causal Whisper-decoder query former + projector) matches the reference within 1e-4", async () => {
    const model = await resolveEncoder("audio", "grin_qwen2_vl/omni/audio");
    expect(model.source).toBe("onnx");
    expect(model.info).toEqual({ nMels: 16, frames: 3000, queries: Q, outDim: H });
    const session = await ort.InferenceSession.create(model.onnxFile!, { intraOpNumThreads: 1, logSeverityLevel: 3 });
    sessions.push(session);
    const chunks = 2;
    const per = 16 * 3000;
    const mel = new SeededRandom(45).fillUniform(new Float32Array(chunks * per), -1.5, 1.5);
    const out = (await session.run({ input_features: new ort.Tensor("float32", mel, [chunks, 16, 3000]) })).features!;
    expect(out.dims).toEqual([chunks, Q, H]);
    const got = out.data as Float32Array;
    let diff = 0;
    for (let b = 0; b < chunks; b++) diff = Math.max(diff, maxDiff(got.subarray(b * Q * H, (b + 1) * Q * H), refWhisperQformer(mel.subarray(b * per, (b + 1) * per))));
    const scale = Math.max(...Array.from(got, Math.abs));
    console.log(`imported audio tower: max |onnx − ref| = ${diff.toExponential(2)}; max |y| = ${scale.toFixed(3)}`);
    expect(scale).toBeGreaterThan(0.1);
    expect(diff).toBeLessThan(1e-4);
  });

  it("the Vision / Audio Encoder nodes run the imported towers (model grin_qwen2_vl/omni/vision|audio) and match the references on their own preprocessed inputs", async () => {
    const pool = new SessionPool({ executionProvider: "cpu", intraOpNumThreads: 1 });
    const env = await makeCtx();
    const ctx = { ...env.ctx, runtime: pool };
    try {
      const W = 140, Hh = 70;
      const raw = Buffer.alloc(W * Hh * 3);
      for (let y = 0; y < Hh; y++) for (let x = 0; x < W; x++) raw.set([(x * 5) & 255, (y * 7) & 255, x < 70 ? 200 : 30], (y * W + x) * 3);
      const png = await sharp(raw, { raw: { width: W, height: Hh, channels: 3 } }).png().toBuffer();
      const image = { kind: "image" as const, file: await ctx.storage.write(png, "png"), mime: "image/png", width: W, height: Hh };
      const vparams = { ...(visionEncoder.params.parse({}) as Record<string, unknown>), model: "grin_qwen2_vl/omni/vision", pool: 2 } as never;
      const vf = (await visionEncoder.execute({ inputs: { image }, params: vparams, ctx })).features as FeaturesValue;
      expect(vf).toMatchObject({ modality: "image", dim: H, encoder: "grin_qwen2_vl/omni/vision", image: { pool: 2 } });
      const pre = await preprocessImage(png, { grids: parseGrids(DEFAULT_GRIDS_TEXT), tileSize: 70 });
      expect(vf.n).toBe(pre.tiles.length * 4);
      let vdiff = 0;
      for (let t = 0; t < pre.tiles.length; t++) {
        const ref = refAdaptivePool(refVisionTile({ ...vcFull, layers_run: 2 }, vision, pre.tiles[t]!), 5, H, 2);
        vdiff = Math.max(vdiff, maxDiff(vf.data.subarray(t * 4 * H, (t + 1) * 4 * H), ref));
      }

      const rate = 16000;
      const wav = sineWav(rate);
      const audioValue = { kind: "audio" as const, file: await ctx.storage.write(wav, "wav"), mime: "audio/wav", sampleRate: rate, channels: 1, durationSec: 2.5 };
      const aparams = { ...(audioEncoder.params.parse({}) as Record<string, unknown>), model: "grin_qwen2_vl/omni/audio" } as never;
      const af = (await audioEncoder.execute({ inputs: { audio: audioValue }, params: aparams, ctx })).features as FeaturesValue;
      expect(af).toMatchObject({ modality: "audio", n: Q, dim: H, encoder: "grin_qwen2_vl/omni/audio", audio: { chunks: 1 } });
      const mel = logMelChunk(chunkSamples(resample(decodeWavMono(wav).samples, rate, SAMPLE_RATE))[0]!, 16);
      const adiff = maxDiff(af.data, refWhisperQformer(mel));
      console.log(`encode.vision on the imported tower vs reference: ${vdiff.toExponential(2)} (${pre.tiles.length} tiles, pooled 2×2); encode.audio: ${adiff.toExponential(2)}`);
      expect(vdiff).toBeLessThan(1e-4);
      expect(adiff).toBeLessThan(1e-4);
    } finally {
      await pool.close();
      await env.dispose();
    }
  }, 60_000);

  it("an fp16 import stores the towers in fp16 (Cast to fp32 in the graph) and still runs close to the reference", async () => {
    const r = await importCheckpoint(src, { name: "omni16", dtype: "fp16" });
    expect(JSON.parse(readFileSync(path.join(r.dir, "audio/config.json"), "utf8")).storage_dtype).toBe("fp16");
    const model = await resolveEncoder("audio", "grin_qwen2_vl/omni16/audio");
    const session = await ort.InferenceSession.create(model.onnxFile!, { intraOpNumThreads: 1, logSeverityLevel: 3 });
    sessions.push(session);
    const mel = new SeededRandom(46).fillUniform(new Float32Array(16 * 3000), -1.5, 1.5);
    const got = (await session.run({ input_features: new ort.Tensor("float32", mel, [1, 16, 3000]) })).features!.data as Float32Array;
    const ref = refWhisperQformer(mel);
    const diff = maxDiff(got, ref);
    const scale = Math.max(...Array.from(ref, Math.abs));
    console.log(`fp16-stored audio tower: max |onnx − ref| = ${diff.toExponential(2)} (max |y| ${scale.toFixed(3)})`);
    expect(diff).toBeLessThan(0.02 * scale);

    // fp16 compute (as on CUDA; STUDIO_COMPUTE_DTYPE forces it on CPU): the Audio Encoder node runs audio.fp16.onnx,
    // written at import, and stays close to the fp32-compute graph of the same fp16 weights
    expect(existsSync(path.join(r.dir, "audio", "audio.fp16.onnx"))).toBe(true);
    const pool = new SessionPool({ executionProvider: "cpu", intraOpNumThreads: 1 });
    const env = await makeCtx();
    const ctx = { ...env.ctx, runtime: pool };
    const before = process.env.STUDIO_COMPUTE_DTYPE;
    try {
      const rate = 16000;
      const wav = sineWav(rate);
      const audioValue = { kind: "audio" as const, file: await ctx.storage.write(wav, "wav"), mime: "audio/wav", sampleRate: rate, channels: 1, durationSec: 2.5 };
      const aparams = { ...(audioEncoder.params.parse({}) as Record<string, unknown>), model: "grin_qwen2_vl/omni16/audio" } as never;
      const features = async () => ((await audioEncoder.execute({ inputs: { audio: audioValue }, params: aparams, ctx })).features as FeaturesValue).data;
      process.env.STUDIO_COMPUTE_DTYPE = "fp32";
      const f32 = await features();
      process.env.STUDIO_COMPUTE_DTYPE = "fp16";
      const f16 = await features();
      const d = maxDiff(f16, f32), y = Math.max(...Array.from(f32, Math.abs));
      console.log(`Audio Encoder node, fp16 vs fp32 compute on the fp16-stored tower: max |Δ| ${d.toExponential(2)} of max |y| ${y.toFixed(3)}`);
      expect(d).toBeGreaterThan(0); // a different graph ran
      expect(d).toBeLessThan(1e-2 * y);
    } finally {
      if (before === undefined) delete process.env.STUDIO_COMPUTE_DTYPE;
      else process.env.STUDIO_COMPUTE_DTYPE = before;
      await pool.close();
      await env.dispose();
    }
  }, 60_000);

  it("a checkpoint missing one tower tensor is refused, naming it", async () => {
    const bad = path.join(tmp, "bad");
    const gone = "audio_aligner.decoder.audio_decoder.layers.1.encoder_attn.v_proj.weight";
    await writeCheckpoint(bad, [gone]);
    expect(inspectCheckpoint(bad).missing.map((m) => m.expected)).toEqual([gone]);
    await expect(importCheckpoint(bad, { name: "bad" })).rejects.toThrow(`missing 1 tensor(s): "${gone}"`);
    const badV = path.join(tmp, "bad-vision");
    const goneV = "vision_tower.vision_tower.vision_model.encoder.layers.1.mlp.fc2.bias";
    await writeCheckpoint(badV, [goneV]);
    await expect(importCheckpoint(badV, { name: "bad-vision" })).rejects.toThrow(`"${goneV}"`);
  });
});
