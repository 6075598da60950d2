/**
 * Dataset benchmarks (`npm run bench -- dataset`, `npm run bench -- dataset-rss`):
 * - dataset: records per second of the shipped sample workflow (36 records, text + image, tiny), and the
 *   aggregation cost (partials + merge, in memory) and the store cost (per-record ledger writes) relative
 *   to the model time, measured in the same run; then the all-cached re-run.
 * - dataset-rss: the CLI on a 2,000-record text dataset, SIGKILLed half-way and resumed; RSS from the
 *   CLI's own progress lines at the start, middle and end of both processes.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { scanDataset } from "../../engine/batch/dataset";
import { batchCatalogue } from "../../engine/batch/feeder";
import { runBatch, type BatchResult } from "../../engine/batch/runner";
import { Executor } from "../../engine/executor";
import { SessionPool } from "../../engine/runtime";
import { DiskStorage } from "../../engine/storage";
import type { Workflow } from "../../engine/workflow/schema";
import { catalogue } from "../../nodes";
import { median } from "./stats";
import { compareAggregates } from "../../engine/batch/compare";

const root = path.join(__dirname, "../..");

/**
 * The shipped sample workflow through the real runner (runBatch), `batch` 1 (one record per forward) and `batch` 8
 * (the MoE-LLM forwards of 8 records coalesced into one padded forward, and the vision encoder's tiles of their images
 * in one session run, engine/batch/window.ts) side by side: both
 * warmed, then `rounds` rounds alternating the two on fresh stores; medians. Asserts the two aggregates agree
 * (compareAggregates: counts exactly, float sums to 1e-6 relative). Then the batch-1 run's aggregation/store overheads and the all-cached re-run.
 */
export async function benchDataset(log: (s: string) => void, rounds = 5) {
  const tmp = mkdtempSync(path.join(os.tmpdir(), "bench-dataset-"));
  const doc = JSON.parse(await readFile(path.join(root, "app/examples/datasets/sample/workflow.json"), "utf8")) as Workflow;
  const source = path.join(root, "app/examples/datasets/sample/records.jsonl");
  const storage = new DiskStorage(path.join(tmp, "files"));
  const modelsDir = process.env.STUDIO_MODELS_DIR ?? path.join(root, "data", "models");
  // per-record runs: the batch reports no per-record memory, so no RSS sampling per record
  const executorOn = (runtime: SessionPool) => new Executor({ catalogue: batchCatalogue(catalogue), storage, runtime, concurrency: 1, memoryProbe: false });
  const runtime = new SessionPool({ modelsDir });
  const executor = executorOn(runtime);
  // The same with ONNX Runtime's default session config (intra-op workers spin on after each run; the engine stops
  // them, SESSION_CONFIG_ENTRIES), measured in the same rounds.
  const spinningRuntime = new SessionPool({ modelsDir, configEntries: {} });
  const spinningExecutor = executorOn(spinningRuntime);
  const scan = await scanDataset(source);
  const base = { doc, catalogue, executor, storage, source, scan, vocabulary: true };
  const B = 8;
  let store = 0;
  let lastOneStore = "";
  const run = (batch: number, spinning = false) => {
    const storeDir = path.join(tmp, `store-${store++}`);
    if (batch === 1 && !spinning) lastOneStore = storeDir;
    return runBatch({ ...base, ...(spinning ? { executor: spinningExecutor } : {}), batch, storeDir, signal: AbortSignal.timeout(300_000) });
  };
  try {
    // Warm both graphs (the batched one has an attention mask) so the timed runs measure steady state.
    for (const spinning of [false, true]) {
      await run(1, spinning);
      await run(B, spinning);
    }
    const ms: Record<"one" | "batched" | "oneSpinning" | "batchedSpinning", number[]> = { one: [], batched: [], oneSpinning: [], batchedSpinning: [] };
    let one: BatchResult | undefined, batched: BatchResult | undefined;
    const finished = (res: BatchResult) => {
      if (res.status !== "finished" || res.failed) throw new Error(`bench dataset: batch ${res.batch} run ${res.status}, ${res.failed} failed: ${res.error ?? res.failures[0]?.message}`);
      return res;
    };
    for (let r = 0; r < rounds; r++) {
      one = finished(await run(1));
      batched = finished(await run(B));
      ms.one.push(one.ms);
      ms.batched.push(batched.ms);
      ms.oneSpinning.push(finished(await run(1, true)).ms);
      ms.batchedSpinning.push(finished(await run(B, true)).ms);
    }
    const cmp = compareAggregates(one!.aggregate!.toJSON(), batched!.aggregate!.toJSON());
    if (cmp.diff) throw new Error(`bench dataset: the batch-${B} aggregate differs from one record per forward: ${cmp.diff}`);
    const cold = one!;
    const cached = await runBatch({ ...base, batch: 1, storeDir: lastOneStore });
    // The same records through the text workflow (no vision encoder; MoE-LLM, 2 new tokens), side by side as well.
    const textDoc = JSON.parse(await readFile(path.join(root, "app/examples/datasets/text-workflow.json"), "utf8")) as Workflow;
    const runText = (batch: number) => runBatch({ ...base, doc: textDoc, batch, storeDir: path.join(tmp, `store-${store++}`), signal: AbortSignal.timeout(300_000) });
    await runText(1);
    await runText(B);
    const textMs: Record<"one" | "batched", number[]> = { one: [], batched: [] };
    let textOne: BatchResult | undefined, textBatched: BatchResult | undefined;
    for (let r = 0; r < rounds; r++) {
      textOne = await runText(1);
      textBatched = await runText(B);
      textMs.one.push(textOne.ms);
      textMs.batched.push(textBatched.ms);
    }
    const textCmp = compareAggregates(textOne!.aggregate!.toJSON(), textBatched!.aggregate!.toJSON());
    if (textCmp.diff) throw new Error(`bench dataset: text workflow, the batch-${B} aggregate differs: ${textCmp.diff}`);
    const text = { oneMs: median(textMs.one), batchedMs: median(textMs.batched), speedup: median(textMs.one) / median(textMs.batched), forwards: textBatched!.batching, aggregateFloatMaxRel: textCmp.maxFloatRel };
    const oneMs = median(ms.one), batchedMs = median(ms.batched);
    const spinning = { oneMs: median(ms.oneSpinning), batchedMs: median(ms.batchedSpinning) };
    const r = {
      records: cold.total,
      ran: cold.ran,
      failed: cold.failed,
      ms: oneMs,
      recordsPerSecond: cold.total / (oneMs / 1000),
      batch: B,
      batchedMs,
      batchedRecordsPerSecond: cold.total / (batchedMs / 1000),
      speedup: oneMs / batchedMs,
      rounds,
      forwards: batched!.batching,
      aggregateCountsIdentical: true,
      aggregateFloatMaxRel: cmp.maxFloatRel,
      modelMs: cold.modelMs,
      aggregateMs: cold.aggregateMs,
      storeMs: cold.storeMs,
      aggregateOverhead: cold.aggregateMs / cold.modelMs,
      storeOverhead: cold.storeMs / cold.modelMs,
      outsideModelMs: cold.ms - cold.modelMs,
      cachedRerunMs: cached.ms,
      cachedRecords: cached.cached,
      batchedForwardMs: batched!.batching?.ms,
      batchedVision: batched!.batching?.others?.["vision encoder"],
      loadAverage: os.loadavg().map((l) => Number(l.toFixed(2))),
      text,
      spinning: { ...spinning, speedup: spinning.oneMs / spinning.batchedMs },
    };
    log(`sample workflow (Dataset → Vision → Prompt Builder → MoE-LLM tiny, 4 new tokens → Routing Aggregate), ${r.records} records (text + image), runBatch, ${rounds} rounds alternating, medians:`);
    log(`  batch 1 (one record per forward): ${r.recordsPerSecond.toFixed(2)} records/s (${(oneMs / 1000).toFixed(2)} s)`);
    log(`  batch ${B} (one padded forward per step of up to ${B} records): ${r.batchedRecordsPerSecond.toFixed(2)} records/s (${(batchedMs / 1000).toFixed(2)} s; ${r.forwards?.calls} MoE-LLM forwards for ${r.forwards?.requests} record steps) = ${r.speedup.toFixed(2)}× the records/s`);
    log(`  ONNX Runtime's default session config (workers spin on after each run), same rounds: batch 1 ${(spinning.oneMs / 1000).toFixed(2)} s, batch ${B} ${(spinning.batchedMs / 1000).toFixed(2)} s (${r.spinning.speedup.toFixed(2)}×); stopping the spin makes batch 1 ${(spinning.oneMs / oneMs).toFixed(2)}× and batch ${B} ${(spinning.batchedMs / batchedMs).toFixed(2)}× as fast; batch ${B} now / batch 1 spinning: ${(spinning.oneMs / batchedMs).toFixed(2)}×`);
    log(`  aggregates: every count identical; float sums (null/shared weight, entropy) within ${cmp.maxFloatRel.toExponential(1)} relative`);
    const vision = r.batchedVision;
    log(`  batch ${B}, last round: the padded MoE-LLM forwards take ${(r.batchedForwardMs! / 1000).toFixed(2)} s of its ${(batched!.ms / 1000).toFixed(2)} s${vision ? `, the vision encoder ${(vision.ms / 1000).toFixed(2)} s (${vision.requests} images in ${vision.calls} session runs)` : ""}; the rest is per-record work outside them (media, prompt builder, traces, ledger)`);
    log(`  text workflow (Dataset → MoE-LLM tiny, 2 new tokens → Routing Aggregate), same records: batch 1 ${(text.oneMs / 1000).toFixed(2)} s, batch ${B} ${(text.batchedMs / 1000).toFixed(2)} s (${text.forwards?.calls} forwards for ${text.forwards?.requests} record steps) = ${text.speedup.toFixed(2)}×; aggregate counts identical, floats within ${text.aggregateFloatMaxRel.toExponential(1)}`);
    log(`  batch 1 run: aggregation (one-record partial + merge) ${r.aggregateMs.toFixed(1)} ms = ${(r.aggregateOverhead * 100).toFixed(2)} % of model time; ledger serialisation ${r.storeMs.toFixed(1)} ms = ${(r.storeOverhead * 100).toFixed(2)} % (file writes overlap the next record)`);
    log(`  everything outside the model runs (reading + storing media, hashing, cache look-ups, aggregation, ledger): ${r.outsideModelMs.toFixed(0)} ms = ${((r.outsideModelMs / r.modelMs) * 100).toFixed(1)} % of model time`);
    log(`  re-run with every record cached: ${r.cachedRerunMs.toFixed(0)} ms (${r.cachedRecords} cached)`);
    log(`  load average at the end (1, 5, 15 min): ${r.loadAverage.join(", ")} on ${os.cpus().length} cores`);
    return r;
  } finally {
    await runtime.close();
    await spinningRuntime.close();
  }
}

interface RssPoint {
  done: number;
  rssMb: number;
}

function runCli(args: string[], env: NodeJS.ProcessEnv, killWhenDone?: number): Promise<{ points: RssPoint[]; startRss?: number; endRss?: number; out: string; killed: boolean }> {
  return new Promise((resolve, reject) => {
    // tsx as a loader in this very process: tsx's CLI would run the script in a child that a kill misses.
    const child = spawn(process.execPath, ["--import", "tsx", "app/server/cli.ts", ...args], { cwd: root, env });
    let out = "";
    const points: RssPoint[] = [];
    child.stdout.on("data", (b: Buffer) => {
      out += b.toString();
      for (const m of b.toString().matchAll(/ (\d+)\/\d+ records .* rss (\d+) MB/g)) points.push({ done: Number(m[1]), rssMb: Number(m[2]) });
      const last = points[points.length - 1];
      if (killWhenDone !== undefined && last && last.done >= killWhenDone && !child.killed) child.kill("SIGKILL");
    });
    child.stderr.on("data", (b: Buffer) => (out += b.toString()));
    child.on("error", reject);
    child.on("exit", (_c, signal) => {
      const start = /rss (\d+) MB at start/.exec(out);
      const end = /rss (\d+) MB at end/.exec(out);
      resolve({ points, startRss: start ? Number(start[1]) : undefined, endRss: end ? Number(end[1]) : undefined, out, killed: signal === "SIGKILL" });
    });
  });
}

export async function benchDatasetRss(log: (s: string) => void, records = 2000) {
  const tmp = mkdtempSync(path.join(os.tmpdir(), "bench-dataset-rss-"));
  const file = path.join(tmp, "text.jsonl");
  const tasks = ["qa", "math", "chat", "code"];
  writeFileSync(file, Array.from({ length: records }, (_, i) => JSON.stringify({ text: `Record ${i}: ${["why", "how", "what", "when"][i % 4]} does ${"the ".repeat(i % 6)}model route token ${i}?`, task: tasks[i % 4] })).join("\n") + "\n");
  const env = { ...process.env, STUDIO_DATA_DIR: path.join(tmp, "data"), STUDIO_MODELS_DIR: process.env.STUDIO_MODELS_DIR ?? path.join(root, "data", "models") };
  const args = ["run", "app/examples/datasets/text-workflow.json", "--dataset", file, "--out", path.join(tmp, "out")];
  const t0 = performance.now();
  const first = await runCli(args, env, Math.floor(records / 2));
  const t1 = performance.now();
  const second = await runCli(args, env);
  const t2 = performance.now();
  const pick = (pts: RssPoint[], frac: number) => pts[Math.min(pts.length - 1, Math.floor(frac * (pts.length - 1)))];
  const summary = /records: ran (\d+), cached (\d+), failed (\d+) of (\d+)/.exec(second.out);
  const exported = JSON.parse(await readFile(path.join(tmp, "out", "aggregate.json"), "utf8")) as { aggregate: { traces: Record<string, number> } };
  const r = {
    records,
    killedAfter: first.points[first.points.length - 1]?.done ?? 0,
    firstProcess: { startRssMb: first.startRss, middle: pick(first.points, 0.5), last: pick(first.points, 1), seconds: (t1 - t0) / 1000, killed: first.killed },
    recordsInAggregate: Object.values(exported.aggregate.traces).reduce((a, b) => a + b, 0),
    resumed: { ran: Number(summary?.[1]), cached: Number(summary?.[2]), failed: Number(summary?.[3]), startRssMb: second.startRss, first: second.points[0], middle: pick(second.points, 0.5), endRssMb: second.endRss, seconds: (t2 - t1) / 1000 },
  };
  log(`${records}-record text dataset on tiny via the CLI (2 new tokens per record), SIGKILL at ${r.killedAfter} records done, then resumed:`);
  log(`  first process: rss ${r.firstProcess.startRssMb} MB at start, ${r.firstProcess.middle?.rssMb} MB at ${r.firstProcess.middle?.done} records, ${r.firstProcess.last?.rssMb} MB at ${r.firstProcess.last?.done} (killed: ${r.firstProcess.killed}), ${r.firstProcess.seconds.toFixed(0)} s`);
  log(`  resumed: ran ${r.resumed.ran}, cached ${r.resumed.cached}, failed ${r.resumed.failed}; rss ${r.resumed.startRssMb} MB at start, ${r.resumed.first?.rssMb} MB at ${r.resumed.first?.done}, ${r.resumed.middle?.rssMb} MB at ${r.resumed.middle?.done}, ${r.resumed.endRssMb} MB at end, ${r.resumed.seconds.toFixed(0)} s`);
  log(`  records in the final aggregate: ${r.recordsInAggregate} of ${records}`);
  if (!summary) log(`  the resumed run printed no summary:\n${second.out.slice(-2000)}`);
  return r;
}
