import * as ort from "onnxruntime-node";
import { afterAll, describe, expect, it } from "vitest";
import { paramNames, type MoeLlmConfig } from "@/models/moe-llm/config";
import { buildMoeLayerGraph, io, moeDims } from "@/models/moe-llm/moe-llm-graph";
import { type ForwardOutput, type KvCache, MoeLlmRunner } from "@/models/moe-llm/moe-llm-session";
import type { RoutingPrecision } from "@/models/onnx/bf16";
import { MemoryWeights, type Tensor32, type WeightSource } from "@/models/io/weights";
import { releasedRouting, toBf16 } from "../../../reference/grin-routing";
import { referenceForward, referenceMoeBlock } from "../../../reference/moe-llm";
import { prng, randomConfig, randomIds, randomWeights } from "../../../reference/random";
import { nearThresholdRows, nearTieRows } from "../../../reference/routing-rows";

/**
 * Routing precision through whole graphs: one MoE layer fed hidden states whose router logits are the constructed
 * near-threshold / near-tie rows, and the decoder (full sequence and KV-cache decoding) in bf16 against the plain-TS
 * reference of the released rules.
 */

const maxAbs = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
};
const sum = (a: ArrayLike<number>) => Array.from(a).reduce((x, y) => x + y, 0);

const runners: MoeLlmRunner[] = [];
afterAll(async () => {
  for (const r of runners) await r.release();
});

/** Real-model layout (D = 5, E = 7), hidden 32. */
const real: MoeLlmConfig = randomConfig(1, {
  mlp_dynamic_expert_num: 4, mlp_dynamic_null_expert_num: 1, mlp_fixed_expert_num: 2, mlp_dynamic_top_p: 0.7, router_jitter_noise: 0.01,
  hidden_size: 32, dynamic_intermediate_size: 16, shared_intermediate_size: 8,
});

/** `w` with layer `l`'s router replaced by the identity on the first E hidden dims (z = h[0:E] exactly). */
function identityRouter(c: MoeLlmConfig, w: MemoryWeights, l: number): WeightSource {
  const { E, H } = moeDims(c);
  const m = new Map<string, Tensor32>(w.names().map((n) => [n, w.get(n)]));
  m.set(paramNames.router(l), { shape: [E, H], data: Float32Array.from({ length: E * H }, (_, q) => (q % H === Math.floor(q / H) ? 1 : 0)) });
  return new MemoryWeights(m);
}

describe("one MoE layer whose router logits are the constructed rows", () => {
  for (const drop of [false, true])
    it(`near-threshold and near-tie tokens through router, routing and experts, both precisions, sparse and dense${drop ? ", token drop (probs)" : ""}`, async () => {
      const c = drop ? ({ ...real, token_drop: true, capacity_factor: 0.8, min_capacity: 1 } as MoeLlmConfig) : real;
      const { E, H } = moeDims(c);
      const w = identityRouter(c, randomWeights(c, 3), 0);
      const rows = [...nearThresholdRows(c, 31, 64), ...nearTieRows(c, 32, 24)];
      const r = prng(33);
      const x = rows.flatMap((row) => [...row, ...Array.from({ length: H - E }, () => toBf16(r() * 2 - 1))]);
      const N = rows.length;
      const out: string[] = [];
      for (const precision of ["fp32", "bf16"] as RoutingPrecision[]) {
        const ref = referenceMoeBlock(c, w, 0, Float64Array.from(x), [[...Array(N).keys()]], precision);
        for (const moe of ["sparse", "dense"] as const) {
          const s = await ort.InferenceSession.create(buildMoeLayerGraph(c, w, 0, { moe, trace: true, routingPrecision: precision }), { intraOpNumThreads: 1 });
          const zeros = new ort.Tensor("float32", new Float32Array(E), [1, E]);
          const o = await s.run({ hidden: new ort.Tensor("float32", Float32Array.from(x), [N, H]), [io.routerBias]: zeros, [io.ban]: zeros, [io.force]: zeros, [io.topP]: new ort.Tensor("float32", Float32Array.of(c.mlp_dynamic_top_p), [1]) });
          await s.release();
          const z = o.router_logits!.data as Float32Array;
          expect(Array.from(z)).toEqual(rows.flat()); // the identity router gives the rows exactly
          expect(Array.from(o.k!.data as BigInt64Array, Number), `${precision} ${moe} k`).toEqual(ref.trace.k);
          expect(Array.from(o.mask!.data as Float32Array), `${precision} ${moe} mask`).toEqual(ref.trace.mask);
          if (drop) expect(Array.from(o.dropped!.data as Float32Array)).toEqual(ref.trace.dropped);
          const dw = maxAbs(o.weights!.data as Float32Array, ref.trace.weights);
          const dy = maxAbs(o.y!.data as Float32Array, ref.out);
          expect(dw).toBeLessThan(precision === "bf16" ? 4e-3 : 1e-6);
          expect(dy).toBeLessThan(1e-4);
          out.push(`${precision} ${moe}: |Δweights| ${dw.toExponential(1)} |Δy| ${dy.toExponential(1)}`);
        }
      }
      const f = releasedRouting(c, rows, { precision: "fp32" }), b = releasedRouting(c, rows, { precision: "bf16" });
      const differ = rows.filter((_, n) => f.k[n] !== b.k[n] || f.mask[n]!.join() !== b.mask[n]!.join()).length;
      console.log(`MoE layer on ${N} constructed tokens${drop ? " with token drop" : ""}: k or experts differ fp32 vs bf16 on ${differ}; ${out.join("; ")}`);
      expect(differ).toBeGreaterThan(5);
    });
});

/** The routing of a forward output re-derived from its own router logits, call by call (k, mask, dropped exact). */
function routingOfGraphLogits(c: MoeLlmConfig, got: ForwardOutput, calls: number[][], precision: RoutingPrecision) {
  const { E } = moeDims(c);
  let worstW = 0;
  got.trace!.forEach((t, l) => {
    for (const call of calls) {
      const rows = call.map((n) => Array.from(t.routerLogits.subarray(n * E, (n + 1) * E)));
      const r = releasedRouting(c, rows, { precision });
      call.forEach((n, q) => {
        expect(Number(t.k[n]), `layer ${l} token ${n} k`).toBe(r.k[q]);
        expect(Array.from(t.mask.subarray(n * E, (n + 1) * E)), `layer ${l} token ${n} mask`).toEqual(r.mask[q]);
        if (t.dropped) expect(Array.from(t.dropped.subarray(n * E, (n + 1) * E))).toEqual(r.dropped[q]);
        worstW = Math.max(worstW, maxAbs(t.weights.subarray(n * E, (n + 1) * E), r.weights[q]!));
      });
    }
  });
  return worstW;
}

/** bf16 ulps between the graph's router logits and the reference's (the float32 matmul vs float64 can land either side of a tie). */
function logitUlps(got: ForwardOutput, ref: ReturnType<typeof referenceForward>) {
  let differ = 0, total = 0;
  got.trace!.forEach((t, l) =>
    t.routerLogits.forEach((v, q) => {
      const want = ref.trace[l]!.routerLogits[q]!;
      total++;
      if (v !== want) {
        differ++;
        expect(Math.abs(v - want), `router logit ${q} of layer ${l}`).toBeLessThanOrEqual(Math.abs(toBf16(want * (1 + 2 ** -8)) - want) + 1e-30);
      }
    }),
  );
  return { differ, total };
}

describe("decoder with bf16 routing vs the reference", () => {
  it.each([
    [1, false],
    [4, true],
    [6, false],
  ] as const)("seed %i (token drop %s): full sequence, sparse and dense", async (seed, drop) => {
    const c = drop ? ({ ...randomConfig(seed), token_drop: true, capacity_factor: 0.6, min_capacity: 1 } as MoeLlmConfig) : randomConfig(seed);
    const w = randomWeights(c, seed);
    const B = 2, S = 8;
    const ids = randomIds(B * S, c.vocab_size, seed + 90);
    const positions = Array.from({ length: 3 * B * S }, (_, q) => q % S);
    const input = { batch: B, seq: S, ids, positions };
    const ref = referenceForward(c, w, { ...input, routingPrecision: "bf16" });
    for (const moe of ["sparse", "dense"] as const) {
      const r = await MoeLlmRunner.create(c, w, { moe, trace: true, kvCache: false, routingPrecision: "bf16" }, { intraOpNumThreads: 1 });
      runners.push(r);
      const got = await r.forward(input);
      const worstW = routingOfGraphLogits(c, got, [[...Array(B * S).keys()]], "bf16");
      const ulps = logitUlps(got, ref);
      const dl = maxAbs(got.logits, ref.logits);
      console.log(`bf16 decoder seed ${seed} ${moe}: router logits differing from the reference by one bf16 ulp ${ulps.differ}/${ulps.total}; routing on the graph's logits exact, |Δweights| ${worstW.toExponential(1)}; |Δlogits| vs reference ${dl.toExponential(2)}`);
      expect(worstW).toBeLessThan(4e-3);
      // identical routing wherever the logits agree: then the whole forward agrees
      if (ulps.differ === 0) {
        ref.trace.forEach((t, l) => expect(Array.from(got.trace![l]!.mask)).toEqual(t.mask));
        expect(dl).toBeLessThan(1e-4);
      }
    }
  });

  it("KV cache: prefill then decode steps (one-row scan for B = 1, the multi-row scan for B = 3) equal the reference, with token drop", async () => {
    for (const B of [1, 3]) {
      const c = { ...randomConfig(7), token_drop: true, capacity_factor: 0.6, min_capacity: 1 } as MoeLlmConfig;
      const w = randomWeights(c, 7);
      const { V, L } = moeDims(c);
      const S = 9, S0 = 4;
      const ids = randomIds(B * S, c.vocab_size, 77);
      const pos = Array.from({ length: 3 * B * S }, (_, q) => q % S);
      const ref = referenceForward(c, w, { batch: B, seq: S, ids, positions: pos, prefillLength: S0, routingPrecision: "bf16" });
      const inc = await MoeLlmRunner.create(c, w, { moe: "sparse", trace: true, kvCache: true, routingPrecision: "bf16" }, { intraOpNumThreads: 1 });
      runners.push(inc);
      const slice = (a: number[], s0: number, s1: number) => Array.from({ length: B }, (_, r) => a.slice(r * S + s0, r * S + s1)).flat();
      let past: KvCache | undefined;
      let worst = 0, ulps = 0, drops = 0, decodeK = 0;
      for (const [s0, s1] of [[0, S0], ...Array.from({ length: S - S0 }, (_, i) => [S0 + i, S0 + i + 1])] as [number, number][]) {
        const n = s1 - s0;
        const step = await inc.forward({ batch: B, seq: n, ids: slice(ids, s0, s1), positions: [0, 1, 2].flatMap((a) => slice(pos.slice(a * B * S, (a + 1) * B * S), s0, s1)), past });
        past = step.present;
        routingOfGraphLogits(c, step, [[...Array(B * n).keys()]], "bf16");
        for (let b = 0; b < B; b++)
          for (let s = 0; s < n; s++) {
            const q = b * n + s, f = b * S + s0 + s;
            for (let l = 0; l < L; l++) {
              const t = step.trace![l]!, E = moeDims(c).E;
              const zg = t.routerLogits.subarray(q * E, (q + 1) * E), zr = ref.trace[l]!.routerLogits.slice(f * E, (f + 1) * E);
              if (Array.from(zg).join() !== zr.join()) ulps++;
              drops += sum(t.dropped!.subarray(q * E, (q + 1) * E));
              if (s0 > 0) decodeK += Number(t.k[q]);
            }
            if (ulps === 0) worst = Math.max(worst, maxAbs(step.logits.subarray(q * V, (q + 1) * V), ref.logits.subarray(f * V, (f + 1) * V)));
          }
      }
      console.log(`bf16 KV cache B = ${B} (prefill ${S0} + ${S - S0} steps): ${drops} drops, tokens whose logits differ from the reference by a bf16 ulp ${ulps}; |Δlogits| ${worst.toExponential(2)}`);
      expect(decodeK).toBeGreaterThan(0);
      expect(drops).toBeGreaterThan(0);
      expect(worst).toBeLessThan(1e-4);
    }
  });

  it("fp32 and bf16 routing of the same input differ on some tokens (k or expert set)", async () => {
    const c = randomConfig(5);
    const w = randomWeights(c, 5);
    const S = 32;
    const input = { batch: 1, seq: S, ids: randomIds(S, c.vocab_size, 55), positions: Array.from({ length: 3 * S }, (_, q) => q % S) };
    const outs: ForwardOutput[] = [];
    for (const routingPrecision of ["fp32", "bf16"] as const) {
      const r = await MoeLlmRunner.create(c, w, { moe: "sparse", trace: true, kvCache: false, routingPrecision }, { intraOpNumThreads: 1 });
      runners.push(r);
      outs.push(await r.forward(input));
    }
    const { E } = moeDims(c);
    let differ = 0;
    outs[0]!.trace!.forEach((t, l) => {
      for (let n = 0; n < S; n++) if (t.k[n] !== outs[1]!.trace![l]!.k[n] || t.mask.subarray(n * E, (n + 1) * E).join() !== outs[1]!.trace![l]!.mask.subarray(n * E, (n + 1) * E).join()) differ++;
    });
    console.log(`fp32 vs bf16 routing, ${S} tokens × ${c.num_hidden_layers} layers: ${differ} token-layers differ in k or experts`);
    expect(differ).toBeGreaterThan(0);
  });
});
