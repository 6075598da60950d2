import { describe, expect, it } from "vitest";
import { RoutingAggregate } from "../../../engine/routing/aggregate";
import { traceFromJSON, traceToJSON } from "../../../engine/routing/export";
import { computeMetrics } from "../../../engine/routing/metrics";
import { syntheticTrace } from "../../../engine/routing/synthetic";
import type { RoutingTrace } from "../../../engine/trace";

/** A trace of a model whose decoder layer 0 is dense: its two MoE layers are decoder layers 1 and 2. */
function withDenseFirstLayer(seed: number): RoutingTrace {
  const t = syntheticTrace({ seed, layers: 2, tokens: 20, routed: 6 });
  return {
    ...t,
    layers: t.layers.map((l, i) => ({ ...l, layer: i + 1, scores: Float32Array.from({ length: 20 * 6 }, (_, j) => (j % 7) / 7) })),
    layerInfo: [
      { layer: 0, kind: "dense", rule: "dense MLP (intermediate 40), no router" },
      { layer: 1, kind: "moe", rule: "softmax, top-2 of 6" },
      { layer: 2, kind: "moe", rule: "softmax, top-2 of 6" },
    ],
  };
}

describe("traces of models with dense layers keep the decoder indices", () => {
  it("metrics name the MoE layers by decoder index", () => {
    expect(computeMetrics(withDenseFirstLayer(1)).layers.map((l) => l.layer)).toEqual([1, 2]);
  });
  it("JSON round trip keeps layer, scores and layerInfo", () => {
    const t = withDenseFirstLayer(2);
    const back = traceFromJSON(JSON.parse(JSON.stringify(traceToJSON(t))));
    expect(back.layers.map((l) => l.layer)).toEqual([1, 2]);
    expect(Array.from(back.layers[0]!.scores!)).toEqual(Array.from(t.layers[0]!.scores!));
    expect(back.layerInfo).toEqual(t.layerInfo);
  });
  it("aggregates keep them through add, merge and JSON, and refuse traces laid out otherwise", () => {
    const a = new RoutingAggregate(withDenseFirstLayer(3).experts, 2).add(withDenseFirstLayer(3));
    const b = a.emptyLike().add(withDenseFirstLayer(4));
    a.merge(b);
    expect(a.metrics().layers.map((l) => l.layer)).toEqual([1, 2]);
    expect(RoutingAggregate.fromJSON(JSON.stringify(a.toJSON())).metrics().layers.map((l) => l.layer)).toEqual([1, 2]);
    const plain = syntheticTrace({ seed: 5, layers: 2, tokens: 20, routed: 6 });
    expect(() => a.add(plain)).toThrow("the trace has layers [0..], the aggregate [1,2]");
  });
});
