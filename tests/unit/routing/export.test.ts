import { describe, expect, it } from "vitest";
import { float32Shortest, traceFromJSON, traceProblems, traceToCSV, traceToJSON, traceToJSONString } from "../../../engine/routing/export";
import { computeMetrics } from "../../../engine/routing/metrics";
import { syntheticTrace } from "../../../engine/routing/synthetic";
import { appendTrace, type RoutingTrace } from "../../../engine/trace";
import { handTrace } from "./fixtures";

function expectSameTrace(a: RoutingTrace, b: RoutingTrace) {
  expect(b.kind).toBe(a.kind);
  expect(b.model).toBe(a.model);
  expect(b.convention).toBe(a.convention);
  expect(b.experts).toEqual(a.experts);
  expect(b.tokens).toEqual(a.tokens);
  expect(b.layers.length).toBe(a.layers.length);
  a.layers.forEach((l, i) => {
    const m = b.layers[i]!;
    expect(m.routerLogits).toBeInstanceOf(Float32Array);
    expect(m.mask).toBeInstanceOf(Uint8Array);
    expect(m.weights).toBeInstanceOf(Float32Array);
    expect(m.k).toBeInstanceOf(Int32Array);
    expect(Array.from(m.routerLogits)).toEqual(Array.from(l.routerLogits)); // exact float32 (−∞ included)
    expect(Array.from(m.mask)).toEqual(Array.from(l.mask));
    expect(Array.from(m.weights)).toEqual(Array.from(l.weights));
    expect(Array.from(m.k)).toEqual(Array.from(l.k));
  });
}

describe("JSON export", () => {
  it("writes plain arrays in the documented shape, shortest float32 decimals", () => {
    const j = traceToJSON(handTrace());
    expect(j.kind).toBe("routing-trace");
    expect(j.version).toBe(1);
    expect(j.layers[0]!.weights.slice(0, 4)).toEqual([0.6, 0, 0, 0.4]); // not 0.6000000238418579
    expect(j.layers[0]!.mask).toEqual([1, 0, 0, 1, 1, 1, 1, 1, 0, 0, 1, 1]);
    expect(j.layers[1]!.k).toEqual([2, 1, 2]);
    expect(j.tokens[1]).toEqual({ id: 1, text: "<img>", modality: "image", position: [1, 1, 1], phase: "prefill" });
    expect(float32Shortest(Math.fround(0.1))).toBe(0.1);
    expect(Math.fround(float32Shortest(Math.fround(1 / 3)))).toBe(Math.fround(1 / 3));
  });

  it("round-trips exactly (hand trace with a −∞ logit, and a seeded random trace); metrics unchanged", () => {
    const h = handTrace();
    h.layers[1]!.routerLogits[2] = -Infinity;
    const r = syntheticTrace({ seed: 5, layers: 3, tokens: 50, routed: 8 });
    for (const t of [h, r]) {
      const text = traceToJSONString(t);
      const back = traceFromJSON(text);
      expectSameTrace(t, back);
      expect(computeMetrics(back)).toEqual(computeMetrics(t));
      expectSameTrace(t, traceFromJSON(JSON.parse(text)));
    }
  });

  it("dropped assignments and the routing precision round-trip; k counts the dropped ones; appending pads dropped", () => {
    // layer 0, token 1 ({R0, R1, N}, k 3) lost R1 over capacity: mask 0, weight 0, still counted in k
    const h = handTrace();
    h.routingPrecision = "bf16";
    const l0 = h.layers[0]!;
    l0.dropped = new Uint8Array(12);
    l0.dropped[4 + 1] = 1;
    l0.mask[4 + 1] = 0;
    l0.weights[4 + 0] = 0.4;
    l0.weights[4 + 1] = 0;
    expect(traceProblems(h)).toEqual([]);
    const j = traceToJSON(h);
    expect(j.routingPrecision).toBe("bf16");
    expect(j.layers[0]!.dropped).toEqual([0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
    expect(j.layers[1]!.dropped).toBeUndefined();
    const back = traceFromJSON(traceToJSONString(h));
    expectSameTrace(h, back);
    expect(back.routingPrecision).toBe("bf16");
    expect(Array.from(back.layers[0]!.dropped!)).toEqual(Array.from(l0.dropped));
    // a dropped column that is also selected, and k not counting a drop, are reported
    const both = structuredClone(h);
    both.layers[0]!.mask[5] = 1;
    expect(traceProblems(both).join()).toMatch(/token 1: expert 1 \(R1\) is both selected and dropped/);
    const noDrop = structuredClone(h);
    noDrop.layers[0]!.dropped![5] = 0;
    expect(traceProblems(noDrop).join()).toMatch(/token 1: k = 3 but 2 dynamic experts are selected/);
    // bf16 weights are rounded: a row summing to 1 ± 0.01 passes a bf16 trace, not an fp32 one
    const rounded = structuredClone(h);
    rounded.layers[1]!.weights[0 * 4 + 1] = 0.5078125;
    expect(traceProblems(rounded)).toEqual([]);
    expect(traceProblems({ ...rounded, routingPrecision: undefined }).join()).toMatch(/weights sum to 1.00781/);
    // one step with drops appended to layers without: zeros before it
    const step = { ...handTrace().layers[0]!, dropped: Uint8Array.from([0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0]) };
    const grown = appendTrace(handTrace(), handTrace().tokens, [step, handTrace().layers[1]!]);
    expect(Array.from(grown.layers[0]!.dropped!)).toEqual([...new Array(12).fill(0), 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0]);
    expect(grown.layers[1]!.dropped).toBeUndefined();
  });

  it("rejects invalid input with the path and the reason", () => {
    const good = traceToJSON(handTrace());
    const bad = (f: (j: ReturnType<typeof traceToJSON>) => void) => {
      const j = structuredClone(good);
      f(j);
      return () => traceFromJSON(j);
    };
    expect(() => traceFromJSON("{oops")).toThrow(/not valid JSON/);
    expect(() => traceFromJSON({ kind: "other" })).toThrow(/invalid routing trace: kind/);
    expect(bad((j) => ((j.tokens[0] as { modality: string }).modality = "smell"))).toThrow(/tokens\[0\]\.modality/);
    expect(bad((j) => (j.layers[0]!.mask[3] = 2))).toThrow(/layers\[0\]\.mask\[3\]/);
    expect(bad((j) => j.layers[1]!.weights.pop())).toThrow(/layers\[1\]\.weights: expected 12 values \(N × E with N = 3, E = 4\), got 11/);
    expect(bad((j) => (j.layers[0]!.k[0] = 2))).toThrow(/layers\[0\] token 0: k = 2 but 1 dynamic experts are selected/);
    // k above D (D = 3): no dynamic expert of the token's own; forced columns may still be selected
    expect(bad((j) => (j.layers[0]!.k[0] = 9))).not.toThrow();
    expect(bad((j) => (j.layers[0]!.k[0] = 1.5))).toThrow(/layers\[0\]\.k\[0\]: 1.5 is not a non-negative integer/);
    expect(bad((j) => (j.layers[0]!.weights[0] = 0.9))).toThrow(/token 0: weights sum to 1.3, expected 1/);
    expect(bad((j) => (j.layers[0]!.weights[1] = 0.1))).toThrow(/expert 1 \(R1\) is not selected but has weight/);
    // semantics can be switched off (structure is still checked)
    const loose = structuredClone(good);
    loose.layers[0]!.weights[0] = 0.9;
    expect(traceFromJSON(loose, { semantics: false }).layers[0]!.weights[0]).toBeCloseTo(0.9, 6);
  });

  it("traceProblems: empty for valid traces", () => {
    expect(traceProblems(handTrace())).toEqual([]);
    expect(traceProblems(syntheticTrace({ seed: 9, routed: 12, nulls: 2, shared: 1 }))).toEqual([]);
  });
});

describe("JSON export: NLL and logit lens", () => {
  it("round-trips per-token NLL and the lens exactly; a lens of the wrong size is reported", () => {
    const t = handTrace();
    const N = t.tokens.length;
    const K = 2;
    const scored: RoutingTrace = {
      ...t,
      tokens: t.tokens.map((tok, i) => (i > 0 ? { ...tok, nll: Math.fround(0.1 * i + 1 / 3) } : tok)),
      lens: {
        k: K,
        layers: t.layers.map((_, l) => ({
          topIds: Int32Array.from({ length: N * K }, (_, i) => (i * 7 + l) % 11),
          topLogprobs: Float32Array.from({ length: N * K }, (_, i) => -0.37 * (i + 1) - l),
          finalRank: Int32Array.from({ length: N }, (_, i) => (i + l) % 3),
          kl: Float32Array.from({ length: N }, (_, i) => 0.01 * i * l),
        })),
        texts: { 3: "a", 10: "<b>" },
      },
    };
    const back = traceFromJSON(traceToJSONString(scored));
    expectSameTrace(scored, back);
    expect(back.tokens[1]!.nll).toBe(scored.tokens[1]!.nll);
    expect(back.tokens[0]!.nll).toBeUndefined();
    back.lens!.layers.forEach((l, i) => {
      const a = scored.lens!.layers[i]!;
      expect(Array.from(l.topIds)).toEqual(Array.from(a.topIds));
      expect(Array.from(l.topLogprobs)).toEqual(Array.from(a.topLogprobs));
      expect(Array.from(l.finalRank)).toEqual(Array.from(a.finalRank));
      expect(Array.from(l.kl)).toEqual(Array.from(a.kl));
    });
    expect(back.lens!.texts).toEqual({ 3: "a", 10: "<b>" });
    expect(traceToJSON(t).lens).toBeUndefined(); // no lens, no key
    const short = { ...scored, lens: { k: K, layers: scored.lens!.layers.map((l) => ({ ...l, kl: l.kl.subarray(1) })) } };
    expect(traceProblems(short)).toContain(`lens.layers[0].kl: expected ${N} values, got ${N - 1}`);
  });
});

describe("CSV export", () => {
  it("one row per token × layer with k, top expert and one weight column per expert", () => {
    const csv = traceToCSV(handTrace());
    const lines = csv.trimEnd().split("\n");
    expect(lines[0]).toBe("token,text,modality,phase,layer,k,top_expert,w:R0,w:R1,w:N,w:S");
    expect(lines.slice(1)).toEqual([
      "0,Hi,text,prefill,0,1,R0,0.6,0,0,0.4",
      "0,Hi,text,prefill,1,2,R1,0,0.5,0.25,0.25",
      "1,<img>,image,prefill,0,3,R1,0.15,0.25,0.1,0.5",
      "1,<img>,image,prefill,1,1,R1,0,0.8,0,0.2",
      "2,yo,text,decode,0,1,N,0,0,0.7,0.3",
      "2,yo,text,decode,1,2,R0,0.3,0.3,0,0.4",
    ]);
  });

  it("quotes commas, quotes and newlines; neutralises formula-like text", () => {
    const t = handTrace();
    t.tokens[0]!.text = 'a,"b"\nc';
    t.tokens[1]!.text = "=SUM(A1)";
    t.tokens[2]!.text = "-1";
    const lines = traceToCSV(t).split("\n");
    expect(lines[1]).toBe('0,"a,""b""');
    expect(lines[2]).toBe('c",text,prefill,0,1,R0,0.6,0,0,0.4');
    expect(traceToCSV(t)).toContain("\n1,'=SUM(A1),image,");
    expect(traceToCSV(t)).toContain("\n2,'-1,text,");
    expect(traceToCSV(t, { escapeFormulas: false })).toContain("\n1,=SUM(A1),image,");
  });

  it("empty trace → header only", () => {
    const t: RoutingTrace = { ...handTrace(), tokens: [], layers: [] };
    expect(traceToCSV(t)).toBe("token,text,modality,phase,layer,k,top_expert,w:R0,w:R1,w:N,w:S\n");
  });
});

describe("float32Shortest", () => {
  it("gives the shortest decimal that reads back to the same float32, over many magnitudes", () => {
    const cases: [number, number][] = [
      [0.6, 0.6],
      [0.25, 0.25],
      [-3.5, -3.5],
      [1e-7, 1e-7],
      [123456, 123456],
      [1.5e30, 1.5e30],
      [3.4028234663852886e38, 3.4028235e38],
      [1e-45, 1e-45], // smallest subnormal
    ];
    for (const [x, want] of cases) expect(float32Shortest(Math.fround(x))).toBe(want);
    let seed = 1;
    const rnd = () => ((seed = (seed * 16807) % 2147483647) / 2147483647);
    for (let i = 0; i < 20000; i++) {
      const v = Math.fround((rnd() - 0.5) * 10 ** Math.floor(rnd() * 60 - 30));
      const s = float32Shortest(v);
      expect(Math.fround(s)).toBe(v);
      // no shorter decimal reads back (digits of the shortest form ≤ those of any round-tripping toPrecision)
      const digits = (x: number) => x.toExponential().split("e")[0]!.replace(/[-.]/g, "").length;
      for (let p = 1; p < digits(s); p++) expect(Math.fround(Number(v.toPrecision(p)))).not.toBe(v);
    }
  });
});
