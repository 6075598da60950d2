import { afterAll, describe, expect, it } from "vitest";
import { type MoeLlmConfig } from "@/models/moe-llm/config";
import { buildMoeLlmGraph, type MoeGraphOptions, moeDims } from "@/models/moe-llm/moe-llm-graph";
import { type ForwardOutput, type KvCache, MoeLlmRunner } from "@/models/moe-llm/moe-llm-session";
import type { WeightSource } from "@/models/io/weights";
import { capacityOf, releasedRouting } from "../../../reference/grin-routing";
import { referenceForward, type RefForwardInput, type RefForwardOutput } from "../../../reference/moe-llm";
import { randomConfig, randomIds, randomWeights } from "../../../reference/random";

/**
 * Capacity-based token dropping as the release does it (RELEASED.md §5 item 4; the rules are documented in
 * models/moe-llm/grin-routing.ts): the decoder graph (sparse and dense, with and without KV cache) vs the plain-TS reference,
 * drops on every call (decode steps included), k reported before drops, "position" capping the shared experts and
 * refused when it leaves a token with no expert. The routing block alone is tested in grin-routing.test.ts.
 */

const runners: MoeLlmRunner[] = [];
afterAll(async () => {
  for (const r of runners) await r.release();
});
async function runner(c: MoeLlmConfig, w: WeightSource, o: Partial<MoeGraphOptions> = {}): Promise<MoeLlmRunner> {
  const r = await MoeLlmRunner.create(c, w, { moe: "sparse", trace: true, kvCache: false, ...o }, { intraOpNumThreads: 1 });
  runners.push(r);
  return r;
}

const maxAbs = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
};
const positions = (B: number, S: number) => Array.from({ length: 3 * B * S }, (_, q) => (q % S) + Math.floor(q / (B * S)));
const withDrop = (c: MoeLlmConfig, over: Record<string, unknown>): MoeLlmConfig => ({ ...c, token_drop: true, ...over }) as MoeLlmConfig;

/** Graph vs reference for a full forward; returns the max differences. */
function check(got: ForwardOutput, ref: RefForwardOutput) {
  const d = { logits: maxAbs(got.logits, ref.logits), weights: 0 };
  got.trace!.forEach((t, l) => {
    const r = ref.trace[l]!;
    d.weights = Math.max(d.weights, maxAbs(t.weights, r.weights));
    expect(Array.from(t.k, Number), `k of layer ${l}`).toEqual(r.k);
    expect(Array.from(t.mask), `mask of layer ${l}`).toEqual(r.mask);
    expect(Array.from(t.dropped!), `dropped of layer ${l}`).toEqual(r.dropped);
  });
  expect(d.logits).toBeLessThan(1e-4);
  expect(d.weights).toBeLessThan(1e-4);
  return d;
}

/**
 * The smallest min_capacity from `from` up for which the reference routes every token of `input` ("position" caps the
 * shared experts, so a capacity that is too small leaves some token without an expert, which the release refuses).
 */
function positionCapacity(c: MoeLlmConfig, w: WeightSource, input: RefForwardInput, from: number): MoeLlmConfig {
  for (let m = from; m < 64; m++) {
    const cm = { ...c, min_capacity: m };
    try {
      referenceForward(cm, w, input);
      return cm;
    } catch {
      // refused: try a larger capacity
    }
  }
  throw new Error("no capacity routes every token");
}

const sum = (a: ArrayLike<number>) => Array.from(a).reduce((x, y) => x + y, 0);

describe("capacity token-drop (token_drop), as released", () => {
  it("capacity = max(min_capacity, ceil(N / D * capacity_factor)), D = routed + null", () => {
    const c = randomConfig(1, { mlp_dynamic_expert_num: 4, mlp_dynamic_null_expert_num: 1 }); // D = 5
    expect(capacityOf({ ...c, capacity_factor: 1, min_capacity: 0 }, 12)).toBe(3); // ceil(2.4)
    expect(capacityOf({ ...c, capacity_factor: 0.5, min_capacity: 0 }, 12)).toBe(2); // ceil(1.2)
    expect(capacityOf({ ...c, capacity_factor: 1, min_capacity: 8 }, 12)).toBe(8);
    expect(capacityOf({ ...c, capacity_factor: 6, min_capacity: 8 }, 100)).toBe(120);
  });

  it.each([
    [1, "probs"],
    [2, "position"],
    [3, "probs"],
    [4, "probs"],
    [5, "position"],
  ] as const)("decoder seed %i (%s): sparse and dense == reference with drops, sparse == dense", async (seed, policy) => {
    const B = 2, S = 7;
    const base = withDrop(randomConfig(seed), { capacity_factor: 0.5, min_capacity: 1, drop_policy: policy });
    const w = randomWeights(base, seed);
    const ids = randomIds(B * S, base.vocab_size, seed + 300);
    const pos = positions(B, S);
    const input = { batch: B, seq: S, ids, positions: pos };
    const c = policy === "position" ? positionCapacity(base, w, input, 1) : base;
    const ref = referenceForward(c, w, input);
    const sparse = await (await runner(c, w, { moe: "sparse" })).forward(input);
    const dense = await (await runner(c, w, { moe: "dense" })).forward(input);
    const d = check(sparse, ref);
    const dd = check(dense, ref);
    const sd = maxAbs(sparse.logits, dense.logits);
    expect(sd).toBeLessThan(1e-5);
    const { D, E } = moeDims(c);
    let dynDrops = 0, sharedDrops = 0;
    ref.trace.forEach((t) => t.dropped.forEach((v, q) => (v ? (q % E < D ? dynDrops++ : sharedDrops++) : 0)));
    // k is the pre-drop k: every dropped dynamic selection still counts
    sparse.trace!.forEach((t) => {
      for (let n = 0; n < B * S; n++) expect(sum(t.mask.subarray(n * E, n * E + D)) + sum(t.dropped!.subarray(n * E, n * E + D))).toBe(Number(t.k[n]));
    });
    // the same model without token_drop: layer 0 sees the same logits and reports the same k; the logits differ
    const off = await (await runner({ ...c, token_drop: false }, w)).forward(input);
    expect(Array.from(off.trace![0]!.k)).toEqual(Array.from(sparse.trace![0]!.k));
    console.log(
      `seed ${seed} ${policy} (C = ${capacityOf(c, B * S)}, N = ${B * S}, D = ${D}): ${dynDrops} dynamic + ${sharedDrops} shared drops; ` +
        `|Δlogits| sparse ${d.logits.toExponential(2)} dense ${dd.logits.toExponential(2)}, |Δweights| ${d.weights.toExponential(2)}; sparse-dense ${sd.toExponential(2)}`,
    );
    // "probs" caps the dynamic columns only; "position" caps the shared ones too (there every token holds one)
    expect(policy === "probs" ? dynDrops : sharedDrops).toBeGreaterThan(0);
    if (policy === "probs") expect(sharedDrops).toBe(0);
    expect(maxAbs(off.logits, sparse.logits)).toBeGreaterThan(1e-4);
  });

  it("KV cache: the prefill and every decode step drop (a decode step is a call of B tokens); equals the reference", async () => {
    for (const [seed, policy] of [[9, "probs"], [10, "position"]] as const) {
      const B = 4, S = 9, S0 = 5;
      const base = withDrop(randomConfig(seed), { capacity_factor: 0.5, min_capacity: 1, drop_policy: policy });
      const w = randomWeights(base, seed);
      const ids = randomIds(B * S, base.vocab_size, seed * 10);
      const pos = positions(B, S);
      const input = { batch: B, seq: S, ids, positions: pos, prefillLength: S0 };
      const c = policy === "position" ? positionCapacity(base, w, input, 1) : base;
      const { V, E, L, D } = moeDims(c);
      const ref = referenceForward(c, w, input);
      const inc = await runner(c, w, { kvCache: true });
      const incDense = await runner(c, w, { kvCache: true, moe: "dense" });
      const slice = (a: number[], s0: number, s1: number) => {
        const out: number[] = [];
        for (let r = 0; r < a.length / S; r++) out.push(...a.slice(r * S + s0, r * S + s1));
        return out;
      };
      let past: KvCache | undefined, pastDense: KvCache | undefined;
      let worst = 0, worstW = 0, prefillDrops = 0, decodeDrops = 0;
      for (const [s0, s1] of [[0, S0], ...Array.from({ length: S - S0 }, (_, i) => [S0 + i, S0 + i + 1])] as [number, number][]) {
        const n = s1 - s0;
        const feed = { batch: B, seq: n, ids: slice(ids, s0, s1), positions: slice(pos, s0, s1) };
        const step = await inc.forward({ ...feed, past });
        const stepDense = await incDense.forward({ ...feed, past: pastDense });
        expect(maxAbs(step.logits, stepDense.logits)).toBeLessThan(1e-5);
        past = step.present;
        pastDense = stepDense.present;
        for (let b = 0; b < B; b++)
          for (let s = 0; s < n; s++) {
            const q = b * n + s, f = b * S + s0 + s;
            worst = Math.max(worst, maxAbs(step.logits.subarray(q * V, (q + 1) * V), ref.logits.subarray(f * V, (f + 1) * V)));
            for (let l = 0; l < L; l++) {
              const t = step.trace![l]!, r = ref.trace[l]!;
              expect(Number(t.k[q]), `layer ${l} row ${b} pos ${s0 + s} k`).toBe(r.k[f]);
              expect(Array.from(t.mask.subarray(q * E, (q + 1) * E))).toEqual(r.mask.slice(f * E, (f + 1) * E));
              expect(Array.from(t.dropped!.subarray(q * E, (q + 1) * E))).toEqual(r.dropped.slice(f * E, (f + 1) * E));
              worstW = Math.max(worstW, maxAbs(t.weights.subarray(q * E, (q + 1) * E), r.weights.slice(f * E, (f + 1) * E)));
              const drops = sum(r.dropped.slice(f * E, (f + 1) * E));
              if (s0 === 0) prefillDrops += drops;
              else decodeDrops += drops;
            }
          }
      }
      console.log(
        `seed ${seed} ${policy} KV cache (B ${B}, prefill ${S0} + ${S - S0} decode steps, D = ${D}, C prefill ${capacityOf(c, B * S0)}, decode ${capacityOf(c, B)}): ` +
          `prefill drops ${prefillDrops}, decode drops ${decodeDrops}; |Δlogits| ${worst.toExponential(2)} |Δweights| ${worstW.toExponential(2)} vs reference`,
      );
      expect(prefillDrops).toBeGreaterThan(0);
      // "position" needs a capacity that routes every prefill token, which is more than a decode step's B tokens
      if (policy === "probs") expect(decodeDrops).toBeGreaterThan(0);
      expect(worst).toBeLessThan(1e-4);
      expect(worstW).toBeLessThan(1e-4);
    }
  });

  it('"position" leaving a token with no expert is refused with the release\'s ValueError', async () => {
    const c = withDrop(randomConfig(2), { capacity_factor: 0.5, min_capacity: 1, drop_policy: "position" });
    const w = randomWeights(c, 2);
    const B = 2, S = 7;
    const input = { batch: B, seq: S, ids: randomIds(B * S, c.vocab_size, 302), positions: positions(B, S) };
    expect(() => referenceForward(c, w, input)).toThrow(/no expert/);
    // with the routing outputs the token is named as the release names it; without them the NaN logits tell
    await expect((await runner(c, w, { trace: true })).forward(input)).rejects.toThrow(/^ValueError: iindex: \[\[\d+, 0\]\] — token drop with drop_policy "position" left token \d+ .* at layer \d+ with no expert.*modeling_qwen_grin_moe\.py:687-691/);
    await expect((await runner(c, w, { trace: false })).forward(input)).rejects.toThrow(/^ValueError — token drop with drop_policy "position".*modeling_qwen_grin_moe\.py:687-691/);
  });

  it("decode steps of one row never drop (capacity >= 1 = N)", () => {
    const c = withDrop(randomConfig(3), { capacity_factor: 0.01, min_capacity: 0 });
    const { E } = moeDims(c);
    for (const policy of ["probs", "position"])
      for (let t = 0; t < 20; t++) {
        const row = Array.from({ length: E }, (_, j) => Math.sin(t * 7 + j));
        const r = releasedRouting({ ...c, drop_policy: policy } as MoeLlmConfig, [row], { precision: "fp32" });
        expect(r.capacity).toBe(1);
        expect(sum(r.dropped[0]!)).toBe(0);
      }
  });

  it("token_drop off builds no capacity nodes; ample capacity changes no selection", async () => {
    const c = randomConfig(6);
    const w = randomWeights(c, 6);
    const has = (bytes: Uint8Array, s: string) => Buffer.from(bytes).includes(Buffer.from(s));
    expect(has(buildMoeLlmGraph(c, w, { moe: "sparse", trace: true, kvCache: true }), "Ceil")).toBe(false);
    expect(has(buildMoeLlmGraph(withDrop(c, {}), w, { moe: "sparse", trace: true, kvCache: true }), "Ceil")).toBe(true);
    // capacity ≥ N: same selections as token_drop off; weights only move by the extra +1e-6 renormalisation
    const B = 2, S = 6;
    const ids = randomIds(B * S, c.vocab_size, 61);
    const pos = positions(B, S);
    const off = await (await runner(c, w)).forward({ batch: B, seq: S, ids, positions: pos });
    const ample = await (await runner(withDrop(c, { capacity_factor: 10, min_capacity: 0 }), w)).forward({ batch: B, seq: S, ids, positions: pos });
    let dw = 0;
    off.trace!.forEach((t, l) => {
      expect(Array.from(ample.trace![l]!.k)).toEqual(Array.from(t.k));
      expect(Array.from(ample.trace![l]!.mask)).toEqual(Array.from(t.mask));
      dw = Math.max(dw, maxAbs(ample.trace![l]!.weights, t.weights));
    });
    const dl = maxAbs(ample.logits, off.logits);
    console.log(`ample capacity vs token_drop off: |Δweights| ${dw.toExponential(2)} |Δlogits| ${dl.toExponential(2)}`);
    expect(dw).toBeLessThan(1e-5);
    expect(dl).toBeLessThan(1e-4);
  });

  it("rejects an unknown drop_policy", async () => {
    const c = withDrop(randomConfig(12), { drop_policy: "random" });
    await expect(MoeLlmRunner.create(c, randomWeights(c, 12), { moe: "sparse", trace: false, kvCache: false })).rejects.toThrow(/drop_policy/);
  });
});
