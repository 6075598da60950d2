/**
 * The released MoE-TTS on disk and its sessions.
 *   imported   <models dir>/<family>/<name>/speech/ (with an Omni import; ref "<family>/<name>/speech") or
 *              <models dir>/uni_moe_tts/<name>/ (the standalone Uni-MoE-TTS): config.json (zSpeechGenConfig) +
 *              speech.safetensors (the speech_generator.* tensors without the prefix, in the import's dtype)
 *   checkpoint a raw Omni checkpoint folder (config.json + safetensors with speech_generator.*), for `cli tts-forward`
 * Graph variants (kvCache × dropout) are built on first use with their weights as ONNX external data (the real model
 * is 1.6 B parameters: past protobuf's 2 GB) in <speech dir>/graphs/<key>/ (checkpoint folders: <models dir>/.graphs),
 * and run from their path (models/import/runtime.ts importedSession), one session per file.
 */
import { createHash, randomBytes } from "node:crypto";
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { resolveInside } from "@/engine/paths";
import { PrefixedWeights } from "../dit/dit-tiny";
import type { ComputeDtype } from "../import/fp16";
import { ExternalDataGraphBuilder, type StorageDtype } from "../import/external-graph";
import { importedSession } from "../import/runtime";
import { hashModelFiles } from "../io/model-dir";
import { SafetensorsWeights } from "../io/safetensors";
import { loadTokenizer } from "../text/tokenizer-json";
import type { Tokenizer } from "../text/tokenizer";
import { buildSpeechGraph, checkSpeechGenConfig, speechConfigFromOmni, speechConfigFromShapes, speechDims, speechParameters, speechParamTable, SPEECH_MODEL_TYPE, zSpeechGenConfig, type SpeechGenConfig, type SpeechGraphOptions } from "./tts-released";
import { TorchCheckpoint } from "../import/torch-zip";
import { writeSafetensors } from "../io/safetensors";
import { SpeechRunner } from "./tts-released-run";
import { modelsDir } from "@/engine/config";
import type { WeightSource } from "../io/weights";
import { graphsDir } from "../onnx/graph-cache";

/** Bumped whenever buildSpeechGraph's output changes (graph cache keys include it). */
const SPEECH_GRAPH_VERSION = 1;
export const SPEECH_WEIGHTS_FILE = "speech.safetensors";
export const SPEECH_PREFIX = "speech_generator.";

export interface ResolvedSpeech {
  ref: string;
  dir: string;
  config: SpeechGenConfig;
  contentHash: string;
  dtype: StorageDtype;
  /** Where graph variants are cached. */
  graphDir: string;
  /** The speech generator's tensors (names without the prefix); close() when done. */
  openWeights(): WeightSource & { close(): void };
  /** The folder whose tokenizer wrote the text ids (the Omni LLM's), if any. */
  tokenizerDir?: string;
}

/** True for a folder holding an imported released MoE-TTS. */
export function isSpeechDir(dir: string): boolean {
  try {
    return (JSON.parse(readFileSync(path.join(dir, "config.json"), "utf8")) as { model_type?: unknown }).model_type === SPEECH_MODEL_TYPE && existsSync(path.join(dir, SPEECH_WEIGHTS_FILE));
  } catch {
    return false;
  }
}

function prefixed(weights: SafetensorsWeights, prefix: string): WeightSource & { close(): void } {
  const view = new PrefixedWeights(weights, prefix);
  return { names: () => view.names(), has: (n) => view.has(n), get: (n) => view.get(n), close: () => weights.close() };
}

/** An imported speech generator folder (config.json + speech.safetensors). */
export function openSpeechDir(dir: string, ref = dir): ResolvedSpeech {
  if (!isSpeechDir(dir)) throw new Error(`"${ref}" is not an imported MoE-TTS (no ${SPEECH_MODEL_TYPE} config.json with ${SPEECH_WEIGHTS_FILE} in ${dir})`);
  const raw = JSON.parse(readFileSync(path.join(dir, "config.json"), "utf8")) as Record<string, unknown>;
  const config = checkSpeechGenConfig(zSpeechGenConfig.parse(raw));
  const parent = path.dirname(dir);
  return {
    ref,
    dir,
    config,
    contentHash: hashModelFiles(dir, ["config.json", SPEECH_WEIGHTS_FILE]),
    dtype: (raw.storage_dtype as StorageDtype | undefined) ?? "fp32",
    graphDir: path.join(dir, "graphs"),
    openWeights: () => prefixed(new SafetensorsWeights(path.join(dir, SPEECH_WEIGHTS_FILE)), ""),
    tokenizerDir: existsSync(path.join(dir, "tokenizer.json")) ? dir : existsSync(path.join(parent, "config.json")) && path.basename(dir) === "speech" ? parent : undefined,
  };
}

/** A raw Omni checkpoint folder: its config.json's speech generator fields and speech_generator.* safetensors. */
export function openOmniCheckpointSpeech(dir: string): ResolvedSpeech {
  const cfgFile = path.join(dir, "config.json");
  if (!existsSync(cfgFile)) throw new Error(`${dir}: no config.json`);
  const raw = JSON.parse(readFileSync(cfgFile, "utf8")) as Record<string, unknown>;
  const weights = new SafetensorsWeights(dir);
  let config: SpeechGenConfig;
  try {
    const table = `${SPEECH_PREFIX}qwenvl_embed_tokens.weight`;
    if (!weights.has(table)) throw new Error(`${dir}: the checkpoint has no ${SPEECH_PREFIX}* tensors (no speech generator)`);
    config = speechConfigFromOmni(raw, weights.info(table).shape);
  } finally {
    weights.close();
  }
  const files = readdirSync(dir).filter((f) => f === "config.json" || f.endsWith(".safetensors") || f === "model.safetensors.index.json");
  const contentHash = hashModelFiles(dir, files);
  return {
    ref: dir,
    dir,
    config,
    contentHash,
    dtype: "fp32",
    graphDir: path.join(graphsDir(), `speech-${contentHash.slice(0, 24)}`),
    openWeights: () => prefixed(new SafetensorsWeights(dir), SPEECH_PREFIX),
    tokenizerDir: dir,
  };
}

/**
 * A TTS model reference: "<family>/<name>/speech" (imported with an Omni checkpoint) or "uni_moe_tts/<name>"
 * (standalone), inside the models dir. Returns undefined when the ref is not a released MoE-TTS (e.g. the seeded
 * uni-moe-tiny/tts).
 */
export function resolveSpeechRef(ref: string): ResolvedSpeech | undefined {
  const dir = resolveInside(modelsDir(), ref, "model", "the models directory");
  return isSpeechDir(dir) ? openSpeechDir(dir, ref) : undefined;
}

/** Imported released MoE-TTS refs under the models dir (for the Models page and the node's model list). */
export function listSpeechModels(): string[] {
  const root = modelsDir();
  const found: string[] = [];
  if (!existsSync(root)) return found;
  for (const family of readdirSync(root, { withFileTypes: true })) {
    if (!family.isDirectory() || family.name.startsWith(".")) continue;
    for (const m of readdirSync(path.join(root, family.name), { withFileTypes: true })) {
      if (!m.isDirectory() || m.name.startsWith(".")) continue;
      const base = path.join(root, family.name, m.name);
      if (isSpeechDir(base)) found.push(`${family.name}/${m.name}`);
      else if (isSpeechDir(path.join(base, "speech"))) found.push(`${family.name}/${m.name}/speech`);
    }
  }
  return found;
}

/** The graph file of a variant (built on first use, atomically). */
export function speechGraphFile(model: ResolvedSpeech, options: SpeechGraphOptions): string {
  const key = createHash("sha256").update(JSON.stringify({ hash: model.contentHash, kvCache: options.kvCache, dropout: options.dropout, v: SPEECH_GRAPH_VERSION })).digest("hex").slice(0, 16);
  const dir = path.join(model.graphDir, key);
  const file = path.join(dir, "speech.onnx");
  if (existsSync(file)) return file;
  mkdirSync(model.graphDir, { recursive: true });
  const tmp = path.join(model.graphDir, `.${key}.tmp-${process.pid}-${randomBytes(4).toString("hex")}`);
  mkdirSync(tmp);
  const weights = model.openWeights();
  const builder = new ExternalDataGraphBuilder("uni_moe_tts_released", path.join(tmp, "speech.onnx.data"), model.dtype);
  try {
    writeFileSync(path.join(tmp, "speech.onnx"), buildSpeechGraph(model.config, weights, options, builder));
    rmSync(path.join(tmp, "speech.onnx.data.journal"), { force: true });
    if (existsSync(dir)) rmSync(tmp, { recursive: true, force: true });
    else renameSync(tmp, dir);
  } catch (e) {
    builder.abort();
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  } finally {
    weights.close();
  }
  return file;
}

/** Memory to run: weights in the compute dtype + 15 % (no KV cache in release mode; small either way). */
function memoryNeed(c: SpeechGenConfig) {
  return (compute: ComputeDtype) => {
    const weights = speechParameters(c).total * (compute === "fp16" ? 2 : 4);
    return { bytes: Math.ceil(weights * 1.15), weights, kvCache: 0, explain: `weights ${(weights / 1e9).toFixed(2)} GB (${compute} compute) + 15 %` };
  };
}

/** A runner for a variant, on a session created from the graph's path (cached per file). */
export async function speechRunner(model: ResolvedSpeech, options: SpeechGraphOptions): Promise<SpeechRunner> {
  const file = speechGraphFile(model, options);
  const handle = await importedSession(model.ref, file, memoryNeed(model.config));
  return new SpeechRunner(model.config, options, handle.session);
}

/** The tokenizer the text ids belong to (the Omni LLM's), or undefined. */
export function speechTokenizer(model: ResolvedSpeech): Tokenizer | undefined {
  return model.tokenizerDir ? loadTokenizer(model.tokenizerDir) : undefined;
}

export { speechDims };

/** The standalone Uni-MoE-TTS's weights file in a folder (speech_gen_ep2.bin, a torch.save zip of speech_generator.*). */
export function standaloneSpeechFile(dir: string): string | undefined {
  try {
    const f = readdirSync(dir).find((x) => /^speech_gen.*\.(bin|pt|pth)$/.test(x));
    return f ? path.join(dir, f) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Imports the standalone Uni-MoE-TTS layout (speech_gen_ep2.bin; its config is hard-coded in load_moetts, sizes read
 * from the tensors, head size 64) into <models dir>/uni_moe_tts/<name>/, with the Qwen tokenizer of qwen_pp/ when there.
 */
export async function importStandaloneSpeech(srcDir: string, opts: { name?: string; root?: string } = {}): Promise<{ ref: string; dir: string; config: SpeechGenConfig }> {
  const file = standaloneSpeechFile(srcDir);
  if (!file) throw new Error(`${srcDir}: no speech_gen*.bin`);
  const name = opts.name ?? (path.basename(path.resolve(srcDir)).replace(/[^A-Za-z0-9._-]+/g, "-").replace(/^[^A-Za-z0-9]+/, "") || "tts");
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/.test(name)) throw new Error(`model name "${name}" may use letters, digits, ".", "_" and "-" only`);
  const ck = new TorchCheckpoint(file);
  try {
    const shapeOf = (n: string) => (ck.has(SPEECH_PREFIX + n) ? ck.info(SPEECH_PREFIX + n).shape : undefined);
    let layers = 0;
    while (shapeOf(`layers.${layers}.input_layernorm.weight`)) layers++;
    const config = speechConfigFromShapes(shapeOf, layers);
    const table = speechParamTable(config);
    const missing = table.filter((p) => !ck.has(SPEECH_PREFIX + p.name)).map((p) => SPEECH_PREFIX + p.name);
    if (missing.length) throw new Error(`${file} lacks ${missing.length} speech generator tensor(s): ${missing.slice(0, 10).join(", ")}`);
    const dest = path.join(opts.root ?? modelsDir(), "uni_moe_tts", name);
    const tmp = `${dest}.partial-${process.pid}`;
    rmSync(tmp, { recursive: true, force: true });
    mkdirSync(tmp, { recursive: true });
    await writeSafetensors(path.join(tmp, SPEECH_WEIGHTS_FILE), table.map((p) => ({ name: p.name, shape: p.shape, data: () => ck.get(SPEECH_PREFIX + p.name).data })), { metadata: { format: "pt", source: path.basename(file) } });
    writeFileSync(path.join(tmp, "config.json"), JSON.stringify({ ...config, storage_dtype: "fp32" }, null, 2));
    for (const f of ["tokenizer.json", "tokenizer_config.json"]) for (const from of [path.join(srcDir, "qwen_pp", f), path.join(srcDir, f)]) if (existsSync(from)) copyFileSync(from, path.join(tmp, f));
    rmSync(dest, { recursive: true, force: true });
    renameSync(tmp, dest);
    return { ref: `uni_moe_tts/${name}`, dir: dest, config };
  } finally {
    ck.close();
  }
}
