import { describe, expect, it } from "vitest";
import { commonTokenPrefix, compareTraces, summarizeComparison, TraceMismatchError, type LayerDelta } from "../../../engine/routing/compare";
import { traceProblems } from "../../../engine/routing/export";
import type { ExpertInfo, RoutingTrace } from "../../../engine/trace";
import { catalogue } from "../../../nodes";
import { compareTracesNode, type CompareFile, type CompareReport } from "../../../nodes/compare-traces";
import { makeCtx } from "../nodes/ctx";
import { EXPERTS4, H, handTrace, layer, tok } from "./fixtures";

const close = (got: number[], want: number[], digits = 9) => {
  expect(got.length).toBe(want.length);
  got.forEach((g, i) => expect(g, `[${i}]`).toBeCloseTo(want[i]!, digits));
};

/** Columns in another order than A's [R0, R1, N, S]: the comparison must map them by name. */
const EXPERTS_B: ExpertInfo[] = [
  { name: "S", role: "shared" },
  { name: "N", role: "null" },
  { name: "R1", role: "routed" },
  { name: "R0", role: "routed" },
];

/**
 * B: 4 tokens (ids 0, 1, 5, 6) × 2 layers × [S, N, R1, R0]. Common prefix with handTrace (ids 0, 1, 2): 2.
 * Layer 0: t0 {R0} w S .5 R0 .5; t1 {R1,R0} w S .4 R1 .35 R0 .25 (top R1); t2 {N,R1} w S .2 N .3 R1 .5; t3 {R1} w S .5 R1 .5
 * Layer 1: t0 {R1} w S .3 R1 .7; t1 {N} (null-only) w S .4 N .6; t2 {R1,R0} w S .2 R1 .4 R0 .4; t3 {R0} w S .5 R0 .5
 */
function traceB(): RoutingTrace {
  return {
    kind: "routing-trace",
    model: "hand-b",
    convention: "hand-written",
    experts: EXPERTS_B,
    tokens: [tok(0, "Hi", "text", "prefill"), tok(1, "<img>", "image", "prefill"), tok(5, "no", "text", "decode"), tok(6, "!", "text", "decode")],
    layers: [
      layer([
        { z: [0, 0, 0, 2], m: [1, 0, 0, 1], w: [0.5, 0, 0, 0.5], k: 1 }, // dyn (N, R1, R0) [0, 0, 2] → H.z200
        { z: [0, 0, 1, 1], m: [1, 0, 1, 1], w: [0.4, 0, 0.35, 0.25], k: 2 }, // [0, 1, 1] → H.z110
        { z: [0, 1, 1, 0], m: [1, 1, 1, 0], w: [0.2, 0.3, 0.5, 0], k: 2 }, // [1, 1, 0] → H.z110
        { z: [0, 0, 3, 0], m: [1, 0, 1, 0], w: [0.5, 0, 0.5, 0], k: 1 }, // [0, 3, 0] → H.z300
      ]),
      layer([
        { z: [0, 0, 3, 0], m: [1, 0, 1, 0], w: [0.3, 0, 0.7, 0], k: 1 }, // H.z300
        { z: [0, 3, 0, 0], m: [1, 1, 0, 0], w: [0.4, 0.6, 0, 0], k: 1 }, // H.z300
        { z: [0, 0, 0, 0], m: [1, 0, 1, 1], w: [0.2, 0, 0.4, 0.4], k: 2 }, // ln 3
        { z: [0, 0, 0, 2], m: [1, 0, 0, 1], w: [0.5, 0, 0, 0.5], k: 1 }, // H.z200
      ]),
    ],
  };
}

/** A trace with the given token ids and no tokens routed anywhere special: every token {R0}, weight R0 .5 S .5. */
function simple(ids: number[], layers = 2, experts = EXPERTS4): RoutingTrace {
  return {
    kind: "routing-trace",
    model: "simple",
    convention: "",
    experts,
    tokens: ids.map((id) => tok(id, `t${id}`, "text", "prefill")),
    layers: Array.from({ length: layers }, () => layer(ids.map(() => ({ z: [1, 0, 0, 0], m: [1, 0, 0, 1], w: [0.5, 0, 0, 0.5], k: 1 })))),
  };
}

function emptyTrace(layers = 2): RoutingTrace {
  return { ...simple([], layers), model: "empty" };
}

describe("compareTraces on hand-made traces (A = fixtures handTrace, B above)", () => {
  it("the hand-made B is a valid trace", () => {
    expect(traceProblems(traceB())).toEqual([]);
  });

  const c = compareTraces(handTrace(), traceB());
  const [d0, d1] = c.perLayer as [LayerDelta, LayerDelta];

  it("matches experts by name into A's dynamic order", () => {
    expect(c.experts.dynamic).toEqual([
      { index: 0, name: "R0", role: "routed" },
      { index: 1, name: "R1", role: "routed" },
      { index: 2, name: "N", role: "null" },
    ]);
    expect(c.experts.shared).toEqual(["S"]);
    expect(c.a).toEqual({ model: "hand", tokens: 3 });
    expect(c.b).toEqual({ model: "hand-b", tokens: 4 });
    expect(c.layers).toBe(2);
  });

  it("layer 0 deltas (B − A)", () => {
    // A: shares [2/3, 1/3, 2/3], kShare [0, 2/3, 0, 1/3], meanK 5/3, null 2/3, shared .4, load [2, 1]
    // B: shares [2/4, 3/4, 1/4], kShare [0, 2/4, 2/4, 0], meanK 3/2, null 1/4, shared .4, load [2, 3]
    close(d0.tokenShare, [0.5 - 2 / 3, 0.75 - 1 / 3, 0.25 - 2 / 3]); // [−1/6, 5/12, −5/12]
    close(d0.kShare, [0, 0.5 - 2 / 3, 0.5, -1 / 3, 0]);
    expect(d0.meanK).toBeCloseTo(1.5 - 5 / 3, 9);
    expect(d0.nullTokenShare).toBeCloseTo(0.25 - 2 / 3, 9);
    expect(d0.sharedWeightShare).toBeCloseTo(0, 6);
    // load [2, 3]: mean 2.5, σ 0.5 → CV 0.2, MaxVio 0.2, Jain 25/26; A: CV 1/3, MaxVio 1/3, Jain 0.9
    expect(d0.loadCV).toBeCloseTo(0.2 - 1 / 3, 9);
    expect(d0.maxVio).toBeCloseTo(0.2 - 1 / 3, 9);
    expect(d0.jain).toBeCloseTo(25 / 26 - 0.9, 9);
    expect(d0.entropy).toBeCloseTo((H.z200 + 2 * H.z110 + H.z300) / 4 - (H.z200 + H.z110 + H.z300) / 3, 6);
  });

  it("layer 1 deltas (B − A)", () => {
    // A: shares [1/3, 1, 1/3], kShare [0, 1/3, 2/3, 0], meanK 5/3, null 1/3, shared .85/3, load [1, 3]
    // B: shares [2/4, 2/4, 1/4], kShare [0, 3/4, 1/4, 0], meanK 5/4, null 1/4, shared 1.4/4, load [2, 2]
    close(d1.tokenShare, [0.5 - 1 / 3, 0.5 - 1, 0.25 - 1 / 3]); // [1/6, −1/2, −1/12]
    close(d1.kShare, [0, 0.75 - 1 / 3, 0.25 - 2 / 3, 0, 0]);
    expect(d1.meanK).toBeCloseTo(1.25 - 5 / 3, 9);
    expect(d1.nullTokenShare).toBeCloseTo(0.25 - 1 / 3, 9);
    expect(d1.sharedWeightShare).toBeCloseTo(0.35 - 0.85 / 3, 6); // 1/15
    // B's load is even: CV 0, MaxVio 0, Jain 1; A: CV 0.5, MaxVio 0.5, Jain 0.8
    expect(d1.loadCV).toBeCloseTo(-0.5, 9);
    expect(d1.maxVio).toBeCloseTo(-0.5, 9);
    expect(d1.jain).toBeCloseTo(0.2, 9);
    expect(d1.entropy).toBeCloseTo((2 * H.z300 + Math.log(3) + H.z200) / 4 - (Math.log(3) + 2 * H.z300) / 3, 6);
  });

  it("top-expert agreement over the common prefix (ids 0, 1)", () => {
    // A tops: layer 0 [R0, R1, N], layer 1 [R1, R1, R0]; B tops: layer 0 [R0, R1, …], layer 1 [R1, N, …]
    expect(commonTokenPrefix(handTrace(), traceB())).toBe(2);
    expect(c.agreement).toEqual({ commonPrefix: 2, perLayer: [1, 0.5], agreeing: [2, 1], mean: 0.75 });
  });

  it("tokens routed differently over the common prefix, side by side (experts by name in A's order)", () => {
    // layer 0: t0 {R0} in both; t1 {R0, R1, N} k 3 in A, {R1, R0} k 2 in B
    // layer 1: t0 {R1, N} k 2 vs {R1} k 1; t1 {R1} vs {N} (k 1 in both)
    expect(c.routingDiff).toEqual([
      { layer: 0, kDiffers: 1, setDiffers: 1, differs: 1, tokens: [{ token: 1, text: "<img>", a: { k: 3, experts: ["R0", "R1", "N", "S"], dropped: [] }, b: { k: 2, experts: ["R0", "R1", "S"], dropped: [] } }] },
      {
        layer: 1, kDiffers: 1, setDiffers: 2, differs: 2,
        tokens: [
          { token: 0, text: "Hi", a: { k: 2, experts: ["R1", "N", "S"], dropped: [] }, b: { k: 1, experts: ["R1", "S"], dropped: [] } },
          { token: 1, text: "<img>", a: { k: 1, experts: ["R1", "S"], dropped: [] }, b: { k: 1, experts: ["N", "S"], dropped: [] } },
        ],
      },
    ]);
    expect(summarizeComparison(c).routedDifferently).toBe(3);
    // a trace against itself: nothing differs; dropped experts are listed
    const h = handTrace();
    h.layers[0]!.dropped = new Uint8Array(12);
    h.layers[0]!.dropped[4 + 1] = 1;
    h.layers[0]!.mask[4 + 1] = 0;
    const self = compareTraces(handTrace(), h);
    expect(self.routingDiff![0]!.tokens).toEqual([{ token: 1, text: "<img>", a: { k: 3, experts: ["R0", "R1", "N", "S"], dropped: [] }, b: { k: 3, experts: ["R0", "N", "S"], dropped: ["R1"] } }]);
    expect(compareTraces(h, h).routingDiff!.every((l) => l.differs === 0)).toBe(true);
  });

  it("summary: largest |Δ share| is R1 at layer 1 (−1/2); mean agreement 0.75", () => {
    const s = summarizeComparison(c);
    expect(s.maxAbsShareDelta).toBeCloseTo(0.5, 9);
    expect(s.shareDelta).toBeCloseTo(-0.5, 9);
    expect(s.layer).toBe(1);
    expect(s.expert).toBe("R1");
    expect(s.meanTopAgreement).toBe(0.75);
    expect(s.commonPrefix).toBe(2);
  });

  it("swapping A and B negates every delta; agreement is symmetric", () => {
    const r = compareTraces(traceB(), handTrace());
    // B's dynamic order is (N, R1, R0): map back to A's (R0, R1, N) before comparing
    const toA = [2, 1, 0];
    r.perLayer.forEach((l, i) => {
      const f = c.perLayer[i]!;
      close(toA.map((d) => l.tokenShare[d]!), f.tokenShare.map((x) => -x));
      close(l.kShare, f.kShare.map((x) => -x));
      for (const k of ["meanK", "nullTokenShare", "sharedWeightShare", "loadCV", "maxVio", "jain", "entropy"] as const) expect(l[k], k).toBeCloseTo(-f[k], 6);
    });
    expect(r.agreement).toEqual(c.agreement);
  });
});

describe("compareTraces edge cases", () => {
  it("identical traces: every delta 0, agreement 1 everywhere", () => {
    const c = compareTraces(handTrace(), handTrace());
    for (const l of c.perLayer) {
      expect([...l.tokenShare, ...l.kShare, l.meanK, l.nullTokenShare, l.sharedWeightShare, l.loadCV, l.maxVio, l.jain, l.entropy].every((x) => x === 0)).toBe(true);
    }
    expect(c.agreement).toEqual({ commonPrefix: 3, perLayer: [1, 1], agreeing: [3, 3], mean: 1 });
  });

  it("different lengths: B extends A (decode went on), the prefix is all of A", () => {
    const a = simple([4, 5, 6]);
    const b = simple([4, 5, 6, 7, 8]);
    const c = compareTraces(a, b);
    expect(c.agreement).toEqual({ commonPrefix: 3, perLayer: [1, 1], agreeing: [3, 3], mean: 1 });
    close(c.perLayer[0]!.tokenShare, [0, 0, 0]); // every token selects R0 in both
  });

  it("the prefix stops at the first different id even if later ids match again", () => {
    expect(commonTokenPrefix(simple([1, 2, 3, 4]), simple([1, 9, 3, 4]))).toBe(1);
  });

  it("no common prefix: agreement null, summary says so", () => {
    const c = compareTraces(simple([1, 2]), simple([3, 2]));
    expect(c.agreement).toBeNull();
    const s = summarizeComparison(c);
    expect(s.meanTopAgreement).toBeNull();
    expect(s.commonPrefix).toBe(0);
    expect(s.maxAbsShareDelta).toBe(0);
    expect(s.layer).toBe(0); // all deltas 0: the first entry
    expect(s.expert).toBe("R0");
  });

  it("one trace empty (0 tokens, same layers): deltas are B's metrics against the zero-token values, no NaN", () => {
    const b = traceB();
    const c = compareTraces(emptyTrace(), b);
    expect(c.agreement).toBeNull();
    expect(c.a.tokens).toBe(0);
    const d0 = c.perLayer[0]!;
    close(d0.tokenShare, [0.5, 0.75, 0.25]);
    close(d0.kShare, [0, 0.5, 0.5, 0, 0]);
    expect(d0.meanK).toBeCloseTo(1.5, 9);
    expect(d0.nullTokenShare).toBeCloseTo(0.25, 9);
    expect(d0.sharedWeightShare).toBeCloseTo(0.4, 6);
    // empty side: no load → CV 0, MaxVio 0, Jain 1, entropy 0
    expect(d0.loadCV).toBeCloseTo(0.2, 9);
    expect(d0.maxVio).toBeCloseTo(0.2, 9);
    expect(d0.jain).toBeCloseTo(25 / 26 - 1, 9);
    expect(d0.entropy).toBeCloseTo((H.z200 + 2 * H.z110 + H.z300) / 4, 6);
    const rev = compareTraces(b, emptyTrace());
    expect(rev.experts.dynamic.map((e) => e.name)).toEqual(["N", "R1", "R0"]); // A's (here B's) column order
    close(rev.perLayer[0]!.tokenShare, [-0.25, -0.75, -0.5]);
    const both = compareTraces(emptyTrace(), emptyTrace());
    for (const l of both.perLayer) expect([...l.tokenShare, ...l.kShare, l.loadCV, l.maxVio, l.jain, l.entropy].every((x) => x === 0)).toBe(true);
    expect(both.agreement).toBeNull();
    expect(summarizeComparison(both).meanTopAgreement).toBeNull();
  });

  it("tokens that chose no dynamic expert (k = 0) in both count as agreeing", () => {
    const pad = (t: RoutingTrace): RoutingTrace => ({ ...t, layers: [layer([{ z: [0, 0, 0, 0], m: [0, 0, 0, 1], w: [0, 0, 0, 1], k: 0 }])] });
    const a = pad(simple([1], 1));
    expect(traceProblems(a)).toEqual([]);
    expect(compareTraces(a, pad(simple([1], 1))).agreement!.perLayer).toEqual([1]);
    expect(compareTraces(a, simple([1], 1)).agreement!.perLayer).toEqual([0]); // none vs R0
  });

  it("no layers: agreement has no per-layer values and a null mean; summary has no location", () => {
    const c = compareTraces(simple([1, 2], 0), simple([1, 2], 0));
    expect(c.perLayer).toEqual([]);
    expect(c.agreement).toEqual({ commonPrefix: 2, perLayer: [], agreeing: [], mean: null });
    expect(summarizeComparison(c)).toMatchObject({ maxAbsShareDelta: 0, layer: null, expert: null, meanTopAgreement: null });
  });

  it("different layer counts throw", () => {
    expect(() => compareTraces(simple([1], 2), simple([1], 3))).toThrow(TraceMismatchError);
    expect(() => compareTraces(simple([1], 2), simple([1], 3))).toThrow(/different layer counts: A has 2, B has 3/);
    expect(() => compareTraces(simple([], 2), simple([], 0))).toThrow(/A has 2, B has 0/);
  });

  it("experts that do not match by name and role throw, naming the differences", () => {
    const renamed: ExpertInfo[] = [{ name: "R0", role: "routed" }, { name: "X", role: "routed" }, { name: "N", role: "null" }, { name: "S", role: "shared" }];
    expect(() => compareTraces(simple([1]), simple([1], 2, renamed))).toThrow(/"R1" \(routed\) is only in A; "X" \(routed\) is only in B/);
    const roles: ExpertInfo[] = [{ name: "R0", role: "routed" }, { name: "R1", role: "routed" }, { name: "N", role: "routed" }, { name: "S", role: "shared" }];
    expect(() => compareTraces(simple([1]), simple([1], 2, roles))).toThrow(/"N" is null in A but routed in B/);
    const fewer: ExpertInfo[] = [{ name: "R0", role: "routed" }, { name: "R1", role: "routed" }, { name: "S", role: "shared" }];
    const three = { ...simple([]), experts: fewer };
    expect(() => compareTraces(simple([]), three)).toThrow(/A has 4, B has 3.*"N" \(null\) is only in A/);
    const dup: ExpertInfo[] = [{ name: "R0", role: "routed" }, { name: "R0", role: "routed" }, { name: "N", role: "null" }, { name: "S", role: "shared" }];
    expect(() => compareTraces(simple([1], 2, dup), simple([1]))).toThrow(/trace A has two experts named "R0"/);
  });
});

describe("inspect.compare-traces node", () => {
  it("is in the catalogue with labels A / B by default", () => {
    expect(catalogue.get("inspect.compare-traces")).toBe(compareTracesNode);
    expect(compareTracesNode.params.parse({})).toEqual({ labelA: "A", labelB: "B" });
  });

  it("stores the comparison as JSON and reports labels, file and summary", async () => {
    const env = await makeCtx();
    try {
      const params = compareTracesNode.params.parse({ labelA: "baseline", labelB: "ban R1" });
      const out = await compareTracesNode.execute({ inputs: { a: handTrace(), b: traceB() }, params, ctx: env.ctx });
      const r = out.report as CompareReport;
      expect(r).toMatchObject({ kind: "compare-report", labelA: "baseline", labelB: "ban R1" });
      expect(r.summary).toMatchObject({ layer: 1, expert: "R1", meanTopAgreement: 0.75, commonPrefix: 2, tokensA: 3, tokensB: 4, layers: 2 });
      expect(r.summary.maxAbsShareDelta).toBeCloseTo(0.5, 9);
      const file = JSON.parse((await env.storage.read(r.file)).toString("utf8")) as CompareFile;
      expect(file).toMatchObject({ kind: "trace-comparison", version: 1, labelA: "baseline", labelB: "ban R1", layers: 2 });
      expect(file.experts.dynamic.map((e) => e.name)).toEqual(["R0", "R1", "N"]);
      expect(Array.isArray(file.perLayer[0]!.tokenShare)).toBe(true);
      expect(file.perLayer[1]!.tokenShare[1]).toBeCloseTo(-0.5, 9);
      expect(file.agreement).toEqual({ commonPrefix: 2, perLayer: [1, 0.5], agreeing: [2, 1], mean: 0.75 });
      expect(compareTracesNode.summarize!(out)).toBe("ban R1 vs baseline: max |Δ share| 50.0 % (−, layer 1, R1); top expert unchanged 75.0 % over 2 common tokens; same expert set 25.0 %; k or experts differ on 3 token-layers");
    } finally {
      await env.dispose();
    }
  });

  it("rejects inputs that are not traces and traces that do not match", async () => {
    const env = await makeCtx();
    try {
      const params = compareTracesNode.params.parse({});
      await expect(compareTracesNode.execute({ inputs: { a: { kind: "x" }, b: traceB() }, params, ctx: env.ctx })).rejects.toThrow(/input a is not a routing trace/);
      await expect(compareTracesNode.execute({ inputs: { a: handTrace(), b: simple([1], 3) }, params, ctx: env.ctx })).rejects.toThrow(/different layer counts/);
      const none = await compareTracesNode.execute({ inputs: { a: simple([1]), b: simple([2]) }, params, ctx: env.ctx });
      expect(compareTracesNode.summarize!(none)).toBe("B vs A: max |Δ share| 0.0 % (+, layer 0, R0); no common tokens");
    } finally {
      await env.dispose();
    }
  });
});
