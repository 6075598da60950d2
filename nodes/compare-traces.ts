import { z } from "zod";
import { defineNode } from "../engine/node";
import { compareTraces, summarizeComparison, type TraceComparison } from "../engine/routing/compare";
import { compareReport, type CompareReport } from "../engine/values/compare-report";
import "./params";

/** The stored comparison (JSON file in the store): engine/routing/compare.ts TraceComparison plus the labels. */
export interface CompareFile extends TraceComparison {
  kind: "trace-comparison";
  version: 1;
  labelA: string;
  labelB: string;
}

export type { CompareReport };

const label = (def: string, what: string) => z.string().trim().min(1).max(80).default(def).meta({ label: `Label of ${what}` });

export const compareTracesNode = defineNode({
  type: "inspect.compare-traces",
  typeVersion: 1,
  title: "Compare Traces",
  category: "Inspect",
  description: "Per-layer differences (B − A) of expert share, k distribution, null share, shared weight and balance metrics of two routing traces, how often the top expert and the whole expert set per layer are unchanged on their common tokens (routing agreement), which of those tokens are routed differently, side by side, and how their next-token logits differ — e.g. the same input routed in fp32 and in bf16, or a quantised model against its full-precision twin.",
  inputs: { a: { type: "ROUTING_TRACE", label: "trace A" }, b: { type: "ROUTING_TRACE", label: "trace B" } },
  outputs: { report: { type: "JSON", kind: compareReport } },
  params: z.object({ labelA: label("A", "trace A"), labelB: label("B", "trace B") }),
  async execute({ inputs, params, ctx }) {
    const cmp = compareTraces(inputs.a, inputs.b);
    const body: CompareFile = { kind: "trace-comparison", version: 1, labelA: params.labelA, labelB: params.labelB, ...cmp };
    const file = await ctx.storage.write(Buffer.from(JSON.stringify(body)), "json");
    const report: CompareReport = {
      kind: "compare-report",
      labelA: params.labelA,
      labelB: params.labelB,
      file,
      summary: { ...summarizeComparison(cmp), tokensA: cmp.a.tokens, tokensB: cmp.b.tokens, layers: cmp.layers },
    };
    return { report };
  },
  summarize(outputs) {
    const r = outputs.report;
    if (!r) return "no comparison";
    const s = r.summary;
    const pct = (x: number) => `${(x * 100).toFixed(1)} %`;
    const share = s.layer === null ? "no expert shares" : `max |Δ share| ${pct(s.maxAbsShareDelta)} (${s.shareDelta >= 0 ? "+" : "−"}, layer ${s.layer}, ${s.expert})`;
    const agree = s.meanTopAgreement === null ? "no common tokens" : `top expert unchanged ${pct(s.meanTopAgreement)} over ${s.commonPrefix} common tokens`;
    const routed = s.routedDifferently ? `; k or experts differ on ${s.routedDifferently} token-layers` : "";
    const sets = s.meanSetAgreement === null || s.meanSetAgreement === undefined ? "" : `; same expert set ${pct(s.meanSetAgreement)}`;
    const logits = s.maxAbsLogitDelta === null || s.maxAbsLogitDelta === undefined ? "" : `; max |Δ logit| ${s.maxAbsLogitDelta.toPrecision(3)}`;
    return `${r.labelB} vs ${r.labelA}: ${share}; ${agree}${sets}${routed}${logits}`;
  },
});
