import { z } from "zod";
import type { ComparisonSummary } from "../routing/compare";
import { defineValueKind } from "./kind";

/** What Compare Traces outputs: the labels, the comparison file for the UI, and the headline figures. */
export interface CompareReport {
  kind: "compare-report";
  labelA: string;
  labelB: string;
  /** The comparison (nodes/compare-traces.ts CompareFile) as JSON in the file store. */
  file: string;
  summary: ComparisonSummary & { tokensA: number; tokensB: number; layers: number };
}

export const compareReport = defineValueKind<CompareReport>({
  name: "compare-report",
  noun: "a trace comparison",
  tag: "compare-report",
  schema: z.object({ kind: z.literal("compare-report"), labelA: z.string(), labelB: z.string(), file: z.string(), summary: z.object({}) }),
  describe(o) {
    const sm = o.summary;
    const agree = typeof sm.meanTopAgreement === "number" ? `, top expert unchanged for ${(sm.meanTopAgreement * 100).toFixed(0)} %` : "";
    return {
      type: "compare-report",
      headline: `${o.labelB} vs ${o.labelA}: max |Δ share| ${((sm.maxAbsShareDelta ?? 0) * 100).toFixed(1)} % (L${sm.layer ?? "?"}, ${sm.expert ?? "?"})${agree}`,
      file: o.file,
    };
  },
});
