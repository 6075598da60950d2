import { z } from "zod";
import { defineValueKind, ownPreview } from "./kind";

/**
 * What the Routing Aggregate hands on. `type` + `headline` make it its own preview (the editor shows it as it is);
 * `file` is the aggregate export (engine/batch/summary.ts) in the file store, `sweepFile` the sweep.
 */
export interface AggregateReport {
  kind: "routing-aggregate-report";
  type: "routing-aggregate";
  headline: string;
  file: string;
  csvFile: string;
  sweepFile?: string;
  records: { total: number; ran: number; cached: number; failed: number; badRows: number };
  failures: { line: number; message: string }[];
  tasks: string[];
  workflowFingerprint: string;
  datasetFingerprint: string;
}

export const routingAggregate = defineValueKind<AggregateReport>({
  name: "routing-aggregate",
  noun: "a Routing Aggregate node's output",
  tag: "routing-aggregate-report",
  schema: z.object({ kind: z.literal("routing-aggregate-report"), type: z.literal("routing-aggregate"), headline: z.string(), file: z.string(), csvFile: z.string() }),
  describe: ownPreview,
});
