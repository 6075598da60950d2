import { describe, expect, it } from "vitest";
import { aggregateCSV, aggregateExport, batchExportMeta, summarizeAggregate, summarizeMetrics } from "../../../engine/batch/summary";
import { recordGroup, RoutingAggregate } from "../../../engine/routing/aggregate";
import { syntheticTrace } from "../../../engine/routing/synthetic";

function agg() {
  const a = syntheticTrace({ seed: 1, layers: 3, tokens: 40, routed: 4, nulls: 1, shared: 1 });
  const b = syntheticTrace({ seed: 2, layers: 3, tokens: 25, routed: 4, nulls: 1, shared: 1 });
  return new RoutingAggregate(a.experts, 3, undefined, { vocabulary: true }).add(a, { group: recordGroup("x", "p") }).add(b, { group: recordGroup("y", "") });
}

describe("aggregate summaries and exports", () => {
  it("summaries are the means over layers of the per-layer metrics, overall and per task", () => {
    const g = agg();
    const m = g.metrics();
    const s = summarizeMetrics(m);
    expect(s.tokens).toBe(65);
    expect(s.meanK).toBeCloseTo((m.layers[0]!.meanK + m.layers[1]!.meanK + m.layers[2]!.meanK) / 3, 12);
    expect(s.jain).toBeCloseTo(m.layers.reduce((a, l) => a + l.jain, 0) / 3, 12);
    const by = summarizeAggregate(g);
    expect(Object.keys(by.byTask)).toEqual(["x", "y"]);
    expect(by.byTask.y!.tokens).toBe(25);
  });

  it("the JSON export round-trips the aggregate and carries both fingerprints; the CSV has one row per (scope, layer, expert or k)", () => {
    const g = agg();
    const meta = { workflowFingerprint: "w".repeat(64), datasetFingerprint: "d".repeat(64), dataset: { source: "s", count: 2, errorCount: 0 }, records: { ran: 2, cached: 0, failed: 0 } };
    const doc = JSON.parse(JSON.stringify(aggregateExport(g, meta)));
    expect([doc.workflowFingerprint, doc.datasetFingerprint, doc.tasks]).toEqual([meta.workflowFingerprint, meta.datasetFingerprint, ["x", "y"]]);
    expect(RoutingAggregate.fromJSON(doc.aggregate).toJSON()).toEqual(g.toJSON());
    const lines = aggregateCSV(g, meta).trim().split("\n");
    expect(lines.slice(0, 3)).toEqual([`# workflow_fingerprint=${"w".repeat(64)}`, `# dataset_fingerprint=${"d".repeat(64)}`, "task,layer,figure,key,role,count,share"]);
    // 3 scopes (*, x, y) × 3 layers × (5 dynamic experts + k = 0..5)
    expect(lines.length - 3).toBe(3 * 3 * (5 + 7)); // D = 5 experts, k = 0..D and k > D
    const m = g.metrics({ group: [recordGroup("x", "p")] });
    expect(lines).toContain(`x,1,expert-share,E2,routed,${m.layers[1]!.selectionCounts[1]},${m.layers[1]!.tokenShare[1]}`);
  });

  it("scored batches: the export carries the NLL sums per group and the CSV a mean NLL per task", () => {
    const g = agg();
    const nll = { [recordGroup("x", "p")]: { sum: 6, tokens: 4, records: 1 }, [recordGroup("y", "")]: { sum: 3, tokens: 2, records: 1 } };
    const batch = { workflowFingerprint: "w".repeat(64), ran: 2, cached: 0, failed: 0, nll, scan: { source: "s", count: 2, errorCount: 0, fingerprint: "d".repeat(64) } as never };
    const meta = batchExportMeta(batch);
    expect(JSON.parse(JSON.stringify(aggregateExport(g, meta))).nll).toEqual(nll);
    const lines = aggregateCSV(g, meta).trim().split("\n");
    expect(lines.slice(-3)).toEqual([`*,"",nll,mean_nll,"",6,1.5`, `x,"",nll,mean_nll,"",4,1.5`, `y,"",nll,mean_nll,"",2,1.5`]);
    expect(aggregateExport(g, batchExportMeta({ ...batch, nll: {} }))).not.toHaveProperty("nll");
  });
});
