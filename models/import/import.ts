/**
 * Import of a user's checkpoint folder into the models dir:
 *   <models dir>/<family>/<name>/{config.json (canonical), import.json (manifest), model.onnx, model.onnx.data, tokenizer files}
 *   (+ vision/ and audio/ with vision.onnx / audio.onnx + .data when the checkpoint carries encoder towers, see families/towers.ts)
 * The graph is written with its weights as ONNX external data, one tensor at a time (memory stays bounded by the
 * largest tensor, not the model). The build happens in a hidden `.<name>.partial-<key>` folder (key: name, source
 * content hash, dtype, family, IMPORT_VERSION; see resume.ts) renamed into place at the end. An interrupted import
 * (Ctrl-C, kill, crash) leaves that folder with a journal per data file; the next import of the same files resumes
 * there, skipping the tensors already written (external-graph.ts), and an import of anything else removes it.
 * `.<name>.lock` keeps two imports of one model apart. Importing the same files again (same content hash, dtype
 * and builder version) does nothing.
 */
import { randomBytes } from "node:crypto";
import { copyFileSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import path from "node:path";
import type { MoeLlmConfig } from "../moe-llm/config";
import { moeDims, moeLlmParamShapes, buildMoeLlmGraph, GRAPH_BUILDER_VERSION, type MoeGraphOptions } from "../moe-llm/moe-llm-graph";
import { defaultRoutingPrecision } from "../moe-llm/grin-routing";
import { removeStaleBuilds } from "../io/model-dir";
import { snapshotOf, sourceHash as checkpointSourceHash } from "./hf-cache";
import { SafetensorsWeights } from "../io/safetensors";
import { modelsDir } from "@/engine/config";
import { parameterCounts } from "../moe-llm/parameters";
import { buildAudioGraph } from "../encoders/audio-encoder";
import { buildVisionGraph, gridSide } from "../encoders/vision-encoder";
import { TowerWeights, towerParameters, type TowerConfig } from "../families/towers";
import type { PartReport } from "../families/parts";
import { assertComplete, checkpointFiles, mapCheckpoint, MappedWeights, TOKENIZER_FILES, type CheckpointMap } from "./checkpoint";
import { ExternalDataGraphBuilder, journalFile, recoverJournal, ResumeMismatchError, type RecoveredJournal, type StorageDtype } from "./external-graph";
import { ensureFp16Graph } from "./fp16";
import { acquireImportLock, partialDir, removeOtherPartials, SkipWrittenWeights } from "./resume";
import { writeSafetensors } from "../io/safetensors";
import { optionsOf, quantKey, resolveQuant, type QuantChoice, type QuantizeGraphOptions, type QuantSummary } from "../onnx/quantize";
import { quantizeGraphFile } from "./quantize-file";
import { SPEECH_CANONICAL, speechParameters, speechParamTable, type SpeechGenConfig } from "../tts/tts-released";

/** Bumped whenever an import's output changes for the same input. */
export const IMPORT_VERSION = 5;
export const MANIFEST_FILE = "import.json";
export const GRAPH_FILE = "model.onnx";
export const DATA_FILE = "model.onnx.data";
/** The graph written at import: what the MoE-LLM node runs (other option sets are built on demand, see runtime.ts). */
export const IMPORT_GRAPH: MoeGraphOptions = { moe: "sparse", trace: true, kvCache: true };
/** IMPORT_GRAPH in the model's default routing precision (bf16 for Uni-MoE-2.0, as released). */
export const importGraphOptions = (config: MoeLlmConfig): MoeGraphOptions => ({ ...IMPORT_GRAPH, routingPrecision: defaultRoutingPrecision(config) });

export interface ImportManifest {
  version: number;
  family: string;
  modelType: string;
  name: string;
  sourceDir: string;
  sourceHash: string;
  sourceFiles: string[];
  dtype: StorageDtype;
  parameters: number;
  /** Active per token: a number (imports before routing precisions: top_k routed experts) or the min–max range. */
  activeParameters: number | { min: number; max: number };
  bytesOnDisk: number;
  /** builderVersion: the GRAPH_BUILDER_VERSION model.onnx was built with (absent: written before it was recorded, 4). */
  graph: { file: string; data: string; options: MoeGraphOptions; builderVersion?: number };
  /** Weight-only quantisation of the LLM graph (absent: full precision). The towers and the MoE-TTS are not quantised. */
  quant?: QuantSummary;
  unclaimed: string[];
  /** Every part of the checkpoint and what the import did with it (absent in manifests before parts were listed). */
  parts?: PartReport[];
  /** config.json fields MoE Studio does not read, with what they are. */
  unusedConfig?: { key: string; note: string }[];
  /**
   * Encoder towers imported with the LLM: each a folder `<kind>/` beside model.onnx holding `<kind>.onnx` +
   * `<kind>.onnx.data` and a config.json, selectable in the Vision/Audio Encoder nodes as `<ref>/<kind>`.
   */
  towers?: { kind: string; ref: string; parameters: number }[];
  /** The MoE-TTS imported with the LLM (`speech/`: config.json + speech.safetensors), selectable in the MoE-TTS node as `<ref>/speech`. */
  speech?: { ref: string; parameters: number };
  importedAt: string;
  seconds: number;
}

export interface ImportProgress {
  phase: "hashing" | "writing" | "quantising" | "done";
  /** hashing: checkpoint bytes read of all its files; writing/done: graph data bytes written of the expected total; quantising: graph data bytes processed */
  bytes: number;
  totalBytes: number;
  /** Seconds left at the current rate (undefined until some bytes are written). */
  etaSeconds?: number;
  tensor?: string;
  /** writing/done: bytes an interrupted import of the same files had already written (the build resumed there; 0: fresh). */
  resumedBytes?: number;
}

export interface ImportOptions {
  name?: string;
  dtype?: StorageDtype;
  onProgress?: (p: ImportProgress) => void;
  /** Where models live (default: the studio's models dir). */
  root?: string;
  /** Read the checkpoint as this family whatever its model_type says (see inspect-checkpoint --family). */
  family?: string;
  /** Weight-only int8/int4 quantisation of the LLM's matrices (models/onnx/quantize.ts). */
  quant?: QuantChoice;
}

export interface ImportResult {
  status: "imported" | "unchanged";
  ref: string;
  dir: string;
  manifest: ImportManifest;
  unclaimed: string[];
  /** status "imported": what this run did. */
  build?: BuildStats;
}

export interface BuildStats {
  /** Graph data bytes (and tensors) found written by an interrupted import of the same files and kept. */
  resumedBytes: number;
  resumedTensors: number;
  /** Journaled tensors at the end of the interrupted build whose bytes were missing or wrong (written again). */
  tornTensors: number;
  /** Tensor bytes written to the data files by this run. */
  writtenBytes: number;
  /** Checkpoint tensor bytes read by this run (the hash phase, which reads every file, not counted). */
  sourceBytesRead: number;
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;

/** The folder's name; for a Hugging Face cache snapshot, the repo's name (not the commit hash). */
function defaultName(srcDir: string): string {
  const snapshot = snapshotOf(srcDir);
  const base = (snapshot ? snapshot.repoId.split("/")[1]! : path.basename(path.resolve(srcDir))).replace(/[^A-Za-z0-9._-]+/g, "-").replace(/^[^A-Za-z0-9]+/, "");
  return base || "model";
}

export { parameterCounts, type ParameterCounts } from "../moe-llm/parameters";

export function readManifest(dir: string): ImportManifest | undefined {
  const file = path.join(dir, MANIFEST_FILE);
  if (!existsSync(file)) return undefined;
  return JSON.parse(readFileSync(file, "utf8")) as ImportManifest;
}

/** Reads and checks a checkpoint without writing anything (what `inspect-checkpoint` prints). */
export function inspectCheckpoint(srcDir: string, familyName?: string): CheckpointMap {
  const weights = new SafetensorsWeights(srcDir);
  try {
    return mapCheckpoint(srcDir, weights, familyName);
  } finally {
    weights.close();
  }
}

export async function importCheckpoint(srcDirIn: string, opts: ImportOptions = {}): Promise<ImportResult> {
  const srcDir = path.resolve(srcDirIn);
  if (!existsSync(srcDir) || !statSync(srcDir).isDirectory()) throw new Error(`${srcDirIn}: no such checkpoint folder`);
  const dtype = opts.dtype ?? "fp32";
  if (!["fp32", "fp16", "bf16"].includes(dtype)) throw new Error(`--dtype must be fp32, fp16 or bf16 (got "${dtype}")`);
  const quant = opts.quant ? resolveQuant(opts.quant) : undefined;
  const name = opts.name ?? defaultName(srcDir);
  if (!NAME.test(name)) throw new Error(`model name "${name}" may use letters, digits, ".", "_" and "-" only (up to 100)`);

  const weights = new SafetensorsWeights(srcDir);
  try {
    const map = mapCheckpoint(srcDir, weights, opts.family);
    assertComplete(map, srcDirIn);
    const root = opts.root ?? modelsDir();
    const familyDir = path.join(/*turbopackIgnore: true*/ root, map.family.name);
    const dest = path.join(/*turbopackIgnore: true*/ familyDir, name);
    const ref = `${map.family.name}/${name}`;
    const files = checkpointFiles(srcDir);
    const shapes = moeLlmParamShapes(map.config);
    const bytesPer = dtype === "fp32" ? 4 : 2;
    const llmBytes = [...shapes.values()].reduce((a, s) => a + s.reduce((x, y) => x * y, 1) * bytesPer, 0);
    const totalBytes = llmBytes + map.towers.reduce((a, t) => a + towerParameters(t) * bytesPer, 0) + (map.speech ? speechParameters(map.speech).total * bytesPer : 0);
    mkdirSync(familyDir, { recursive: true });
    const lock = acquireImportLock(path.join(familyDir, `.${name}.lock`), ref);
    try {
      // the content hash re-reads every checkpoint file (its own "hashing" phase): it names the build to resume
      const h0 = performance.now();
      const sourceHash = checkpointSourceHash(srcDir, files, (read, total) => {
        const rate = read / Math.max((performance.now() - h0) / 1000, 1e-3);
        opts.onProgress?.({ phase: "hashing", bytes: read, totalBytes: total, etaSeconds: read > 0 ? (total - read) / rate : undefined });
      });
      const partial = partialDir(familyDir, name, { sourceHash, dtype, family: map.family.name, version: IMPORT_VERSION, ...(quant ? { quant: quantKey(quant) } : {}) });
      removeStaleBuilds(familyDir, name);
      removeOtherPartials(familyDir, name, partial);
      const existing = existsSync(/*turbopackIgnore: true*/ dest) ? readManifest(dest) : undefined;
      const sameQuant = quantKey(existing?.quant && optionsOf(existing.quant)) === quantKey(quant);
      if (existing && existing.sourceHash === sourceHash && existing.dtype === dtype && sameQuant && existing.version === IMPORT_VERSION && existsSync(path.join(dest, DATA_FILE))) {
        opts.onProgress?.({ phase: "done", bytes: totalBytes, totalBytes });
        return { status: "unchanged", ref, dir: dest, manifest: existing, unclaimed: existing.unclaimed };
      }
      return await buildModel({ srcDir, name, ref, dest, partial, map, weights, dtype, quant, sourceHash, files, totalBytes, onProgress: opts.onProgress });
    } finally {
      lock.release();
    }
  } finally {
    weights.close();
  }
}

const gb = (b: number) => (b >= 1e9 ? `${(b / 1e9).toFixed(2)} GB` : `${(b / 1e6).toFixed(1)} MB`);

interface BuildJob {
  srcDir: string;
  name: string;
  ref: string;
  dest: string;
  /** The build folder (resumed if it exists). */
  partial: string;
  map: CheckpointMap;
  weights: SafetensorsWeights;
  dtype: StorageDtype;
  quant?: QuantizeGraphOptions;
  sourceHash: string;
  files: string[];
  totalBytes: number;
  onProgress?: (p: ImportProgress) => void;
}

const towerDataFile = (modelDir: string, kind: string) => path.join(modelDir, kind, `${kind}.onnx.data`);

/** Writes the model into `job.partial` (resuming what an interrupted build left there), then moves it to `job.dest`. */
async function buildModel(job: BuildJob): Promise<ImportResult> {
  const { map, partial, dtype, totalBytes, ref, name } = job;
  const dataFiles = [path.join(partial, DATA_FILE), ...map.towers.map((t) => towerDataFile(partial, t.kind))];
  const resuming = existsSync(partial);
  const recovered = new Map<string, RecoveredJournal>(dataFiles.map((f) => [f, resuming ? recoverJournal(f) : { entries: [], bytes: 0, torn: 0 }]));
  mkdirSync(partial, { recursive: true });
  const kept = [...recovered.values()];
  const resumedBytes = kept.reduce((a, r) => a + r.bytes, 0);
  const t0 = performance.now();
  const report = (bytes: number) => {
    const rate = (bytes - resumedBytes) / Math.max((performance.now() - t0) / 1000, 1e-3);
    job.onProgress?.({ phase: "writing", bytes, totalBytes, etaSeconds: bytes > resumedBytes ? Math.max(0, (totalBytes - bytes) / rate) : undefined, resumedBytes });
  };
  report(resumedBytes);
  const source = new SkipWrittenWeights(new MappedWeights(job.weights, map));
  const builder = new ExternalDataGraphBuilder(`${map.family.name}_decoder`, dataFiles[0]!, dtype, report, recovered.get(dataFiles[0]!)!.entries);
  source.builder = builder;
  let writtenBytes = 0;
  try {
    const graph = buildMoeLlmGraph(map.config, source, importGraphOptions(map.config), builder);
    writeFileSync(path.join(partial, GRAPH_FILE), graph);
    writtenBytes += builder.newBytes;
    let towerBytes = 0;
    for (const [j, tower] of map.towers.entries()) {
      const before = builder.bytesWritten + towerBytes;
      const written = writeTower(partial, tower, source, dtype, (bytes) => report(before + bytes), recovered.get(dataFiles[j + 1]!)!);
      towerBytes += written.bytes;
      writtenBytes += written.newBytes;
    }
    for (const f of dataFiles) rmSync(journalFile(f), { force: true });
    // quantised in place: model.onnx(.data) are replaced by the quantised graph and its data (not resumable: an
    // interruption here makes the next import build the graph again)
    const quant = job.quant
      ? quantizeGraphFile(path.join(partial, GRAPH_FILE), path.join(partial, GRAPH_FILE), job.quant, (p) => job.onProgress?.({ phase: "quantising", bytes: p.bytes, totalBytes: p.totalBytes, tensor: p.tensor }))
      : undefined;
    const graphBytes = statSync(path.join(partial, GRAPH_FILE)).size;
    const speechBytes = map.speech ? await writeSpeech(partial, map.speech, new MappedWeights(job.weights, map), dtype, (bytes) => report(builder.bytesWritten + towerBytes + bytes)) : 0;
    // fp16 storage: the fp16 compute graphs (CUDA) read the same data files, so they cost only the graph protos: write them now
    if (dtype === "fp16") for (const g of [path.join(partial, GRAPH_FILE), ...map.towers.map((t) => path.join(partial, t.kind, `${t.kind}.onnx`))]) await ensureFp16Graph(g);
    writeFileSync(path.join(partial, "config.json"), JSON.stringify(map.config, null, 2));
    for (const f of TOKENIZER_FILES) if (existsSync(path.join(job.srcDir, f))) copyFileSync(path.join(job.srcDir, f), path.join(partial, f));
    const counts = parameterCounts(map.config);
    const manifest: ImportManifest = {
      version: IMPORT_VERSION,
      family: map.family.name,
      modelType: String(map.config.model_type),
      name,
      sourceDir: job.srcDir,
      sourceHash: job.sourceHash,
      sourceFiles: job.files,
      dtype,
      parameters: counts.total,
      activeParameters: counts.active,
      bytesOnDisk: statSync(path.join(partial, DATA_FILE)).size + graphBytes + towerBytes + speechBytes,
      graph: { file: GRAPH_FILE, data: DATA_FILE, options: importGraphOptions(map.config), builderVersion: GRAPH_BUILDER_VERSION },
      ...(quant ? { quant } : {}),
      unclaimed: map.unclaimed.map((t) => t.name),
      parts: map.parts,
      unusedConfig: map.unusedConfig,
      ...(map.towers.length ? { towers: map.towers.map((t) => ({ kind: t.kind, ref: `${ref}/${t.kind}`, parameters: towerParameters(t) })) } : {}),
      ...(map.speech ? { speech: { ref: `${ref}/speech`, parameters: speechParameters(map.speech).total } } : {}),
      importedAt: new Date().toISOString(),
      seconds: (performance.now() - t0) / 1000,
    };
    writeFileSync(path.join(partial, MANIFEST_FILE), JSON.stringify(manifest, null, 2));
    const familyDir = path.dirname(job.dest);
    if (existsSync(job.dest)) {
      const old = path.join(familyDir, `.${name}.old-${process.pid}-${randomBytes(4).toString("hex")}`);
      renameSync(job.dest, old);
      renameSync(partial, job.dest);
      rmSync(old, { recursive: true, force: true });
    } else {
      renameSync(partial, job.dest);
    }
    job.onProgress?.({ phase: "done", bytes: totalBytes, totalBytes, resumedBytes });
    const build: BuildStats = {
      resumedBytes,
      resumedTensors: kept.reduce((a, r) => a + r.entries.length, 0),
      tornTensors: kept.reduce((a, r) => a + r.torn, 0),
      writtenBytes,
      sourceBytesRead: job.weights.bytesRead,
    };
    return { status: "imported", ref, dir: job.dest, manifest, unclaimed: manifest.unclaimed, build };
  } catch (e) {
    builder.abort();
    if (e instanceof ResumeMismatchError) {
      rmSync(partial, { recursive: true, force: true });
      throw new Error(`${e.message}: the interrupted build was removed; run the import again`);
    }
    const onDisk = dataFiles.reduce((a, f) => a + (existsSync(f) ? statSync(f).size : 0), 0);
    if (onDisk > 0 && e instanceof Error) e.message += ` (the ${gb(onDisk)} written so far are kept in ${partial}; importing these files again resumes there)`;
    throw e;
  }
}

/**
 * Writes one encoder tower into `<model dir>/<kind>/`: its graph with external data (as the LLM's) and a
 * config.json that models/encoders/encoders-tiny.ts resolves as a ready ONNX export (zVisionOnnxConfig /
 * zAudioOnnxConfig fields, plus the full encoder config for reference). `resumed`: what an interrupted build of this
 * tower left (recoverJournal). Returns the tower's bytes (data + graph) and the data bytes this run wrote.
 */
function writeTower(
  modelDir: string,
  tower: TowerConfig,
  source: SkipWrittenWeights,
  dtype: StorageDtype,
  onWrite: (bytes: number) => void,
  resumed: RecoveredJournal,
): { bytes: number; newBytes: number } {
  const dir = path.join(modelDir, tower.kind);
  mkdirSync(dir, { recursive: true });
  const onnxFile = `${tower.kind}.onnx`;
  const builder = new ExternalDataGraphBuilder(tower.kind === "vision" ? "siglip_vision" : "whisper_qformer", towerDataFile(modelDir, tower.kind), dtype, onWrite, resumed.entries);
  source.builder = builder;
  const weights = new TowerWeights(source, tower);
  let bytes: Uint8Array;
  try {
    bytes = tower.kind === "vision" ? buildVisionGraph(tower.config, weights, builder) : buildAudioGraph(tower.config, weights, builder);
  } catch (e) {
    builder.abort();
    throw e;
  }
  writeFileSync(path.join(dir, onnxFile), bytes);
  const c = tower.config;
  const onnxConfig =
    tower.kind === "vision"
      ? { image_size: tower.config.image_size, patch_size: tower.config.patch_size, grid: gridSide(tower.config), out_dim: c.out_dim, pool: tower.config.pool, input_name: "pixel_values" }
      : { num_mel_bins: tower.config.num_mel_bins, max_source_positions: tower.config.max_source_positions, num_queries: tower.config.num_queries, out_dim: c.out_dim, input_name: "input_features" };
  writeFileSync(path.join(dir, "config.json"), JSON.stringify({ ...c, ...onnxConfig, onnx_file: onnxFile, storage_dtype: dtype }, null, 2));
  return { bytes: builder.bytesWritten + bytes.byteLength, newBytes: builder.newBytes };
}

/**
 * Writes the MoE-TTS of an Omni checkpoint into `<model dir>/speech/`: config.json (zSpeechGenConfig + storage_dtype)
 * and speech.safetensors (its tensors without the prefix, in the import's dtype); graphs are built from them on first
 * use (models/tts/tts-released-model.ts). Returns the bytes written.
 */
async function writeSpeech(modelDir: string, config: SpeechGenConfig, weights: MappedWeights, dtype: StorageDtype, onWrite: (bytes: number) => void): Promise<number> {
  const dir = path.join(modelDir, "speech");
  mkdirSync(dir, { recursive: true });
  const stored = ({ fp32: "F32", fp16: "F16", bf16: "BF16" } as const)[dtype];
  const entries = speechParamTable(config).map((p) => ({ name: p.name, shape: p.shape, data: () => weights.get(SPEECH_CANONICAL + p.name).data }));
  const { bytes } = await writeSafetensors(path.join(dir, "speech.safetensors"), entries, { dtype: stored, metadata: { format: "pt" }, onProgress: (written) => onWrite(written) });
  writeFileSync(path.join(dir, "config.json"), JSON.stringify({ ...config, storage_dtype: dtype }, null, 2));
  return bytes;
}

/** Removes an imported model's folder (never a seeded reference model or anything outside the models dir). */
export function deleteImportedModel(ref: string, root = modelsDir()): void {
  const dir = path.resolve(root, ref);
  if (!dir.startsWith(root + path.sep) || ref.split("/").length !== 2) throw new Error(`"${ref}" is not a model in the models directory`);
  if (!readManifest(dir)) throw new Error(`"${ref}" is not an imported model (only imported models can be deleted here)`);
  const trash = path.join(path.dirname(dir), `.${path.basename(dir)}.old-${process.pid}-${randomBytes(4).toString("hex")}`);
  renameSync(dir, trash);
  rmSync(trash, { recursive: true, force: true });
}
