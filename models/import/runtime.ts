/**
 * Running imported models: their graphs keep the weights as external data, which ONNX Runtime resolves next to
 * the .onnx file only when the session is created from the file's path (a model loaded from bytes may not read
 * files). So imported models get their sessions here, from the path, one per graph file, reused across runs;
 * each records the execution provider it runs on, the dtype it computes in and the memory it took.
 * Compute dtype: fp16 on CUDA and on WebGPU adapters with shader-f16, fp32 on CPU (STUDIO_COMPUTE_DTYPE=fp32|fp16 overrides); an fp16 session runs
 * the fp16 compute graph built beside the graph file on first use (fp16.ts), with the same inputs and outputs.
 * On WebGPU the session loads the graph's WebGPU variant (webgpu-graph.ts: GroupQueryAttention off its flash path).
 */
import { createHash, randomBytes } from "node:crypto";
import { existsSync, mkdirSync, openSync, readFileSync, readSync, closeSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import * as ort from "onnxruntime-node";
import { onnx } from "onnx-proto";
import { parseEpPreference, SESSION_CONFIG_ENTRIES } from "@/engine/runtime/providers";
import { chooseProviders } from "@/engine/runtime/select";
import type { ExecutionProvider, SessionHandle } from "@/engine/runtime/types";
import type { MoeLlmConfig } from "../moe-llm/config";
import { buildLensHeadGraph, LENS_HEAD_VERSION, LENS_TOP_K } from "../moe-llm/logit-lens";
import { buildMoeLlmGraph, GRAPH_BUILDER_VERSION, type MoeGraphOptions } from "../moe-llm/moe-llm-graph";
import type { WeightSource } from "../io/weights";
import { sourceHash } from "./hf-cache";
import { bf16BitsToF32, f16BitsToF32, SafetensorsWeights } from "../io/safetensors";
import { mapCheckpoint, MappedWeights } from "./checkpoint";
import { ExternalDataGraphBuilder, readExternalBytes } from "./external-graph";
import { DATA_FILE, GRAPH_FILE, IMPORT_GRAPH, readManifest } from "./import";
import { computeDtypeFor, ensureFp16Graph, parseComputeDtype, type ComputeDtype } from "./fp16";
import { ensureWebGpuGraph } from "./webgpu-graph";
import { checkFits, estimateFromConfig, type MemoryEstimate } from "./memory";
import { optionsOf } from "../onnx/quantize";
import { quantizeGraphFile } from "./quantize-file";
import { KeyedCache } from "../io/keyed-cache";

export function isImportedDir(dir: string): boolean {
  return existsSync(path.join(dir, "import.json"));
}

const precisionOf = (o: MoeGraphOptions) => o.routingPrecision ?? "fp32";
const sameOptions = (a: MoeGraphOptions, b: MoeGraphOptions) => a.moe === b.moe && a.trace === b.trace && a.kvCache === b.kvCache && !!a.embeds === !!b.embeds && !!a.lens === !!b.lens && precisionOf(a) === precisionOf(b) && !!a.unfused === !!b.unfused && !!a.padding === !!b.padding;

/**
 * The graph file of an imported model for these options: the one written at import, or a variant built on first
 * use from the source checkpoint (still in the folder it was imported from, with the same content hash).
 */
export function importedGraphFile(dir: string, config: MoeLlmConfig, options: MoeGraphOptions): string {
  const manifest = readManifest(dir)!;
  // model.onnx has the options its manifest records (imports before routing precisions: IMPORT_GRAPH, fp32 routing)
  if (sameOptions(options, manifest.graph.options ?? IMPORT_GRAPH)) return path.join(dir, GRAPH_FILE);
  const variant0 = { moe: options.moe, trace: options.trace, kvCache: options.kvCache, embeds: !!options.embeds, ...(options.lens ? { lens: true } : {}), ...(options.unfused ? { unfused: true } : {}), ...(options.padding ? { padding: true } : {}) };
  return variantFile(dir, precisionOf(options) === "fp32" ? variant0 : { ...variant0, routingPrecision: precisionOf(options) }, "variant", (weights, builder) => buildMoeLlmGraph(config, weights, options, builder));
}

/** The GRAPH_BUILDER_VERSION a graph was built with, when neither the manifest nor the variant recorded it. */
const UNRECORDED_BUILDER_VERSION = 4;
/** Beside a variant's model.onnx: { builderVersion } (variants built before it was written have none). */
const VARIANT_BUILD_FILE = "build.json";

/**
 * The GRAPH_BUILDER_VERSION of an imported model's decoder graph file (importedGraphFile's): an import's graph and its
 * variants were built by the code of their day, and keep its input conventions (e.g. top_p: MoeLlmRunner.topPFeed).
 */
export function importedGraphBuilderVersion(dir: string, file: string): number {
  if (path.resolve(file) === path.resolve(dir, GRAPH_FILE)) return readManifest(dir)!.graph.builderVersion ?? UNRECORDED_BUILDER_VERSION;
  const build = path.join(path.dirname(file), VARIANT_BUILD_FILE);
  return existsSync(build) ? (JSON.parse(readFileSync(build, "utf8")) as { builderVersion: number }).builderVersion : UNRECORDED_BUILDER_VERSION;
}

/** The logit-lens head of an imported model (models/moe-llm/logit-lens.ts), a variant built like the decoder's. */
export function importedLensHeadFile(dir: string, config: MoeLlmConfig): string {
  return variantFile(dir, { lensHead: LENS_TOP_K, v: LENS_HEAD_VERSION }, "logit_lens_head", (weights, builder) => buildLensHeadGraph(config, weights, LENS_TOP_K, builder));
}

/**
 * `<dir>/variants/<hash of key>/model.onnx`: built once from the source checkpoint (refused when it is gone or
 * changed), its weights as external data in the import's storage dtype, quantised like the import, and renamed into
 * place only when complete.
 */
function variantFile(dir: string, key: unknown, name: string, build: (weights: WeightSource, builder: ExternalDataGraphBuilder) => Uint8Array): string {
  const manifest = readManifest(dir)!;
  const hash = createHash("sha256").update(JSON.stringify(key)).digest("hex").slice(0, 16);
  const variant = path.join(dir, "variants", hash);
  const file = path.join(variant, GRAPH_FILE);
  if (existsSync(file)) return file;
  const src = manifest.sourceDir;
  if (!existsSync(src)) throw new Error(`this graph variant is built from the checkpoint the model was imported from, and ${src} is gone; import it again`);
  if (sourceHash(src, manifest.sourceFiles) !== manifest.sourceHash) throw new Error(`the checkpoint in ${src} changed since it was imported; import it again`);
  const tmp = path.join(dir, "variants", `.${hash}.tmp-${process.pid}-${randomBytes(4).toString("hex")}`);
  mkdirSync(tmp, { recursive: true });
  const weights = new SafetensorsWeights(src);
  const builder = new ExternalDataGraphBuilder(name, path.join(tmp, DATA_FILE), manifest.dtype);
  try {
    const map = mapCheckpoint(src, weights, manifest.family);
    writeFileSync(path.join(tmp, GRAPH_FILE), build(new MappedWeights(weights, map), builder));
    // a quantised import's variants are quantised the same way
    if (manifest.quant) quantizeGraphFile(path.join(tmp, GRAPH_FILE), path.join(tmp, GRAPH_FILE), optionsOf(manifest.quant));
    writeFileSync(path.join(tmp, VARIANT_BUILD_FILE), JSON.stringify({ builderVersion: GRAPH_BUILDER_VERSION }));
    renameSync(tmp, variant);
  } catch (e) {
    builder.abort();
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  } finally {
    weights.close();
  }
  return file;
}

export interface ImportedSession extends SessionHandle {
  /** Resident memory the session added when it was created (bytes; CPU provider). */
  memoryBytes: number;
  loadMs: number;
  /** The precision the graph computes in (matrix products; see fp16.ts for what stays fp32). */
  computeDtype: ComputeDtype;
  /** The graph file the session was created from (the fp16 compute graph for computeDtype fp16). */
  graphFile: string;
}

const sessions = new KeyedCache<string, ImportedSession>();

/** What a graph needs in memory for a compute dtype: an LLM's config, or an estimator (other heads). */
export type MemoryNeed = MoeLlmConfig | ((compute: ComputeDtype) => MemoryEstimate);

async function createSession(ref: string, file: string, need: MemoryNeed): Promise<ImportedSession> {
  const { order } = await chooseProviders(parseEpPreference());
  parseComputeDtype(); // a bad STUDIO_COMPUTE_DTYPE fails here, not as a provider fallback
  let lastError: unknown;
  for (const ep of order) {
    let converting = false;
    try {
      const computeDtype = computeDtypeFor(ep);
      checkFits(ref, typeof need === "function" ? need(computeDtype) : estimateFromConfig(need, 4096, computeDtype), ep);
      converting = computeDtype === "fp16";
      const computeFile = converting ? await ensureFp16Graph(file) : file;
      converting = false;
      const graphFile = ep === "webgpu" ? ensureWebGpuGraph(computeFile) : computeFile;
      const rss0 = process.memoryUsage().rss;
      const t0 = performance.now();
      const session = await ort.InferenceSession.create(graphFile, { executionProviders: [ep], graphOptimizationLevel: "all", logSeverityLevel: 3, extra: SESSION_CONFIG_ENTRIES });
      return { session, executionProvider: ep, key: `${graphFile}|${ep}`, memoryBytes: Math.max(0, process.memoryUsage().rss - rss0), loadMs: performance.now() - t0, computeDtype, graphFile };
    } catch (e) {
      lastError = e;
      // a graph that cannot be converted is not a provider problem: say so rather than fall back to another provider
      if (converting) throw new Error(`cannot load model "${ref}" in fp16: ${(e as Error).message}`);
      if (/needs about .* to run/.test((e as Error).message) && ep === order[order.length - 1]) throw e;
    }
  }
  throw new Error(`cannot load model "${ref}": ${(lastError as Error).message}`);
}

/** The (cached) session of an imported model's graph file. */
export function importedSession(ref: string, file: string, need: MemoryNeed): Promise<ImportedSession> {
  // one session per graph file and STUDIO_COMPUTE_DTYPE setting (keys start with the file: see loadedSessions)
  return sessions.get(`${file}|${parseComputeDtype() ?? ""}`, () => createSession(ref, file, need));
}

/** Provider, compute dtype and memory of the loaded sessions of a model dir (for the Models page). */
export async function loadedSessions(dir: string): Promise<{ file: string; provider: ExecutionProvider; computeDtype: ComputeDtype; memoryBytes: number; loadMs: number }[]> {
  const out = [];
  for (const [key, p] of sessions.list()) {
    if (!key.startsWith(dir + path.sep)) continue;
    const s = await p.catch(() => undefined);
    if (s) out.push({ file: path.relative(dir, s.graphFile), provider: s.executionProvider, computeDtype: s.computeDtype, memoryBytes: s.memoryBytes, loadMs: s.loadMs });
  }
  return out;
}

/** Releases the sessions of a model dir (before it is deleted or re-imported). */
export async function releaseSessions(dir: string): Promise<void> {
  for (const [key, p] of sessions.list()) {
    if (!key.startsWith(dir + path.sep)) continue;
    sessions.delete(key);
    const s = await p.catch(() => undefined);
    await s?.session.release();
  }
}

/** The token embedding table [V × H] of an imported model, read from the graph's external data (fp32). */
export function importedEmbeddingTable(dir: string): Float32Array {
  const model = onnx.ModelProto.decode(readFileSync(path.join(dir, GRAPH_FILE)));
  const t = model.graph?.initializer?.find((x) => x.name === "model.embed_tokens.weight");
  if (!t) throw new Error(`${dir}: the graph has no model.embed_tokens.weight`);
  const bytes = readExternalBytes(dir, t);
  const length = bytes.length;
  const T = onnx.TensorProto.DataType;
  if (t.dataType === T.FLOAT) return new Float32Array(bytes.buffer, bytes.byteOffset, length / 4).slice();
  const u16 = new Uint16Array(bytes.buffer, bytes.byteOffset, length / 2);
  const conv = t.dataType === T.FLOAT16 ? f16BitsToF32 : bf16BitsToF32;
  return Float32Array.from(u16, (h) => conv(h));
}
