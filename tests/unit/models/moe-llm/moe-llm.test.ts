import { afterAll, describe, expect, it } from "vitest";
import { type MoeLlmConfig, paramNames } from "@/models/moe-llm/config";
import { moeDims, type MoeGraphOptions } from "@/models/moe-llm/moe-llm-graph";
import { type ForwardOutput, type KvCache, MoeLlmRunner } from "@/models/moe-llm/moe-llm-session";
import type { WeightSource } from "@/models/io/weights";
import { referenceForward, type RefForwardOutput, type RefInterventions } from "../../../reference/moe-llm";
import { randomConfig, randomIds, randomWeights } from "../../../reference/random";

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

/** 3D positions with distinct t/h/w: t = i, h = 2i + 3 + b, w = 7 - i (per batch row b). */
function positions3d(B: number, S: number, offset = 0): number[] {
  const p: number[] = [];
  for (let a = 0; a < 3; a++)
    for (let b = 0; b < B; b++)
      for (let s = 0; s < S; s++) {
        const i = s + offset;
        p.push(a === 0 ? i : a === 1 ? 2 * i + 3 + b : 7 - i);
      }
  return p;
}
const positions1d = (B: number, S: number) => Array.from({ length: 3 * B * S }, (_, q) => q % S);

/** Graph vs reference: logits, last hidden, and per layer router logits, k, mask, weights. */
function check(c: MoeLlmConfig, got: ForwardOutput, ref: RefForwardOutput) {
  const d = { logits: maxAbs(got.logits, ref.logits), hidden: maxAbs(got.lastHidden, ref.lastHidden), router: 0, weights: 0 };
  got.trace!.forEach((t, l) => {
    const r = ref.trace[l]!;
    d.router = Math.max(d.router, maxAbs(t.routerLogits, r.routerLogits));
    d.weights = Math.max(d.weights, maxAbs(t.weights, r.weights));
    expect(Array.from(t.k, Number), `k of layer ${l}`).toEqual(r.k);
    expect(Array.from(t.mask), `mask of layer ${l}`).toEqual(r.mask);
  });
  expect(d.logits).toBeLessThan(1e-4);
  expect(d.hidden).toBeLessThan(1e-4);
  expect(d.router).toBeLessThan(1e-4);
  expect(d.weights).toBeLessThan(1e-4);
  return d;
}

const seeds = [1, 2, 3, 4, 5, 6];

describe("Uni-MoE decoder graph vs the plain-TS reference", () => {
  it.each(seeds)("seed %i: logits, k, mask and weights agree (sparse), sparse == dense", async (seed) => {
    const c = randomConfig(seed);
    const w = randomWeights(c, seed);
    const B = 2, S = 6;
    const ids = randomIds(B * S, c.vocab_size, seed + 100);
    const positions = positions3d(B, S);
    const ref = referenceForward(c, w, { batch: B, seq: S, ids, positions });
    const sparse = await (await runner(c, w, { moe: "sparse" })).forward({ batch: B, seq: S, ids, positions });
    const dense = await (await runner(c, w, { moe: "dense" })).forward({ batch: B, seq: S, ids, positions });
    const d = check(c, sparse, ref);
    check(c, dense, ref);
    const sd = maxAbs(sparse.logits, dense.logits);
    let sdw = 0;
    sparse.trace!.forEach((t, l) => (sdw = Math.max(sdw, maxAbs(t.weights, dense.trace![l]!.weights))));
    expect(sd).toBeLessThan(1e-5);
    expect(sdw).toBeLessThan(1e-5);
    const ks = sparse.trace!.flatMap((t) => Array.from(t.k, Number));
    const { L, R, Z, SH } = moeDims(c);
    console.log(
      `seed ${seed} (L${L} H${c.hidden_size} R${R}+Z${Z}+S${SH} P${c.mlp_dynamic_top_p} tie=${c.tie_word_embeddings}): ` +
        `|Δlogits| ${d.logits.toExponential(2)} |Δhidden| ${d.hidden.toExponential(2)} |Δrouter| ${d.router.toExponential(2)} |Δweights| ${d.weights.toExponential(2)}; ` +
        `sparse-dense |Δlogits| ${sd.toExponential(2)} |Δweights| ${sdw.toExponential(2)}; k ∈ {${[...new Set(ks)].sort()}}`,
    );
  });

  it("inputs_embeds graph equals the input_ids graph", async () => {
    const c = randomConfig(7);
    const w = randomWeights(c, 7);
    const B = 1, S = 5, H = c.hidden_size;
    const ids = randomIds(S, c.vocab_size, 70);
    const emb = w.get(paramNames.embed).data;
    const embeds = new Float32Array(S * H);
    ids.forEach((id, s) => embeds.set(emb.subarray(id * H, (id + 1) * H), s * H));
    const positions = positions3d(B, S);
    const a = await (await runner(c, w)).forward({ batch: B, seq: S, ids, positions });
    const b = await (await runner(c, w, { embeds: true })).forward({ batch: B, seq: S, embeds, positions });
    const d = maxAbs(a.logits, b.logits);
    console.log(`embeds vs ids: |Δlogits| ${d.toExponential(2)}`);
    expect(d).toBeLessThan(1e-6);
  });

  it("M-RoPE: distinct t/h/w positions agree with the reference and differ from 1D positions", async () => {
    const c = randomConfig(8);
    const w = randomWeights(c, 8);
    const B = 2, S = 7;
    const ids = randomIds(B * S, c.vocab_size, 80);
    const r = await runner(c, w);
    const p3 = positions3d(B, S, 4);
    const got = await r.forward({ batch: B, seq: S, ids, positions: p3 });
    const d = check(c, got, referenceForward(c, w, { batch: B, seq: S, ids, positions: p3 }));
    const flat = await r.forward({ batch: B, seq: S, ids, positions: positions1d(B, S) });
    const d1 = check(c, flat, referenceForward(c, w, { batch: B, seq: S, ids, positions: positions1d(B, S) }));
    const apart = maxAbs(got.logits, flat.logits);
    console.log(`M-RoPE sections [${c.rope_scaling.mrope_section}]: 3D |Δlogits| ${d.logits.toExponential(2)}, 1D ${d1.logits.toExponential(2)}; 3D vs 1D differ by ${apart.toFixed(3)}`);
    expect(apart).toBeGreaterThan(1e-2);
    // each axis matters on its own: change only the w axis (non-uniformly: RoPE ignores a uniform shift)
    const pw = p3.slice();
    for (let q = 2 * B * S; q < 3 * B * S; q++) pw[q] = pw[q]! + 3 * (q % S);
    const gotW = await r.forward({ batch: B, seq: S, ids, positions: pw });
    check(c, gotW, referenceForward(c, w, { batch: B, seq: S, ids, positions: pw }));
    expect(maxAbs(gotW.logits, got.logits)).toBeGreaterThan(1e-3);
  });

  it("KV cache: prefill then token-by-token decoding equals full recomputation", async () => {
    for (const seed of [9, 10]) {
      const c = randomConfig(seed);
      const w = randomWeights(c, seed);
      const B = 2, S = 8, S0 = 5;
      const { V, E } = moeDims(c);
      const ids = randomIds(B * S, c.vocab_size, seed * 10);
      const full = await (await runner(c, w)).forward({ batch: B, seq: S, ids, positions: positions3d(B, S) });
      const inc = await runner(c, w, { kvCache: true });
      const slice = (a: number[], s0: number, s1: number) => {
        // [B*S] ids → [B*(s1-s0)]; positions [3,B,S] likewise
        const out: number[] = [];
        const rows = a.length / S;
        for (let r = 0; r < rows; r++) out.push(...a.slice(r * S + s0, r * S + s1));
        return out;
      };
      const pos = positions3d(B, S);
      let past: KvCache | undefined;
      let worst = 0, worstW = 0;
      for (const [s0, s1] of [[0, S0], ...Array.from({ length: S - S0 }, (_, i) => [S0 + i, S0 + i + 1])] as [number, number][]) {
        const n = s1 - s0;
        const step = await inc.forward({ batch: B, seq: n, ids: slice(ids, s0, s1), positions: slice(pos, s0, s1), past });
        expect(step.present!.length).toBe(s1);
        past = step.present;
        for (let b = 0; b < B; b++)
          for (let s = 0; s < n; s++) {
            const a = step.logits.subarray((b * n + s) * V, (b * n + s + 1) * V);
            const f = full.logits.subarray((b * S + s0 + s) * V, (b * S + s0 + s + 1) * V);
            worst = Math.max(worst, maxAbs(a, f));
            for (let l = 0; l < c.num_hidden_layers; l++) {
              const ta = step.trace![l]!, tf = full.trace![l]!;
              expect(Number(ta.k[b * n + s])).toBe(Number(tf.k[b * S + s0 + s]));
              worstW = Math.max(worstW, maxAbs(ta.weights.subarray((b * n + s) * E, (b * n + s + 1) * E), tf.weights.subarray((b * S + s0 + s) * E, (b * S + s0 + s + 1) * E)));
            }
          }
      }
      console.log(`seed ${seed} KV cache (prefill ${S0} + ${S - S0} decode steps): |Δlogits| ${worst.toExponential(2)} |Δweights| ${worstW.toExponential(2)} vs full recomputation`);
      expect(worst).toBeLessThan(1e-5);
      expect(worstW).toBeLessThan(1e-5);
    }
  });

  it("interventions: bias shifts logits, ban never selected, force always selected, top_p changes k — all as the reference", async () => {
    const c = randomConfig(11, { mlp_dynamic_expert_num: 6, mlp_dynamic_null_expert_num: 1, mlp_fixed_expert_num: 2, mlp_dynamic_top_p: 0.7 });
    const w = randomWeights(c, 11);
    const { L, E, D } = moeDims(c);
    const B = 2, S = 6;
    const ids = randomIds(B * S, c.vocab_size, 110);
    const positions = positions3d(B, S);
    const sparse = await runner(c, w);
    const dense = await runner(c, w, { moe: "dense" });
    const base = await sparse.forward({ batch: B, seq: S, ids, positions });
    const both = async (iv: RefInterventions & { routerBias?: Float32Array; ban?: Float32Array; force?: Float32Array }) => {
      const s = await sparse.forward({ batch: B, seq: S, ids, positions, interventions: iv });
      const d = await dense.forward({ batch: B, seq: S, ids, positions, interventions: iv });
      const ref = referenceForward(c, w, { batch: B, seq: S, ids, positions, interventions: iv });
      const dd = check(c, s, ref);
      check(c, d, ref);
      expect(maxAbs(s.logits, d.logits)).toBeLessThan(1e-5);
      return { out: s, d: dd };
    };
    const LE = () => new Float32Array(L * E);

    // bias: layer-0 router logits move by exactly the bias
    const routerBias = LE();
    for (let l = 0; l < L; l++) { routerBias[l * E + 1] = 2.5; routerBias[l * E + D] = -1; }
    const biased = await both({ routerBias });
    const N = B * S;
    for (let n = 0; n < N; n++) {
      expect(biased.out.trace![0]!.routerLogits[n * E + 1]! - base.trace![0]!.routerLogits[n * E + 1]!).toBeCloseTo(2.5, 4);
      expect(biased.out.trace![0]!.routerLogits[n * E + D]! - base.trace![0]!.routerLogits[n * E + D]!).toBeCloseTo(-1, 4);
    }
    expect(maxAbs(biased.out.logits, base.logits)).toBeGreaterThan(1e-3);

    // ban routed expert 0 everywhere (and expert 2 in the last layer): never selected
    const ban = LE();
    for (let l = 0; l < L; l++) ban[l * E] = 1;
    ban[(L - 1) * E + 2] = 1;
    const banned = await both({ ban });
    banned.out.trace!.forEach((t, l) => {
      for (let n = 0; n < N; n++) {
        expect(t.mask[n * E]).toBe(0);
        expect(t.weights[n * E]).toBe(0);
        if (l === L - 1) expect(t.mask[n * E + 2]).toBe(0);
      }
    });
    // force routed expert 3 everywhere: always selected; ban wins over force
    const force = LE();
    for (let l = 0; l < L; l++) { force[l * E + 3] = 1; force[l * E] = 1; }
    const forced = await both({ force, ban });
    forced.out.trace!.forEach((t) => {
      for (let n = 0; n < N; n++) {
        expect(t.mask[n * E + 3]).toBe(1);
        expect(t.weights[n * E + 3]).toBeGreaterThan(0);
        expect(t.mask[n * E]).toBe(0);
      }
    });
    // top_p override: tiny P → k = 1 everywhere; P = 1 → k = D everywhere
    const one = await both({ topP: 0.01 });
    const all = await both({ topP: 1 });
    for (let l = 0; l < L; l++) {
      expect(new Set(Array.from(one.out.trace![l]!.k, Number))).toEqual(new Set([1]));
      expect(new Set(Array.from(all.out.trace![l]!.k, Number))).toEqual(new Set([D]));
    }
    const baseK = base.trace!.flatMap((t) => Array.from(t.k, Number));
    expect(baseK.some((k) => k !== 1)).toBe(true);
    console.log(
      `interventions |Δlogits| vs reference: bias ${biased.d.logits.toExponential(2)}, ban ${banned.d.logits.toExponential(2)}, ` +
        `force+ban ${forced.d.logits.toExponential(2)}, top_p 0.01 ${one.d.logits.toExponential(2)}, top_p 1 ${all.d.logits.toExponential(2)}`,
    );
  });

  it("rejects weights with a wrong shape and configs whose mrope_section does not fit head_dim", async () => {
    const c = randomConfig(12);
    const w = randomWeights(c, 12);
    const bad = { ...c, rope_scaling: { ...c.rope_scaling, mrope_section: [1, 1, 1] } };
    await expect(MoeLlmRunner.create(bad, w, { moe: "sparse", trace: false, kvCache: false })).rejects.toThrow(/mrope_section/);
    const wrong = new Map(w.names().map((n) => [n, w.get(n)] as const));
    wrong.set(paramNames.router(0), { shape: [3, c.hidden_size], data: new Float32Array(3 * c.hidden_size) });
    const { MemoryWeights } = await import("@/models/io/weights");
    await expect(MoeLlmRunner.create(c, new MemoryWeights(wrong), { moe: "sparse", trace: false, kvCache: false })).rejects.toThrow(/model\.layers\.0\.mlp\.gate\.weight.*shape/);
  });
});
