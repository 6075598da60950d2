import { z } from "zod";
import { defineNode } from "../engine/node";
import { traceToJSONString } from "../engine/routing/export";
import { computeMetrics, metricsToJSON } from "../engine/routing/metrics";
import { oneOfKinds } from "../engine/values/kind";
import { routingAggregate } from "../engine/values/routing-aggregate";
import { routingReport, type RoutingReport } from "../engine/values/routing-report";
import "./params";

export type { RoutingReport };


export const routingInspector = defineNode({
  type: "inspect.routing",
  typeVersion: 1,
  title: "Routing Inspector",
  category: "Inspect",
  description:
    "Per-layer expert load (heatmap), expert share (Fig. 7), experts per token (Fig. 8), token strip and balance metrics — of one routing trace, or of a dataset's aggregate (Figures 7 and 8 per task, side by side).",
  inputs: {
    trace: { type: "ROUTING_TRACE", optional: true },
    aggregate: { type: "JSON", optional: true, label: "aggregate (Routing Aggregate)", kind: routingAggregate },
  },
  connectOneOf: { inputs: ["trace", "aggregate"], exclusive: true },
  outputs: { report: { type: "JSON", kind: oneOfKinds(routingReport, routingAggregate) } },
  params: z.object({}),
  async execute({ inputs, ctx }) {
    const { trace, aggregate } = inputs;
    if (trace !== undefined && aggregate !== undefined) throw new Error("connect either a routing trace or an aggregate, not both");
    if (aggregate) return { report: aggregate };
    if (!trace) throw new Error("connect a routing trace (from an MoE-LLM) or an aggregate (from a Routing Aggregate node)");
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
    const r = outputs.report;
    if (!r) return "no report";
    if (r.kind === "routing-aggregate-report") return r.headline;
    const meanK = r.perLayer.reduce((a, l) => a + l.meanK, 0) / Math.max(1, r.perLayer.length);
    return `${r.tokens} tokens × ${r.layers} layers, mean k ${meanK.toFixed(2)}`;
  },
});
