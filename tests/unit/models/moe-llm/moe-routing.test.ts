import * as ort from "onnxruntime-node";
import { describe, expect, it } from "vitest";
import { resolveTopP, type MoeLlmConfig } from "@/models/moe-llm/config";
import { buildRoutingGraph } from "@/models/moe-llm/moe-llm-graph";
import { referenceRoute } from "../../../reference/moe-llm";
import { randomConfig } from "../../../reference/random";

/** Real-model layout: 4 routed, 1 null, 2 shared → D = 5, E = 7; P = 0.7, jitter 0.01. */
const real: MoeLlmConfig = randomConfig(1, { mlp_dynamic_expert_num: 4, mlp_dynamic_null_expert_num: 1, mlp_fixed_expert_num: 2, mlp_dynamic_top_p: 0.7, router_jitter_noise: 0.01 });
const D = 5, E = 7;

interface Run { mask: Float32Array; weights: Float32Array; k: BigInt64Array }

async function route(c: MoeLlmConfig, rows: number[][], iv: { ban?: number[]; force?: number[]; topP?: number } = {}): Promise<Run> {
  const s = await ort.InferenceSession.create(buildRoutingGraph(c), { logSeverityLevel: 3 });
  const e = rows[0]!.length;
  const feeds: Record<string, ort.Tensor> = { router_logits: new ort.Tensor("float32", Float32Array.from(rows.flat()), [rows.length, e]) };
  feeds.ban_mask = new ort.Tensor("float32", iv.ban ? Float32Array.from(iv.ban) : new Float32Array(e), [1, e]);
  feeds.force_mask = new ort.Tensor("float32", iv.force ? Float32Array.from(iv.force) : new Float32Array(e), [1, e]);
  feeds.top_p = new ort.Tensor("float32", Float32Array.from([resolveTopP(c, iv.topP)]), [1]); // as MoeLlmRunner feeds it
  const out = await s.run(feeds);
  await s.release();
  return { mask: out.mask!.data as Float32Array, weights: out.weights!.data as Float32Array, k: out.k!.data as BigInt64Array };
}

/** Graph vs reference on every row; returns the max weight difference. */
function compare(c: MoeLlmConfig, rows: number[][], got: Run, iv: { ban?: number[]; force?: number[]; topP?: number } = {}): number {
  const e = rows[0]!.length;
  let maxDiff = 0;
  rows.forEach((row, n) => {
    const ref = referenceRoute(c, Float32Array.from(row), iv.ban, iv.force, iv.topP);
    expect(Number(got.k[n]), `k of row ${n} [${row}]`).toBe(ref.k);
    expect(Array.from(got.mask.slice(n * e, (n + 1) * e)), `mask of row ${n} [${row}]`).toEqual(ref.mask);
    for (let j = 0; j < e; j++) maxDiff = Math.max(maxDiff, Math.abs(got.weights[n * e + j]! - ref.weights[j]!));
  });
  expect(maxDiff).toBeLessThan(1e-5);
  return maxDiff;
}

const row = (n: number, got: Run) => Array.from(got.weights.slice(n * E, (n + 1) * E));

describe("dynamic-capacity routing (PAPER.md §2) — routing graph vs reference", () => {
  it("exact ties, near-ties on both sides of 2·jitter, zero and negative logits", async () => {
    const rows = [
      [3, 3, 0, 0, 0, 1, 2], // exact tie of the top two: multipliers 0.5 then 1
      [1, 0.985, -2, -2, -2, 0, 0], // near tie inside (ratio 0.015 <= 0.02)
      [1, 0.975, -2, -2, -2, 0, 0], // outside (0.025 > 0.02)
      [-1, -1.015, -3, -3, -3, 0, 0], // negative: ratio 0.015/1.015, inside
      [0, 0, 0, 0, 0, 0, 0], // all zero: 0/0 = NaN counts as kept (as torch)
      [0.01, -0.01, -5, -5, -5, 1, 1], // ratio 2 → not kept
      [2, 2, 2, -9, -9, 0, 0], // three-way tie
      [0.5, 0.2, 0.9, 0.1, 0.6, -1, 0.3],
    ];
    const got = await route(real, rows);
    const d = compare(real, rows, got);
    console.log(`routing ties: max |Δweights| = ${d.toExponential(2)}; k = ${Array.from(got.k)}`);
    // hand-checked row 0: k = 2, rw = [1/3, 2/3], weights sum to 1
    expect(Number(got.k[0])).toBe(2);
    const w0 = row(0, got);
    expect(w0[1]! / w0[0]!).toBeCloseTo(2, 4);
    const gDyn = (2 * Math.exp(3)) / (2 * Math.exp(3) + Math.exp(1) + Math.exp(2));
    expect(w0[0]! + w0[1]!).toBeCloseTo(gDyn, 5);
    expect(w0.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 5);
    // row 1 (k = 2 when both are chosen): first multiplier = sigmoid(0.015), second = 1; row 2: both 1
    const w1 = row(1, got), w2 = row(2, got);
    if (Number(got.k[1]) === 2) expect(w1[0]! / w1[1]!).toBeCloseTo(1 / (1 + Math.exp(-0.015)), 4);
    if (Number(got.k[2]) === 2) expect(w2[0]! / w2[1]!).toBeCloseTo(1, 4);
  });

  it("Top-P: P = 1 selects all D, a small P selects one, P = 0 in the config means fixed top-k", async () => {
    const rows = [[0.1, 0.2, 0.3, 0.4, 0.5, 0, 0], [4, -1, -1, -1, -1, 0, 0], [1, 1, 1, 1, 1, 2, 2], [-3, 2, 0.5, 1, -1, 0.2, 0.1]];
    const all = await route(real, rows, { topP: 1 });
    compare(real, rows, all, { topP: 1 });
    expect(Array.from(all.k, Number)).toEqual([D, D, D, D]);
    const one = await route(real, rows, { topP: 0.01 });
    compare(real, rows, one, { topP: 0.01 });
    expect(Array.from(one.k, Number)).toEqual([1, 1, 1, 1]);
    const neutral = await route(real, rows);
    compare(real, rows, neutral);
    // an override equal to the config's P is fed as none is: the same routing
    const same = await route(real, rows, { topP: real.mlp_dynamic_top_p });
    expect([Array.from(same.k), Array.from(same.mask), Array.from(same.weights)]).toEqual([Array.from(neutral.k), Array.from(neutral.mask), Array.from(neutral.weights)]);
    const fixed = { ...real, mlp_dynamic_top_p: 0, mlp_dynamic_top_k: 3 };
    const topk = await route(fixed, rows);
    compare(fixed, rows, topk);
    expect(Array.from(topk.k, Number)).toEqual([3, 3, 3, 3]);
    // with P = 1 every dynamic column is chosen
    for (let n = 0; n < rows.length; n++) expect(Array.from(all.mask.slice(n * E, n * E + D))).toEqual([1, 1, 1, 1, 1]);
  });

  it("interventions: ban never selected, force always selected, ban-all leaves the shared experts", async () => {
    const rows = [[3, 1, 0, -1, 0.5, 0, 0], [-2, 4, 1, 0.9, 0.2, 1, -1], [0, 0, 0, 0, 0, 0, 0], [5, 4.99, 1, 1, 1, 0, 0]];
    const ban = [1, 0, 0, 0, 0, 0, 0], force = [0, 0, 0, 1, 0, 0, 0];
    const banned = await route(real, rows, { ban, topP: 1 });
    compare(real, rows, banned, { ban, topP: 1 });
    const forced = await route(real, rows, { force });
    compare(real, rows, forced, { force });
    const both = await route(real, rows, { ban, force, topP: 0.01 });
    compare(real, rows, both, { ban, force, topP: 0.01 });
    for (let n = 0; n < rows.length; n++) {
      expect(banned.mask[n * E]).toBe(0);
      expect(banned.weights[n * E]).toBe(0);
      expect(Number(banned.k[n])).toBe(D - 1);
      expect(forced.mask[n * E + 3]).toBe(1);
      expect(both.mask[n * E + 3]).toBe(1);
      expect(both.mask[n * E]).toBe(0);
    }
    const banAll = [1, 1, 1, 1, 1, 0, 1];
    const none = await route(real, rows, { ban: banAll });
    compare(real, rows, none, { ban: banAll });
    for (let n = 0; n < rows.length; n++) {
      expect(Number(none.k[n])).toBe(0);
      expect(Array.from(none.mask.slice(n * E, (n + 1) * E))).toEqual([0, 0, 0, 0, 0, 1, 0]);
      expect(none.weights[n * E + 5]).toBeCloseTo(1, 6);
    }
  });

  it("token_drop with a capacity >= N (min_capacity) changes no selection", async () => {
    const c = { ...real, token_drop: true, capacity_factor: 0.1, min_capacity: 64 };
    let s = 17;
    const rnd = () => ((s = (s * 1103515245 + 12345) % 2147483648) / 2147483648) * 6 - 3;
    const rows = Array.from({ length: 32 }, () => Array.from({ length: E }, rnd));
    const got = await route(c, rows);
    const d = compare(real, rows, got); // same k and mask as without token_drop; weights within 1e-5 (extra +1e-6 renormalisation)
    console.log(`token_drop, capacity 64 >= 32 tokens: max |Δweights| vs no token_drop = ${d.toExponential(2)}`);
  });

  it("random logits over several configs agree with the reference", async () => {
    let worst = 0;
    for (const seed of [2, 3, 4, 5, 6]) {
      const c = randomConfig(seed);
      const e = c.mlp_dynamic_expert_num + c.mlp_dynamic_null_expert_num + c.mlp_fixed_expert_num;
      let s = seed;
      const rnd = () => ((s = (s * 1103515245 + 12345) % 2147483648) / 2147483648) * 6 - 3;
      const rows = Array.from({ length: 64 }, () => Array.from({ length: e }, rnd));
      worst = Math.max(worst, compare(c, rows, await route(c, rows)));
    }
    console.log(`routing random: max |Δweights| = ${worst.toExponential(2)}`);
  });
});
