/**
 * CLI commands for real checkpoints (dispatched from cli.ts):
 *   import <checkpoint dir | org/name[@rev]> [--name N] [--dtype fp32|fp16|bf16] [--quant int8|int4 [--quant-block 16|32|64|128]
 *          [--quant-asym] [--quant-compute fp32|int8] [--quant-lm-head]] [--from DIR] [--list]
 *   inspect-checkpoint <checkpoint dir> [--json]
 */
import "./load-env";
import { importCheckpoint, inspectCheckpoint, parameterCounts, type ImportProgress } from "@/models/import/import";
import type { StorageDtype } from "@/models/import/external-graph";
import { estimateFromConfig, estimateMemory } from "@/models/import/memory";
import { conventionText } from "@/models/families/conventions";
import path from "node:path";
import { detectFamily, FAMILIES } from "@/models/families/table";
import { readConfigJson } from "@/models/import/checkpoint";
import type { PartReport } from "@/models/families/parts";
import { SafetensorsWeights } from "@/models/io/safetensors";
import { findCachedCheckpoint, hfCacheDir, listHfCache } from "@/models/import/hf-cache";
import { importWavTokenizer, inspectWavTokenizer, wavTokenizerSource } from "@/models/tts/codec-wavtokenizer-model";
import { importStandaloneSpeech, standaloneSpeechFile } from "@/models/tts/tts-released-model";
import { progressBar } from "@/engine/progress-bar";
import { existsSync } from "node:fs";
import { QUANT_BLOCK_SIZES, quantLabel, type QuantBlockSize, type QuantChoice } from "@/models/onnx/quantize";
import { parseCommand, UsageError, type CliCommand } from "./cli-args";

/** A folder with a WavTokenizer checkpoint and no config.json (the codec of the released MoE-TTS) imports as a codec. */
const isCodecFolder = (dir: string) => !existsSync(path.join(dir, "config.json")) && wavTokenizerSource(dir) !== undefined;

const IMPORT_HELP = `  import <checkpoint dir | org/name[@rev]>  Import a downloaded checkpoint (config.json + safetensors + tokenizer.json)
                                            into the models dir as an ONNX graph with external data. A repo id
                                            names a snapshot in the Hugging Face cache (see import --list). A folder
                                            with a WavTokenizer .ckpt (+ its yaml) and no config.json imports as a
                                            codec (wavtokenizer/<name>, the MoE-TTS's codec; the pickle is read, never
                                            run); one with speech_gen_ep2.bin as the standalone Uni-MoE-TTS
                                            (uni_moe_tts/<name>).
      --name N                                Model name (default: the folder's, or the repo's name); the model is <family>/N.
      --dtype fp32|fp16|bf16                  Stored weight type (default fp32; compute is fp32).
      --quant int8|int4                       Weight-only quantisation of the LLM's matrices (attention, experts, shared
                                            experts, dense MLPs) to ONNX Runtime's MatMulNBits; routers, norms,
                                            embeddings and the LM head stay in --dtype. Default: full precision.
      --quant-block 16|32|64|128              Quantisation block along the input dimension (default 32 for int4, 128 for int8).
      --quant-asym                            Asymmetric blocks (a zero point per block); default symmetric.
      --quant-compute fp32|int8               fp32: activations stay fp32 (default for int4); int8: MatMulNBits quantises
                                            them per block (default for int8: its only fast CPU kernel).
      --quant-lm-head                         Quantise the LM head too.
      --family F                              Read it as family F whatever its model_type (a variant we do not know).
      --from <dir>                            The checkpoint folder (the same as giving it first).
      --list                                  List the checkpoints in the Hugging Face cache (repo id, revision, files).
                                            Run again after an interruption (Ctrl-C, kill, crash): it resumes where it stopped.`;

const INSPECT_HELP = `  inspect-checkpoint <checkpoint dir>       List every tensor (name, shape, dtype) and the mapping rule that claimed
                                            it; report unclaimed and missing tensors. --json for machine output;
                                            --family F checks a checkpoint of an unknown model_type against F's table.`;

const IMPORT_OPTIONS = {
  name: { type: "string" },
  dtype: { type: "string" },
  quant: { type: "string" },
  "quant-block": { type: "string" },
  "quant-asym": { type: "boolean" },
  "quant-compute": { type: "string" },
  "quant-lm-head": { type: "boolean" },
  family: { type: "string" },
  from: { type: "string" },
  list: { type: "boolean" },
  // one JSON object per line (progress, then the result), for the Models page's import job
  json: { type: "boolean" },
} as const;

function parse(command: "import" | "inspect-checkpoint", argv: string[]) {
  const { values, positionals } = parseCommand(command, argv, command === "import" ? IMPORT_OPTIONS : { json: IMPORT_OPTIONS.json, family: IMPORT_OPTIONS.family });
  const v = values as { name?: string; dtype?: string; family?: string; from?: string; list?: boolean; json?: boolean } & QuantFlags;
  if (positionals.length > 1 || (v.from !== undefined && positionals.length > 0)) throw new UsageError(`unexpected argument "${positionals[v.from !== undefined ? 0 : 1]}"`);
  const dir = v.from ?? positionals[0];
  if (v.dtype !== undefined && !["fp32", "fp16", "bf16"].includes(v.dtype)) throw new UsageError(`--dtype must be fp32, fp16 or bf16 (got "${v.dtype}")`);
  return { dir, name: v.name, dtype: v.dtype as StorageDtype | undefined, json: v.json === true, family: v.family, list: v.list === true, quant: quantChoice(v) };
}

interface QuantFlags {
  quant?: string;
  "quant-block"?: string;
  "quant-asym"?: boolean;
  "quant-compute"?: string;
  "quant-lm-head"?: boolean;
}

/** --quant and its options → the import's QuantChoice (checked here so bad usage exits 2). */
function quantChoice(v: QuantFlags): QuantChoice | undefined {
  const extra = (["quant-block", "quant-asym", "quant-compute", "quant-lm-head"] as const).find((k) => v[k] !== undefined);
  if (v.quant === undefined) {
    if (extra) throw new UsageError(`--${extra} needs --quant int8|int4`);
    return undefined;
  }
  if (v.quant !== "int8" && v.quant !== "int4") throw new UsageError(`--quant must be int8 or int4 (got "${v.quant}")`);
  const block = v["quant-block"] === undefined ? undefined : Number(v["quant-block"]);
  if (block !== undefined && !QUANT_BLOCK_SIZES.includes(block as QuantBlockSize)) throw new UsageError(`--quant-block must be one of ${QUANT_BLOCK_SIZES.join(", ")} (got "${v["quant-block"]}")`);
  const compute = v["quant-compute"];
  if (compute !== undefined && compute !== "fp32" && compute !== "int8") throw new UsageError(`--quant-compute must be fp32 or int8 (got "${compute}")`);
  return { kind: v.quant, ...(block ? { blockSize: block as QuantBlockSize } : {}), ...(v["quant-asym"] ? { symmetric: false } : {}), ...(compute ? { compute } : {}), ...(v["quant-lm-head"] ? { lmHead: true } : {}) };
}

const gb = (b: number) => (b >= 1e9 ? `${(b / 1e9).toFixed(2)} GB` : `${(b / 1e6).toFixed(1)} MB`);
/** Active parameters per token: exact, or the range Top-P routing spans (the expectation needs a routing trace). */
const activeText = (a: number | { min: number; max: number }) =>
  typeof a === "number" || a.min === a.max ? count(typeof a === "number" ? a : a.min) : `${count(a.min)}–${count(a.max)} (Top-P: the routed experts per token vary; a routing trace gives the expectation)`;
const count = (n: number) => (n >= 1e9 ? `${(n / 1e9).toFixed(2)}B` : n >= 1e6 ? `${(n / 1e6).toFixed(2)}M` : `${n}`);

function importProgress(): (p: ImportProgress) => void {
  const hashing = progressBar({ prefix: "hashing", width: 30 });
  const writing = progressBar({ prefix: "writing", width: 30 });
  const quantising = progressBar({ prefix: "quantising", width: 30 });
  let resumeShown = false;
  let quantStarted = false;
  return (p) => {
    const eta = p.etaSeconds !== undefined && p.phase !== "done" ? `  ETA ${Math.ceil(p.etaSeconds)} s` : "";
    const frac = p.totalBytes > 0 ? p.bytes / p.totalBytes : 1;
    if (p.phase === "hashing") {
      hashing.update(frac, `${gb(p.bytes)} / ${gb(p.totalBytes)}${eta}`);
      if (p.bytes === p.totalBytes) hashing.done();
      return;
    }
    if (p.phase === "quantising") {
      if (!quantStarted) writing.done();
      quantStarted = true;
      quantising.update(frac, `${gb(p.bytes)} / ${gb(p.totalBytes)}`);
      if (p.bytes === p.totalBytes) quantising.done();
      return;
    }
    if (p.phase === "writing" && !resumeShown) {
      resumeShown = true;
      if (p.resumedBytes) writing.line(`resuming an interrupted import at ${gb(p.resumedBytes)} of ${gb(p.totalBytes)}`);
    }
    if (p.phase === "done" && quantStarted) return;
    writing.update(frac, `${gb(p.bytes)} / ${gb(p.totalBytes)}${eta}`);
    if (p.phase === "done") writing.done();
  };
}

/** `import --list`: the checkpoints in the Hugging Face cache. */
function listCache(): number {
  const root = hfCacheDir();
  const found = listHfCache(root);
  if (!found.length) {
    console.log(`no checkpoints in the Hugging Face cache (${root}; HF_HUB_CACHE or HF_HOME set it)`);
    return 0;
  }
  console.log(`Hugging Face cache ${root}:`);
  for (const c of found) {
    const state = c.missing.length ? `  INCOMPLETE (${c.missing.length} file(s) missing)` : "";
    console.log(`  ${c.repoId}@${c.revision.slice(0, 12)}${c.refs.length ? ` (${c.refs.join(", ")})` : ""}  ${c.modelType ?? "?"}  ${gb(c.bytes)}${state}`);
  }
  console.log("import one with: npm run cli -- import <org/name>[@revision]");
  return 0;
}

/** A folder as given, else a repo id ("org/name[@rev]") looked up in the Hugging Face cache. */
function checkpointDir(spec: string): string {
  if (existsSync(spec) || !/^[\w.-]+\/[\w.-]+(@[\w./-]+)?$/.test(spec)) return spec;
  const c = findCachedCheckpoint(spec);
  console.error(`${c.repoId}@${c.revision.slice(0, 12)} from the Hugging Face cache: ${c.dir}`);
  return c.dir;
}

function printParts(parts: readonly PartReport[]): void {
  console.log("parts:");
  for (const p of parts) console.log(`  ${p.title}: ${p.tensors} tensor(s), ${count(p.parameters)} params${p.unclaimed ? `, ${p.unclaimed} unclaimed` : ""} — ${p.what}`);
}

async function cmdImport(argv: string[]): Promise<number> {
  const a = parse("import", argv);
  if (a.list) return listCache();
  if (!a.dir) throw new UsageError("which checkpoint? give its folder (or --from <dir>), or a repo id from the Hugging Face cache: npm run cli -- import <dir | org/name>");
  const dir = checkpointDir(a.dir);
  if (!existsSync(path.join(dir, "config.json")) && standaloneSpeechFile(dir)) {
    // the standalone Uni-MoE-TTS folder: speech_gen_ep2.bin (+ its WavTokenizer beside it)
    const s = await importStandaloneSpeech(dir, { name: a.name });
    const codec = wavTokenizerSource(dir) ? await importWavTokenizer(dir, { name: a.name }) : undefined;
    if (a.json) console.log(JSON.stringify({ result: { status: "imported", ref: s.ref, unclaimed: [], ...(codec ? { codec: codec.ref } : {}) } }));
    else console.log(`${s.ref}: imported the standalone Uni-MoE-TTS (${s.config.transformer_num_blocks} layers)${codec ? `, and its codec as ${codec.ref}` : ""}`);
    return 0;
  }
  if (isCodecFolder(dir)) {
    const r = await importWavTokenizer(dir, { name: a.name });
    if (a.json) console.log(JSON.stringify({ result: { status: r.status, ref: r.ref, unclaimed: [] } }));
    else console.log(`${r.ref}: ${r.status === "unchanged" ? "already imported from these files" : "imported"} (WavTokenizer decoder, ${count(r.parameters)} params, ${r.config.codebook_size} codes, hop ${r.config.hop_length} at ${r.config.sample_rate} Hz) -> ${r.dir}`);
    return 0;
  }
  if (a.json) {
    const r = await importCheckpoint(dir, { name: a.name, dtype: a.dtype, family: a.family, quant: a.quant, onProgress: (p) => console.log(JSON.stringify({ progress: p })) });
    console.log(JSON.stringify({ result: { status: r.status, ref: r.ref, unclaimed: r.unclaimed, ...(r.build ? { build: r.build } : {}) } }));
    return 0;
  }
  const r = await importCheckpoint(dir, { name: a.name, dtype: a.dtype, family: a.family, quant: a.quant, onProgress: importProgress() });
  const m = r.manifest;
  if (r.status === "unchanged") console.log(`${r.ref}: already imported from these files (hash ${m.sourceHash.slice(0, 12)}), nothing to do -> ${r.dir}`);
  else console.log(`${r.ref}: imported in ${m.seconds.toFixed(1)} s (${m.family}, ${count(m.parameters)} params, ${activeText(m.activeParameters)} active per token, ${m.dtype}, ${gb(m.bytesOnDisk)}) -> ${r.dir}`);
  const b = r.build;
  if (b && b.resumedBytes > 0)
    console.log(`resumed: ${gb(b.resumedBytes)} (${b.resumedTensors} tensors) were already written by an interrupted import${b.tornTensors > 0 ? `, ${b.tornTensors} torn at its end written again` : ""}; this run wrote ${gb(b.writtenBytes)}`);
  if (m.parts) printParts(m.parts);
  if (r.unclaimed.length > 0) console.log(`note: ${r.unclaimed.length} tensor(s) of the checkpoint are not used: ${r.unclaimed.slice(0, 10).join(", ")}${r.unclaimed.length > 10 ? ", …" : ""} (inspect-checkpoint lists them)`);
  if (m.unusedConfig?.length) console.log(`note: config.json fields not used: ${m.unusedConfig.map((f) => f.key).join(", ")} (inspect-checkpoint says what each is)`);
  if (m.quant) console.log(`quantised: ${quantLabel(m.quant)}, ${m.quant.matrices} matrices (${count(m.quant.parameters)} params) → MatMulNBits with ${m.quant.accuracyLevel === 4 ? "int8" : "fp32"} compute${m.quant.lmHead ? ", LM head included" : "; routers, norms, embeddings and LM head in full precision"}; size on disk ${gb(m.bytesOnDisk)}`);
  const mem = estimateMemory(r.dir);
  const mem16 = estimateMemory(r.dir, 4096, "fp16");
  console.log(`memory to run: ~${gb(mem.bytes)} on CPU (fp32: ${mem.explain}); ~${gb(mem16.bytes)} on CUDA (fp16 compute: ${mem16.explain})`);
  return 0;
}

/** A checkpoint of a model_type we do not know: list its tensors anyway, and how to read it as a known family. */
function listUnknown(dir: string, why: string): number {
  const w = new SafetensorsWeights(dir);
  try {
    const names = w.names().sort();
    console.log(`${names.length} tensor(s), none claimed (no family chosen):`);
    for (const n of names) {
      const t = w.info(n);
      console.log(`  ${n}  [${t.shape.join(", ")}] ${t.dtype}  ${path.basename(t.file)}`);
    }
  } finally {
    w.close();
  }
  console.error(`error: ${why}\nIf it is a variant of a known family, check it against that family's table: --family ${FAMILIES.map((f) => f.name).join("|")}`);
  return 1;
}

function cmdInspect(argv: string[]): number {
  const a = parse("inspect-checkpoint", argv);
  if (!a.dir) throw new UsageError("which checkpoint? give its folder: npm run cli -- inspect-checkpoint <dir | org/name>");
  a.dir = checkpointDir(a.dir);
  if (isCodecFolder(a.dir)) {
    const r = inspectWavTokenizer(a.dir);
    if (a.json) console.log(JSON.stringify(r, null, 2));
    else console.log(`WavTokenizer checkpoint ${r.source}: ${r.tensors} tensors, ${r.unused} not on the decode path (encoder, discriminators, …); decoder ${JSON.stringify(r.config)}; missing: ${r.missing.length ? r.missing.join(", ") : "none"}`);
    return r.missing.length > 0 ? 1 : 0;
  }
  if (a.family === undefined) {
    try {
      detectFamily(readConfigJson(a.dir));
    } catch (e) {
      if (/is not a family MoE Studio imports/.test((e as Error).message)) return listUnknown(a.dir, (e as Error).message);
      throw e;
    }
  }
  const map = inspectCheckpoint(a.dir, a.family);
  if (a.json) {
    console.log(JSON.stringify({ family: map.family.name, tensors: map.tensors, unclaimed: map.unclaimed.map((t) => t.name), missing: map.missing, unused: map.unused.map((t) => t.name), parts: map.parts, unusedConfig: map.unusedConfig }, null, 2));
    return map.missing.length > 0 ? 1 : 0;
  }
  console.log(`family: ${map.family.name} — ${map.family.title}`);
  const counts = parameterCounts(map.config);
  const mem = estimateFromConfig(map.config);
  console.log(`parameters: ${counts.total.toLocaleString("en")} (${activeText(counts.active)} active per token); memory to run: ~${(mem.bytes / 1e9).toFixed(2)} GB on CPU (${mem.explain})`);
  console.log(`routing: ${conventionText(map.config)}`);
  if (map.fp8Block) console.log(`fp8 weights (F8_E4M3, ${map.fp8Block.join("×")} block scales) are dequantised at import`);
  console.log(`${map.tensors.length} tensor(s):`);
  for (const t of map.tensors) {
    const readWith = t.note !== undefined && /^(fp8 block scales|MXFP4 exponents)/.test(t.note);
    const claim = t.rule === null ? "UNCLAIMED" : t.canonical === null ? `${t.rule} (${readWith ? t.note : `not used: ${t.note ?? "no canonical tensor"}`})` : t.rule;
    console.log(`  ${t.name}  [${t.shape.join(", ")}] ${t.dtype}  ${t.file}  <- ${claim}`);
  }
  console.log(map.unclaimed.length === 0 ? "unclaimed: none" : `unclaimed (${map.unclaimed.length}): ${map.unclaimed.map((t) => t.name).join(", ")}`);
  if (map.unused.length > 0) console.log(`claimed but not used by this config (${map.unused.length}): ${map.unused.map((t) => t.name).join(", ")}`);
  console.log(map.missing.length === 0 ? "missing: none" : `missing (${map.missing.length}): ${map.missing.map((m) => m.expected).join(", ")}`);
  printParts(map.parts);
  if (map.unusedConfig.length > 0) {
    console.log(`config.json fields not used (${map.unusedConfig.length}):`);
    for (const f of map.unusedConfig) console.log(`  ${f.key}: ${f.note}`);
  }
  return map.missing.length > 0 ? 1 : 0;
}

/** Runs `import` / `inspect-checkpoint` (argv starts with the command); returns the exit status (2 = bad usage, 1 = the checkpoint cannot be used). */
export async function runImportCommand(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  let code: number;
  try {
    code = command === "import" ? await cmdImport(rest) : cmdInspect(rest);
  } catch (err) {
    console.error(`error: ${(err as Error).message}${err instanceof UsageError ? "\n(npm run cli -- --help lists the commands)" : ""}`);
    code = err instanceof UsageError ? 2 : 1;
  }
  // the caller exits the process right away: let a piped stdout (long tensor lists) drain first
  await new Promise<void>((resolve) => process.stdout.write("", () => resolve()));
  return code;
}

export const IMPORT_COMMANDS: CliCommand[] = [
  { name: "import", help: IMPORT_HELP, run: (argv) => runImportCommand(["import", ...argv]) },
  { name: "inspect-checkpoint", help: INSPECT_HELP, run: (argv) => runImportCommand(["inspect-checkpoint", ...argv]) },
];

// Run directly (the Models page's import job does, so it does not load the rest of the CLI):
//   node --import tsx app/server/cli-import.ts import <dir> --json
if (process.argv[1] && /cli-import\.ts$/.test(process.argv[1])) {
  runImportCommand(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err: unknown) => {
      console.error(err);
      process.exit(1);
    },
  );
}
