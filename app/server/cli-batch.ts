/**
 * `npm run cli -- run <workflow> --dataset <file|dir> [--sweep nodeId.param=v1,v2,... | --ablate experts|layer-experts|subset:…] [--batch N] [--out DIR]`:
 * the workflow once per dataset record (engine/batch), a progress bar, the aggregate written as JSON and
 * CSV with the workflow and dataset fingerprints. Killed or interrupted, it resumes from the last
 * finished record on the next identical call (per-record results live under <data dir>/batch).
 */
import { mkdir } from "node:fs/promises";
import path from "node:path";
import { DatasetError, scanDataset, batchStoreDir, type DatasetScan } from "@/engine/batch/dataset";
import { AGGREGATE_NODE_TYPE, batchCatalogue, DATASET_NODE_TYPE } from "@/engine/batch/feeder";
import { batchPlan, findCollectTarget, runBatch, type BatchProgress, type BatchResult, type CollectTarget } from "@/engine/batch/runner";
import { aggregateCSV, aggregateExport, batchExportMeta, METRIC_LABELS, summarizeAggregate, SUMMARY_METRICS, type MetricsSummary } from "@/engine/batch/summary";
import { runAblation, type AblationOptions } from "@/engine/batch/ablation";
import { parseSweep, runSweep, type SweepSpec } from "@/engine/batch/sweep";
import { Executor } from "@/engine/executor";
import { outputDir, writeOutput } from "./cli-args";
import { SessionPool } from "@/engine/runtime";
import type { Workflow } from "@/engine/workflow/schema";
import { catalogue } from "@/nodes";
import { ABLATION_NODE_TYPE, ablationFiles, ablationSubject, estimateAblation } from "@/nodes/expert-ablation";
import { progressBar } from "@/engine/progress-bar";
import { toCSV } from "@/engine/csv";
import { terminalLine } from "@/engine/log";
import { aggregateToSafetensors } from "@/engine/routing/safetensors-export";
import { fileStorage } from "./storage";
import { modelsDir } from "@/engine/config";

export interface BatchCliOptions {
  dataset?: string;
  sweeps: string[];
  out?: string;
  concurrency?: number;
  /** Records per padded model forward (engine/batch/runner.ts; default DEFAULT_BATCH, 1 = unbatched). */
  batch?: number;
  /** experts | layer-experts | subset:L3.E1,… (engine/batch/ablation.ts) */
  ablate?: string;
  maxAblations?: number;
  maxRecords?: number;
}

class BatchUsageError extends Error {}

/** The trace to aggregate: an Expert Ablation's or the Routing Aggregate node's input, else the one ROUTING_TRACE output in the workflow. */
function collectTarget(doc: Workflow): CollectTarget {
  const abl = doc.nodes.find((n) => n.type === ABLATION_NODE_TYPE);
  const e = abl && doc.edges.find((x) => x.target === abl.id && x.targetSocket === "trace");
  if (e) return { nodeId: e.source, socket: e.sourceSocket };
  if (doc.nodes.some((n) => n.type === AGGREGATE_NODE_TYPE)) return findCollectTarget(doc);
  const outs: CollectTarget[] = [];
  for (const n of doc.nodes) {
    for (const [socket, spec] of Object.entries(catalogue.get(n.type)?.outputs ?? {})) if (spec.type === "ROUTING_TRACE") outs.push({ nodeId: n.id, socket });
  }
  if (outs.length !== 1) throw new BatchUsageError(`add a Routing Aggregate node to say which trace to aggregate (the workflow has ${outs.length} routing-trace outputs)`);
  return outs[0]!;
}

const rssMb = () => Math.round(process.memoryUsage().rss / (1024 * 1024));

/** Logs (not a terminal) get about twenty lines per batch. */
function progressPrinter(prefix?: string): ((p: BatchProgress) => void) & { done(): void } {
  const progress = progressBar({ prefix, steps: 20 });
  const onProgress = (p: BatchProgress) => {
    const eta = p.etaMs === null ? "" : ` ETA ${Math.round(p.etaMs / 1000)} s`;
    progress.update(p.done / Math.max(1, p.total), `${p.done}/${p.total} records (ran ${p.ran}, cached ${p.cached}, failed ${p.failed})${eta} rss ${rssMb()} MB`);
    if (p.lastError) progress.line(`  record failed: ${terminalLine(p.lastError)}`, process.stderr);
  };
  return Object.assign(onProgress, { done: () => progress.done() });
}

function printSummary(s: MetricsSummary, indent = "  ") {
  for (const k of SUMMARY_METRICS) console.log(`${indent}${METRIC_LABELS[k]}: ${s[k].toFixed(4)}`);
}

async function writeBatch(outDir: string, stem: string, batch: BatchResult, doc: Workflow, sweep?: { nodeId: string; param: string; value: unknown }) {
  const meta = batchExportMeta(batch, { workflow: doc, sweep });
  await writeOutput(path.join(outDir, `${stem}.json`), JSON.stringify(aggregateExport(batch.aggregate!, meta)));
  await writeOutput(path.join(outDir, `${stem}.csv`), aggregateCSV(batch.aggregate!, meta));
  await writeOutput(path.join(outDir, `${stem}.safetensors`), aggregateToSafetensors(batch.aggregate!, meta));
}

export async function runBatchCli(doc: Workflow, opts: BatchCliOptions): Promise<number> {
  try {
    return await run(doc, opts);
  } catch (err) {
    if (err instanceof BatchUsageError || err instanceof DatasetError) {
      console.error(`error: ${err.message}\n(npm run cli -- --help lists the commands)`);
      return 2;
    }
    throw err;
  }
}

async function run(doc: Workflow, opts: BatchCliOptions): Promise<number> {
  if (!opts.dataset) throw new BatchUsageError(`${opts.ablate !== undefined ? "--ablate" : "--sweep"} needs --dataset <file|dir>`);
  if (opts.sweeps.length > 1) throw new BatchUsageError("one --sweep per run (a sweep has one swept param)");
  if (opts.ablate !== undefined && opts.sweeps.length) throw new BatchUsageError("--ablate and --sweep do not go together (an ablation is a sweep of its own)");
  for (const [flag, v] of [["--max-ablations", opts.maxAblations], ["--max-records", opts.maxRecords]] as const)
    if (v !== undefined && !(Number.isInteger(v) && v >= 1)) throw new BatchUsageError(`${flag} must be a positive integer`);
  const concurrency = opts.concurrency ?? 1;
  if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 16) throw new BatchUsageError("--concurrency must be an integer 1..16");
  let sweep: SweepSpec | undefined;
  try {
    sweep = opts.sweeps[0] ? parseSweep(opts.sweeps[0]) : undefined;
  } catch (err) {
    throw new BatchUsageError((err as Error).message);
  }
  const swept = sweep && doc.nodes.find((n) => n.id === sweep!.nodeId);
  if (swept?.type === DATASET_NODE_TYPE) throw new BatchUsageError(`--sweep ${sweep!.nodeId}.${sweep!.param}: the Dataset node's records come from --dataset here, so sweeping it would compare the same records; run once per dataset instead`);
  let collect: CollectTarget;
  try {
    collect = collectTarget(doc);
    batchPlan(doc, collect); // a Dataset node must feed what is collected
  } catch (err) {
    throw new BatchUsageError((err as Error).message);
  }
  const source = path.resolve(opts.dataset);
  const scan: DatasetScan = await scanDataset(source);
  console.log(`dataset ${opts.dataset}: ${scan.count} record(s) (${scan.kind})${scan.errorCount ? `, ${scan.errorCount} bad row(s) skipped` : ""}; fingerprint ${scan.fingerprint.slice(0, 12)}`);
  for (const e of scan.errors.slice(0, 10)) console.error(`  bad row: ${e.message}`);
  if (scan.count === 0) throw new BatchUsageError("the dataset has no valid records");
  // made once every check passed (a refused command leaves no empty folder), before anything runs
  if (opts.out !== undefined) await outputDir(opts.out);
  console.log(`rss ${rssMb()} MB at start`);

  const storage = fileStorage();
  const runtime = new SessionPool({ modelsDir: modelsDir() });
  // per-record runs: the batch reports no per-record memory, so no RSS sampling per record
  const executor = new Executor({ catalogue: batchCatalogue(catalogue), storage, runtime, concurrency: 1, memoryProbe: false });
  const controller = new AbortController();
  const stop = (sig: string) => () => {
    console.error(`\n${sig}: stopping after the records in flight; run the same command again to resume`);
    controller.abort();
  };
  const onInt = stop("SIGINT");
  const onTerm = stop("SIGTERM");
  process.on("SIGINT", onInt);
  process.on("SIGTERM", onTerm);
  const base = { catalogue, executor, storage, source, scan, storeDir: batchStoreDir(), collect, concurrency, batch: opts.batch, signal: controller.signal, vocabulary: true, runId: "cli" };
  try {
    if (opts.ablate !== undefined) return await ablationCli(doc, opts, { ...base, maxRecords: opts.maxRecords });
    if (!sweep) {
      const printer = progressPrinter();
      const batch = await runBatch({ ...base, doc, onProgress: printer });
      printer.done();
      console.log(`records: ran ${batch.ran}, cached ${batch.cached}, failed ${batch.failed} of ${batch.total} in ${(batch.ms / 1000).toFixed(1)} s (model ${(batch.modelMs / 1000).toFixed(1)} s, aggregation ${(batch.aggregateMs / 1000).toFixed(2)} s, ledger ${(batch.storeMs / 1000).toFixed(2)} s); rss ${rssMb()} MB at end`);
      if (batch.batching?.calls) console.log(`batched: up to ${batch.batch} records per forward; ${batch.batching.calls} model forwards for ${batch.batching.requests} record steps`);
      for (const f of batch.failures.slice(0, 10)) console.error(`  line ${f.line}: ${terminalLine(f.message)}`);
      if (batch.status === "cancelled") {
        console.error("cancelled");
        return 130;
      }
      if (batch.status === "failed" || !batch.aggregate) {
        console.error(`failed: ${terminalLine(batch.error ?? "no record produced a trace")}`);
        return 1;
      }
      const outDir = path.resolve(opts.out ?? batch.storeDir);
      await mkdir(outDir, { recursive: true });
      await writeBatch(outDir, "aggregate", batch, doc);
      const c = batch.aggregate.counts();
      console.log(`aggregate of ${c.tokens} tokens over ${Object.keys(c.traces).length} group(s):`);
      printSummary(summarizeAggregate(batch.aggregate).all);
      console.log(`wrote ${path.join(outDir, "aggregate.json")}, aggregate.csv and aggregate.safetensors (workflow ${batch.workflowFingerprint.slice(0, 12)}, dataset ${scan.fingerprint.slice(0, 12)})`);
      return 0;
    }
    const outDir = path.resolve(opts.out ?? path.join(batchStoreDir(), `sweep-${scan.fingerprint.slice(0, 12)}`));
    await mkdir(outDir, { recursive: true });
    let result: Awaited<ReturnType<typeof runSweep>>;
    const written: string[] = [];
    const printers: ReturnType<typeof progressPrinter>[] = [];
    try {
      result = await runSweep({
        ...base,
        doc,
        sweep,
        onProgress: (i, p) => (printers[i] ??= progressPrinter(`${sweep!.param}=${JSON.stringify(sweep!.values[i])}`))(p),
        onPoint: async (point, batch) => {
          for (const pr of printers) pr?.done();
          console.log(`${sweep!.nodeId}.${sweep!.param} = ${JSON.stringify(point.value)}: ${point.status}, ran ${batch.ran}, cached ${batch.cached}, failed ${batch.failed}`);
          if (point.error) console.error(`    ${terminalLine(point.error)}`);
          if (point.summary) printSummary(point.summary.all, "    ");
          if (!batch.aggregate) return;
          const stem = `aggregate-${sweepIndex(sweep!, point.value)}`;
          await writeBatch(outDir, stem, batch, doc, { nodeId: sweep!.nodeId, param: sweep!.param, value: point.value });
          written.push(stem);
        },
      });
    } catch (err) {
      throw new BatchUsageError((err as Error).message);
    }
    await writeOutput(path.join(outDir, "sweep.json"), JSON.stringify({ ...result, workflow: doc }, null, 2));
    const rows = result.points.map((p) => [typeof p.value === "number" || typeof p.value === "string" ? p.value : JSON.stringify(p.value), p.status, ...SUMMARY_METRICS.map((k) => p.summary?.all[k])]);
    await writeOutput(path.join(outDir, "sweep.csv"), toCSV([["value", "status", ...SUMMARY_METRICS], ...rows], { comments: [`dataset_fingerprint=${result.datasetFingerprint}`] }));
    console.log(`wrote ${path.join(outDir, "sweep.json")}, sweep.csv${written.length ? ` and ${written.join(", ")} (.json/.csv/.safetensors)` : ""}${written.length < result.points.length ? `; no aggregate for ${result.points.length - written.length} value(s)` : ""}`);
    if (result.status === "cancelled") return 130;
    return result.status === "finished" ? 0 : 1;
  } finally {
    process.off("SIGINT", onInt);
    process.off("SIGTERM", onTerm);
    await runtime.close();
  }
}

/** `--ablate`: the baseline and each ablation as resumable batches; writes ablation.json/.csv/.safetensors. */
async function ablationCli(doc: Workflow, opts: BatchCliOptions, base: Omit<AblationOptions, "doc" | "spec" | "target" | "model">): Promise<number> {
  const spec = opts.ablate!;
  let subject: Awaited<ReturnType<typeof ablationSubject>>;
  let cost: Awaited<ReturnType<typeof estimateAblation>>;
  try {
    subject = await ablationSubject(doc, base.collect!.nodeId);
    const mode = (doc.nodes.find((n) => n.id === base.collect!.nodeId)!.params as { mode?: string }).mode;
    cost = await estimateAblation({ source: base.source, modelRef: subject.modelRef, spec, maxAblations: opts.maxAblations, maxRecords: opts.maxRecords, scoreText: mode === "score-text" });
  } catch (err) {
    throw new BatchUsageError((err as Error).message);
  }
  const n = (v: number) => v.toLocaleString("en-US");
  console.log(`ablation ${spec} of "${base.collect!.nodeId}" (${subject.modelRef}): ${cost.ablations} ablation(s) (${cost.ids.slice(0, 8).join(", ")}${cost.ids.length > 8 ? ", …" : ""})`);
  console.log(`cost: ${cost.records} records × ${cost.passes} passes (baseline + ${cost.ablations}) × ≈${n(cost.tokensPerPass)} text tokens per pass = ≈${n(cost.tokens)} tokens (records already in the ledger are not run again)`);
  const printers = new Map<number, ReturnType<typeof progressPrinter>>();
  const table = await runAblation({
    ...base,
    doc,
    spec,
    ...subject,
    maxAblations: opts.maxAblations,
    onProgress: (step, steps, label, p) => {
      let print = printers.get(step);
      if (!print) {
        if (process.stdout.isTTY && step > 0) process.stdout.write("\n");
        console.log(`[${step}/${steps - 1}] ${label}`);
        printers.set(step, (print = progressPrinter("  ")));
      }
      print(p);
    },
  });
  if (process.stdout.isTTY) process.stdout.write("\n");
  if (table.status === "failed" && table.rows.every((r) => r.records.ran + r.records.cached === 0)) {
    // nothing was measured: no table of NaN to write
    console.error(`failed: ${terminalLine(table.error ?? "")}`);
    return 1;
  }
  const outDir = path.resolve(opts.out ?? path.join(batchStoreDir(), `ablation-${table.datasetFingerprint.slice(0, 12)}`));
  await mkdir(outDir, { recursive: true });
  const files = ablationFiles(table, doc);
  await writeOutput(path.join(outDir, "ablation.json"), files.json);
  await writeOutput(path.join(outDir, "ablation.csv"), files.csv);
  await writeOutput(path.join(outDir, "ablation.safetensors"), files.safetensors);
  const base0 = table.baseline.nll["*"];
  console.log(`baseline: mean NLL ${base0?.mean.toFixed(4)} over ${base0?.tokens} scored tokens of ${base0?.records} records; ran ${table.baseline.records.ran}, cached ${table.baseline.records.cached}, failed ${table.baseline.records.failed}`);
  const ranked = table.rows.filter((r) => Number.isFinite(r.delta["*"])).sort((a, b) => b.delta["*"]! - a.delta["*"]!);
  for (const r of ranked.slice(0, 10)) console.log(`  ${r.id.padEnd(10)} ΔNLL ${r.delta["*"]! >= 0 ? "+" : ""}${r.delta["*"]!.toFixed(4)}${r.share["*"] === null ? "" : `  routing share ${(r.share["*"]! * 100).toFixed(1)} %`}`);
  console.log(`wrote ${path.join(outDir, "ablation.json")}, ablation.csv and ablation.safetensors (workflow ${table.baseline.workflowFingerprint.slice(0, 12)}, dataset ${table.datasetFingerprint.slice(0, 12)})`);
  if (table.status === "cancelled") return 130;
  if (table.status === "failed") {
    console.error(`failed: ${terminalLine(table.error ?? "")}`);
    return 1;
  }
  return 0;
}

function sweepIndex(spec: SweepSpec, value: unknown): number {
  return spec.values.findIndex((v) => JSON.stringify(v) === JSON.stringify(value));
}
