/**
 * Routing agreement and logit differences in Compare Traces (engine/routing/compare.ts, engine/routing/logits.ts), against
 * plain loops on seeded random logits and on traces whose differing tokens are known.
 */
import { describe, expect, it } from "vitest";
import { compareTraces } from "@/engine/routing/compare";
import { compareLogits, LOGIT_SAMPLE, sketchLogits, appendSketch } from "@/engine/routing/logits";
import type { RoutingTrace } from "@/engine/trace";
import { prng } from "../../reference/random";
import { EXPERTS4, layer, tok } from "./fixtures";

function randomLogits(seed: number, rows: number, V: number, scale = 5): Float32Array {
  const r = prng(seed);
  return Float32Array.from({ length: rows * V }, () => scale * (r() * 2 - 1));
}

/** Plain reference: log Σ exp in float64 and the argmax (lowest id on ties) of one row. */
function refRow(row: ArrayLike<number>) {
  let top = 0;
  for (let v = 0; v < row.length; v++) if (row[v]! > row[top]!) top = v;
  let s = 0;
  for (let v = 0; v < row.length; v++) s += Math.exp(row[v]! - row[top]!);
  return { top, lse: row[top]! + Math.log(s) };
}

describe("logit sketch", () => {
  it.each([[1, 1000], [2, 200], [3, 50304]])("seed %i, vocabulary %i: sampled ids, values, argmax and log-sum-exp", (seed, V) => {
    const rows = 4;
    const logits = randomLogits(seed, rows, V);
    logits[2 * V + 7] = 100;
    logits[2 * V + 9] = 100; // a tie: the lower id wins
    const s = sketchLogits(logits, V, rows);
    const S = Math.min(V, LOGIT_SAMPLE);
    expect(s.ids.length).toBe(S);
    expect(s.ids[0]).toBe(0);
    expect(new Set(s.ids).size).toBe(S);
    expect(s.ids[S - 1]!).toBeLessThan(V);
    let maxLse = 0;
    for (let r = 0; r < rows; r++) {
      const row = logits.subarray(r * V, (r + 1) * V);
      const ref = refRow(row);
      expect(s.top[r]).toBe(ref.top);
      expect(s.topLogit[r]).toBe(row[ref.top]);
      maxLse = Math.max(maxLse, Math.abs(s.lse[r]! - ref.lse) / Math.abs(ref.lse));
      for (let k = 0; k < S; k++) expect(s.values[r * S + k]).toBe(row[s.ids[k]!]);
    }
    expect(s.top[2]).toBe(7);
    console.log(`V=${V}: log-sum-exp within ${maxLse.toExponential(2)} relative of float64`);
    expect(maxLse).toBeLessThan(1e-6);
  });

  it("compares rows: |Δ logit| and |Δ log-probability| over the sampled ids, argmax agreement (seeded, vs loops)", () => {
    const V = 3000, rows = 6;
    const a = randomLogits(4, rows, V);
    const noise = randomLogits(5, rows, V, 0.1);
    const b = a.map((v, i) => v + noise[i]! + (i < V ? 0.5 : 0)); // row 0 shifted by 0.5: logits differ, log-probs much less
    b[3 * V + 11] = 1e3; // row 3's argmax moves
    const sa = appendSketch(sketchLogits(a, V, 2), sketchLogits(a.subarray(2 * V), V, rows - 2));
    const sb = sketchLogits(b, V, rows);
    const got = compareLogits(sa, sb, 5); // rows 0..4 (as a common prefix of 5 tokens)
    let maxL = 0, sumL = 0, maxP = 0, sumP = 0, same = 0;
    const S = sa.ids.length;
    for (let r = 0; r < 5; r++) {
      const ra = refRow(a.subarray(r * V, (r + 1) * V)), rb = refRow(b.subarray(r * V, (r + 1) * V));
      if (ra.top === rb.top) same++;
      for (const id of sa.ids) {
        const dl = Math.abs(b[r * V + id]! - a[r * V + id]!);
        const dp = Math.abs(b[r * V + id]! - rb.lse - (a[r * V + id]! - ra.lse));
        maxL = Math.max(maxL, dl);
        maxP = Math.max(maxP, dp);
        sumL += dl;
        sumP += dp;
      }
    }
    expect(got.rows).toBe(5);
    expect(got.sampled).toBe(S);
    expect(got.maxAbsLogit).toBeCloseTo(maxL, 5);
    expect(got.meanAbsLogit).toBeCloseTo(sumL / (5 * S), 5);
    expect(got.maxAbsLogprob).toBeCloseTo(maxP, 3);
    expect(got.meanAbsLogprob).toBeCloseTo(sumP / (5 * S), 4);
    expect(got.top1Agreement).toBe(same / 5);
    expect(sb.top[3]).toBe(11);
    expect(got.top1Agreement).toBeLessThan(1);
  });
});

/** Tokens `ids`; every token routed to {R0} + shared S, except the (layer, token) pairs in `other`, routed to {R1} + S. */
function trace(ids: number[], other: [number, number][] = [], logits?: Float32Array, V = 64): RoutingTrace {
  const differs = (l: number, t: number) => other.some(([a, b]) => a === l && b === t);
  return {
    kind: "routing-trace",
    model: "m",
    convention: "",
    experts: EXPERTS4,
    tokens: ids.map((id) => tok(id, `t${id}`, "text", "prefill")),
    layers: [0, 1, 2].map((l) => layer(ids.map((_, t) => (differs(l, t) ? { z: [0, 1, 0, 0], m: [0, 1, 0, 1], w: [0, 0.5, 0, 0.5], k: 1 } : { z: [1, 0, 0, 0], m: [1, 0, 0, 1], w: [0.5, 0, 0, 0.5], k: 1 })))),
    ...(logits ? { logits: sketchLogits(logits, V, ids.length) } : {}),
  };
}

describe("Compare Traces: routing agreement and logits", () => {
  it("the share of common tokens with the identical expert set, per layer", () => {
    const ids = [3, 1, 4, 1, 5, 9, 2, 6];
    const c = compareTraces(trace(ids), trace([...ids, 7], [[0, 2], [2, 0], [2, 5], [2, 7]]));
    // common prefix: all 8 tokens of A; layer 0: 1 token differs, layer 1: none, layer 2: 3
    expect(c.setAgreement!.perLayer).toEqual([7 / 8, 1, 5 / 8]);
    expect(c.setAgreement!.mean).toBeCloseTo((7 / 8 + 1 + 5 / 8) / 3, 12);
    expect(c.routingDiff!.map((l) => l.setDiffers)).toEqual([1, 0, 3]);
    // tokens after the prefix do not count
    const cut = compareTraces(trace([3, 1, 4, 8]), trace([3, 1, 4, 9], [[0, 3]]));
    expect(cut.setAgreement!.perLayer).toEqual([1, 1, 1]);
  });

  it("logit differences over the common tokens; a clear reason when they cannot be compared", () => {
    const V = 64;
    const la = randomLogits(8, 5, V), lb = la.map((v, i) => (i >= 2 * V && i < 3 * V ? v + 0.25 : v));
    const c = compareTraces(trace([1, 2, 3, 4, 5], [], la), trace([1, 2, 3, 9, 9], [], lb));
    expect(c.logits!.rows).toBe(3); // common prefix 1, 2, 3
    expect(c.logits!.maxAbsLogit).toBeCloseTo(0.25, 5);
    expect(c.logits!.maxAbsLogprob).toBeLessThan(1e-5); // a constant shift leaves log-probabilities alone
    expect(c.logits!.top1Agreement).toBe(1);
    expect(c.logitsNote).toBeUndefined();
    expect(compareTraces(trace([1, 2]), trace([1, 2], [], la.subarray(0, 2 * V))).logitsNote).toMatch(/trace A records no logits/);
    expect(compareTraces(trace([1, 2], [], la.subarray(0, 2 * V)), trace([1, 2], [], la.subarray(0, 2 * 32), 32)).logitsNote).toMatch(/vocabularies differ \(64 and 32 ids\)/);
    const none = compareTraces(trace([1, 2], [], la.subarray(0, 2 * V)), trace([7, 2], [], la.subarray(0, 2 * V)));
    expect(none.logits).toBeNull();
    expect(none.setAgreement).toBeNull();
    expect(none.logitsNote).toMatch(/no common tokens/);
  });
});
