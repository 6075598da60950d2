/**
 * The seeded reference encoders "uni-moe-tiny/vision" and "uni-moe-tiny/audio" (SEEDED, UNTRAINED), how
 * encoder models are found (reference, a model directory with safetensors, or a directory with a ready
 * ONNX export), their ONNX graphs cached on disk by content hash, and running them through the pooled
 * runtime.
 *
 * On-disk layout, as the LLM family (models/moe-llm/uni-moe-tiny.ts): <models dir>/uni-moe-tiny/<vision|audio>/
 * with config.json, model.safetensors (fp32) and manifest.json (written last), built in a temporary
 * sibling directory and renamed into place. Graphs: <models dir>/.graphs/<sha256>.onnx.
 *
 * Init per tensor, from deriveSeed(seed, parameter name): Linear/conv weights, biases, embeddings
 * (positions, queries): N(0, 0.02²); LayerNorm weights 1 + N(0, 0.02²), LayerNorm biases N(0, 0.02²);
 * Whisper's positions: the fixed sinusoids.
 */
import fs from "node:fs";
import path from "node:path";
import * as ort from "onnxruntime-node";
import type { Runtime } from "@/engine/runtime/types";
import { audioParamTable, buildAudioGraph, checkAudioConfig, whisperSinusoids, zAudioConfig, zAudioOnnxConfig, type AudioConfig } from "./audio-encoder";
import { SafetensorsWeights, writeSafetensors, type SafetensorsEntry } from "../io/safetensors";
import { SeededRandom, deriveSeed } from "../io/seeded-random";
import { hashValue } from "../../engine/hash";
import { hashModelFiles } from "../io/model-dir";
import { ensureSeededModel, type SeededModelManifest } from "../io/seeded-store";
import { KeyedCache } from "../io/keyed-cache";
import { modelsDir } from "@/engine/config";
import { SESSION_CONFIG_ENTRIES } from "@/engine/runtime/providers";
import { buildVisionGraph, checkVisionConfig, gridSide, visionParamTable, zVisionConfig, zVisionOnnxConfig, type EncoderParamSpec, type VisionConfig } from "./vision-encoder";
import type { Tensor32 } from "../io/weights";
import { resolveInside } from "@/engine/paths";
import { computeDtypeFor, ensureFp16Graph } from "../import/fp16";
import { cachedGraphFile } from "../onnx/graph-cache";

export const FAMILY = "uni-moe-tiny";
/** Bump whenever generated weights or written files would change. */
export const ENCODER_GENERATOR_VERSION = 1;
/** Bump whenever the graph builders' output changes, so cached graphs are rebuilt. */
export const ENCODER_GRAPH_VERSION = 1;
export const DEFAULT_ENCODER_SEED = 2511;
export const INIT_STD = 0.02;
export const REFERENCE_LABEL = "seeded, untrained";

export type EncoderKind = "vision" | "audio";
export const ENCODER_KINDS: readonly EncoderKind[] = ["vision", "audio"];
export const DEFAULT_VISION_MODEL = "uni-moe-tiny/vision";
export const DEFAULT_AUDIO_MODEL = "uni-moe-tiny/audio";

/** Tiny configs sized for uni-moe-tiny "tiny" (hidden 128). The vision tower stores 3 layers and runs 2 (as the real model drops its last). */
export const tinyVisionConfig: VisionConfig = zVisionConfig.parse({
  model_type: "siglip_vision_tiny",
  image_size: 384,
  patch_size: 14,
  hidden_size: 64,
  intermediate_size: 256,
  num_attention_heads: 4,
  num_hidden_layers: 3,
  num_layers_used: 2,
  layer_norm_eps: 1e-6,
  hidden_act: "gelu_pytorch_tanh",
  projector_hidden_size: 128,
  out_dim: 128,
  pool: 4,
  seeded_untrained: true,
});

export const tinyAudioConfig: AudioConfig = zAudioConfig.parse({
  model_type: "whisper_qformer_tiny",
  num_mel_bins: 128,
  max_source_positions: 1500,
  d_model: 64,
  encoder_layers: 2,
  encoder_attention_heads: 4,
  encoder_ffn_dim: 256,
  num_queries: 200,
  qformer_layers: 1,
  qformer_attention_heads: 4,
  qformer_ffn_dim: 256,
  layer_norm_eps: 1e-5,
  out_dim: 128,
  seeded_untrained: true,
});

export function paramTableOf(kind: EncoderKind, config: VisionConfig | AudioConfig): EncoderParamSpec[] {
  return kind === "vision" ? visionParamTable(config as VisionConfig) : audioParamTable(config as AudioConfig);
}

/** One seeded parameter; depends only on (spec, seed). */
export function seedEncoderTensor(spec: EncoderParamSpec, seed: number): Tensor32 {
  const n = spec.shape.reduce((a, b) => a * b, 1);
  const data = new Float32Array(n);
  if (spec.kind === "sinusoid") {
    data.set(whisperSinusoids(spec.shape[0]!, spec.shape[1]!));
  } else {
    new SeededRandom(deriveSeed(seed, spec.name)).fillNormal(data, INIT_STD, spec.kind === "norm" ? 1 : 0);
  }
  return { shape: [...spec.shape], data };
}

export function seedEncoderWeights(kind: EncoderKind, config: VisionConfig | AudioConfig, seed = DEFAULT_ENCODER_SEED): Map<string, Tensor32> {
  return new Map(paramTableOf(kind, config).map((p) => [p.name, seedEncoderTensor(p, seed)]));
}

// ---------------------------------------------------------------------------------------------
// The reference models on disk

export type EncoderManifest = SeededModelManifest<EncoderKind>;

const referenceConfigOf = (kind: EncoderKind) => structuredClone(kind === "vision" ? tinyVisionConfig : tinyAudioConfig);

export function encoderReferenceDir(kind: EncoderKind, root = modelsDir()): string {
  return path.join(root, FAMILY, kind);
}

/**
 * Makes sure `dir` (default <models dir>/uni-moe-tiny/<kind>) holds the seeded reference encoder; builds it
 * in a temporary sibling directory and renames it into place when missing or stale (models/io/seeded-store.ts).
 */
export function ensureEncoderModel(kind: EncoderKind, dir?: string, seed = DEFAULT_ENCODER_SEED): Promise<{ dir: string; built: boolean }> {
  const config = referenceConfigOf(kind);
  const contentHash = hashValue({ kind, config, seed, generatorVersion: ENCODER_GENERATOR_VERSION });
  return ensureSeededModel<EncoderManifest, { dir: string; built: boolean }>({
    dir: dir ?? encoderReferenceDir(kind),
    contentHash,
    configFile: "config.json",
    config,
    weights: { "model.safetensors": () => paramTableOf(kind, config).length },
    async write(tmp) {
      const table = paramTableOf(kind, config);
      const entries: SafetensorsEntry[] = table.map((p) => ({ name: p.name, shape: p.shape, data: () => seedEncoderTensor(p, seed).data }));
      const metadata = { format: "pt", family: FAMILY, name: kind, seed: String(seed), generator_version: String(ENCODER_GENERATOR_VERSION), label: REFERENCE_LABEL };
      const { bytes } = await writeSafetensors(path.join(tmp, "model.safetensors"), entries, { metadata });
      return {
        family: FAMILY,
        name: kind,
        seed,
        generatorVersion: ENCODER_GENERATOR_VERSION,
        label: REFERENCE_LABEL,
        contentHash,
        files: { "model.safetensors": bytes },
        parameters: table.reduce((s, p) => s + p.shape.reduce((a, b) => a * b, 1), 0),
        createdAt: new Date().toISOString(),
      };
    },
    result: ({ dir, built }) => ({ dir, built }),
  });
}

// ---------------------------------------------------------------------------------------------
// Resolving encoder models

/** What the node needs to know about a vision model, whichever way it is stored. */
export interface VisionModelInfo {
  imageSize: number;
  patchSize: number;
  /** Patches per side G (27). */
  grid: number;
  outDim: number;
  pool: number;
}

export interface AudioModelInfo {
  nMels: number;
  /** Mel frames per chunk the encoder takes (3000). */
  frames: number;
  queries: number;
  outDim: number;
}

interface ResolvedBase {
  ref: string;
  dir: string;
  /** sha256 of config.json + weights or the ONNX file (cache keys, graph cache). */
  contentHash: string;
  label?: string;
  /** "built": graph from config + safetensors; "onnx": a ready ONNX file in the directory. */
  source: "built" | "onnx";
  /** The ONNX file for source "onnx". */
  onnxFile?: string;
  /** The ONNX file's weights are external data beside it (imported towers): its session is created from the path. */
  externalData?: boolean;
  inputName: string;
}

export type ResolvedEncoder =
  | (ResolvedBase & { kind: "vision"; info: VisionModelInfo; config?: VisionConfig })
  | (ResolvedBase & { kind: "audio"; info: AudioModelInfo; config?: AudioConfig });

/**
 * Finds an encoder by reference: "uni-moe-tiny/vision" / "uni-moe-tiny/audio" build the seeded reference
 * on first use; anything else must be a directory inside the models dir holding config.json plus either
 * model.safetensors or a ready ONNX file (vision.onnx / audio.onnx, or config `onnx_file`).
 */
export async function resolveEncoder<K extends EncoderKind>(kind: K, ref: string): Promise<Extract<ResolvedEncoder, { kind: K }>> {
  return (await resolveAny(kind, ref)) as Extract<ResolvedEncoder, { kind: K }>;
}

async function resolveAny(kind: EncoderKind, ref: string): Promise<ResolvedEncoder> {
  const root = modelsDir();
  let dir: string;
  let label: string | undefined;
  if (ref === `${FAMILY}/${kind}`) {
    dir = (await ensureEncoderModel(kind)).dir;
    label = REFERENCE_LABEL;
  } else {
    if (ENCODER_KINDS.some((k) => ref === `${FAMILY}/${k}`)) throw new Error(`model "${ref}" is a ${ref.split("/")[1]} encoder, not a ${kind} encoder`);
    dir = resolveInside(root, ref, "model", "the models directory");
  }
  const cfgFile = path.join(dir, "config.json");
  if (!fs.existsSync(cfgFile)) throw new Error(`${kind} encoder "${ref}" not found: no config.json in ${dir}`);
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(fs.readFileSync(cfgFile, "utf8")) as Record<string, unknown>;
  } catch (e) {
    throw new Error(`${kind} encoder "${ref}": config.json is not valid JSON (${(e as Error).message})`);
  }
  const onnxName = typeof raw.onnx_file === "string" ? raw.onnx_file : `${kind}.onnx`;
  const bad = (e: unknown) => new Error(`${kind} encoder "${ref}": config.json does not describe a ${kind} encoder: ${(e as Error).message}`);
  if (fs.existsSync(path.join(dir, onnxName))) {
    if (path.basename(onnxName) !== onnxName) throw new Error(`${kind} encoder "${ref}": onnx_file must be a file name in the model directory`);
    // An imported tower keeps its weights as ONNX external data in `<onnx_file>.data` (models/import/import.ts).
    const externalData = fs.existsSync(path.join(dir, `${onnxName}.data`));
    const contentHash = hashModelFiles(dir, ["config.json", onnxName, ...(externalData ? [`${onnxName}.data`] : [])]);
    const base = { ref, dir, contentHash, label, source: "onnx" as const, onnxFile: path.join(dir, onnxName), externalData };
    try {
      if (kind === "vision") {
        const c = zVisionOnnxConfig.parse(raw);
        const info = { imageSize: c.image_size, patchSize: c.patch_size, grid: gridSide(c), outDim: c.out_dim, pool: c.pool };
        return { ...base, kind, info, inputName: c.input_name };
      }
      const c = zAudioOnnxConfig.parse(raw);
      return { ...base, kind, info: { nMels: c.num_mel_bins, frames: 2 * c.max_source_positions, queries: c.num_queries, outDim: c.out_dim }, inputName: c.input_name };
    } catch (e) {
      throw bad(e);
    }
  }
  const weights = fs.readdirSync(dir).filter((f) => f.endsWith(".safetensors"));
  if (weights.length === 0) throw new Error(`${kind} encoder "${ref}": no ${onnxName} and no .safetensors weights in ${dir}`);
  const contentHash = hashModelFiles(dir, ["config.json", ...weights]);
  const base = { ref, dir, contentHash, label, source: "built" as const };
  try {
    if (kind === "vision") {
      const config = zVisionConfig.parse(raw);
      checkVisionConfig(config);
      const info = { imageSize: config.image_size, patchSize: config.patch_size, grid: gridSide(config), outDim: config.out_dim, pool: config.pool };
      return { ...base, kind, info, config, inputName: "pixel_values" };
    }
    const config = zAudioConfig.parse(raw);
    checkAudioConfig(config);
    const info = { nMels: config.num_mel_bins, frames: 2 * config.max_source_positions, queries: config.num_queries, outDim: config.out_dim };
    return { ...base, kind, info, config, inputName: "input_features" };
  } catch (e) {
    throw bad(e);
  }
}

/** The ONNX file to run: the model's own, or the graph built once from config + weights and cached by content hash. */
export function encoderGraphFile(model: ResolvedEncoder): string {
  if (model.source === "onnx") return model.onnxFile!;
  return cachedGraphFile({ kind: model.kind, hash: model.contentHash, v: ENCODER_GRAPH_VERSION }, () => {
    const weights = new SafetensorsWeights(model.dir);
    try {
      return model.kind === "vision" ? buildVisionGraph(model.config!, weights) : buildAudioGraph(model.config!, weights);
    } finally {
      weights.close();
    }
  });
}

/**
 * Runs an encoder on one batch: `input` of shape `dims` → the first output's data and dims
 * (the session comes from the runtime's pool and stays pinned while `fn` runs).
 */
export async function withEncoder<T>(
  model: ResolvedEncoder,
  runtime: Runtime,
  fn: (run: (input: Float32Array, dims: number[]) => Promise<{ data: Float32Array; dims: number[] }>, graph: { dynamicBatch: boolean }) => Promise<T>,
): Promise<T> {
  const file = encoderGraphFile(model);
  if (model.externalData) {
    const session = await externalDataSession(model, runtime);
    return fn((input, dims) => runOnce(model, session, input, dims), { dynamicBatch: hasDynamicBatch(session, model.inputName) });
  }
  return runtime.withSession(file, undefined, (handle) => fn((input, dims) => runOnce(model, handle.session, input, dims), { dynamicBatch: hasDynamicBatch(handle.session, model.inputName) }));
}

/** Whether the graph's input takes any first dimension (a symbolic or free dim), so several items can go in one run. */
export function hasDynamicBatch(session: ort.InferenceSession, inputName: string): boolean {
  const meta = session.inputMetadata.find((m) => m.name === inputName);
  if (!meta?.isTensor || meta.shape.length === 0) return false;
  const first = meta.shape[0];
  return typeof first === "string" || (typeof first === "number" && first < 0);
}

/** Tiles per vision-encoder session run when tiles of several images run together (bounds the run's activations). */
export const MAX_TILES_PER_RUN = 8;

/**
 * Staging arrays for runs of several tiles, reused (the two largest are kept, each lent to one run at a time): a fresh
 * 8-tile array is 14 MB of new pages, ~40 ms of page faults on a 2-core VM, against ~2 ms to copy into one already
 * mapped (docs/benchmarks.md "Batched datasets").
 */
const stagingFree: Float32Array[] = [];
function takeStaging(n: number): Float32Array {
  const i = stagingFree.findIndex((b) => b.length >= n);
  return i >= 0 ? stagingFree.splice(i, 1)[0]!.subarray(0, n) : new Float32Array(n);
}
function giveStaging(view: Float32Array): void {
  stagingFree.push(new Float32Array(view.buffer));
  stagingFree.sort((a, b) => a.length - b.length);
  if (stagingFree.length > 2) stagingFree.shift();
}

/**
 * The vision encoder on the tiles of several images (one list of normalised [3,S,S] tiles per image): the tiles of all
 * of them in runs of up to `maxPerRun` ([k,3,S,S]) when the graph has a dynamic batch dim, else one tile per run.
 * Returns, per image, one output per tile: its [N·O] projected patch features (before pooling), the same as the
 * tile run alone (each tile is an independent item of the batch).
 */
export async function encodeVisionTiles(model: Extract<ResolvedEncoder, { kind: "vision" }>, runtime: Runtime, images: readonly (readonly Float32Array[])[], maxPerRun = MAX_TILES_PER_RUN): Promise<Float32Array[][]> {
  const { imageSize: S, grid, outDim } = model.info;
  const plane = 3 * S * S;
  const perTile = grid * grid * outDim;
  const tiles = images.flat();
  for (const t of tiles) if (t.length !== plane) throw new Error(`vision encoder "${model.ref}": a tile has ${t.length} values, expected 3×${S}×${S}`);
  const outs: Float32Array[] = [];
  await withEncoder(model, runtime, async (run, { dynamicBatch }) => {
    const step = dynamicBatch ? Math.max(1, maxPerRun) : 1;
    for (let i = 0; i < tiles.length; i += step) {
      const k = Math.min(step, tiles.length - i);
      const staging = k > 1 ? takeStaging(k * plane) : undefined;
      let out;
      try {
        if (staging) for (let j = 0; j < k; j++) staging.set(tiles[i + j]!, j * plane);
        out = await run(staging ?? tiles[i]!, [k, 3, S, S]);
      } finally {
        if (staging) giveStaging(staging);
      }
      if (out.dims.join(",") !== `${k},${grid * grid},${outDim}`) throw new Error(`vision model "${model.ref}" returned [${out.dims}], expected [${k}, ${grid * grid}, ${outDim}]`);
      for (let j = 0; j < k; j++) outs.push(out.data.subarray(j * perTile, (j + 1) * perTile));
    }
  });
  let next = 0;
  return images.map((img) => outs.slice(next, (next += img.length)));
}

/** Sessions of graphs with external data, by file and provider; one made from an older content hash is released. */
const externalSessions = new KeyedCache<string, ort.InferenceSession>({ onReplace: (old) => void old.then((s) => s.release()).catch(() => undefined) });

/**
 * A session for a graph with external data, created from its path (ONNX Runtime resolves the `.data` file
 * next to the .onnx only then; the pool loads models from bytes). One per file, replaced when the content changes.
 */
async function externalDataSession(model: ResolvedEncoder, runtime: Runtime): Promise<ort.InferenceSession> {
  const ep = await runtime.resolveExecutionProvider();
  // On CUDA an imported tower runs its fp16 compute graph (models/import/fp16.ts), as the imported LLM does.
  const file = computeDtypeFor(ep) === "fp16" ? await ensureFp16Graph(model.onnxFile!) : model.onnxFile!;
  const session = externalSessions.get(`${file}|${ep}`, () => ort.InferenceSession.create(file, { executionProviders: [ep], graphOptimizationLevel: "all", logSeverityLevel: 3, extra: SESSION_CONFIG_ENTRIES }), model.contentHash);
  try {
    return await session;
  } catch (e) {
    throw new Error(`${model.kind} encoder "${model.ref}": cannot load ${file} on ${ep}: ${(e as Error).message}`);
  }
}

async function runOnce(model: ResolvedEncoder, session: ort.InferenceSession, input: Float32Array, dims: number[]): Promise<{ data: Float32Array; dims: number[] }> {
  const feeds = { [model.inputName]: new ort.Tensor("float32", input, dims) };
  const out = await session.run(feeds);
  const first = out[session.outputNames[0]!]!;
  if (first.type !== "float32") throw new Error(`${model.kind} encoder "${model.ref}": its output is ${first.type}, expected float32`);
  const data = first.data as Float32Array;
  for (const t of Object.values(out)) if (t !== first) t.dispose?.();
  return { data, dims: [...first.dims] };
}
