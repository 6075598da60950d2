import { z } from "zod";
import { batchStoreDir, resolveDatasetSource, scanDataset } from "../engine/batch/dataset";
import { AGGREGATE_NODE_TYPE, batchCatalogue, DATASET_NODE_TYPE } from "../engine/batch/feeder";
import { batchPlan, runBatch, type BatchProgress, type BatchResult } from "../engine/batch/runner";
import { addNll, traceNll, type NllTotals } from "../engine/batch/scores";
import { aggregateCSV, aggregateExport, batchExportMeta } from "../engine/batch/summary";
import { parseSweep, runSweep, type SweepPoint } from "../engine/batch/sweep";
import { Executor } from "../engine/executor";
import { defineNode, type RunContext } from "../engine/node";
import { parseRecordGroup, recordGroup, RoutingAggregate } from "../engine/routing/aggregate";
import { datasetRecord } from "../engine/values/dataset-record";
import { routingAggregate as aggregateKind, type AggregateReport } from "../engine/values/routing-aggregate";
import "./params";

export type { AggregateReport };

function formatEta(ms: number | null): string {
  if (ms === null) return "";
  const s = Math.round(ms / 1000);
  return s < 60 ? ` · ETA ${s} s` : ` · ETA ${Math.floor(s / 60)} min ${s % 60} s`;
}

function progressLine(p: BatchProgress, prefix = ""): string {
  return `${prefix}${p.done}/${p.total} records (${p.cached} cached)${p.failed ? ` · ${p.failed} failed` : ""}${formatEta(p.etaMs)}`;
}

async function storeExport(ctx: RunContext, agg: RoutingAggregate, batch: Pick<BatchResult, "workflowFingerprint" | "ran" | "cached" | "failed" | "scan" | "nll">, sweep?: { nodeId: string; param: string; value: unknown }) {
  const meta = batchExportMeta(batch, { workflow: ctx.workflow, sweep });
  const file = await ctx.storage.write(Buffer.from(JSON.stringify(aggregateExport(agg, meta))), "json");
  const csvFile = await ctx.storage.write(Buffer.from(aggregateCSV(agg, meta)), "csv");
  return { file, csvFile };
}

export const routingAggregate = defineNode({
  type: AGGREGATE_NODE_TYPE,
  typeVersion: 1,
  title: "Routing Aggregate",
  category: "Inspect",
  description: "Runs the workflow once per record of the Dataset upstream and sums the routing: Fig. 7/8 per task, expert vocabularies, specialisation, sweeps. Resumable; finished records are cached.",
  inputs: { trace: { type: "ROUTING_TRACE" }, record: { type: "JSON", optional: true, label: "record (task/label)", kind: datasetRecord } },
  outputs: { aggregate: { type: "JSON", kind: aggregateKind } },
  params: z.object({
    scope: z.enum(["dataset", "this record"]).default("dataset").meta({ label: "Aggregate over", description: "dataset: every record of the Dataset node upstream; this record: only the trace on the input." }),
    concurrency: z.number().int().min(1).max(4).default(1).meta({ label: "Records at once" }),
    stopOnError: z.boolean().default(false).meta({ label: "Stop at the first bad record" }),
    sweep: z.string().max(10_000).default("").meta({ label: "Sweep (optional)", description: "nodeId.param=v1,v2,… e.g. llm.routingTopP=0.3,0.6,0.9: one batch per value, plotted against it." }),
  }),
  async execute({ inputs, params, ctx }) {
    const trace = inputs.trace;
    if (params.scope === "this record") {
      const rec = inputs.record;
      const agg = new RoutingAggregate(trace.experts, trace.layers.length, undefined, { vocabulary: true }).add(trace, { group: recordGroup(rec?.task, rec?.label) });
      const scan = { source: "(one record)", count: 1, errorCount: 0, errors: [], preview: [], tasks: {}, modalities: {}, fingerprint: "", kind: "jsonl" as const };
      const score = traceNll(trace);
      const nll: NllTotals = {};
      if (score) addNll(nll, recordGroup(rec?.task, rec?.label), score);
      const { file, csvFile } = await storeExport(ctx, agg, { workflowFingerprint: "", ran: 1, cached: 0, failed: 0, scan, nll });
      return { aggregate: report({ file, csvFile, records: { total: 1, ran: 1, cached: 0, failed: 0, badRows: 0 }, failures: [], agg, workflowFingerprint: "", datasetFingerprint: "" }) };
    }
    const doc = ctx.workflow;
    if (!doc) throw new Error("this host did not pass the workflow to the node, so it cannot run the dataset; set scope to \"this record\"");
    const edge = doc.edges.find((e) => e.target === ctx.nodeId && e.targetSocket === "trace");
    if (!edge) throw new Error("connect the trace to aggregate");
    const collect = { nodeId: edge.source, socket: edge.sourceSocket };
    const plan = batchPlan(doc, collect);
    const dsNode = plan.doc.nodes.find((n) => n.id === plan.datasetNodeId)!;
    const source = resolveDatasetSource(String((dsNode.params as { source?: unknown }).source ?? ""));
    const catalogue = ctx.catalogue;
    if (!catalogue) throw new Error("this host did not pass its node catalogue, so the node cannot run the dataset");
    const executor = new Executor({ catalogue: batchCatalogue(catalogue), storage: ctx.storage, runtime: ctx.runtime, concurrency: 1, memoryProbe: false }); // the node run itself measures memory
    const scan = await scanDataset(source);
    const base = { catalogue, executor, storage: ctx.storage, source, scan, storeDir: batchStoreDir(ctx.cacheScope), collect, concurrency: params.concurrency, signal: ctx.signal, stopOnError: params.stopOnError, vocabulary: true, runId: ctx.runId };

    if (params.sweep.trim() === "") {
      const batch = await runBatch({ ...base, doc, onProgress: (p) => ctx.progress(p.done / Math.max(1, p.total), progressLine(p)) });
      if (batch.status === "cancelled") throw ctx.signal.reason ?? new Error("cancelled");
      if (batch.status === "failed" || !batch.aggregate) throw new Error(batch.error ?? `no record produced a trace (${batch.failed} failed${batch.failures[0] ? `, e.g. line ${batch.failures[0].line}: ${batch.failures[0].message}` : ""})`);
      const { file, csvFile } = await storeExport(ctx, batch.aggregate, batch);
      return { aggregate: report({ file, csvFile, records: counts(batch), failures: batch.failures, agg: batch.aggregate, workflowFingerprint: batch.workflowFingerprint, datasetFingerprint: scan.fingerprint }) };
    }

    const sweep = parseSweep(params.sweep);
    if (sweep.nodeId === plan.datasetNodeId || doc.nodes.find((n) => n.id === sweep.nodeId)?.type === DATASET_NODE_TYPE) throw new Error("sweep a model or routing param, not the Dataset node");
    const files: { file: string; csvFile: string }[] = [];
    let first: { agg: RoutingAggregate; batch: BatchResult } | undefined;
    const n = sweep.values.length;
    const result = await runSweep({
      ...base,
      doc,
      sweep,
      onProgress: (i, p) => ctx.progress((i + p.done / Math.max(1, p.total)) / n, progressLine(p, `${sweep.param} = ${JSON.stringify(sweep.values[i])} (${i + 1}/${n}): `)),
      onPoint: async (point: SweepPoint, batch) => {
        if (!batch.aggregate) return;
        const f = await storeExport(ctx, batch.aggregate, batch, { nodeId: sweep.nodeId, param: sweep.param, value: point.value });
        files.push(f);
        (point as SweepPoint & { file?: string }).file = f.file;
        first ??= { agg: batch.aggregate, batch };
      },
    });
    if (result.status === "cancelled") throw ctx.signal.reason ?? new Error("cancelled");
    if (!first) throw new Error(`no sweep value produced an aggregate: ${result.points.map((p) => p.error).filter(Boolean).join("; ")}`);
    const sweepFile = await ctx.storage.write(Buffer.from(JSON.stringify({ ...result, workflow: doc })), "json");
    return {
      aggregate: {
        ...report({ ...files[0]!, records: counts(first.batch), failures: first.batch.failures, agg: first.agg, workflowFingerprint: first.batch.workflowFingerprint, datasetFingerprint: scan.fingerprint }),
        sweepFile,
        headline: `sweep of ${sweep.nodeId}.${sweep.param} over ${n} values × ${scan.count} records`,
      },
    };
  },
  summarize(outputs) {
    return outputs.aggregate?.headline ?? "no aggregate";
  },
});

function counts(b: BatchResult): AggregateReport["records"] {
  return { total: b.total, ran: b.ran, cached: b.cached, failed: b.failed, badRows: b.scan.errorCount };
}

function report(a: { file: string; csvFile: string; records: AggregateReport["records"]; failures: { line: number; message: string }[]; agg: RoutingAggregate; workflowFingerprint: string; datasetFingerprint: string }): AggregateReport {
  const c = a.agg.counts();
  const tasks = [...new Set(a.agg.groups().map((g) => parseRecordGroup(g).task))].sort();
  const done = a.records.ran + a.records.cached;
  return {
    kind: "routing-aggregate-report",
    type: "routing-aggregate",
    headline: `${done} records · ${c.tokens} tokens · ${tasks.filter((t) => t !== "").length} task(s)${a.records.failed ? ` · ${a.records.failed} failed` : ""}${a.records.badRows ? ` · ${a.records.badRows} bad row(s)` : ""}`,
    file: a.file,
    csvFile: a.csvFile,
    records: a.records,
    failures: a.failures.slice(0, 20).map((f) => ({ line: f.line, message: f.message })),
    tasks,
    workflowFingerprint: a.workflowFingerprint,
    datasetFingerprint: a.datasetFingerprint,
  };
}
