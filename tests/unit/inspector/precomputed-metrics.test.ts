/** The inspector's use of precomputed metrics (no per-token data): token tops and drawings match the in-page path. */
import { describe, expect, it } from "vitest";
import { heatmapDrawing, stackedSeries, topExpertsAt } from "../../../app/inspector/RoutingInspector";
import { computeMetrics, metricsFromJSON, metricsToJSON, selectTokens } from "../../../engine/routing/metrics";
import { syntheticTrace } from "../../../engine/routing/synthetic";

describe("inspector with precomputed metrics", () => {
  const trace = syntheticTrace({ seed: 11, layers: 4, routed: 8, nulls: 1, shared: 2, tokens: 200 });
  const m = computeMetrics(trace);
  const pre = metricsFromJSON(JSON.parse(JSON.stringify(metricsToJSON(m))));

  it("topExpertsAt gives computeMetrics' per-token top experts, layer by layer", () => {
    const rows = selectTokens(trace);
    const dynCols = Int32Array.from(m.experts.dynamic, (e) => e.column);
    const N = rows.length;
    for (let l = 0; l < trace.layers.length; l++) expect(Array.from(topExpertsAt(trace, dynCols, rows, l))).toEqual(Array.from(m.perToken!.topExpert.subarray(l * N, (l + 1) * N)));
  });

  it("the heatmap and Fig. 7/8 series are the same from the metrics file", () => {
    expect(stackedSeries(pre, "share")).toEqual(stackedSeries(m, "share"));
    expect(stackedSeries(pre, "k")).toEqual(stackedSeries(m, "k"));
    expect(JSON.stringify(heatmapDrawing(pre))).toBe(JSON.stringify(heatmapDrawing(m)));
  });
});
