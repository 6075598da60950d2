import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import type { MoeLlmConfig } from "@/models/moe-llm/config";
import { architectureOf } from "@/models/families/conventions";
import { mapCheckpoint, MappedWeights } from "@/models/import/checkpoint";
import type { MoeGraphOptions } from "@/models/moe-llm/moe-llm-graph";
import { type ForwardOutput, type Interventions, type KvCache, MoeLlmRunner } from "@/models/moe-llm/moe-llm-session";
import { SafetensorsWeights } from "@/models/io/safetensors";
import { MemoryWeights, type WeightSource } from "@/models/io/weights";
import { paramNames } from "@/models/moe-llm/config";
import * as ort from "onnxruntime-node";
import { buildCompactRoutingGraph } from "@/models/moe-llm/decoder/grin-compact";
import { buildRoutingGraph } from "@/models/moe-llm/moe-llm-graph";
import { buildMoeLlmGraph } from "@/models/moe-llm/moe-llm-graph";
import { SeededRandom } from "@/models/io/seeded-random";
import { onnx } from "onnx-proto";
import { randomConfig, randomIds, randomWeights } from "../../../reference/random";
import { writeFamilyCheckpoint, type Family } from "../../import/family-checkpoints";

/**
 * The fused decoder graph (the default, models/moe-llm/decoder/fused.ts) against the unfused reference graph of plain ONNX ops
 * (`unfused: true`, itself tested against the plain-TS references): on seeded configs of every family, a prefill of a
 * 2-sequence batch then decode steps with the KV cache; logits and last hidden within 1e-4, routing exact (router
 * logits and weights within 1e-4, masks, k and drops identical), residual streams (lens) within 1e-4.
 */
const runners: MoeLlmRunner[] = [];
const closers: (() => void)[] = [];
const tmp = mkdtempSync(path.join(os.tmpdir(), "fused-decoder-"));
afterAll(async () => {
  for (const r of runners) await r.release();
  for (const c of closers) c();
  rmSync(tmp, { recursive: true, force: true });
});

const maxAbs = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Number.isNaN(a[i]!) && Number.isNaN(b[i]!) ? m : Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
};

async function pair(c: MoeLlmConfig, w: WeightSource, o: Partial<MoeGraphOptions> = {}) {
  const make = async (unfused: boolean) => {
    const r = await MoeLlmRunner.create(c, w, { moe: "sparse", trace: true, kvCache: true, lens: true, ...o, unfused }, { intraOpNumThreads: 1 });
    runners.push(r);
    return r;
  };
  return { fused: await make(false), unfused: await make(true) };
}

interface Diff {
  logits: number;
  hidden: number;
  routing: number;
}

function compare(a: ForwardOutput, b: ForwardOutput, d: Diff, what: string) {
  d.logits = Math.max(d.logits, maxAbs(a.logits, b.logits), maxAbs(a.lastHidden, b.lastHidden));
  a.hidden?.forEach((h, i) => (d.hidden = Math.max(d.hidden, maxAbs(h, b.hidden![i]!))));
  expect(a.trace!.map((t) => t.layer)).toEqual(b.trace!.map((t) => t.layer));
  a.trace!.forEach((t, l) => {
    const u = b.trace![l]!;
    expect(Array.from(t.mask), `${what}: mask of layer ${t.layer}`).toEqual(Array.from(u.mask));
    expect(Array.from(t.k), `${what}: k of layer ${t.layer}`).toEqual(Array.from(u.k));
    if (u.dropped) expect(Array.from(t.dropped!), `${what}: dropped of layer ${t.layer}`).toEqual(Array.from(u.dropped));
    d.routing = Math.max(d.routing, maxAbs(t.routerLogits, u.routerLogits), maxAbs(t.weights, u.weights), u.scores ? maxAbs(t.scores!, u.scores) : 0);
  });
  expect(a.present!.length).toBe(b.present!.length);
  a.present!.keys.forEach((k, i) => (d.hidden = Math.max(d.hidden, maxAbs(k, b.present!.keys[i]!), maxAbs(a.present!.values[i]!, b.present!.values[i]!))));
}

/** Prefill of B sequences of S tokens (positions: t/h/w apart when 3D), then `steps` decode steps; returns the diffs. */
async function prefillAndDecode(c: MoeLlmConfig, w: WeightSource, seed: number, o: Partial<MoeGraphOptions> = {}, B = 2, S = 6, steps = 3, threeD = true, interventions?: Interventions): Promise<Diff> {
  const { fused, unfused } = await pair(c, w, o);
  const ids = randomIds(B * S, c.vocab_size, seed + 100);
  const positions: number[] = [];
  for (let a = 0; a < 3; a++) for (let b = 0; b < B; b++) for (let s = 0; s < S; s++) positions.push(threeD ? (a === 0 ? s : a === 1 ? 2 * s + b : 7 - s) : s);
  const d: Diff = { logits: 0, hidden: 0, routing: 0 };
  let a = await fused.forward({ batch: B, seq: S, ids, positions, interventions });
  let b = await unfused.forward({ batch: B, seq: S, ids, positions, interventions });
  compare(a, b, d, "prefill");
  let pa: KvCache = a.present!, pb: KvCache = b.present!;
  for (let step = 0; step < steps; step++) {
    const next = randomIds(B, c.vocab_size, seed + 200 + step);
    const p = Array.from({ length: 3 * B }, () => S + 3 + step);
    a = await fused.forward({ batch: B, seq: 1, ids: next, positions: p, past: pa, interventions });
    b = await unfused.forward({ batch: B, seq: 1, ids: next, positions: p, past: pb, interventions });
    compare(a, b, d, `decode ${step}`);
    pa = a.present!;
    pb = b.present!;
  }
  // a continued prompt: S' > 1 new tokens after a cache (one sequence: GroupQueryAttention's rule, see MoeLlmRunner)
  if (B > 1) {
    if (architectureOf(c).attention !== "mla")
      await expect(fused.forward({ batch: B, seq: 2, ids: randomIds(2 * B, c.vocab_size, 1), positions: Array(6 * B).fill(20), past: pa })).rejects.toThrow("one sequence at a time");
    return check(d);
  }
  const more = randomIds(B * 3, c.vocab_size, seed + 300);
  const p3 = Array.from({ length: 3 * B * 3 }, (_, q) => S + 3 + steps + (q % 3));
  compare(await fused.forward({ batch: B, seq: 3, ids: more, positions: p3, past: pa, interventions }), await unfused.forward({ batch: B, seq: 3, ids: more, positions: p3, past: pb, interventions }), d, "continued prompt");
  return check(d);
}

function check(d: Diff): Diff {
  expect(d.logits).toBeLessThan(1e-4);
  expect(d.hidden).toBeLessThan(1e-4);
  expect(d.routing).toBeLessThan(1e-4);
  return d;
}

const fmt = (d: Diff) => `|Δlogits| ${d.logits.toExponential(2)}, |Δhidden/kv| ${d.hidden.toExponential(2)}, |Δrouting| ${d.routing.toExponential(2)}`;

describe("fused decoder graph vs the unfused reference graph", () => {
  it.each([1, 2, 3, 4, 5, 6])("Uni-MoE seed %i: sparse and dense dispatch and the MoE operator, fp32 routing", async (seed) => {
    const c = randomConfig(seed);
    const w = randomWeights(c, seed);
    const sparse = await prefillAndDecode(c, w, seed, { moe: "sparse" });
    const single = await prefillAndDecode(c, w, seed, { moe: "sparse" }, 1);
    const dense = await prefillAndDecode(c, w, seed, { moe: "dense" });
    const op = await prefillAndDecode(c, w, seed, { moe: "dense", expertsOp: true });
    console.log(`uni-moe seed ${seed}: sparse ${fmt(sparse)}; one sequence ${fmt(single)}; dense ${fmt(dense)}; MoE operator ${fmt(op)}`);
  });

  it.each([7, 8])("Uni-MoE seed %i: token drop (capacity 2), routing in bf16 as released and in fp32", async (seed) => {
    const c = randomConfig(seed, { token_drop: true, capacity_factor: 1, min_capacity: 2 } as Partial<MoeLlmConfig>);
    const w = randomWeights(c, seed);
    const bf16 = await prefillAndDecode(c, w, seed, { routingPrecision: "bf16" });
    const fp32 = await prefillAndDecode(c, w, seed, { moe: "dense" });
    console.log(`uni-moe seed ${seed} token drop: bf16 ${fmt(bf16)}; fp32 dense ${fmt(fp32)}`);
  });

  const families: Family[] = ["qwen2_moe", "qwen3_moe", "olmoe", "mixtral", "deepseek_v2", "deepseek_v3", "phimoe", "gpt_oss"];
  it.each(families)("%s (seeded checkpoint with near-tied routers)", async (family) => {
    const src = path.join(tmp, family);
    await writeFamilyCheckpoint(src, family, { seed: 61, nearTies: true });
    const st = new SafetensorsWeights(src);
    closers.push(() => st.close());
    const map = mapCheckpoint(src, st, family);
    const w = new MappedWeights(st, map);
    const sparse = await prefillAndDecode(map.config, w, 61, { moe: "sparse" }, 2, 7, 3, false);
    const single = await prefillAndDecode(map.config, w, 62, { moe: "sparse" }, 1, 9, 2, false);
    const dense = await prefillAndDecode(map.config, w, 61, { moe: "dense" }, 2, 7, 3, false);
    const op = await prefillAndDecode(map.config, w, 61, { moe: "dense", expertsOp: true }, 2, 7, 3, false);
    console.log(`${family}: sparse ${fmt(sparse)}; one sequence ${fmt(single)}; dense ${fmt(dense)}; MoE operator ${fmt(op)}`);
  });

  // The compact Uni-MoE routing block of the fused graph (models/decoder/grin-compact.ts) on what neutral inputs never
  // reach: bans (one layer with every dynamic column banned, banned shared columns), forced columns, the top_p override
  // (< 1 and >= 1), fixed top-k (P = 0) at and above D, a wide jitter, exact ties (duplicated router rows), router bias.
  // One-ulp near-ties are checked on the block alone (next test): in a whole decoder the fused graph's hidden states
  // differ from the reference's by ~1e-6, which decides those. P = 1 (fp32: every allowed column) is whole-decoder safe.
  const variants: { name: string; over: Partial<MoeLlmConfig>; ties: boolean; iv: (L: number, E: number, D: number, r: () => number) => Interventions }[] = [
    { name: "bans, forced columns, router bias", over: {}, ties: false, iv: (L, E, D, r) => ({ routerBias: Float32Array.from({ length: L * E }, () => r() - 0.5), ban: Float32Array.from({ length: L * E }, (_, q) => (q < E ? (q % E < D ? 1 : 0) : r() < 0.25 ? 1 : 0)), force: Float32Array.from({ length: L * E }, () => (r() < 0.3 ? 1 : 0)) }) },
    { name: "top_p override 0.3, forced columns, exact ties", over: {}, ties: true, iv: (L, E, _D, r) => ({ topP: 0.3, force: Float32Array.from({ length: L * E }, () => (r() < 0.2 ? 1 : 0)) }) },
    { name: "top_p override >= 1 with bans", over: {}, ties: true, iv: (L, E, _D, r) => ({ topP: 1.5, ban: Float32Array.from({ length: L * E }, () => (r() < 0.3 ? 1 : 0)) }) },
    { name: "config P = 1 (fp32: every allowed column), bans", over: { mlp_dynamic_top_p: 1 }, ties: false, iv: (L, E, _D, r) => ({ ban: Float32Array.from({ length: L * E }, () => (r() < 0.3 ? 1 : 0)) }) },
    { name: "config P = 0.95, jitter 0.2", over: { mlp_dynamic_top_p: 0.95, router_jitter_noise: 0.2 }, ties: false, iv: (L, E, _D, r) => ({ force: Float32Array.from({ length: L * E }, () => (r() < 0.15 ? 1 : 0)) }) },
    { name: "fixed top-k 2 (P = 0), bans and forced columns", over: { mlp_dynamic_top_p: 0, mlp_dynamic_top_k: 2 }, ties: true, iv: (L, E, _D, r) => ({ ban: Float32Array.from({ length: L * E }, () => (r() < 0.3 ? 1 : 0)), force: Float32Array.from({ length: L * E }, () => (r() < 0.2 ? 1 : 0)) }) },
    { name: "fixed top-k above D (no dynamic expert of its own), forced columns", over: { mlp_dynamic_top_p: 0, mlp_dynamic_top_k: 20 }, ties: false, iv: (L, E, _D, r) => ({ force: Float32Array.from({ length: L * E }, () => (r() < 0.3 ? 1 : 0)) }) },
  ];
  it.each(variants.map((v, i) => [i, v.name] as const))("compact Uni-MoE routing %i: %s", async (i) => {
    const v = variants[i]!;
    for (const seed of [11 + i, 21 + i]) {
      const c = randomConfig(seed, v.over);
      const base = randomWeights(c, seed);
      const D = c.mlp_dynamic_expert_num + c.mlp_dynamic_null_expert_num, E = D + c.mlp_fixed_expert_num, H = c.hidden_size;
      let w: WeightSource = base;
      if (v.ties) {
        const map = new Map<string, { shape: number[]; data: Float32Array }>();
        for (const name of base.names()) map.set(name, base.get(name));
        for (let l = 0; l < c.num_hidden_layers; l++) {
          const t = base.get(paramNames.router(l));
          const data = Float32Array.from(t.data);
          data.copyWithin(1 * H, 0, H); // column 1 = column 0: exact ties
          map.set(paramNames.router(l), { shape: t.shape, data });
        }
        w = new MemoryWeights(map);
      }
      let s = seed * 31 + 7;
      const r = () => ((s = (s * 1103515245 + 12345) % 2147483648) / 2147483648);
      const iv = v.iv(c.num_hidden_layers, E, D, r);
      const sparse = await prefillAndDecode(c, w, seed, { moe: "sparse" }, 2, 6, 3, true, iv);
      const dense = await prefillAndDecode(c, w, seed, { moe: "dense" }, 1, 7, 3, true, iv);
      console.log(`compact routing, ${v.name}, seed ${seed}: sparse ${fmt(sparse)}; dense ${fmt(dense)}`);
    }
  });

  it("the top_p fed is the P in force: an override equal to the config's P routes as none; P = 1 takes every column in fp32 and keeps the released cut-off in bf16", async () => {
    const D = (c: MoeLlmConfig) => c.mlp_dynamic_expert_num + c.mlp_dynamic_null_expert_num;
    const run = async (c: MoeLlmConfig, w: WeightSource, o: Partial<MoeGraphOptions>, interventions?: Interventions) => {
      const r = await MoeLlmRunner.create(c, w, { moe: "sparse", trace: true, kvCache: true, ...o }, { intraOpNumThreads: 1 });
      runners.push(r);
      const S = 9;
      return r.forward({ batch: 1, seq: S, ids: randomIds(S, c.vocab_size, 5), positions: Array.from({ length: 3 * S }, (_, q) => q % S), interventions });
    };
    const same = (a: ForwardOutput, b: ForwardOutput, what: string) => {
      expect(Array.from(a.logits), `${what}: logits`).toEqual(Array.from(b.logits));
      a.trace!.forEach((t, l) => expect([Array.from(t.k), Array.from(t.mask), Array.from(t.weights)], `${what}: layer ${t.layer}`).toEqual([Array.from(b.trace![l]!.k), Array.from(b.trace![l]!.mask), Array.from(b.trace![l]!.weights)]));
    };
    const shortBf16: number[] = [];
    for (const seed of [31, 32]) {
      const c07 = randomConfig(seed, { mlp_dynamic_top_p: 0.7 });
      const c1 = { ...c07, mlp_dynamic_top_p: 1 };
      const w = randomWeights(c07, seed);
      for (const precision of ["fp32", "bf16"] as const)
        for (const unfused of [false, true]) {
          const o = { routingPrecision: precision, unfused };
          const what = `seed ${seed} ${precision}${unfused ? " unfused" : " fused"}`;
          same(await run(c07, w, o, { topP: 0.7 }), await run(c07, w, o), `${what}: override 0.7 vs the config's 0.7`);
          const configured = await run(c1, w, o);
          same(await run(c07, w, o, { topP: 1 }), configured, `${what}: override 1 vs the config's 1`);
          const ks = configured.trace!.flatMap((t) => Array.from(t.k, Number));
          if (precision === "fp32") expect(ks.every((k) => k === D(c1)), `${what}: fp32 P = 1 takes all D`).toBe(true);
          else {
            // the bf16 cumsum may reach 1.0 early (k < D) or fall short (k = D + 1: no dynamic expert)
            expect(ks.every((k) => k >= 1 && k <= D(c1) + 1), `${what}: bf16 P = 1 cut-off`).toBe(true);
            if (!unfused) shortBf16.push(ks.filter((k) => k !== D(c1)).length);
          }
        }
    }
    expect(shortBf16.reduce((a, b) => a + b, 0), "bf16 P = 1 keeps the cut-off (not every column)").toBeGreaterThan(0);
    console.log(`P = 1 in bf16: tokens×layers with k ≠ D (the released cut-off) per seed: ${shortBf16.join(", ")}`);
  });

  it("uni-moe tiny-shaped fused layer: at most 60 ONNX nodes with the trace (the unfused reference layer has ~240)", () => {
    const c = randomConfig(3, { num_hidden_layers: 2, mlp_dynamic_expert_num: 4, mlp_dynamic_null_expert_num: 1, mlp_fixed_expert_num: 2, hidden_size: 64, num_attention_heads: 4, num_key_value_heads: 2, head_dim: 16, rope_scaling: { type: "mrope", mrope_section: [2, 3, 3] } });
    const w = randomWeights(c, 3);
    const count = (o: Partial<MoeGraphOptions>) => onnx.ModelProto.decode(buildMoeLlmGraph(c, w, { moe: "dense", trace: true, kvCache: true, ...o })).graph!.node!.filter((n) => (n.name ?? "").startsWith("l1/")).length;
    const fused = count({}), unfused = count({ unfused: true, moe: "sparse" });
    console.log(`nodes in layer 1: fused dense ${fused}, fused dense without trace ${count({ trace: false })}, unfused ${unfused}`);
    expect(fused).toBeLessThanOrEqual(60);
    expect(unfused).toBeGreaterThan(200);
  });

  it("compact Uni-MoE routing block == the reference block on the same logits: exact ties, one-ulp near-ties, zeros, every mode and intervention", async () => {
    const next = (x: number, dir: number) => {
      const f = new Float32Array([x]);
      const u = new Int32Array(f.buffer);
      u[0]! += (x >= 0) === dir > 0 ? 1 : -1;
      return f[0]!;
    };
    const configs: Partial<MoeLlmConfig>[] = [{}, { mlp_dynamic_top_p: 1 }, { mlp_dynamic_top_p: 0, mlp_dynamic_top_k: 2 }, { mlp_dynamic_top_p: 0, mlp_dynamic_top_k: 20 }, { router_jitter_noise: 0.2, mlp_dynamic_top_p: 0.9 }];
    let cases = 0;
    for (let ci = 0; ci < configs.length; ci++)
      for (const seed of [1, 2, 3]) {
        const c = randomConfig(seed * 10 + ci, configs[ci]);
        const D = c.mlp_dynamic_expert_num + c.mlp_dynamic_null_expert_num, E = D + c.mlp_fixed_expert_num;
        const [ref, compact] = await Promise.all([buildRoutingGraph(c), buildCompactRoutingGraph(c)].map((m) => ort.InferenceSession.create(m, { intraOpNumThreads: 1 })));
        const r = new SeededRandom(seed * 100 + ci);
        const N = 48;
        const z = new Float32Array(N * E);
        for (let n = 0; n < N; n++) {
          const scale = [0.3, 1, 4][n % 3]!;
          for (let j = 0; j < E; j++) z[n * E + j] = (r.uniform() * 2 - 1) * scale;
          const a = r.int(D), b = r.int(D);
          if (n % 4 === 1) z[n * E + b] = z[n * E + a]!; // exact tie
          if (n % 4 === 2) z[n * E + b] = next(z[n * E + a]!, r.uniform() < 0.5 ? 1 : -1); // one ulp apart
          if (n % 4 === 3) z[n * E + a] = 0; // 0/0 in GRIN's ratio when it is taken
          if (n % 8 === 5) for (let j = 0; j < D; j++) z[n * E + j] = 0.125 * (j % 2); // many exact ties
        }
        // top_p is fed exactly (the P in force): 0 = fixed top-k, the config's own P, an override below and at/above 1
        for (const topP of [0, 0.3, c.mlp_dynamic_top_p, 1, 1.5])
          for (const iv of ["none", "ban", "force", "both", "all"] as const) {
            const ban = new Float32Array(E), force = new Float32Array(E);
            for (let j = 0; j < E; j++) {
              if (iv === "all") ban[j] = j < D ? 1 : r.uniform() < 0.5 ? 1 : 0;
              if (iv === "ban" || iv === "both") ban[j] = r.uniform() < 0.3 ? 1 : 0;
              if (iv === "force" || iv === "both") force[j] = r.uniform() < 0.3 ? 1 : 0;
            }
            const feeds = { router_logits: new ort.Tensor("float32", z, [N, E]), ban_mask: new ort.Tensor("float32", ban, [1, E]), force_mask: new ort.Tensor("float32", force, [1, E]), top_p: new ort.Tensor("float32", Float32Array.of(topP), [1]) };
            const [a, b] = [await ref!.run(feeds), await compact!.run(feeds)];
            const what = `config ${ci} seed ${seed} top_p ${topP} ${iv}`;
            expect(Array.from(b.mask!.data as Float32Array), `${what}: mask`).toEqual(Array.from(a.mask!.data as Float32Array));
            expect(Array.from(b.k!.data as BigInt64Array), `${what}: k`).toEqual(Array.from(a.k!.data as BigInt64Array));
            expect(maxAbs(b.weights!.data as Float32Array, a.weights!.data as Float32Array), `${what}: weights`).toBeLessThan(1e-5);
            cases++;
          }
        await ref!.release();
        await compact!.release();
      }
    console.log(`compact routing block: ${cases} cases of 48 tokens identical to the reference block (masks, k; weights within 1e-5)`);
  });

  it("the device-resident graph (gpu: what WebGPU sessions run) equals the fused dense graph on the CPU: ids and embeds, lens, KV-cache decode, interventions", async () => {
    const c = randomConfig(4);
    const w = randomWeights(c, 4);
    const D = c.mlp_dynamic_expert_num + c.mlp_dynamic_null_expert_num, E = D + c.mlp_fixed_expert_num, L = c.num_hidden_layers;
    const interventions: Interventions = { force: Float32Array.from({ length: L * E }, (_, q) => (q % E === 1 ? 1 : 0)), topP: 0.6 };
    for (const embeds of [false, true]) {
      const make = (gpu: boolean) => MoeLlmRunner.create(c, w, { moe: "dense", trace: true, kvCache: true, lens: true, embeds, gpu }, { intraOpNumThreads: 1 });
      const [dev, ref] = [await make(true), await make(false)];
      runners.push(dev, ref);
      const table = w.get(paramNames.embed).data;
      const input = (n: number, tokens: number[]) => (embeds ? { embeds: Float32Array.from({ length: n * c.hidden_size }, (_, q) => table[tokens[Math.floor(q / c.hidden_size)]! * c.hidden_size + (q % c.hidden_size)]!) } : { ids: tokens });
      for (const B of [1, 2]) {
        const S = 5;
        const ids = randomIds(B * S, c.vocab_size, 7);
        const positions = Array.from({ length: 3 * B * S }, (_, q) => (q % S) + Math.floor(q / (B * S)));
        let a = await dev.forward({ batch: B, seq: S, ...input(B * S, ids), positions, interventions });
        let b = await ref.forward({ batch: B, seq: S, ...input(B * S, ids), positions, interventions });
        const d: Diff = { logits: 0, hidden: 0, routing: 0 };
        compare(a, b, d, `gpu variant, B ${B}, embeds ${embeds}: prefill`);
        const next = randomIds(B, c.vocab_size, 9);
        const p = Array.from({ length: 3 * B }, () => S + 4);
        a = await dev.forward({ batch: B, seq: 1, ...input(B, next), positions: p, past: a.present, interventions });
        b = await ref.forward({ batch: B, seq: 1, ...input(B, next), positions: p, past: b.present, interventions });
        compare(a, b, d, `gpu variant, B ${B}, embeds ${embeds}: decode`);
        expect(d.logits).toBe(0); // the same ops on the same values: bit for bit
        expect(d.hidden).toBe(0);
        expect(d.routing).toBe(0);
      }
      await expect(dev.forward({ batch: 1, seq: 1, ...input(1, [1]), positions: [40000, 40000, 40000] })).rejects.toThrow("rotary table");
    }
  });

  // MoeGraphOptions.webgpu: GroupQueryAttention with smooth_softmax and a null head_sink (decoder/fused.ts NULL_SINK) for
  // ONNX Runtime's WebGPU kernel; on the CPU it must compute what the plain softmax does (gpt-oss keeps its own sinks)
  it("the WebGPU attention (smooth_softmax, null head_sink) computes the same values on the CPU: Uni-MoE device graph, gpt-oss with its sinks", async () => {
    const cases: { what: string; c: MoeLlmConfig; w: WeightSource; o: Partial<MoeGraphOptions> }[] = [];
    const c = randomConfig(4);
    cases.push({ what: "uni-moe seed 4, device-resident graph", c, w: randomWeights(c, 4), o: { moe: "dense", gpu: true } });
    const src = path.join(tmp, "gpt_oss-webgpu");
    await writeFamilyCheckpoint(src, "gpt_oss", { seed: 63 });
    const st = new SafetensorsWeights(src);
    closers.push(() => st.close());
    const map = mapCheckpoint(src, st, "gpt_oss");
    cases.push({ what: "gpt_oss, sparse graph", c: map.config, w: new MappedWeights(st, map), o: { moe: "sparse" } });
    for (const k of cases) {
      const make = (webgpu: boolean) => MoeLlmRunner.create(k.c, k.w, { moe: "sparse", trace: true, kvCache: true, ...k.o, webgpu }, { intraOpNumThreads: 1 });
      const [web, ref] = [await make(true), await make(false)];
      runners.push(web, ref);
      const S = 40;
      const ids = randomIds(S, k.c.vocab_size, 5);
      const positions = Array.from({ length: 3 * S }, (_, q) => q % S);
      let a = await web.forward({ batch: 1, seq: S, ids, positions });
      let b = await ref.forward({ batch: 1, seq: S, ids, positions });
      const d: Diff = { logits: 0, hidden: 0, routing: 0 };
      compare(a, b, d, `${k.what}: prefill`);
      a = await web.forward({ batch: 1, seq: 1, ids: [3], positions: [S, S, S], past: a.present });
      b = await ref.forward({ batch: 1, seq: 1, ids: [3], positions: [S, S, S], past: b.present });
      compare(a, b, d, `${k.what}: decode`);
      const peak = Math.max(1, ...Array.from(b.logits, Math.abs));
      console.log(`webgpu attention on the CPU, ${k.what}: ${fmt(d)}`);
      expect(d.logits).toBeLessThanOrEqual(1e-5 * peak);
      expect(d.hidden).toBeLessThanOrEqual(1e-5 * peak);
    }
  });
});
