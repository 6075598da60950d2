/**
 * WavTokenizer checkpoints on disk: importing one (the released `wavtokenizer_large_unify_600_24k.ckpt` + its yaml,
 * as in the Omni `speech_gen/` folder or novateur/WavTokenizer-large-unify-40token; or a safetensors export) into
 *   <models dir>/wavtokenizer/<name>/  config.json (zWavTokenizerConfig), codec.safetensors (decode-path tensors only,
 *                                      fp32), import.json (source, content hash, parameters)
 * and running it: the graph (66 M parameters inline, under protobuf's 2 GB) is cached in <models dir>/.graphs by
 * content hash and runs on the engine's session pool. Only the decode path is read from the checkpoint; the EnCodec
 * encoder, discriminators and optimizer state are left unread.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { parse as parseYaml } from "yaml";
import type { Runtime } from "@/engine/runtime/types";
import { resolveInside } from "@/engine/paths";
import { buildWavTokenizerGraph, checkWavTokenizerConfig, wavConfigFromShapes, wavParamTable, WavTokenizerRunner, WAVTOKENIZER_MODEL_TYPE, zWavTokenizerConfig, type WavTokenizerConfig } from "./codec-wavtokenizer";
import { TorchCheckpoint } from "../import/torch-zip";
import { hashFilesWithProgress, hashModelFiles } from "../io/model-dir";
import { SafetensorsWeights, writeSafetensors } from "../io/safetensors";
import { modelsDir } from "@/engine/config";
import type { WeightSource } from "../io/weights";
import { cachedGraphFile } from "../onnx/graph-cache";

export const CODEC_FAMILY = "wavtokenizer";
const CODEC_FILE = "codec.safetensors";
const CODEC_GRAPH_VERSION = 1;

/** The checkpoint file of a WavTokenizer folder: a *.ckpt (torch zip), else a *.safetensors with the codebook. */
export function wavTokenizerSource(dir: string): { file: string; kind: "ckpt" | "safetensors"; yaml?: string } | undefined {
  let files: string[];
  try {
    files = readdirSync(dir).sort();
  } catch {
    return undefined;
  }
  const yaml = files.find((f) => /\.ya?ml$/.test(f) && /wavtokenizer/i.test(f)) ?? files.find((f) => /\.ya?ml$/.test(f));
  const ckpt = files.find((f) => f.endsWith(".ckpt"));
  if (ckpt) return { file: path.join(dir, ckpt), kind: "ckpt", ...(yaml ? { yaml: path.join(dir, yaml) } : {}) };
  const st = files.find((f) => /wavtokenizer/i.test(f) && f.endsWith(".safetensors"));
  if (st) return { file: path.join(dir, st), kind: "safetensors", ...(yaml ? { yaml: path.join(dir, yaml) } : {}) };
  return undefined;
}

/** hop_length / sample_rate / padding from WavTokenizer's yaml (model.init_args.{sample_rate, head.init_args}). */
function readYaml(file: string): { hop_length?: number; sample_rate?: number; padding?: string } {
  const doc = parseYaml(readFileSync(file, "utf8")) as { model?: { init_args?: { sample_rate?: number; head?: { init_args?: { hop_length?: number; padding?: string } } } } } | null;
  const args = doc?.model?.init_args;
  return { hop_length: args?.head?.init_args?.hop_length, sample_rate: args?.sample_rate, padding: args?.head?.init_args?.padding };
}

function openSource(src: { file: string; kind: "ckpt" | "safetensors" }): WeightSource & { close(): void; info(n: string): { shape: number[] } } {
  return src.kind === "ckpt" ? new TorchCheckpoint(src.file) : new SafetensorsWeights(src.file);
}

export interface CodecInspection {
  config: WavTokenizerConfig;
  source: string;
  tensors: number;
  /** Tensors of the checkpoint the decoder does not use (encoder, discriminators, …), counted. */
  unused: number;
  missing: string[];
}

/** Reads a WavTokenizer folder's headers (and the pickle) without loading tensor data. */
export function inspectWavTokenizer(dir: string): CodecInspection {
  const src = wavTokenizerSource(dir);
  if (!src) throw new Error(`${dir}: no WavTokenizer checkpoint (*.ckpt or *wavtokenizer*.safetensors)`);
  const w = openSource(src);
  try {
    const config = wavConfigFromShapes((n) => (w.has(n) ? w.info(n).shape : undefined), src.yaml ? readYaml(src.yaml) : undefined);
    const needed = new Set(wavParamTable(config).map((p) => p.name));
    return { config, source: src.file, tensors: w.names().length, unused: w.names().filter((n) => !needed.has(n)).length, missing: [...needed].filter((n) => !w.has(n)) };
  } finally {
    w.close();
  }
}

export interface CodecImportResult {
  status: "imported" | "unchanged";
  ref: string;
  dir: string;
  config: WavTokenizerConfig;
  parameters: number;
}

/** Imports a WavTokenizer folder into <models dir>/wavtokenizer/<name>/ (decode path only, fp32). */
export async function importWavTokenizer(srcDir: string, opts: { name?: string; root?: string } = {}): Promise<CodecImportResult> {
  const src = wavTokenizerSource(path.resolve(srcDir));
  if (!src) throw new Error(`${srcDir}: no WavTokenizer checkpoint (*.ckpt or *wavtokenizer*.safetensors)`);
  const name = opts.name ?? (path.basename(path.resolve(srcDir)).replace(/[^A-Za-z0-9._-]+/g, "-").replace(/^[^A-Za-z0-9]+/, "") || "codec");
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/.test(name)) throw new Error(`codec name "${name}" may use letters, digits, ".", "_" and "-" only`);
  const dest = path.join(opts.root ?? modelsDir(), CODEC_FAMILY, name);
  const ref = `${CODEC_FAMILY}/${name}`;
  const files = [src.file, ...(src.yaml ? [src.yaml] : [])].map((f) => path.basename(f));
  const sourceHash = hashFilesWithProgress(path.dirname(src.file), files);
  const manifestFile = path.join(dest, "import.json");
  const inspection = inspectWavTokenizer(path.dirname(src.file));
  if (inspection.missing.length) throw new Error(`${srcDir}: the WavTokenizer checkpoint lacks ${inspection.missing.length} decoder tensor(s): ${inspection.missing.slice(0, 10).join(", ")}`);
  const parameters = wavParamTable(inspection.config).reduce((a, p) => a + p.shape.reduce((x, y) => x * y, 1), 0);
  if (existsSync(manifestFile) && (JSON.parse(readFileSync(manifestFile, "utf8")) as { sourceHash?: string }).sourceHash === sourceHash) return { status: "unchanged", ref, dir: dest, config: inspection.config, parameters };
  const tmp = `${dest}.partial-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  const w = openSource(src);
  try {
    await writeSafetensors(path.join(tmp, CODEC_FILE), wavParamTable(inspection.config).map((p) => ({ name: p.name, shape: p.shape, data: () => w.get(p.name).data })), { metadata: { format: "pt", source: path.basename(src.file) } });
  } finally {
    w.close();
  }
  writeFileSync(path.join(tmp, "config.json"), JSON.stringify(inspection.config, null, 2));
  writeFileSync(path.join(tmp, "import.json"), JSON.stringify({ kind: "codec", family: CODEC_FAMILY, name, sourceDir: path.resolve(srcDir), sourceFiles: files, sourceHash, parameters, unused: inspection.unused, importedAt: new Date().toISOString() }, null, 2));
  rmSync(dest, { recursive: true, force: true });
  renameSync(tmp, dest);
  return { status: "imported", ref, dir: dest, config: inspection.config, parameters };
}

export interface ResolvedCodec {
  ref: string;
  dir: string;
  config: WavTokenizerConfig;
  contentHash: string;
}

export function isCodecDir(dir: string): boolean {
  try {
    return (JSON.parse(readFileSync(path.join(dir, "config.json"), "utf8")) as { model_type?: unknown }).model_type === WAVTOKENIZER_MODEL_TYPE && existsSync(path.join(dir, CODEC_FILE));
  } catch {
    return false;
  }
}

/** An imported codec by ref ("wavtokenizer/<name>"), inside the models dir. */
export function resolveCodec(ref: string): ResolvedCodec {
  const dir = resolveInside(modelsDir(), ref, "codec", "the models directory");
  if (!isCodecDir(dir)) throw new Error(`codec "${ref}" not found: import a WavTokenizer checkpoint on the Models page (or cli import <folder>)`);
  const config = checkWavTokenizerConfig(zWavTokenizerConfig.parse(JSON.parse(readFileSync(path.join(dir, "config.json"), "utf8"))));
  return { ref, dir, config, contentHash: hashModelFiles(dir, ["config.json", CODEC_FILE]) };
}

/** Imported codecs (refs). */
export function listCodecs(): string[] {
  const fam = path.join(modelsDir(), CODEC_FAMILY);
  if (!existsSync(fam)) return [];
  return readdirSync(fam, { withFileTypes: true })
    .filter((e) => e.isDirectory() && !e.name.startsWith(".") && isCodecDir(path.join(fam, e.name)))
    .map((e) => `${CODEC_FAMILY}/${e.name}`);
}

/** The codec's graph, cached by content hash. */
export function codecGraphFile(codec: ResolvedCodec): string {
  return cachedGraphFile({ kind: "wavtokenizer", hash: codec.contentHash, v: CODEC_GRAPH_VERSION }, () => {
    const w = new SafetensorsWeights(path.join(codec.dir, CODEC_FILE));
    try {
      return buildWavTokenizerGraph(codec.config, w);
    } finally {
      w.close();
    }
  });
}

/** A runner on a pooled session, pinned while `fn` runs. */
export function withCodec<T>(codec: ResolvedCodec, runtime: Runtime, fn: (r: WavTokenizerRunner) => Promise<T>): Promise<T> {
  return runtime.withSession(codecGraphFile(codec), undefined, (h) => fn(new WavTokenizerRunner(codec.config, h.session)));
}
