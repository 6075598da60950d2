/**
 * The fast metrics path (computeMetrics: a counting pass plus the entropy kernel, which the inspector runs
 * in a Web Worker) against the reference path (computeMetricsReference: core.accumulate) on seeded traces.
 */
import { describe, expect, it } from "vitest";
import { computeMetrics, computeMetricsReference, routerEntropySums, withEntropy, type RoutingMetrics } from "../../../engine/routing/metrics";
import { mulberry32, syntheticTrace } from "../../../engine/routing/synthetic";
import type { RoutingTrace } from "../../../engine/trace";

/** Every number of `got` within 1e-6 (absolute, or relative for large values) of `want`; same shape. */
function expectClose(got: unknown, want: unknown, path = "metrics") {
  if (typeof want === "number") {
    expect(typeof got, path).toBe("number");
    const g = got as number;
    if (Number.isNaN(want)) return expect(Number.isNaN(g), path).toBe(true);
    const tol = 1e-6 * Math.max(1, Math.abs(want));
    if (!(Math.abs(g - want) <= tol)) throw new Error(`${path}: ${g} vs reference ${want}`);
    return;
  }
  if (ArrayBuffer.isView(want) || Array.isArray(want)) {
    const w = Array.from(want as ArrayLike<number>);
    const g = Array.from(got as ArrayLike<number>);
    expect(g.length, path).toBe(w.length);
    w.forEach((x, i) => expectClose(g[i], x, `${path}[${i}]`));
    return;
  }
  if (want && typeof want === "object") {
    expect(Object.keys(got as object).sort(), path).toEqual(Object.keys(want).sort());
    for (const [k, x] of Object.entries(want)) expectClose((got as Record<string, unknown>)[k], x, `${path}.${k}`);
    return;
  }
  expect(got, path).toEqual(want);
}

/** The integer results (counts, top experts) must be identical, not only close. */
function expectSameCounts(got: RoutingMetrics, want: RoutingMetrics) {
  got.layers.forEach((l, i) => {
    const r = want.layers[i]!;
    expect(l.selectionCounts).toEqual(r.selectionCounts);
    expect(l.kCounts).toEqual(r.kCounts);
    expect(Array.from(l.coactivation)).toEqual(Array.from(r.coactivation));
    expect(l.topCounts).toEqual(r.topCounts);
  });
  expect(Array.from(got.perToken!.topExpert)).toEqual(Array.from(want.perToken!.topExpert));
  got.transitions.forEach((t, i) => expect(Array.from(t.counts)).toEqual(Array.from(want.transitions[i]!.counts)));
}

/** The same trace with its router columns permuted (dynamic columns no longer first and contiguous). */
function permuteColumns(trace: RoutingTrace, seed: number): RoutingTrace {
  const E = trace.experts.length;
  const rnd = mulberry32(seed);
  const perm = Array.from({ length: E }, (_, i) => i);
  for (let i = E - 1; i > 0; i--) {
    const j = Math.floor(rnd() * (i + 1));
    [perm[i], perm[j]] = [perm[j]!, perm[i]!];
  }
  const N = trace.tokens.length;
  const moveRows = <T extends Float32Array | Uint8Array>(a: T): T => {
    const out = new (a.constructor as new (n: number) => T)(a.length);
    for (let n = 0; n < N; n++) for (let c = 0; c < E; c++) out[n * E + c] = a[n * E + perm[c]!]!;
    return out;
  };
  return {
    ...trace,
    experts: perm.map((c) => trace.experts[c]!),
    layers: trace.layers.map((l) => ({ routerLogits: moveRows(l.routerLogits), mask: moveRows(l.mask), weights: moveRows(l.weights), k: l.k })),
  };
}

describe("routerEntropySums + withEntropy (the entropy half, run in a Web Worker by the inspector)", () => {
  const trace = syntheticTrace({ seed: 9, routed: 12, nulls: 1, shared: 2, layers: 3, tokens: 180 });
  const lay = { E: trace.experts.length, dynCols: Int32Array.from(trace.experts.flatMap((e, c) => (e.role === "shared" ? [] : [c]))) };

  it("computeMetrics({ entropy: false }) leaves the entropy NaN and everything else as the reference", () => {
    const ref = computeMetricsReference(trace);
    const m = computeMetrics(trace, { entropy: false });
    for (const l of m.layers) {
      expect(l.entropy).toBeNaN();
      expect(l.entropyNormalized).toBeNaN();
    }
    const strip = (x: RoutingMetrics) => ({ ...x, layers: x.layers.map((l) => ({ ...l, entropy: 0, entropyNormalized: 0 })) });
    expectClose(strip(m), strip(ref));
  });

  it("filled in from the kernel's sums it equals the reference, also for a filtered set", () => {
    for (const filter of [undefined, { modality: "audio" as const }, { indices: [5, 1, 170] }]) {
      const ref = computeMetricsReference(trace, { filter });
      const m = computeMetrics(trace, { filter, entropy: false });
      const sums = routerEntropySums(trace.layers.map((l) => l.routerLogits), lay.E, lay.dynCols, m.perToken!.tokenIndices);
      expectClose(withEntropy(m, sums), ref);
    }
  });

  it("is self-contained: its source text alone (as shipped to the worker) gives the same sums", () => {
    const rows = Int32Array.from({ length: 180 }, (_, i) => i);
    const logits = trace.layers.map((l) => l.routerLogits);
    const fromSource = new Function(`return (${routerEntropySums.toString()})`)() as typeof routerEntropySums;
    expect(Array.from(fromSource(logits, lay.E, lay.dynCols, rows))).toEqual(Array.from(routerEntropySums(logits, lay.E, lay.dynCols, rows)));
  });

  it("no tokens: entropy 0, as the reference", () => {
    const m = computeMetrics(trace, { filter: { indices: [] }, entropy: false });
    const filled = withEntropy(m, routerEntropySums(trace.layers.map((l) => l.routerLogits), lay.E, lay.dynCols, new Int32Array()));
    expect(filled.layers.map((l) => l.entropy)).toEqual([0, 0, 0]);
  });
});

describe("computeMetrics (fast path) = computeMetricsReference (core.accumulate) on seeded random traces", () => {
  const cases = [
    { seed: 1, routed: 64, nulls: 1, shared: 2, layers: 3, tokens: 300, scale: 1.5 },
    { seed: 2, routed: 8, nulls: 2, shared: 1, layers: 4, tokens: 257, scale: 3 },
    { seed: 3, routed: 16, nulls: 0, shared: 0, layers: 2, tokens: 128, scale: 0.5 },
    { seed: 4, routed: 1, nulls: 1, shared: 1, layers: 2, tokens: 64, scale: 2 },
  ];
  for (const c of cases) {
    it(`seed ${c.seed}: ${c.routed} routed + ${c.nulls} null + ${c.shared} shared, ${c.layers} × ${c.tokens}`, () => {
      const trace = syntheticTrace(c);
      const fast = computeMetrics(trace);
      const ref = computeMetricsReference(trace);
      expectSameCounts(fast, ref);
      expectClose(fast, ref);
    });
  }

  it("permuted router columns (dynamic columns interleaved with shared ones)", () => {
    const trace = permuteColumns(syntheticTrace({ seed: 5, routed: 12, nulls: 2, shared: 3, layers: 3, tokens: 200 }), 5);
    expect(trace.experts.slice(0, 12).some((e) => e.role === "shared") || trace.experts[0]!.role !== "routed").toBe(true);
    const fast = computeMetrics(trace);
    const ref = computeMetricsReference(trace);
    expectSameCounts(fast, ref);
    expectClose(fast, ref);
  });

  it("filters, explicit indices, custom transition pairs and splits", () => {
    const trace = syntheticTrace({ seed: 6, routed: 10, nulls: 1, shared: 2, layers: 4, tokens: 150 });
    const transitions = [[3, 0], [1, 1]] as const;
    for (const filter of [{ modality: "image" as const }, { phase: "decode" as const }, { indices: [149, 3, 77, 0] }]) {
      const fast = computeMetrics(trace, { filter, transitions });
      const ref = computeMetricsReference(trace, { filter, transitions });
      expectSameCounts(fast, ref);
      expectClose(fast, ref);
    }
    const split = computeMetrics(trace, { splitBy: "modality" });
    for (const [modality, m] of Object.entries(split)) expectClose(m, computeMetricsReference(trace, { filter: { modality: modality as "text" } }));
  });

  it("−∞ logits (switched-off experts), a whole −∞ row and extreme logit gaps", () => {
    const trace = syntheticTrace({ seed: 7, routed: 6, nulls: 1, shared: 1, layers: 2, tokens: 40 });
    const E = trace.experts.length;
    const z = trace.layers[0]!.routerLogits;
    for (let n = 0; n < 40; n += 3) z[n * E + (n % 6)] = -Infinity;
    for (let c = 0; c < E; c++) z[5 * E + c] = -Infinity;
    z[7 * E + 1] = 900; // every other exp underflows to 0
    const fast = computeMetrics(trace);
    const ref = computeMetricsReference(trace);
    expectSameCounts(fast, ref);
    expectClose(fast, ref);
    expect(Number.isFinite(fast.layers[0]!.entropy)).toBe(true);
  });

  it("reports the same bad k as the reference; a k above D goes to the last bucket", () => {
    const trace = syntheticTrace({ seed: 8, routed: 4, nulls: 1, shared: 1, layers: 2, tokens: 10 });
    trace.layers[1]!.k[4] = -1;
    expect(() => computeMetrics(trace)).toThrow("layer 1, token 4: k = -1 is negative");
    expect(() => computeMetricsReference(trace)).toThrow("layer 1, token 4: k = -1 is negative");
    trace.layers[1]!.k[4] = 6; // D + 1: Top-P never reached (the release's rounding edge)
    trace.layers[1]!.k[5] = 9; // a fixed top_k above D
    const m = computeMetrics(trace);
    expect(m.layers[1]!.kCounts.length).toBe(7);
    expect(m.layers[1]!.kCounts[6]).toBe(2);
    expectSameCounts(m, computeMetricsReference(trace));
  });
});
