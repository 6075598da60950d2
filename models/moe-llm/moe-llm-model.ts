import { z } from "zod";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import type { Runtime, SessionHandle } from "@/engine/runtime/types";
import { zMoeLlmConfig, type MoeLlmConfig } from "./config";
import type { LogitLens } from "@/engine/trace";
import { buildLensHeadGraph, LENS_HEAD_VERSION, LENS_TOP_K, runLogitLens } from "./logit-lens";
import { buildMoeLlmGraph, deviceGraphFits, deviceGraphOptions, GRAPH_BUILDER_VERSION, type MoeGraphOptions } from "./moe-llm-graph";
import { decodeStepAttentionFits, expertsOpFits } from "./decoder/fused";
import { hashModelFiles } from "../io/model-dir";
import { importedEmbeddingTable, importedGraphBuilderVersion, importedGraphFile, importedLensHeadFile, importedSession, isImportedDir } from "../import/runtime";
import { readManifest } from "../import/import";
import { estimateFromConfig, estimateLensHead } from "../import/memory";
import { MoeLlmRunner } from "./moe-llm-session";
import type { QuantSummary } from "../onnx/quantize";
import { SafetensorsWeights } from "../io/safetensors";
import { type Tokenizer } from "../text/tokenizer";
import { loadTokenizer } from "../text/tokenizer-json";
import { ensureReferenceModel, REFERENCE_MODEL_NAMES, type ReferenceModelName } from "./uni-moe-tiny";
import { config as studioConfig, modelsDir } from "@/engine/config";
import { parameterCounts } from "./parameters";
import { resolveInside } from "@/engine/paths";
import { cachedGraphFile } from "../onnx/graph-cache";
import { currentBatchWindow, type BatchWindow } from "@/engine/batch/window";

export interface ResolvedModel {
  /** As the user picked it, e.g. "uni-moe-tiny/tiny". */
  ref: string;
  dir: string;
  config: MoeLlmConfig;
  /** Content hash of config + weights (cache keys, graph cache). */
  contentHash: string;
  /** "seeded, untrained" for the reference family. */
  label?: string;
  /** An imported model's weight-only quantisation (its manifest's), absent for full precision. */
  quantization?: QuantSummary;
}

const REFERENCE_PREFIX = "uni-moe-tiny/";

/** The models a user can pick: the reference family plus every model directory under the models dir. */
export function listModels(): string[] {
  const found = REFERENCE_MODEL_NAMES.map((n) => `${REFERENCE_PREFIX}${n}`);
  const root = modelsDir();
  if (!existsSync(root)) return found;
  for (const family of readdirSync(root, { withFileTypes: true })) {
    if (!family.isDirectory() || family.name.startsWith(".")) continue;
    for (const m of readdirSync(path.join(root, family.name), { withFileTypes: true })) {
      const ref = `${family.name}/${m.name}`;
      if (m.isDirectory() && !found.includes(ref) && isLlmDir(path.join(root, family.name, m.name))) found.push(ref);
    }
  }
  return found;
}

/** Encoders, TTS and DiT models live beside the LLMs; only decoder LLM configs are offered as LLMs. */
const NOT_LLM = /^(uni_moe_tts|siglip|whisper|dit|vae)/;

function isLlmDir(dir: string): boolean {
  try {
    const config = JSON.parse(readFileSync(path.join(dir, "config.json"), "utf8")) as { model_type?: string };
    return !NOT_LLM.test(config.model_type ?? "") && zMoeLlmConfig.safeParse(config).success;
  } catch {
    return false;
  }
}

/**
 * Finds a model by reference. "uni-moe-tiny/<name>" builds the seeded reference model on first use;
 * anything else must be a directory inside the models dir (no path may reach outside it).
 */
export async function resolveModel(ref: string, onProgress?: (fraction: number, message: string) => void): Promise<ResolvedModel> {
  const root = modelsDir();
  let dir: string;
  let label: string | undefined;
  if (ref.startsWith(REFERENCE_PREFIX) && REFERENCE_MODEL_NAMES.includes(ref.slice(REFERENCE_PREFIX.length) as ReferenceModelName)) {
    const name = ref.slice(REFERENCE_PREFIX.length) as ReferenceModelName;
    const built = await ensureReferenceModel(name, undefined, {
      onProgress: onProgress ? (written, total) => onProgress(written / Math.max(1, total), `building the seeded ${name} model`) : undefined,
    });
    dir = built.dir;
    label = "seeded, untrained";
  } else {
    dir = resolveInside(root, ref, "model", "the models directory");
  }
  return openModelDir(dir, ref, label);
}

/** Reads a model directory (config.json + safetensors) wherever it is; callers decide what paths to allow. */
export function openModelDir(dir: string, ref = dir, label?: string): ResolvedModel {
  if (!existsSync(path.join(dir, "config.json"))) throw new Error(`model "${ref}" not found: no config.json in ${dir}`);
  let config: MoeLlmConfig;
  try {
    config = zMoeLlmConfig.parse(JSON.parse(readFileSync(path.join(dir, "config.json"), "utf8")));
  } catch (err) {
    const why = err instanceof z.ZodError ? err.issues.map((i) => `${i.path.join(".") || "(top)"}: ${i.message}`).join("; ") : (err as Error).message;
    throw new Error(`model "${ref}": config.json is not a valid MoE-LLM config (${why})`);
  }
  const files = readdirSync(dir).filter((f) => f === "config.json" || f === "import.json" || f.endsWith(".safetensors"));
  const quantization = isImportedDir(dir) ? readManifest(dir)?.quant : undefined;
  return { ref, dir, config, contentHash: hashModelFiles(dir, files), label, ...(quantization ? { quantization } : {}) };
}

/** Builds (once, cached on disk by content hash) the ONNX graph of a model with the given options. */
export function graphFile(model: ResolvedModel, options: MoeGraphOptions): string {
  if (isImportedDir(model.dir)) return importedGraphFile(model.dir, model.config, options);
  return cachedGraph(model, { hash: model.contentHash, options, v: GRAPH_BUILDER_VERSION }, (weights) => buildMoeLlmGraph(model.config, weights, options));
}

/** A graph built from the model's weights, cached in `<models dir>/.graphs` under a hash of `key`. */
function cachedGraph(model: ResolvedModel, key: unknown, build: (weights: SafetensorsWeights) => Uint8Array): string {
  return cachedGraphFile(key, () => {
    const weights = new SafetensorsWeights(model.dir);
    try {
      return build(weights);
    } finally {
      weights.close();
    }
  });
}

/** The logit-lens head graph of a model (models/moe-llm/logit-lens.ts), cached like its decoder graphs. */
export function lensHeadFile(model: ResolvedModel): string {
  if (isImportedDir(model.dir)) return importedLensHeadFile(model.dir, model.config);
  return cachedGraph(model, { hash: model.contentHash, lensHead: LENS_TOP_K, v: GRAPH_BUILDER_VERSION, lens: LENS_HEAD_VERSION }, (weights) => buildLensHeadGraph(model.config, weights));
}

/** The logit lens of N traced tokens from their per-layer residual states (a `lens` decoder graph's hidden_{i}). */
export async function logitLens(model: ResolvedModel, runtime: Runtime, hidden: readonly Float32Array[], N: number): Promise<LogitLens> {
  const file = lensHeadFile(model);
  if (isImportedDir(model.dir)) {
    // external data: loaded from its path, outside the pool, like the imported decoder (withMoeLlm)
    const handle = await importedSession(model.ref, file, (compute) => estimateLensHead(model.config, compute, model.quantization));
    return runLogitLens(handle.session, model.config, hidden, N);
  }
  return runtime.withSession(file, undefined, (handle) => runLogitLens(handle.session, model.config, hidden, N));
}

export interface LoadedModel {
  model: ResolvedModel;
  runner: MoeLlmRunner;
  handle: SessionHandle;
  tokenizer: Tokenizer;
}

/**
 * Routed-expert parameters (all MoE layers) up to which a dense decode twin pays (the form for attention with windows
 * or sinks): its dense dispatch computes every routed expert for the one new token, so its cost grows with them, while
 * what it saves (the sparse dispatch's shape ops) is per node. uni-moe-tiny `tiny` has 3.1 M (twin faster), `small`
 * 88 M (docs/benchmarks.md). The decode-step twin runs its experts through the MoE operator and has no such limit.
 */
export const DECODE_TWIN_MAX_ROUTED_PARAMS = 16_000_000;

/**
 * The decode twin's graph options for a CPU session of `options`, or undefined when decode steps stay on the same
 * graph: the twin is the fused graph with dense dispatch, in its device-resident form where that fits (no int64 shape
 * arithmetic, lengths as inputs: 4–8 % faster on the CPU, same logits bit for bit) and, for attention without windows or
 * sinks, in its decode-step form (KV cache read in place, no present outputs for onnxruntime-node to copy back; the
 * routed experts through ONNX Runtime's MoE operator, which runs only the chosen ones), used for one-token steps of one
 * sequence (MoeLlmRunner.withDecodeTwin), when the prefill graph is the fused sparse one with a KV cache, the provider is the
 * CPU, the routed experts are small enough where the twin is dense (DECODE_TWIN_MAX_ROUTED_PARAMS) and STUDIO_DECODE_TWIN
 * is not `off`. The second session holds a second copy of the weights.
 */
export function decodeTwinOptions(c: MoeLlmConfig, options: MoeGraphOptions, provider: string): MoeGraphOptions | undefined {
  if (provider !== "cpu" || !options.kvCache || options.moe !== "sparse" || options.unfused || options.gpu) return undefined;
  if (studioConfig().STUDIO_DECODE_TWIN === "off") return undefined;
  const dense: MoeGraphOptions = { ...options, moe: "dense" };
  // the decode-step form with the MoE operator runs only the experts a token chose: it pays at any size
  if (deviceGraphFits(c, dense) && decodeStepAttentionFits(c) && expertsOpFits(c)) return { ...dense, gpu: true, decodeStep: true, expertsOp: true };
  const p = parameterCounts(c);
  if (p.layers * c.mlp_dynamic_expert_num * p.perRoutedExpert > DECODE_TWIN_MAX_ROUTED_PARAMS) return undefined;
  return deviceGraphFits(c, dense) ? { ...dense, gpu: true } : dense;
}

/**
 * The batch window (engine/batch/window.ts) whose padded forwards this record's MoE-LLM forwards join, inside a dataset
 * batch. None for token_drop models (they cannot pad: one at a time) nor on WebGPU (ONNX Runtime 1.30's
 * GroupQueryAttention aborts the process on a prefill of more than one sequence there).
 */
export function batchWindowFor(model: ResolvedModel, provider: string): BatchWindow | undefined {
  return model.config.token_drop || provider === "webgpu" ? undefined : currentBatchWindow();
}

/** A runner whose session comes from the engine's pool (loaded once, reused across runs). */
export async function withMoeLlm<T>(model: ResolvedModel, asked: MoeGraphOptions, runtime: Runtime, fn: (loaded: LoadedModel) => Promise<T>): Promise<T> {
  const provider = await runtime.resolveExecutionProvider();
  // on WebGPU the seeded models run the device-resident graph (every node on the GPU, no Memcpy node inside); imported
  // models keep the graph their import wrote (a variant is built from the source checkpoint, which may be gone)
  const device = isImportedDir(model.dir) ? asked : deviceGraphOptions(model.config, asked, provider);
  // inside a dataset batch the runner coalesces this record's forwards with its batch-mates' into padded forwards, so
  // it needs the graph with an attention mask
  const window = batchWindowFor(model, provider);
  const options = window ? { ...device, padding: true } : device;
  const file = graphFile(model, options);
  const builderVersion = isImportedDir(model.dir) ? importedGraphBuilderVersion(model.dir, file) : GRAPH_BUILDER_VERSION;
  const runner = (session: LoadedModel["handle"]["session"]) => MoeLlmRunner.fromSession(model.config, options, session, undefined, { window, builderVersion });
  // not inside a dataset batch: its decode steps are padded forwards of several records, which stay on one graph
  const twin = isImportedDir(model.dir) || window ? undefined : decodeTwinOptions(model.config, options, provider);
  if (twin) {
    const twinFile = graphFile(model, twin);
    return runtime.withSession(file, undefined, (handle) =>
      runtime.withSession(twinFile, undefined, (twinHandle) =>
        fn({ model, handle, runner: runner(handle.session).withDecodeTwin(MoeLlmRunner.fromSession(model.config, twin, twinHandle.session)), tokenizer: loadTokenizer(model.dir) }),
      ),
    );
  }
  if (isImportedDir(model.dir)) {
    // external-data graphs load from their path, outside the pool (see models/import/runtime.ts)
    const quant = model.quantization;
    const handle = await importedSession(model.ref, file, quant ? (compute) => estimateFromConfig(model.config, 4096, compute, quant) : model.config);
    return fn({ model, handle, runner: runner(handle.session), tokenizer: loadTokenizer(model.dir) });
  }
  return runtime.withSession(file, undefined, (handle) => fn({ model, handle, runner: runner(handle.session), tokenizer: loadTokenizer(model.dir) }));
}

const embeddingTables = new Map<string, Float32Array>();

/** The token embedding table [vocab × hidden] of a model (read once per content hash). */
export function embeddingTable(model: ResolvedModel): Float32Array {
  let table = embeddingTables.get(model.contentHash);
  if (!table && isImportedDir(model.dir)) {
    table = importedEmbeddingTable(model.dir);
    embeddingTables.set(model.contentHash, table);
  }
  if (!table) {
    const weights = new SafetensorsWeights(model.dir);
    try {
      table = weights.get("model.embed_tokens.weight").data;
    } finally {
      weights.close();
    }
    embeddingTables.set(model.contentHash, table);
  }
  return table;
}

/** Input embeddings for a prompt: token embeddings, with the media rows placed at their positions. */
export function promptEmbeddings(model: ResolvedModel, ids: number[], media: { at: Int32Array; rows: Float32Array; dim: number }): { prompt: Float32Array; token: (id: number) => Float32Array } {
  const H = model.config.hidden_size;
  if (media.dim !== H) throw new Error(`media rows have ${media.dim} columns but ${model.ref} has hidden size ${H}`);
  const table = embeddingTable(model);
  const token = (id: number) => table.slice(id * H, (id + 1) * H);
  const prompt = new Float32Array(ids.length * H);
  ids.forEach((id, i) => prompt.set(table.subarray(id * H, (id + 1) * H), i * H));
  media.at.forEach((pos, r) => prompt.set(media.rows.subarray(r * H, (r + 1) * H), pos * H));
  return { prompt, token };
}
