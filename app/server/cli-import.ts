/**
 * CLI commands for real checkpoints (dispatched from cli.ts):
 *   import <checkpoint dir> [--name N] [--dtype fp32|fp16|bf16]
 *   inspect-checkpoint <checkpoint dir> [--json]
 */
import { importCheckpoint, inspectCheckpoint, parameterCounts, type ImportProgress } from "@/models/import/import";
import type { StorageDtype } from "@/models/import/external-graph";
import { estimateFromConfig, estimateMemory } from "@/models/import/memory";
import { conventionText } from "@/models/families/conventions";
import path from "node:path";
import { detectFamily, FAMILIES } from "@/models/families/table";
import { readConfigJson } from "@/models/import/checkpoint";
import { SafetensorsWeights } from "@/models/safetensors";

export const IMPORT_HELP = `  import <checkpoint dir>                   Import a downloaded checkpoint (config.json + safetensors + tokenizer.json)
                                            into the models dir as an ONNX graph with external data.
      --name N                                Model name (default: the folder's name); the model is <family>/N.
      --dtype fp32|fp16|bf16                  Stored weight type (default fp32; compute is fp32).
      --family F                              Read it as family F whatever its model_type (a variant we do not know).
                                            Run again after an interruption (Ctrl-C, kill, crash): it resumes where it stopped.
  inspect-checkpoint <checkpoint dir>       List every tensor (name, shape, dtype) and the mapping rule that claimed
                                            it; report unclaimed and missing tensors. --json for machine output;
                                            --family F checks a checkpoint of an unknown model_type against F's table.`;

class ImportUsageError extends Error {}

function parse(argv: string[]): { dir: string; name?: string; dtype?: StorageDtype; json: boolean; family?: string } {
  let dir: string | undefined, name: string | undefined, dtype: string | undefined, family: string | undefined, json = false;
  // --json on import: one JSON object per line (progress, then the result) for the Models page's import job
  for (let i = 1; i < argv.length; i++) {
    const a = argv[i]!;
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new ImportUsageError(`${a} needs a value`);
      return v;
    };
    if (argv[0] === "import" && a === "--name") name = value();
    else if (argv[0] === "import" && a === "--dtype") dtype = value();
    else if (a === "--json") json = true;
    else if (a === "--family") family = value();
    else if (a.startsWith("--")) throw new ImportUsageError(`unknown option ${a}`);
    else if (dir === undefined) dir = a;
    else throw new ImportUsageError(`unexpected argument "${a}"`);
  }
  if (!dir) throw new ImportUsageError(`which checkpoint? give its folder: npm run cli -- ${argv[0]} <dir>`);
  if (dtype !== undefined && !["fp32", "fp16", "bf16"].includes(dtype)) throw new ImportUsageError(`--dtype must be fp32, fp16 or bf16 (got "${dtype}")`);
  return { dir, name, dtype: dtype as StorageDtype | undefined, json, family };
}

const gb = (b: number) => (b >= 1e9 ? `${(b / 1e9).toFixed(2)} GB` : `${(b / 1e6).toFixed(1)} MB`);
const count = (n: number) => (n >= 1e9 ? `${(n / 1e9).toFixed(2)}B` : n >= 1e6 ? `${(n / 1e6).toFixed(2)}M` : `${n}`);

function progressBar(): (p: ImportProgress) => void {
  const tty = process.stdout.isTTY === true;
  let last = -1;
  let resumeShown = false;
  return (p) => {
    if (p.phase === "writing" && !resumeShown) {
      resumeShown = true;
      if (p.resumedBytes) console.log(`resuming an interrupted import at ${gb(p.resumedBytes)} of ${gb(p.totalBytes)}`);
    }
    if (p.phase === "hashing") {
      if (p.bytes === p.totalBytes || !tty) return void (p.bytes === p.totalBytes && console.log(`hashed the checkpoint files (${gb(p.totalBytes)})`));
      return void process.stdout.write(`\rhashing the checkpoint files: ${gb(p.bytes)} / ${gb(p.totalBytes)}${p.etaSeconds !== undefined ? `  ETA ${Math.ceil(p.etaSeconds)} s` : ""}`);
    }
    const frac = p.totalBytes > 0 ? Math.min(1, p.bytes / p.totalBytes) : 1;
    const pct = Math.floor(frac * 100);
    if (pct === last && p.phase !== "done") return;
    last = pct;
    const width = 30, filled = Math.round(frac * width);
    const eta = p.etaSeconds !== undefined && p.phase === "writing" ? `  ETA ${Math.ceil(p.etaSeconds)} s` : "";
    const line = `[${"#".repeat(filled)}${"-".repeat(width - filled)}] ${String(pct).padStart(3)}%  ${gb(p.bytes)} / ${gb(p.totalBytes)}${eta}`;
    if (tty) process.stdout.write(`\r${line}${p.phase === "done" ? "\n" : ""}`);
    else if (pct % 10 === 0 || p.phase === "done") console.log(line);
  };
}

async function cmdImport(argv: string[]): Promise<number> {
  const a = parse(argv);
  if (a.json) {
    const r = await importCheckpoint(a.dir, { name: a.name, dtype: a.dtype, family: a.family, onProgress: (p) => console.log(JSON.stringify({ progress: p })) });
    console.log(JSON.stringify({ result: { status: r.status, ref: r.ref, unclaimed: r.unclaimed, ...(r.build ? { build: r.build } : {}) } }));
    return 0;
  }
  const r = await importCheckpoint(a.dir, { name: a.name, dtype: a.dtype, family: a.family, onProgress: progressBar() });
  const m = r.manifest;
  if (r.status === "unchanged") console.log(`${r.ref}: already imported from these files (hash ${m.sourceHash.slice(0, 12)}), nothing to do -> ${r.dir}`);
  else console.log(`${r.ref}: imported in ${m.seconds.toFixed(1)} s (${m.family}, ${count(m.parameters)} params, ${count(m.activeParameters)} active per token, ${m.dtype}, ${gb(m.bytesOnDisk)}) -> ${r.dir}`);
  const b = r.build;
  if (b && b.resumedBytes > 0)
    console.log(`resumed: ${gb(b.resumedBytes)} (${b.resumedTensors} tensors) were already written by an interrupted import${b.tornTensors > 0 ? `, ${b.tornTensors} torn at its end written again` : ""}; this run wrote ${gb(b.writtenBytes)}`);
  if (r.unclaimed.length > 0) console.log(`note: ${r.unclaimed.length} tensor(s) of the checkpoint are not used: ${r.unclaimed.slice(0, 10).join(", ")}${r.unclaimed.length > 10 ? ", …" : ""} (inspect-checkpoint lists them)`);
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
  const a = parse(argv);
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
    console.log(JSON.stringify({ family: map.family.name, tensors: map.tensors, unclaimed: map.unclaimed.map((t) => t.name), missing: map.missing, unused: map.unused.map((t) => t.name) }, null, 2));
    return map.missing.length > 0 ? 1 : 0;
  }
  console.log(`family: ${map.family.name} — ${map.family.title}`);
  const counts = parameterCounts(map.config);
  const mem = estimateFromConfig(map.config);
  console.log(`parameters: ${counts.total.toLocaleString("en")} (${counts.active.toLocaleString("en")} active per token); memory to run: ~${(mem.bytes / 1e9).toFixed(2)} GB on CPU (${mem.explain})`);
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
  return map.missing.length > 0 ? 1 : 0;
}

/** Runs `import` / `inspect-checkpoint`; returns the exit status (2 = bad usage, 1 = the checkpoint cannot be used). */
export async function runImportCommand(argv: string[]): Promise<number> {
  if (argv.includes("--help") || argv.includes("-h")) {
    console.log(`Usage: npm run cli -- <command> [options]\n\n${IMPORT_HELP}`);
    return 0;
  }
  let code: number;
  try {
    code = argv[0] === "import" ? await cmdImport(argv) : cmdInspect(argv);
  } catch (err) {
    console.error(`error: ${(err as Error).message}${err instanceof ImportUsageError ? "\n(npm run cli -- --help lists the commands)" : ""}`);
    code = err instanceof ImportUsageError ? 2 : 1;
  }
  // the caller exits the process right away: let a piped stdout (long tensor lists) drain first
  await new Promise<void>((resolve) => process.stdout.write("", () => resolve()));
  return code;
}

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
