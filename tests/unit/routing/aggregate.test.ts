import { describe, expect, it } from "vitest";
import { RoutingAggregate } from "../../../engine/routing/aggregate";
import { computeMetrics, type RoutingMetrics } from "../../../engine/routing/metrics";
import { syntheticTrace } from "../../../engine/routing/synthetic";
import { appendTrace, type RoutingTrace } from "../../../engine/trace";
import { countsOnly, handTrace } from "./fixtures";

const concat = (a: RoutingTrace, b: RoutingTrace) => appendTrace(a, b.tokens, b.layers);

/** Exact equality of every count-based field; float sums (entropy, weights) to 1e-9 relative. */
function expectSameMetrics(got: RoutingMetrics, want: RoutingMetrics) {
  const FLOAT = new Set(["entropy", "entropyNormalized", "nullWeightMass", "sharedWeightShare"]);
  const strip = (m: RoutingMetrics) => ({ ...countsOnly(m), layers: m.layers.map((l) => Object.fromEntries(Object.entries(l).filter(([k]) => !FLOAT.has(k)))) });
  expect(strip(got)).toEqual(strip(want));
  got.layers.forEach((l, i) => {
    const w = want.layers[i]!;
    for (const k of FLOAT) {
      const a = l[k as keyof typeof l] as number;
      const b = w[k as keyof typeof w] as number;
      expect(Math.abs(a - b)).toBeLessThanOrEqual(1e-9 * Math.max(1, Math.abs(b)));
    }
  });
}

describe("RoutingAggregate", () => {
  const A = syntheticTrace({ seed: 11, layers: 4, tokens: 120, routed: 6, nulls: 1, shared: 2 });
  const B = syntheticTrace({ seed: 12, layers: 4, tokens: 80, routed: 6, nulls: 1, shared: 2, modalities: ["video", "text"] });

  it("metrics(aggregate of A and B) == metrics(concatenated trace) for the count-based metrics", () => {
    const agg = new RoutingAggregate(A.experts, 4).add(A).add(B);
    const whole = computeMetrics(concat(A, B));
    expectSameMetrics(agg.metrics(), whole);
    expect(agg.metrics().perToken).toBeNull();
    // per modality and per phase too
    const bySplit = computeMetrics(concat(A, B), { splitBy: "modality" });
    const aggSplit = agg.metricsBy("modality");
    expect(Object.keys(aggSplit)).toEqual(Object.keys(bySplit));
    for (const k of Object.keys(bySplit)) expectSameMetrics(aggSplit[k]!, bySplit[k]!);
    const ph = computeMetrics(concat(A, B), { splitBy: "phase" });
    for (const k of Object.keys(ph)) expectSameMetrics(agg.metrics({ phase: k as "prefill" | "decode" }), ph[k]!);
  });

  it("on the hand trace: added token by token equals the whole trace", () => {
    const t = handTrace();
    const agg = new RoutingAggregate(t.experts, 2);
    for (let i = 0; i < 3; i++) agg.add(t, { filter: { indices: [i] } });
    expectSameMetrics(agg.metrics(), computeMetrics(t));
    expect(Array.from(agg.metrics().layers[0]!.coactivation)).toEqual([2, 1, 1, 1, 1, 1, 1, 1, 2]);
    expect(Array.from(agg.metrics().transitions[0]!.counts)).toEqual([0, 1, 0, 0, 1, 0, 1, 0, 0]);
  });

  it("groups: separate sums, queried alone or together; token counts per group/modality/phase", () => {
    const agg = new RoutingAggregate(A.experts, 4).add(A, { group: "taskA" }).add(B, { group: "taskB" }).add(B, { group: "taskB" });
    expectSameMetrics(agg.metrics("taskA"), computeMetrics(A));
    expectSameMetrics(agg.metrics("taskB"), computeMetrics(concat(B, B)));
    expectSameMetrics(agg.metrics({ group: ["taskA", "taskB"] }), computeMetrics(concat(concat(A, B), B)));
    expect(agg.groups()).toEqual(["taskA", "taskB"]);
    expect(Object.keys(agg.metricsBy("group"))).toEqual(["taskA", "taskB"]);
    const c = agg.counts();
    expect(c.tokens).toBe(120 + 160);
    expect(c.byGroup).toEqual({ taskA: 120, taskB: 160 });
    expect(c.traces).toEqual({ taskA: 1, taskB: 2 });
    const mods = (t: RoutingTrace) => t.tokens.reduce<Record<string, number>>((o, x) => ((o[x.modality] = (o[x.modality] ?? 0) + 1), o), {});
    const mA = mods(A);
    const mB = mods(B);
    for (const k of new Set([...Object.keys(mA), ...Object.keys(mB)])) expect(c.byModality[k]).toBe((mA[k] ?? 0) + 2 * (mB[k] ?? 0));
    expect(c.byPhase.prefill! + c.byPhase.decode!).toBe(280);
    // an unknown group is empty, NaN-free
    const none = agg.metrics("nope");
    expect(none.tokens).toBe(0);
    expect(none.layers[0]!.jain).toBe(1);
  });

  it("merge(other) == adding everything to one aggregate", () => {
    const one = new RoutingAggregate(A.experts, 4).add(A, { group: "g" }).add(B);
    const x = new RoutingAggregate(A.experts, 4).add(A, { group: "g" });
    const y = new RoutingAggregate(A.experts, 4).add(B);
    x.merge(y);
    expectSameMetrics(x.metrics(), one.metrics());
    expect(x.counts()).toEqual(one.counts());
  });

  it("toJSON / fromJSON round-trip (through JSON text)", () => {
    const agg = new RoutingAggregate(A.experts, 4, [[0, 3], [1, 2]]).add(A, { group: "a" }).add(B, { group: "b" });
    const back = RoutingAggregate.fromJSON(JSON.stringify(agg));
    expect(back.metrics()).toEqual(agg.metrics());
    expect(back.metrics("b")).toEqual(agg.metrics("b"));
    expect(back.counts()).toEqual(agg.counts());
    expect(back.pairs).toEqual([[0, 3], [1, 2]]);
    // adding after reload still works
    back.add(A, { group: "a" });
    expect(back.counts().byGroup.a).toBe(240);
  });

  it("rejects incompatible traces, aggregates and bad JSON with clear errors", () => {
    const agg = new RoutingAggregate(A.experts, 4);
    expect(() => agg.add(handTrace())).toThrow(/the trace has 2 layers, the aggregate 4/);
    const other = syntheticTrace({ layers: 4, routed: 5 });
    expect(() => agg.add(other)).toThrow(/experts \[E1:routed/);
    expect(() => agg.merge(new RoutingAggregate(A.experts, 4, [[0, 2]]))).toThrow(/different layer pairs/);
    expect(() => RoutingAggregate.fromJSON("{")).toThrow(/not valid JSON/);
    expect(() => RoutingAggregate.fromJSON({ kind: "routing-aggregate", version: 1, experts: [], numLayers: -1, transitionPairs: [], traces: {}, buckets: [] })).toThrow(/invalid routing aggregate: numLayers/);
    const j = agg.add(A).toJSON();
    j.buckets[0]!.layers[1]!.selections.pop();
    expect(() => RoutingAggregate.fromJSON(j)).toThrow(/buckets\[0\]\.layers\[1\]\.selections has 6 values, expected 7/);
  });

  it("memory does not grow with tokens (sums only)", () => {
    const agg = new RoutingAggregate(A.experts, 4);
    agg.add(A);
    const size1 = JSON.stringify(agg).length;
    for (let i = 0; i < 5; i++) agg.add(A);
    // same buckets, same array sizes: only the digits of the counts change
    expect(JSON.stringify(agg).length).toBeLessThan(size1 * 1.5);
    expect(agg.toJSON().buckets.length).toBe(new RoutingAggregate(A.experts, 4).add(A).toJSON().buckets.length);
  });
});
