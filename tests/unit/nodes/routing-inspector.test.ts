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
