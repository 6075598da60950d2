/**
 * Scalar summaries of an aggregate (for sweeps and exports) and the CSV/JSON export with fingerprints.
 */
import type { RoutingMetrics } from "../routing/metrics";
import { parseRecordGroup, type RoutingAggregate } from "../routing/aggregate";
import { groupsBy } from "../routing/specialisation";
import type { Workflow } from "../workflow/schema";
import type { BatchResult } from "./runner";
import { meanNll, nllAll, nllBy, type NllTotals } from "./scores";
import { toCSV, type CsvCell } from "../csv";

export const SUMMARY_METRICS = ["meanK", "nullTokenShare", "sharedWeightShare", "loadCV", "maxVio", "jain", "entropy"] as const;
export type SummaryMetric = (typeof SUMMARY_METRICS)[number];
export type MetricsSummary = { tokens: number } & Record<SummaryMetric, number>;

export const METRIC_LABELS: Record<SummaryMetric, string> = {
  meanK: "mean experts per token (k)",
  nullTokenShare: "tokens using a null expert",
  sharedWeightShare: "shared-expert weight",
  loadCV: "load CV",
  maxVio: "MaxVio",
  jain: "Jain's fairness",
  entropy: "router entropy (nats)",
};

/** Mean over layers of the per-layer metrics (layers weigh equally; every layer sees every token). */
export function summarizeMetrics(m: RoutingMetrics): MetricsSummary {
  const L = Math.max(1, m.layers.length);
  const mean = (f: (l: RoutingMetrics["layers"][number]) => number) => m.layers.reduce((a, l) => a + (Number.isFinite(f(l)) ? f(l) : 0), 0) / L;
  return {
    tokens: m.tokens,
    meanK: mean((l) => l.meanK),
    nullTokenShare: mean((l) => l.nullTokenShare),
    sharedWeightShare: mean((l) => l.sharedWeightShare),
    loadCV: mean((l) => l.loadCV),
    maxVio: mean((l) => l.maxVio),
    jain: mean((l) => l.jain),
    entropy: mean((l) => l.entropy),
  };
}

/** Overall and per-task summaries. */
export function summarizeAggregate(agg: RoutingAggregate): { all: MetricsSummary; byTask: Record<string, MetricsSummary> } {
  const byTask: Record<string, MetricsSummary> = {};
  for (const [task, groups] of groupsBy(agg, "task")) byTask[task] = summarizeMetrics(agg.metrics({ group: groups }));
  return { all: summarizeMetrics(agg.metrics()), byTask };
}

export interface ExportMeta {
  workflowFingerprint: string;
  datasetFingerprint: string;
  dataset: { source: string; count: number; errorCount: number };
  workflow?: Workflow;
  records: { ran: number; cached: number; failed: number };
  sweep?: { nodeId: string; param: string; value: unknown };
  /** Teacher-forced NLL sums per record group, when the traces were scored. */
  nll?: NllTotals;
}

/** The export metadata of a batch (the same for the node and the CLI). */
export function batchExportMeta(batch: Pick<BatchResult, "workflowFingerprint" | "ran" | "cached" | "failed" | "scan" | "nll">, extra: { workflow?: Workflow; sweep?: ExportMeta["sweep"] } = {}): ExportMeta {
  return {
    workflowFingerprint: batch.workflowFingerprint,
    datasetFingerprint: batch.scan.fingerprint,
    dataset: { source: batch.scan.source, count: batch.scan.count, errorCount: batch.scan.errorCount },
    records: { ran: batch.ran, cached: batch.cached, failed: batch.failed },
    ...(extra.workflow ? { workflow: extra.workflow } : {}),
    ...(extra.sweep ? { sweep: extra.sweep } : {}),
    ...(Object.keys(batch.nll).length ? { nll: batch.nll } : {}),
  };
}

/** The aggregate as a self-describing JSON document (loadable with RoutingAggregate.fromJSON(doc.aggregate)). */
export function aggregateExport(agg: RoutingAggregate, meta: ExportMeta) {
  return {
    kind: "routing-aggregate-export" as const,
    version: 1,
    createdAt: new Date().toISOString(),
    workflowFingerprint: meta.workflowFingerprint,
    datasetFingerprint: meta.datasetFingerprint,
    dataset: meta.dataset,
    records: meta.records,
    ...(meta.sweep ? { sweep: meta.sweep } : {}),
    ...(meta.nll ? { nll: meta.nll } : {}),
    summary: summarizeAggregate(agg),
    tasks: [...groupsBy(agg, "task").keys()],
    labels: [...groupsBy(agg, "label").keys()],
    ...(meta.workflow ? { workflow: meta.workflow } : {}),
    aggregate: agg.toJSON(),
  };
}
export type AggregateExport = ReturnType<typeof aggregateExport>;

/**
 * Long-format CSV: per task ("*" = all records) and layer, each dynamic expert's selections and token
 * share (Fig. 7), then each k's token count and share (Fig. 8); for scored traces, per task the scored tokens
 * and their mean NLL (figure "nll", layer empty). Fingerprints in leading # lines. Task names are the dataset's
 * text: defused like every text cell (engine/csv.ts).
 */
export function aggregateCSV(agg: RoutingAggregate, meta: Pick<ExportMeta, "workflowFingerprint" | "datasetFingerprint" | "nll">): string {
  const rows: CsvCell[][] = [["task", "layer", "figure", "key", "role", "count", "share"]];
  const scopes: [string, RoutingMetrics][] = [["*", agg.metrics()]];
  for (const [task, groups] of groupsBy(agg, "task")) scopes.push([task, agg.metrics({ group: groups })]);
  for (const [task, m] of scopes) {
    for (const l of m.layers) {
      m.experts.dynamic.forEach((e, d) => rows.push([task, l.layer, "expert-share", e.name, e.role, l.selectionCounts[d]!, l.tokenShare[d]!]));
      l.kCounts.forEach((n, k) => rows.push([task, l.layer, "k", k, "", n, l.kShare[k]!]));
    }
  }
  if (meta.nll) {
    const all = nllAll(meta.nll);
    for (const [task, s] of [["*", all] as const, ...nllBy(meta.nll, "task")]) rows.push([task, null, "nll", "mean_nll", null, s.tokens, meanNll(s)]);
  }
  return toCSV(rows, { comments: [`workflow_fingerprint=${meta.workflowFingerprint}`, `dataset_fingerprint=${meta.datasetFingerprint}`] });
}

export { parseRecordGroup };
