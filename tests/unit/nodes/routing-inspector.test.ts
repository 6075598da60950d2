import { describe, expect, it } from "vitest";
import { traceFromJSON } from "@/engine/routing/export";
import { computeMetricsReference, metricsFromJSON, metricsToJSON, type RoutingMetrics } from "@/engine/routing/metrics";
import { syntheticTrace } from "@/engine/routing/synthetic";
import { routingInspector, type RoutingReport } from "@/nodes/routing-inspector";
import { makeCtx } from "./ctx";

/** Every number of `a` within `tol` of `b` (arrays, typed arrays and objects walked together). */
function expectClose(a: unknown, b: unknown, tol: number, at = "m"): void {
  if (typeof b === "number") {
    expect(typeof a, at).toBe("number");
    if (Number.isNaN(b)) expect(Number.isNaN(a as number), at).toBe(true);
    else expect(Math.abs((a as number) - b), `${at}: ${a} vs ${b}`).toBeLessThanOrEqual(tol);
    return;
  }
  if (ArrayBuffer.isView(b) || Array.isArray(b)) {
    const x = Array.from(a as ArrayLike<number>);
    const y = Array.from(b as ArrayLike<number>);
    expect(x.length, `${at}.length`).toBe(y.length);
    y.forEach((v, i) => expectClose(x[i], v, tol, `${at}[${i}]`));
    return;
  }
  if (b && typeof b === "object") {
    expect(Object.keys(a as object).sort(), `${at} keys`).toEqual(Object.keys(b).sort());
    for (const [k, v] of Object.entries(b)) expectClose((a as Record<string, unknown>)[k], v, tol, `${at}.${k}`);
    return;
  }
  expect(a, at).toEqual(b);
}

describe("Routing Inspector node: precomputed metrics", () => {
  it("writes the all-tokens metrics file, equal to computeMetricsReference (1e-6)", async () => {
    const { ctx, storage, dispose } = await makeCtx();
    try {
      const trace = syntheticTrace({ seed: 7, layers: 5, routed: 9, nulls: 1, shared: 2, tokens: 300 });
      const report = (await routingInspector.execute({ inputs: { trace }, params: {}, ctx })).report as RoutingReport;
      expect(report.metricsFile).toMatch(/\.json$/);
      const stored = metricsFromJSON(JSON.parse((await storage.read(report.metricsFile!)).toString("utf8")));
      const want: RoutingMetrics = { ...computeMetricsReference(trace), perToken: null };
      expectClose(stored, want, 1e-6);
      // the trace file and the report's balance figures agree with it
      expect(traceFromJSON(JSON.parse((await storage.read(report.traceFile)).toString("utf8"))).tokens).toHaveLength(300);
      report.perLayer.forEach((l, i) => expect(l.entropy).toBeCloseTo(stored.layers[i]!.entropy, 12));
    } finally {
      await dispose();
    }
  });

  it("metricsFromJSON(metricsToJSON(m)) gives back m without per-token data; rejects other JSON", () => {
    const trace = syntheticTrace({ seed: 3, layers: 3, routed: 4, nulls: 0, shared: 1, tokens: 40 });
    const m = computeMetricsReference(trace);
    expectClose(metricsFromJSON(JSON.parse(JSON.stringify(metricsToJSON(m)))), { ...m, perToken: null }, 0);
    expect(() => metricsFromJSON({ kind: "routing-trace" })).toThrow(/routing-metrics/);
  });
});

describe("Routing Inspector node: a dataset's aggregate", () => {
  const aggregate = {
    kind: "routing-aggregate-report",
    type: "routing-aggregate",
    headline: "aggregate of 3 records",
    file: "0".repeat(64) + ".json",
    csvFile: "1".repeat(64) + ".csv",
    records: { total: 3, ran: 3, cached: 0, failed: 0, badRows: 0 },
    failures: [],
    tasks: ["a", "b"],
    workflowFingerprint: "w",
    datasetFingerprint: "d",
  };

  it("takes an aggregate as it takes a trace: the report is the aggregate, shown by the aggregate views", async () => {
    const { ctx, dispose } = await makeCtx();
    try {
      const out = await routingInspector.execute({ inputs: { aggregate }, params: {}, ctx });
      expect(out.report).toEqual(aggregate);
      expect(routingInspector.summarize!(out)).toBe("aggregate of 3 records");
    } finally {
      await dispose();
    }
  });

  it("names the cause when the inputs are wrong: neither, both, or something else on the aggregate socket", async () => {
    const { ctx, dispose } = await makeCtx();
    try {
      const trace = syntheticTrace({ seed: 3, layers: 2, routed: 4, nulls: 1, shared: 1, tokens: 10 });
      await expect(routingInspector.execute({ inputs: {}, params: {}, ctx })).rejects.toThrow(/connect a routing trace .* or an aggregate/);
      await expect(routingInspector.execute({ inputs: { trace, aggregate }, params: {}, ctx })).rejects.toThrow(/not both/);
      await expect(routingInspector.execute({ inputs: { aggregate: { kind: "something" } }, params: {}, ctx })).rejects.toThrow(/not a Routing Aggregate/);
    } finally {
      await dispose();
    }
  });
});
