import { z } from "zod";
import { defineNode } from "../engine/node";
import { traceToJSONString } from "../engine/routing/export";
import { computeMetrics, metricsToJSON } from "../engine/routing/metrics";
import { isRoutingTrace } from "../engine/trace";
import type { AggregateReport } from "./routing-aggregate";
import "./params";

function isAggregateReport(value: unknown): value is AggregateReport {
  const v = value as Partial<AggregateReport> | null;
  return typeof v === "object" && v !== null && v.kind === "routing-aggregate-report" && typeof v.file === "string";
}

/** What the inspector hands on: per-layer balance figures, and the whole trace as a file for the views. */
export interface RoutingReport {
  kind: "routing-report";
  model: string;
  convention: string;
  /** JSON trace (engine/routing/export.ts format) in the file store, for the inspector views and export. */
  traceFile: string;
  /**
   * The "all tokens" metrics of the trace (engine/routing/metrics.ts metricsToJSON: counts, co-activation,
   * transitions, balance incl. entropy) as a JSON file, so the inspector does not recompute them. Absent in
   * reports written before it was added (the inspector then computes them itself).
   */
  metricsFile?: string;
  tokens: number;
  layers: number;
  experts: { name: string; role: string }[];
  perLayer: { layer: number; meanK: number; nullTokenShare: number; sharedWeightShare: number; loadCV: number; maxVio: number; jain: number; entropy: number }[];
}

export const routingInspector = defineNode({
  type: "inspect.routing",
  typeVersion: 1,
  title: "Routing Inspector",
  category: "Inspect",
  description:
    "Per-layer expert load (heatmap), expert share (Fig. 7), experts per token (Fig. 8), token strip and balance metrics — of one routing trace, or of a dataset's aggregate (Figures 7 and 8 per task, side by side).",
  inputs: {
    trace: { type: "ROUTING_TRACE", optional: true },
    aggregate: { type: "JSON", optional: true, label: "aggregate (Routing Aggregate)" },
  },
  outputs: { report: { type: "JSON" } },
  params: z.object({}),
  async execute({ inputs, ctx }) {
    const { trace, aggregate } = inputs;
    if (trace !== undefined && aggregate !== undefined) throw new Error("connect either a routing trace or an aggregate, not both");
    if (aggregate !== undefined) {
      if (!isAggregateReport(aggregate)) throw new Error("the aggregate input is not a Routing Aggregate node's output");
      return { report: aggregate };
    }
    if (trace === undefined) throw new Error("connect a routing trace (from an MoE-LLM) or an aggregate (from a Routing Aggregate node)");
    if (!isRoutingTrace(trace)) throw new Error("the input is not a routing trace");
    const metrics = computeMetrics(trace);
    const [traceFile, metricsFile] = await Promise.all([
      ctx.storage.write(Buffer.from(traceToJSONString(trace)), "json"),
      ctx.storage.write(Buffer.from(JSON.stringify(metricsToJSON(metrics))), "json"),
    ]);
    const report: RoutingReport = {
      kind: "routing-report",
      model: trace.model,
      convention: trace.convention,
      traceFile,
      metricsFile,
      tokens: metrics.tokens,
      layers: trace.layers.length,
      experts: trace.experts.map((e) => ({ name: e.name, role: e.role })),
      perLayer: metrics.layers.map((l) => ({
        layer: l.layer,
        meanK: l.meanK,
        nullTokenShare: l.nullTokenShare,
        sharedWeightShare: l.sharedWeightShare,
        loadCV: l.loadCV,
        maxVio: l.maxVio,
        jain: l.jain,
        entropy: l.entropy,
      })),
    };
    return { report };
  },
  summarize(outputs) {
    const r = outputs.report as RoutingReport | AggregateReport | undefined;
    if (!r) return "no report";
    if (r.kind === "routing-aggregate-report") return r.headline;
    const meanK = r.perLayer.reduce((a, l) => a + l.meanK, 0) / Math.max(1, r.perLayer.length);
    return `${r.tokens} tokens × ${r.layers} layers, mean k ${meanK.toFixed(2)}`;
  },
});
