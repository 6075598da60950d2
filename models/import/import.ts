/**
 * Import of a user's checkpoint folder into the models dir:
 *   <models dir>/<family>/<name>/{config.json (canonical), import.json (manifest), model.onnx, model.onnx.data, tokenizer files}
 *   (+ vision/ and audio/ with vision.onnx / audio.onnx + .data when the checkpoint carries encoder towers, see families/towers.ts)
 * The graph is written with its weights as ONNX external data, one tensor at a time (memory stays bounded by the
 * largest tensor, not the model). The build happens in a hidden `.<name>.tmp-<pid>-…` folder renamed into place
 * at the end; an interrupted import leaves only that folder, which the next import removes. Importing the same
 * files again (same content hash, dtype and builder version) does nothing.
 */
import { randomBytes } from "node:crypto";
import { copyFileSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import path from "node:path";
import type { MoeLlmConfig } from "../config";
import { moeDims, moeLlmParamShapes, buildMoeLlmGraph, type MoeGraphOptions } from "../moe-llm-graph";
import { hashFilesWithProgress, removeStaleBuilds } from "../model-dir";
import { SafetensorsWeights } from "../safetensors";
import { modelsDir } from "../uni-moe-tiny";
import { paramNames } from "../config";
import { buildAudioGraph } from "../audio-encoder";
import { buildVisionGraph, gridSide } from "../vision-encoder";
import { TowerWeights, towerParameters, type TowerConfig } from "../families/towers";
import { assertComplete, checkpointFiles, mapCheckpoint, MappedWeights, type CheckpointMap } from "./checkpoint";
import { ExternalDataGraphBuilder, type StorageDtype } from "./external-graph";

/** Bumped whenever an import's output changes for the same input. */
export const IMPORT_VERSION = 2;
export const MANIFEST_FILE = "import.json";
export const GRAPH_FILE = "model.onnx";
export const DATA_FILE = "model.onnx.data";
/** The graph written at import: what the MoE-LLM node runs (other option sets are built on demand, see variants.ts). */
export const IMPORT_GRAPH: MoeGraphOptions = { moe: "sparse", trace: true, kvCache: true };
const TOKENIZER_FILES = ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json"];

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
  activeParameters: number;
  bytesOnDisk: number;
  graph: { file: string; data: string; options: MoeGraphOptions };
  unclaimed: string[];
  /**
   * Encoder towers imported with the LLM: each a folder `<kind>/` beside model.onnx holding `<kind>.onnx` +
   * `<kind>.onnx.data` and a config.json, selectable in the Vision/Audio Encoder nodes as `<ref>/<kind>`.
   */
  towers?: { kind: string; ref: string; parameters: number }[];
  importedAt: string;
  seconds: number;
}

export interface ImportProgress {
  phase: "hashing" | "writing" | "done";
  /** hashing: checkpoint bytes read of all its files; writing/done: graph data bytes written of the expected total */
  bytes: number;
  totalBytes: number;
  /** Seconds left at the current rate (undefined until some bytes are written). */
  etaSeconds?: number;
  tensor?: string;
}

export interface ImportOptions {
  name?: string;
  dtype?: StorageDtype;
  onProgress?: (p: ImportProgress) => void;
  /** Where models live (default: the studio's models dir). */
  root?: string;
  /** Read the checkpoint as this family whatever its model_type says (see inspect-checkpoint --family). */
  family?: string;
}

export interface ImportResult {
  status: "imported" | "unchanged";
  ref: string;
  dir: string;
  manifest: ImportManifest;
  unclaimed: string[];
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;

function defaultName(srcDir: string): string {
  const base = path.basename(path.resolve(srcDir)).replace(/[^A-Za-z0-9._-]+/g, "-").replace(/^[^A-Za-z0-9]+/, "");
  return base || "model";
}

/** Parameters in total and per token (every non-expert weight, top_k routed experts and the shared experts). */
export function parameterCounts(config: MoeLlmConfig): { total: number; active: number } {
  const shapes = moeLlmParamShapes(config);
  const numel = (s: number[]) => s.reduce((a, b) => a * b, 1);
  let total = 0;
  for (const s of shapes.values()) total += numel(s);
  const { R, L } = moeDims(config);
  const perExpert = numel(shapes.get(paramNames.routed(0, 0, "gate"))!) * 3;
  const active = total - L * R * perExpert + L * Math.min(R, config.mlp_dynamic_top_k) * perExpert;
  return { total, active };
}

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
  const name = opts.name ?? defaultName(srcDir);
  if (!NAME.test(name)) throw new Error(`model name "${name}" may use letters, digits, ".", "_" and "-" only (up to 100)`);

  const weights = new SafetensorsWeights(srcDir);
  try {
    const map = mapCheckpoint(srcDir, weights, opts.family);
    assertComplete(map, srcDirIn);
    const root = opts.root ?? modelsDir();
    const familyDir = path.join(root, map.family.name);
    const dest = path.join(familyDir, name);
    const ref = `${map.family.name}/${name}`;
    const files = checkpointFiles(srcDir);
    const shapes = moeLlmParamShapes(map.config);
    const bytesPer = dtype === "fp32" ? 4 : 2;
    const llmBytes = [...shapes.values()].reduce((a, s) => a + s.reduce((x, y) => x * y, 1) * bytesPer, 0);
    const totalBytes = llmBytes + map.towers.reduce((a, t) => a + towerParameters(t) * bytesPer, 0);
    const h0 = performance.now();
    const sourceHash = hashFilesWithProgress(srcDir, files, (read, total) => {
      const rate = read / Math.max((performance.now() - h0) / 1000, 1e-3);
      opts.onProgress?.({ phase: "hashing", bytes: read, totalBytes: total, etaSeconds: read > 0 ? (total - read) / rate : undefined });
    });
    const existing = existsSync(dest) ? readManifest(dest) : undefined;
    if (existing && existing.sourceHash === sourceHash && existing.dtype === dtype && existing.version === IMPORT_VERSION && existsSync(path.join(dest, DATA_FILE))) {
      opts.onProgress?.({ phase: "done", bytes: totalBytes, totalBytes });
      return { status: "unchanged", ref, dir: dest, manifest: existing, unclaimed: existing.unclaimed };
    }

    mkdirSync(familyDir, { recursive: true });
    removeStaleBuilds(familyDir, name);
    const tmp = path.join(familyDir, `.${name}.tmp-${process.pid}-${randomBytes(4).toString("hex")}`);
    mkdirSync(tmp);
    const t0 = performance.now();
    const builder = new ExternalDataGraphBuilder(`${map.family.name}_decoder`, path.join(tmp, DATA_FILE), dtype, (bytes) => {
      const secs = (performance.now() - t0) / 1000;
      const rate = bytes / Math.max(secs, 1e-3);
      opts.onProgress?.({ phase: "writing", bytes, totalBytes, etaSeconds: bytes > 0 ? Math.max(0, (totalBytes - bytes) / rate) : undefined });
    });
    try {
      const mapped = new MappedWeights(weights, map);
      const graph = buildMoeLlmGraph(map.config, mapped, IMPORT_GRAPH, builder);
      writeFileSync(path.join(tmp, GRAPH_FILE), graph);
      let towerBytes = 0;
      for (const tower of map.towers) {
        const written = writeTower(tmp, tower, new TowerWeights(mapped, tower), dtype, (bytes) => {
          const done = builder.bytesWritten + towerBytes + bytes;
          const rate = done / Math.max((performance.now() - t0) / 1000, 1e-3);
          opts.onProgress?.({ phase: "writing", bytes: done, totalBytes, etaSeconds: Math.max(0, (totalBytes - done) / rate) });
        });
        towerBytes += written;
      }
      writeFileSync(path.join(tmp, "config.json"), JSON.stringify(map.config, null, 2));
      for (const f of TOKENIZER_FILES) if (existsSync(path.join(srcDir, f))) copyFileSync(path.join(srcDir, f), path.join(tmp, f));
      const counts = parameterCounts(map.config);
      const manifest: ImportManifest = {
        version: IMPORT_VERSION,
        family: map.family.name,
        modelType: String(map.config.model_type),
        name,
        sourceDir: srcDir,
        sourceHash,
        sourceFiles: files,
        dtype,
        parameters: counts.total,
        activeParameters: counts.active,
        bytesOnDisk: statSync(path.join(tmp, DATA_FILE)).size + graph.byteLength + towerBytes,
        graph: { file: GRAPH_FILE, data: DATA_FILE, options: IMPORT_GRAPH },
        unclaimed: map.unclaimed.map((t) => t.name),
        ...(map.towers.length ? { towers: map.towers.map((t) => ({ kind: t.kind, ref: `${ref}/${t.kind}`, parameters: towerParameters(t) })) } : {}),
        importedAt: new Date().toISOString(),
        seconds: (performance.now() - t0) / 1000,
      };
      writeFileSync(path.join(tmp, MANIFEST_FILE), JSON.stringify(manifest, null, 2));
      if (existsSync(dest)) {
        const old = path.join(familyDir, `.${name}.old-${process.pid}-${randomBytes(4).toString("hex")}`);
        renameSync(dest, old);
        renameSync(tmp, dest);
        rmSync(old, { recursive: true, force: true });
      } else {
        renameSync(tmp, dest);
      }
      opts.onProgress?.({ phase: "done", bytes: totalBytes, totalBytes });
      return { status: "imported", ref, dir: dest, manifest, unclaimed: manifest.unclaimed };
    } catch (e) {
      builder.abort();
      rmSync(tmp, { recursive: true, force: true });
      throw e;
    }
  } finally {
    weights.close();
  }
}

/**
 * Writes one encoder tower into `<model dir>/<kind>/`: its graph with external data (as the LLM's) and a
 * config.json that models/encoders-tiny.ts resolves as a ready ONNX export (zVisionOnnxConfig /
 * zAudioOnnxConfig fields, plus the full encoder config for reference). Returns the bytes written.
 */
function writeTower(modelDir: string, tower: TowerConfig, weights: TowerWeights, dtype: StorageDtype, onWrite: (bytes: number) => void): number {
  const dir = path.join(modelDir, tower.kind);
  mkdirSync(dir);
  const onnxFile = `${tower.kind}.onnx`;
  const builder = new ExternalDataGraphBuilder(tower.kind === "vision" ? "siglip_vision" : "whisper_qformer", path.join(dir, `${onnxFile}.data`), dtype, onWrite);
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
  return builder.bytesWritten + bytes.byteLength;
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
