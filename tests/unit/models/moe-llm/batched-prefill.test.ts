import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import type { MoeLlmConfig } from "@/models/moe-llm/config";
import { mapCheckpoint, MappedWeights } from "@/models/import/checkpoint";
import { buildMoeLlmGraph, type MoeGraphOptions } from "@/models/moe-llm/moe-llm-graph";
import { type ForwardOutput, MoeLlmRunner } from "@/models/moe-llm/moe-llm-session";
import { SafetensorsWeights } from "@/models/io/safetensors";
import type { WeightSource } from "@/models/io/weights";
import { randomConfig, randomIds, randomWeights } from "../../../reference/random";
import { writeFamilyCheckpoint, type Family } from "../../import/family-checkpoints";

/**
 * Batched prefill (MoeLlmRunner.forwardBatch, graphs built with `padding`): records of different lengths padded on the
 * right or the left give, per record, the routing of that record run alone (masks, k identical; router logits and
 * weights within 1e-5, router logits relative to max(1, |z|)) and its logits, last hidden and residual streams within 1e-5; fused and unfused graphs, Uni-MoE
 * (fp32 and bf16 routing) and the families with windows, sinks, MLA and LayerNorm.
 */
const runners: MoeLlmRunner[] = [];
const closers: (() => void)[] = [];
const tmp = mkdtempSync(path.join(os.tmpdir(), "batched-prefill-"));
afterAll(async () => {
  for (const r of runners) await r.release();
  for (const c of closers) c();
  rmSync(tmp, { recursive: true, force: true });
});

const maxAbs = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
};
/** |a - b| / max(1, |b|): router logits reach tens, where one float32 ulp is above 1e-6 */
const maxRel = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!) / Math.max(1, Math.abs(b[i]!)));
  return m;
};

async function runner(c: MoeLlmConfig, w: WeightSource, o: Partial<MoeGraphOptions>) {
  const r = await MoeLlmRunner.create(c, w, { moe: "sparse", trace: true, kvCache: false, lens: true, ...o }, { intraOpNumThreads: 1 });
  runners.push(r);
  return r;
}

/** Records of lengths `lens`; 3D positions (t = s, h = 2s + r, w = 5 - s). */
function records(c: MoeLlmConfig, seed: number, lens: number[]) {
  return lens.map((n, r) => ({ ids: randomIds(n, c.vocab_size, seed * 10 + r), positions: [...Array.from({ length: n }, (_, s) => s), ...Array.from({ length: n }, (_, s) => 2 * s + r), ...Array.from({ length: n }, (_, s) => 5 - s)] }));
}

async function compareBatch(c: MoeLlmConfig, w: WeightSource, seed: number, o: Partial<MoeGraphOptions> = {}) {
  const recs = records(c, seed, [5, 9, 1, 7]);
  const alone = await runner(c, w, o);
  const batched = await runner(c, w, { ...o, padding: true });
  const single: ForwardOutput[] = [];
  for (const r of recs) single.push(await alone.forward({ batch: 1, seq: r.ids.length, ids: r.ids, positions: r.positions }));
  let logits = 0, routing = 0;
  for (const padding of ["right", "left"] as const) {
    const got = await batched.forwardBatch(recs, { padding });
    got.forEach((g, r) => {
      const a = single[r]!;
      logits = Math.max(logits, maxAbs(g.logits, a.logits), maxAbs(g.lastHidden, a.lastHidden), ...g.hidden!.map((h, i) => maxAbs(h, a.hidden![i]!)));
      g.trace!.forEach((t, l) => {
        const u = a.trace![l]!;
        expect(Array.from(t.mask), `${padding} record ${r} mask of layer ${t.layer}`).toEqual(Array.from(u.mask));
        expect(Array.from(t.k), `${padding} record ${r} k of layer ${t.layer}`).toEqual(Array.from(u.k));
        routing = Math.max(routing, maxRel(t.routerLogits, u.routerLogits), maxAbs(t.weights, u.weights), u.scores ? maxRel(t.scores!, u.scores) : 0);
      });
    });
  }
  expect(logits).toBeLessThan(1e-5);
  expect(routing).toBeLessThan(1e-5);
  return `|Δlogits/hidden| ${logits.toExponential(2)}, |Δrouting| ${routing.toExponential(2)}`;
}

describe("batched prefill with padding: each record as alone", () => {
  it.each([1, 2, 3])("Uni-MoE seed %i, fused and unfused, fp32 and bf16 routing", async (seed) => {
    const c = randomConfig(seed);
    const w = randomWeights(c, seed);
    const fused = await compareBatch(c, w, seed);
    const bf16 = await compareBatch(c, w, seed, { routingPrecision: "bf16", moe: "dense" });
    const unfused = await compareBatch(c, w, seed, { unfused: true });
    console.log(`uni-moe seed ${seed}: fused ${fused}; bf16 dense ${bf16}; unfused ${unfused}`);
  });

  it.each(["qwen3_moe", "mixtral", "deepseek_v3", "phimoe", "gpt_oss"] as Family[])("%s", async (family) => {
    const src = path.join(tmp, family);
    await writeFamilyCheckpoint(src, family, { seed: 71 });
    const st = new SafetensorsWeights(src);
    closers.push(() => st.close());
    const map = mapCheckpoint(src, st, family);
    const w = new MappedWeights(st, map);
    console.log(`${family}: fused ${await compareBatch(map.config, w, 71)}; unfused ${await compareBatch(map.config, w, 71, { unfused: true })}`);
  });

  it("padded tokens get no dynamic expert (Uni-MoE, as released); token_drop is refused with padding", async () => {
    const c = randomConfig(4);
    const w = randomWeights(c, 4);
    const r = await runner(c, w, { padding: true });
    const out = await r.forward({ batch: 1, seq: 3, ids: [1, 2, 3], positions: [0, 1, 2, 0, 1, 2, 0, 1, 2], attentionMask: [1, 1, 0] });
    const D = c.mlp_dynamic_expert_num + c.mlp_dynamic_null_expert_num, E = D + c.mlp_fixed_expert_num;
    for (const t of out.trace!) {
      expect(Array.from(t.mask.subarray(2 * E, 2 * E + D))).toEqual(Array(D).fill(0));
      expect(Array.from(t.mask.subarray(2 * E + D, 3 * E))).toEqual(Array(E - D).fill(1));
      expect(t.mask.subarray(0, D).some((v) => v === 1)).toBe(true);
    }
    expect(() => buildMoeLlmGraph({ ...c, token_drop: true } as MoeLlmConfig, w, { moe: "sparse", trace: true, kvCache: false, padding: true })).toThrow("not supported with token_drop");
  });
});
