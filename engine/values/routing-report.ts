import { z } from "zod";
import { defineValueKind } from "./kind";

/** What the Routing Inspector hands on for a trace: per-layer balance figures, and the whole trace as a file for the views. */
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

export const routingReport = defineValueKind<RoutingReport>({
  name: "routing-report",
  noun: "a routing report",
  tag: "routing-report",
  schema: z.object({ kind: z.literal("routing-report"), model: z.string(), traceFile: z.string(), metricsFile: z.string().optional(), tokens: z.number(), layers: z.number() }),
  describe: (o) => ({ type: "routing-report", headline: `routing of ${o.tokens} tokens × ${o.layers} layers`, traceFile: o.traceFile, model: o.model, ...(typeof o.metricsFile === "string" ? { metricsFile: o.metricsFile } : {}) }),
});
