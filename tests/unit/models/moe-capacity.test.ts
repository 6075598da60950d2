import * as ort from "onnxruntime-node";
import { afterAll, describe, expect, it } from "vitest";
import { type MoeLlmConfig } from "@/models/config";
import { buildMoeLlmGraph, buildRoutingGraph, type MoeGraphOptions, moeDims } from "@/models/moe-llm-graph";
import { type ForwardOutput, type KvCache, MoeLlmRunner } from "@/models/moe-llm-session";
import type { WeightSource } from "@/models/weights";
import { referenceCapacity, referenceForward, type RefForwardOutput, referenceRouteTokens } from "../../reference/moe-llm";
import { prng, randomConfig, randomIds, randomWeights } from "../../reference/random";

/**
 * Capacity-based token dropping (PAPER.md §2 item 8; the rule is documented at `capacityKeep` in
 * models/moe-llm-graph.ts): graph (sparse and dense) vs the plain-TS reference, drops actually happen,
 * decode steps never drop, token_drop off unchanged.
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

interface Run { mask: Float32Array; weights: Float32Array; k: BigInt64Array }
async function route(c: MoeLlmConfig, rows: number[][]): Promise<Run> {
  const s = await ort.InferenceSession.create(buildRoutingGraph(c), { logSeverityLevel: 3 });
  const e = rows[0]!.length;
  const out = await s.run({
    router_logits: new ort.Tensor("float32", Float32Array.from(rows.flat()), [rows.length, e]),
    ban_mask: new ort.Tensor("float32", new Float32Array(e), [1, e]),
    force_mask: new ort.Tensor("float32", new Float32Array(e), [1, e]),
    top_p: new ort.Tensor("float32", Float32Array.from([0]), [1]),
  });
  await s.release();
  return { mask: out.mask!.data as Float32Array, weights: out.weights!.data as Float32Array, k: out.k!.data as BigInt64Array };
}

/** Graph vs reference for a full forward; returns the max differences. */
function check(got: ForwardOutput, ref: RefForwardOutput) {
  const d = { logits: maxAbs(got.logits, ref.logits), weights: 0 };
  got.trace!.forEach((t, l) => {
    const r = ref.trace[l]!;
    d.weights = Math.max(d.weights, maxAbs(t.weights, r.weights));
    expect(Array.from(t.k, Number), `k of layer ${l}`).toEqual(r.k);
    expect(Array.from(t.mask), `mask of layer ${l}`).toEqual(r.mask);
  });
  expect(d.logits).toBeLessThan(1e-4);
  expect(d.weights).toBeLessThan(1e-4);
  return d;
}

describe("capacity token-drop (token_drop)", () => {
  it("capacity = max(min_capacity, ceil(N / D * capacity_factor)), D = routed + null", () => {
    const c = randomConfig(1, { mlp_dynamic_expert_num: 4, mlp_dynamic_null_expert_num: 1 }); // D = 5
    expect(referenceCapacity({ ...c, capacity_factor: 1, min_capacity: 0 }, 12)).toBe(3); // ceil(2.4)
    expect(referenceCapacity({ ...c, capacity_factor: 0.5, min_capacity: 0 }, 12)).toBe(2); // ceil(1.2)
    expect(referenceCapacity({ ...c, capacity_factor: 1, min_capacity: 8 }, 12)).toBe(8);
    expect(referenceCapacity({ ...c, capacity_factor: 6, min_capacity: 8 }, 100)).toBe(120);
  });

  it("hand-checked: every token wants expert 0, C = 2 → probs keeps the two largest logits, position the first two", async () => {
    const base = randomConfig(1, { mlp_dynamic_expert_num: 4, mlp_dynamic_null_expert_num: 1, mlp_fixed_expert_num: 2, mlp_dynamic_top_p: 0.7 });
    const z0 = [4.1, 4.5, 4.0, 4.3, 4.2, 4.4];
    const rows = z0.map((v) => [v, -1, -1, -1, -1, 0, 0]); // k = 1 (p0 ≈ 0.97), N = 6, D = 5 → C = ceil(1.2) = 2
    const expectKeep = async (c: MoeLlmConfig, kept: number[]) => {
      const got = await route(c, rows);
      const ref = referenceRouteTokens(c, rows);
      expect(ref.capacity).toBe(2);
      rows.forEach((_, n) => {
        const m = Array.from(got.mask.slice(n * 7, n * 7 + 7));
        const w = Array.from(got.weights.slice(n * 7, n * 7 + 7));
        expect(m).toEqual(ref.routes[n]!.mask);
        expect(Number(got.k[n])).toBe(ref.routes[n]!.k);
        if (kept.includes(n)) {
          expect(m).toEqual([1, 0, 0, 0, 0, 1, 1]);
          expect(Number(got.k[n])).toBe(1);
        } else {
          // dropped: mask 0, weight 0, k 0; the shared experts take all the weight (equal logits → 0.5 each)
          expect(m).toEqual([0, 0, 0, 0, 0, 1, 1]);
          expect(Number(got.k[n])).toBe(0);
          expect(w[0]).toBe(0);
          expect(w[5]).toBeCloseTo(0.5, 6);
          expect(w[6]).toBeCloseTo(0.5, 6);
        }
        expect(w.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 5);
      });
    };
    await expectKeep(withDrop(base, { capacity_factor: 1, min_capacity: 0 }), [1, 5]);
    await expectKeep(withDrop(base, { capacity_factor: 1, min_capacity: 0, drop_policy: "position" }), [0, 1]);
    // min_capacity 8 ≥ N: nothing dropped
    const none = await route(withDrop(base, { capacity_factor: 1, min_capacity: 8 }), rows);
    expect(Array.from(none.k, Number)).toEqual([1, 1, 1, 1, 1, 1]);
  });

  it("routing graph == reference on random logits with small capacities, both policies; drops counted", async () => {
    let worst = 0, drops = 0, selections = 0, partial = 0;
    for (const seed of [2, 3, 4, 5, 6, 7])
      for (const policy of ["probs", "position"]) {
        const c = withDrop(randomConfig(seed), { capacity_factor: 0.6, min_capacity: 1, drop_policy: policy });
        const { E } = moeDims(c);
        const r = prng(seed * 31);
        const rows = Array.from({ length: 40 + seed }, () => Array.from({ length: E }, () => r() * 6 - 3));
        const got = await route(c, rows);
        const ref = referenceRouteTokens(c, rows);
        rows.forEach((_, n) => {
          expect(Number(got.k[n]), `seed ${seed} ${policy} k of row ${n}`).toBe(ref.routes[n]!.k);
          expect(Array.from(got.mask.slice(n * E, (n + 1) * E)), `seed ${seed} ${policy} mask of row ${n}`).toEqual(ref.routes[n]!.mask);
          for (let j = 0; j < E; j++) worst = Math.max(worst, Math.abs(got.weights[n * E + j]! - ref.routes[n]!.weights[j]!));
        });
        // every dynamic column holds at most C tokens
        const { D } = moeDims(c);
        for (let j = 0; j < D; j++) {
          let used = 0;
          for (let n = 0; n < rows.length; n++) used += got.mask[n * E + j]!;
          expect(used).toBeLessThanOrEqual(ref.capacity!);
        }
        drops += ref.dropped.reduce((a, b) => a + b, 0);
        // tokens that lost some but not all of their dynamic experts (their weights are renormalised over the rest)
        partial += ref.routes.filter((x, n) => ref.dropped[n]! > 0 && x.k > 0).length;
        selections += ref.routes.reduce((a, x) => a + x.k, 0) + ref.dropped.reduce((a, b) => a + b, 0);
      }
    console.log(`capacity routing: max |Δweights| ${worst.toExponential(2)}; ${drops} of ${selections} dynamic selections dropped, ${partial} tokens partly`);
    expect(worst).toBeLessThan(1e-5);
    expect(drops).toBeGreaterThan(0);
    expect(partial).toBeGreaterThan(0);
  });

  it.each([
    [1, "probs"],
    [2, "position"],
    [3, "probs"],
    [4, "probs"],
    [5, "position"],
  ] as const)("decoder seed %i (%s): sparse and dense == reference with drops, sparse == dense", async (seed, policy) => {
    const c = withDrop(randomConfig(seed), { capacity_factor: 0.5, min_capacity: 1, drop_policy: policy });
    const w = randomWeights(c, seed);
    const B = 2, S = 7;
    const ids = randomIds(B * S, c.vocab_size, seed + 300);
    const pos = positions(B, S);
    const ref = referenceForward(c, w, { batch: B, seq: S, ids, positions: pos });
    const sparse = await (await runner(c, w, { moe: "sparse" })).forward({ batch: B, seq: S, ids, positions: pos });
    const dense = await (await runner(c, w, { moe: "dense" })).forward({ batch: B, seq: S, ids, positions: pos });
    const d = check(sparse, ref);
    const dd = check(dense, ref);
    const sd = maxAbs(sparse.logits, dense.logits);
    expect(sd).toBeLessThan(1e-5);
    sparse.trace!.forEach((t, l) => {
      expect(Array.from(t.mask)).toEqual(Array.from(dense.trace![l]!.mask));
      expect(maxAbs(t.weights, dense.trace![l]!.weights)).toBeLessThan(1e-5);
    });
    const drops = ref.trace.reduce((a, t) => a + t.dropped.reduce((x, y) => x + y, 0), 0);
    // the same model without token_drop: layer 0 sees the same logits, so its k drops by exactly the dropped count
    // (later layers see different hidden states); the logits differ (the drops matter)
    const off = await (await runner({ ...c, token_drop: false }, w)).forward({ batch: B, seq: S, ids, positions: pos });
    const sumK = (o: ForwardOutput) => o.trace![0]!.k.reduce((x, y) => x + Number(y), 0);
    const drops0 = ref.trace[0]!.dropped.reduce((x, y) => x + y, 0);
    console.log(
      `seed ${seed} ${policy} (C = ${referenceCapacity(c, B * S)}, N = ${B * S}, D = ${moeDims(c).D}): ${drops} drops; ` +
        `|Δlogits| sparse ${d.logits.toExponential(2)} dense ${dd.logits.toExponential(2)}, |Δweights| ${d.weights.toExponential(2)}; sparse-dense ${sd.toExponential(2)}`,
    );
    expect(drops).toBeGreaterThan(0);
    expect(sumK(off) - sumK(sparse)).toBe(drops0);
    expect(maxAbs(off.logits, sparse.logits)).toBeGreaterThan(1e-4);
  });

  it("KV cache: the prefill drops, decode steps (S = 1 with a past) never drop; equals the reference", async () => {
    for (const [seed, policy] of [[9, "probs"], [10, "position"]] as const) {
      const c = withDrop(randomConfig(seed), { capacity_factor: 0.5, min_capacity: 1, drop_policy: policy });
      const w = randomWeights(c, seed);
      const { V, E, L, D } = moeDims(c);
      const B = 4, S = 9, S0 = 5;
      const ids = randomIds(B * S, c.vocab_size, seed * 10);
      const pos = positions(B, S);
      const ref = referenceForward(c, w, { batch: B, seq: S, ids, positions: pos, prefillLength: S0 });
      const inc = await runner(c, w, { kvCache: true });
      const incDense = await runner(c, w, { kvCache: true, moe: "dense" });
      const incOff = await runner({ ...c, token_drop: false }, w, { kvCache: true });
      const slice = (a: number[], s0: number, s1: number) => {
        const out: number[] = [];
        for (let r = 0; r < a.length / S; r++) out.push(...a.slice(r * S + s0, r * S + s1));
        return out;
      };
      let past: KvCache | undefined, pastDense: KvCache | undefined;
      let worst = 0, worstW = 0, prefillDrops = 0, wouldDrop = 0;
      for (const [s0, s1] of [[0, S0], ...Array.from({ length: S - S0 }, (_, i) => [S0 + i, S0 + i + 1])] as [number, number][]) {
        const n = s1 - s0;
        const feed = { batch: B, seq: n, ids: slice(ids, s0, s1), positions: slice(pos, s0, s1) };
        const step = await inc.forward({ ...feed, past });
        const stepDense = await incDense.forward({ ...feed, past: pastDense });
        expect(maxAbs(step.logits, stepDense.logits)).toBeLessThan(1e-5);
        if (s0 > 0) {
          // a decode step: bit-identical to the token_drop-off graph on the same cache, and no drop in the reference
          const offStep = await incOff.forward({ ...feed, past });
          expect(Array.from(step.logits)).toEqual(Array.from(offStep.logits));
          step.trace!.forEach((t, l) => {
            expect(Array.from(t.k)).toEqual(Array.from(offStep.trace![l]!.k));
            expect(Array.from(t.mask)).toEqual(Array.from(offStep.trace![l]!.mask));
            expect(Array.from(t.weights)).toEqual(Array.from(offStep.trace![l]!.weights));
            // had the B decode tokens shared a capacity (C = 1 here), some would have dropped
            const rows = Array.from({ length: B }, (_, b) => Array.from(t.routerLogits.slice(b * E, (b + 1) * E)));
            wouldDrop += referenceRouteTokens(c, rows).dropped.reduce((a, x) => a + x, 0);
          });
        }
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
              worstW = Math.max(worstW, maxAbs(t.weights.subarray(q * E, (q + 1) * E), r.weights.slice(f * E, (f + 1) * E)));
              if (s0 === 0) prefillDrops += r.dropped[f]!;
              else expect(r.dropped[f]).toBe(0);
            }
          }
      }
      console.log(
        `seed ${seed} ${policy} KV cache (B ${B}, prefill ${S0} + ${S - S0} decode steps, D = ${D}): prefill drops ${prefillDrops}, ` +
          `decode drops 0 (would be ${wouldDrop} if decode shared a capacity); |Δlogits| ${worst.toExponential(2)} |Δweights| ${worstW.toExponential(2)} vs reference`,
      );
      expect(prefillDrops).toBeGreaterThan(0);
      expect(wouldDrop).toBeGreaterThan(0);
      expect(worst).toBeLessThan(1e-4);
      expect(worstW).toBeLessThan(1e-4);
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
