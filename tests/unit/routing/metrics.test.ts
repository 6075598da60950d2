import { describe, expect, it } from "vitest";
import { computeMetrics, type LayerMetrics, type RoutingMetrics } from "../../../engine/routing/metrics";
import { traceProblems } from "../../../engine/routing/export";
import { syntheticTrace } from "../../../engine/routing/synthetic";
import type { RoutingTrace } from "../../../engine/trace";
import { EXPERTS4, H, handTrace, layer, tok } from "./fixtures";

const close = (got: number[], want: number[], digits = 6) => {
  expect(got.length).toBe(want.length);
  got.forEach((g, i) => expect(g).toBeCloseTo(want[i]!, digits));
};

/** No NaN / Infinity anywhere in the metric structure. */
function expectFinite(m: RoutingMetrics) {
  const walk = (v: unknown, path: string) => {
    if (typeof v === "number") {
      if (!Number.isFinite(v)) throw new Error(`${path} = ${v}`);
    } else if (ArrayBuffer.isView(v)) {
      Array.from(v as unknown as ArrayLike<number>).forEach((x, i) => walk(x, `${path}[${i}]`));
    } else if (Array.isArray(v)) v.forEach((x, i) => walk(x, `${path}[${i}]`));
    else if (v && typeof v === "object") for (const [k, x] of Object.entries(v)) walk(x, `${path}.${k}`);
  };
  walk(m, "metrics");
}

describe("computeMetrics on the hand-written trace (3 tokens × 2 layers × [R0, R1, N, S])", () => {
  const m = computeMetrics(handTrace());
  const [l0, l1] = m.layers as [LayerMetrics, LayerMetrics];

  it("lays out the experts: dynamic = R0, R1, N; routed = R0, R1; shared = S", () => {
    expect(m.tokens).toBe(3);
    expect(m.experts.dynamic.map((e) => `${e.index}:${e.column}:${e.name}:${e.role}`)).toEqual(["0:0:R0:routed", "1:1:R1:routed", "2:2:N:null"]);
    expect(m.experts.routed).toEqual([0, 1]);
    expect(m.experts.nulls).toEqual([2]);
    expect(m.experts.shared).toEqual([{ column: 3, name: "S" }]);
    expect(m.byModality).toEqual({ text: 2, image: 1 });
    expect(m.byPhase).toEqual({ prefill: 2, decode: 1 });
  });

  it("layer 0: shares, k distribution, null and shared weight", () => {
    // selections: R0 by t0,t1; R1 by t1; N by t1,t2 → [2, 1, 2]; Σ = 5 = Σk (1 + 3 + 1)
    expect(l0.selectionCounts).toEqual([2, 1, 2]);
    expect(l0.totalSelections).toBe(5);
    close(l0.tokenShare, [2 / 3, 1 / 3, 2 / 3]);
    close(l0.selectionShare, [0.4, 0.2, 0.4]);
    expect(l0.kCounts).toEqual([0, 2, 0, 1, 0]); // k = 0, 1, 2, 3 and k > D
    close(l0.kShare, [0, 2 / 3, 0, 1 / 3, 0]);
    expect(l0.meanK).toBeCloseTo(5 / 3, 12);
    expect(l0.nullTokenShare).toBeCloseTo(2 / 3, 12); // t1, t2
    expect(l0.nullOnlyShare).toBeCloseTo(1 / 3, 12); // t2
    expect(l0.nullWeightMass).toBeCloseTo((0.1 + 0.7) / 3, 6);
    expect(l0.sharedWeightShare).toBeCloseTo((0.4 + 0.5 + 0.3) / 3, 6);
  });

  it("layer 0: load [2, 1] → mean 1.5, σ 0.5, CV 1/3, MaxVio 1/3, Jain 9/10", () => {
    expect(l0.routedLoad).toEqual([2, 1]);
    expect(l0.hasLoad).toBe(true);
    expect(l0.loadMean).toBe(1.5);
    expect(l0.loadCV).toBeCloseTo(1 / 3, 12);
    expect(l0.maxVio).toBeCloseTo(1 / 3, 12);
    expect(l0.jain).toBeCloseTo(0.9, 12);
  });

  it("layer 1: shares, k, null, shared, load [1, 3] → CV 0.5, MaxVio 0.5, Jain 0.8", () => {
    expect(l1.selectionCounts).toEqual([1, 3, 1]);
    close(l1.tokenShare, [1 / 3, 1, 1 / 3]);
    close(l1.selectionShare, [0.2, 0.6, 0.2]);
    expect(l1.kCounts).toEqual([0, 1, 2, 0, 0]);
    close(l1.kShare, [0, 1 / 3, 2 / 3, 0, 0]);
    expect(l1.nullTokenShare).toBeCloseTo(1 / 3, 12);
    expect(l1.nullOnlyShare).toBe(0);
    expect(l1.nullWeightMass).toBeCloseTo(0.25 / 3, 6);
    expect(l1.sharedWeightShare).toBeCloseTo((0.25 + 0.2 + 0.4) / 3, 6);
    expect(l1.routedLoad).toEqual([1, 3]);
    expect(l1.loadCV).toBeCloseTo(0.5, 12);
    expect(l1.maxVio).toBeCloseTo(0.5, 12);
    expect(l1.jain).toBeCloseTo(0.8, 12);
  });

  it("router entropy: mean over tokens of H(softmax(dynamic logits)), and / ln 3", () => {
    // layer 0 dynamic logits [2,0,0], [1,1,0], [0,0,3]: H = 0.665573, 1.017357, 0.366594 → mean 0.683175
    expect(l0.entropy).toBeCloseTo((H.z200 + H.z110 + H.z300) / 3, 6);
    expect(l0.entropy).toBeCloseTo(0.6831746, 6);
    expect(l0.entropyNormalized).toBeCloseTo(0.6218523, 6);
    // layer 1: [0,0,0] → ln 3, [0,3,0] and [3,0,0] → 0.366594; shared logits are excluded
    expect(l1.entropy).toBeCloseTo((H.z000 + 2 * H.z300) / 3, 6);
    expect(l1.entropy).toBeCloseTo(0.6106001, 6);
    expect(l1.entropyNormalized).toBeCloseTo(0.5557921, 6);
  });

  it("co-activation counts every pair of selected dynamic experts (k = 3 → 3 pairs)", () => {
    // layer 0: t0 {R0}, t1 {R0,R1,N} (pairs R0-R1, R0-N, R1-N), t2 {N}
    expect(Array.from(l0.coactivation)).toEqual([2, 1, 1, 1, 1, 1, 1, 1, 2]);
    // layer 1: t0 {R1,N}, t1 {R1}, t2 {R0,R1}
    expect(Array.from(l1.coactivation)).toEqual([1, 1, 0, 1, 3, 1, 0, 1, 1]);
    // diagonal = selection counts
    for (const l of [l0, l1]) expect([0, 1, 2].map((d) => l.coactivation[d * 3 + d])).toEqual(l.selectionCounts);
  });

  it("top expert per token (largest weight; tie → lowest column) and transitions 0 → 1", () => {
    // layer 0: t0 R0 (.6), t1 R1 (.25), t2 N (.7); layer 1: t0 R1 (.5), t1 R1, t2 tie R0=R1=.3 → R0
    expect(Array.from(m.perToken!.tokenIndices)).toEqual([0, 1, 2]);
    expect(Array.from(m.perToken!.topExpert)).toEqual([0, 1, 2, 1, 1, 0]);
    expect(l0.topCounts).toEqual([1, 1, 1]);
    expect(l1.topCounts).toEqual([1, 2, 0]);
    expect(m.transitions).toHaveLength(1);
    const t = m.transitions[0]!;
    expect([t.from, t.to, t.tokens]).toEqual([0, 1, 3]);
    // R0→R1 (t0), R1→R1 (t1), N→R0 (t2)
    expect(Array.from(t.counts)).toEqual([0, 1, 0, 0, 1, 0, 1, 0, 0]);
  });

  it("transitions over any layer pair, including backwards and to itself", () => {
    const mm = computeMetrics(handTrace(), { transitions: [[1, 0], [0, 0]] });
    expect(Array.from(mm.transitions[0]!.counts)).toEqual([0, 0, 1, 1, 1, 0, 0, 0, 0]);
    expect(Array.from(mm.transitions[1]!.counts)).toEqual([1, 0, 0, 0, 1, 0, 0, 0, 1]);
    expect(() => computeMetrics(handTrace(), { transitions: [[0, 2]] })).toThrow(/outside layers 0..1/);
  });

  it("is NaN-free", () => expectFinite(m));
});

describe("filters and splits", () => {
  it("filters by modality, phase and explicit indices (AND), keeping index order", () => {
    const text = computeMetrics(handTrace(), { filter: { modality: "text" } });
    expect(text.tokens).toBe(2);
    expect(Array.from(text.perToken!.tokenIndices)).toEqual([0, 2]);
    const idx = computeMetrics(handTrace(), { filter: { indices: [2, 0] } });
    expect(Array.from(idx.perToken!.tokenIndices)).toEqual([2, 0]);
    expect(Array.from(idx.perToken!.topExpert)).toEqual([2, 0, 0, 1]);
    const both = computeMetrics(handTrace(), { filter: { modality: ["text", "image"], phase: "prefill" } });
    expect(Array.from(both.perToken!.tokenIndices)).toEqual([0, 1]);
    expect(() => computeMetrics(handTrace(), { filter: { indices: [3] } })).toThrow(/outside 0..2/);
    expect(() => computeMetrics(handTrace(), { filter: { indices: [1, 1] } })).toThrow(/twice/);
  });

  it("splits by modality: text = {t0, t2} puts all routed load of layer 0 on R0 (CV 1, MaxVio 1, Jain 1/2)", () => {
    const s = computeMetrics(handTrace(), { splitBy: "modality" });
    expect(Object.keys(s)).toEqual(["text", "image"]);
    const t0 = s.text!.layers[0]!;
    expect(t0.tokens).toBe(2);
    expect(t0.selectionCounts).toEqual([1, 0, 1]);
    close(t0.tokenShare, [0.5, 0, 0.5]);
    expect(t0.kCounts).toEqual([0, 2, 0, 0, 0]);
    expect(t0.nullTokenShare).toBe(0.5);
    expect(t0.nullOnlyShare).toBe(0.5);
    expect(t0.routedLoad).toEqual([1, 0]);
    expect(t0.loadCV).toBeCloseTo(1, 12);
    expect(t0.maxVio).toBeCloseTo(1, 12);
    expect(t0.jain).toBeCloseTo(0.5, 12);
    expect(s.text!.layers[0]!.entropy).toBeCloseTo((H.z200 + H.z300) / 2, 6);
    expect(s.text!.layers[1]!.entropy).toBeCloseTo((H.z000 + H.z300) / 2, 6);
    const img = s.image!.layers[0]!;
    expect(img.tokens).toBe(1);
    expect(img.kCounts).toEqual([0, 0, 0, 1, 0]);
    expect(Array.from(img.coactivation)).toEqual([1, 1, 1, 1, 1, 1, 1, 1, 1]);
    expect(Array.from(s.image!.perToken!.topExpert)).toEqual([1, 1]);
  });

  it("splits by phase: decode = the single null-only token t2 at layer 0 (no routed load)", () => {
    const s = computeMetrics(handTrace(), { splitBy: "phase" });
    expect(Object.keys(s)).toEqual(["prefill", "decode"]);
    const d0 = s.decode!.layers[0]!;
    expect(d0.tokens).toBe(1);
    expect(d0.nullOnlyShare).toBe(1);
    expect(d0.nullTokenShare).toBe(1);
    expect(d0.nullWeightMass).toBeCloseTo(0.7, 6);
    expect(d0.routedLoad).toEqual([0, 0]);
    expect([d0.hasLoad, d0.loadMean, d0.loadCV, d0.maxVio, d0.jain]).toEqual([false, 0, 0, 0, 1]);
    const d1 = s.decode!.layers[1]!; // t2 {R0, R1}: perfectly even
    expect([d1.hasLoad, d1.loadCV, d1.maxVio, d1.jain]).toEqual([true, 0, 0, 1]);
    expect(s.prefill!.layers[0]!.entropy).toBeCloseTo((H.z200 + H.z110) / 2, 6);
    // a split inside a filter
    const f = computeMetrics(handTrace(), { filter: { modality: "text" }, splitBy: "phase" });
    expect(Object.fromEntries(Object.entries(f).map(([k, v]) => [k, v.tokens]))).toEqual({ prefill: 1, decode: 1 });
  });
});

function trace1(tokens: RoutingTrace["tokens"], layers: RoutingTrace["layers"], experts = EXPERTS4): RoutingTrace {
  return { kind: "routing-trace", model: "t", convention: "", experts, tokens, layers };
}

describe("edge cases", () => {
  it("zero tokens: N = 0, all counts and shares 0, balance as 'no load', no NaN", () => {
    const empty = trace1([], [layer([]), layer([])]);
    for (const m of [computeMetrics(empty), computeMetrics(handTrace(), { filter: { indices: [] } }), computeMetrics(handTrace(), { filter: { modality: "audio" } })]) {
      expect(m.tokens).toBe(0);
      expectFinite(m);
      for (const l of m.layers) {
        expect(l.tokens).toBe(0);
        expect(l.tokenShare).toEqual([0, 0, 0]);
        expect(l.selectionShare).toEqual([0, 0, 0]);
        expect(l.kShare).toEqual([0, 0, 0, 0, 0]);
        expect([l.meanK, l.nullTokenShare, l.nullOnlyShare, l.nullWeightMass, l.sharedWeightShare, l.entropy, l.entropyNormalized]).toEqual([0, 0, 0, 0, 0, 0, 0]);
        expect([l.hasLoad, l.loadMean, l.loadCV, l.maxVio, l.jain]).toEqual([false, 0, 0, 0, 1]);
        expect(Array.from(l.coactivation)).toEqual(new Array(9).fill(0));
      }
      expect(m.transitions[0]!.tokens).toBe(0);
      expect(m.perToken!.topExpert.length).toBe(0);
    }
    expect(computeMetrics(empty, { splitBy: "modality" })).toEqual({});
  });

  it("one token on one routed expert of R: CV √(R−1), MaxVio R−1, Jain 1/R", () => {
    const experts = [...["A", "B", "C", "D"].map((name) => ({ name, role: "routed" as const })), { name: "N", role: "null" as const }];
    const t = trace1([tok(0, "x", "text", "prefill")], [layer([{ z: [0, 0, 4, 0, 0], m: [0, 0, 1, 0, 0], w: [0, 0, 1, 0, 0], k: 1 }])], experts);
    const l = computeMetrics(t).layers[0]!;
    expect(l.routedLoad).toEqual([0, 0, 1, 0]);
    expect(l.loadCV).toBeCloseTo(Math.sqrt(3), 12);
    expect(l.maxVio).toBeCloseTo(3, 12);
    expect(l.jain).toBeCloseTo(0.25, 12);
    expect(l.tokenShare).toEqual([0, 0, 1, 0, 0]);
    expect(l.kShare).toEqual([0, 1, 0, 0, 0, 0, 0]);
    expect(l.sharedWeightShare).toBe(0); // no shared experts
    expect(computeMetrics(t).transitions).toEqual([]); // one layer: no adjacent pair
  });

  it("all tokens to one expert: same extreme values, independent of N", () => {
    const rows = Array.from({ length: 5 }, () => ({ z: [3, 0, 0, 1], m: [1, 0, 0, 1], w: [0.7, 0, 0, 0.3], k: 1 }));
    const t = trace1(Array.from({ length: 5 }, (_, i) => tok(i, "x", "text", "prefill")), [layer(rows)]);
    const l = computeMetrics(t).layers[0]!;
    expect(l.routedLoad).toEqual([5, 0]);
    expect([l.loadCV, l.maxVio, l.jain]).toEqual([1, 1, 0.5]);
    expect(l.tokenShare).toEqual([1, 0, 0]);
    expect(l.selectionShare).toEqual([1, 0, 0]);
    expect(Array.from(l.coactivation)).toEqual([5, 0, 0, 0, 0, 0, 0, 0, 0]);
    expect(l.entropy).toBeCloseTo(H.z300, 6);
  });

  it("null-only tokens: counted as null, no routed load, top expert = null", () => {
    const rows = Array.from({ length: 2 }, () => ({ z: [0, 0, 2, 0], m: [0, 0, 1, 1], w: [0, 0, 0.6, 0.4], k: 1 }));
    const m = computeMetrics(trace1([tok(0, "a", "audio", "prefill"), tok(1, "b", "audio", "prefill")], [layer(rows)]));
    const l = m.layers[0]!;
    expect([l.nullTokenShare, l.nullOnlyShare]).toEqual([1, 1]);
    expect(l.nullWeightMass).toBeCloseTo(0.6, 6);
    expect(l.sharedWeightShare).toBeCloseTo(0.4, 6);
    expect(l.selectionShare).toEqual([0, 0, 1]);
    expect([l.hasLoad, l.loadCV, l.maxVio, l.jain]).toEqual([false, 0, 0, 1]);
    expect(Array.from(m.perToken!.topExpert)).toEqual([2, 2]);
    expectFinite(m);
  });

  it("weights a float ulp apart tie for the top expert (lowest column); 1e-4 apart do not", () => {
    // Uni-MoE's GRIN often gives every chosen expert the same weight; another provider computes it an ulp apart
    const w = 0.17824731767177582;
    const rows = [
      { z: [1, 1, 0, 0], m: [1, 1, 0, 1], w: [w, w, 0, 0.5], k: 2 },
      { z: [1, 1, 0, 0], m: [1, 1, 0, 1], w: [w, w * (1 + 4e-7), 0, 0.5], k: 2 },
      { z: [1, 1, 1, 0], m: [0, 1, 1, 1], w: [0, w * (1 - 3e-7), w, 0.5], k: 2 },
      { z: [1, 1, 0, 0], m: [1, 1, 0, 1], w: [w, w * (1 + 1e-4), 0, 0.5], k: 2 },
    ];
    const m = computeMetrics(trace1(rows.map((_, i) => tok(i, "t", "text", "prefill")), [layer(rows)]));
    expect(Array.from(m.perToken!.topExpert)).toEqual([0, 0, 1, 1]);
  });

  it("k = 0 (padding: no dynamic expert) has top −1 and stays out of the transitions", () => {
    const pad = { z: [0, 0, 0, 0], m: [0, 0, 0, 1], w: [0, 0, 0, 1], k: 0 };
    const sel = { z: [1, 0, 0, 0], m: [1, 0, 0, 1], w: [0.5, 0, 0, 0.5], k: 1 };
    const m = computeMetrics(trace1([tok(0, "p", "text", "prefill"), tok(1, "q", "text", "prefill")], [layer([pad, sel]), layer([sel, sel])]));
    expect(m.layers[0]!.kCounts).toEqual([1, 1, 0, 0, 0]);
    expect(Array.from(m.perToken!.topExpert)).toEqual([-1, 0, 0, 0]);
    expect(m.transitions[0]!.tokens).toBe(1);
  });

  it("−∞ logits (an expert switched off) get p = 0; all −∞ gives entropy 0", () => {
    const r = (z: number[]) => ({ z, m: [1, 0, 0, 1], w: [0.5, 0, 0, 0.5], k: 1 });
    const m = computeMetrics(trace1([tok(0, "a", "text", "prefill"), tok(1, "b", "text", "prefill")], [layer([r([0, 0, -Infinity, 0]), r([-Infinity, -Infinity, -Infinity, 0])])]));
    expect(m.layers[0]!.entropy).toBeCloseTo(Math.log(2) / 2, 12);
    expectFinite(m);
  });

  it("rejects a negative k and arrays of the wrong length", () => {
    const t = handTrace();
    t.layers[0]!.k[1] = -2;
    expect(() => computeMetrics(t)).toThrow(/k = -2 is negative/);
    const u = handTrace();
    u.layers[1]!.mask = new Uint8Array(11);
    expect(() => computeMetrics(u)).toThrow(/layer 1: mask has 11 values, expected 12/);
  });
});

describe("invariants on seeded random traces", () => {
  for (const [seed, routed, nulls, shared] of [
    [1, 4, 1, 2],
    [2, 16, 1, 0],
    [3, 8, 2, 1],
  ] as const) {
    it(`seed ${seed}: ${routed} routed + ${nulls} null + ${shared} shared`, () => {
      const trace = syntheticTrace({ seed, routed, nulls, shared, layers: 5, tokens: 200, scale: 1 + seed });
      expect(traceProblems(trace)).toEqual([]);
      const m = computeMetrics(trace);
      const D = routed + nulls;
      expectFinite(m);
      for (const l of m.layers) {
        for (const x of [...l.tokenShare, ...l.selectionShare, ...l.kShare, l.nullTokenShare, l.nullOnlyShare, l.nullWeightMass, l.sharedWeightShare, l.entropyNormalized]) {
          expect(x).toBeGreaterThanOrEqual(0);
          expect(x).toBeLessThanOrEqual(1 + 1e-12);
        }
        expect(l.kShare.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 12);
        expect(l.selectionShare.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 12);
        expect(l.tokenShare.reduce((a, b) => a + b, 0)).toBeCloseTo(l.meanK, 12); // Σ tokenShare = mean k
        expect(l.totalSelections).toBe(l.kCounts.reduce((a, c, k) => a + c * k, 0));
        expect(l.nullOnlyShare).toBeLessThanOrEqual(l.nullTokenShare);
        expect(l.jain).toBeGreaterThanOrEqual(1 / routed - 1e-12);
        expect(l.jain).toBeLessThanOrEqual(1 + 1e-12);
        expect(l.loadCV).toBeGreaterThanOrEqual(0);
        expect(l.maxVio).toBeGreaterThanOrEqual(0);
        expect(l.maxVio).toBeLessThanOrEqual(routed - 1 + 1e-9);
        expect(l.entropy).toBeLessThanOrEqual(Math.log(D) + 1e-9);
        expect(l.topCounts.reduce((a, b) => a + b, 0)).toBe(m.tokens);
        // co-activation: symmetric, diagonal = selections, off-diagonal row sums = Σ over selecting tokens of (k − 1)
        const co = l.coactivation;
        for (let a = 0; a < D; a++) {
          expect(co[a * D + a]).toBe(l.selectionCounts[a]);
          for (let b = 0; b < D; b++) expect(co[a * D + b]).toBe(co[b * D + a]);
        }
        const off = Array.from(co).reduce((s, x) => s + x, 0) - l.totalSelections;
        expect(off).toBe(l.kCounts.reduce((s, c, k) => s + c * k * (k - 1), 0));
        expect(l.nullWeightMass + l.sharedWeightShare).toBeLessThanOrEqual(1 + 1e-6);
      }
      for (const t of m.transitions) expect(t.tokens).toBe(m.tokens);
      // splits partition the tokens and their counts
      for (const key of ["modality", "phase"] as const) {
        const s = computeMetrics(trace, { splitBy: key });
        expect(Object.values(s).reduce((a, x) => a + x.tokens, 0)).toBe(m.tokens);
        m.layers.forEach((l, li) => {
          const sum = new Array(D).fill(0);
          for (const g of Object.values(s)) g.layers[li]!.selectionCounts.forEach((c, d) => (sum[d] += c));
          expect(sum).toEqual(l.selectionCounts);
        });
      }
    });
  }
});
