import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { generate, type GenerateOptions, type PromptInput } from "@/models/moe-llm/generate";
import { paramNames, type MoeLlmConfig } from "@/models/moe-llm/config";
import type { MoeGraphOptions } from "@/models/moe-llm/moe-llm-graph";
import { decodeTwinOptions, DECODE_TWIN_MAX_ROUTED_PARAMS, openModelDir, withMoeLlm } from "@/models/moe-llm/moe-llm-model";
import { SessionPool } from "@/engine/runtime";
import { writeSafetensorsFromMap } from "@/models/io/safetensors";
import { type Interventions, MoeLlmRunner } from "@/models/moe-llm/moe-llm-session";
import { referenceConfigs } from "@/models/moe-llm/uni-moe-tiny";
import { ropeTableSize } from "@/models/moe-llm/decoder/fused";
import { parameterCounts } from "@/models/moe-llm/parameters";
import { architectureOf, SLIDING_WINDOW_KEY } from "@/models/families/conventions";
import { mapCheckpoint, MappedWeights } from "@/models/import/checkpoint";
import { SafetensorsWeights } from "@/models/io/safetensors";
import { MemoryWeights, type WeightSource } from "@/models/io/weights";
import { byteTokenizer } from "@/models/text/tokenizer";
import { prng, randomConfig, randomIds, randomWeights } from "../../../reference/random";
import { writeFamilyCheckpoint, type Family } from "../../import/family-checkpoints";
import { maxAbs, recording } from "./recording";

/**
 * The decode twin (MoeLlmRunner.withDecodeTwin): a generation whose one-token decode steps run on the fused DENSE
 * graph (in its decode-step form where it fits: KV cache read in place) after a prefill on the fused sparse graph equals the same generation on the sparse graph alone: generated
 * ids identical, routing identical (masks, k and drops exact; weights within 1e-5, router logits within 1e-5 or 1e-6
 * of their largest magnitude), every step's logits within 1e-4 — on seeded Uni-MoE configs (interventions, top_p override, exact ties, token drop, bf16
 * routing, input embeddings) and two imported families with near-tied routers.
 */
const runners: MoeLlmRunner[] = [];
const closers: (() => void)[] = [];
const tmp = mkdtempSync(path.join(os.tmpdir(), "decode-twin-"));
afterAll(async () => {
  for (const r of runners) await r.release();
  for (const c of closers) c();
  rmSync(tmp, { recursive: true, force: true });
});

/** The sparse runner alone, and with the twin the product picks for it (decodeTwinOptions on the CPU). */
async function runnersFor(c: MoeLlmConfig, w: WeightSource, o: Partial<MoeGraphOptions> = {}) {
  const make = async (options: MoeGraphOptions) => {
    const r = await MoeLlmRunner.create(c, w, options, { intraOpNumThreads: 1 });
    runners.push(r);
    return r;
  };
  const base: MoeGraphOptions = { moe: "sparse", trace: true, kvCache: true, ...o };
  const sparse = await make(base);
  const twin = decodeTwinOptions(c, base, "cpu");
  if (!twin) throw new Error("internal: no twin for this config");
  return { alone: sparse, twinned: sparse.withDecodeTwin(await make(twin)), twin };
}

/** Generates with and without the twin; asserts they agree; returns the largest logit and routing differences. */
async function sameGeneration(c: MoeLlmConfig, w: WeightSource, seed: number, o: Partial<MoeGraphOptions> = {}, interventions?: Interventions, maxNewTokens = 10, gpu = true) {
  const { alone, twinned, twin } = await runnersFor(c, w, o);
  expect(twin.moe).toBe("dense");
  expect(!!twin.gpu, "the twin's device-resident form").toBe(gpu);
  expect(!!twin.decodeStep, "the twin's decode-step form").toBe(gpu && !architectureOf(c).sinks && architectureOf(c).slidingWindows.every((w) => w == null));
  const H = c.hidden_size;
  const ids = randomIds(7, Math.min(c.vocab_size, 256), seed);
  const table = o.embeds ? Float32Array.from({ length: c.vocab_size * H }, prng(seed + 5)).map((x) => x * 2 - 1) : undefined;
  const prompt: PromptInput = {
    ids,
    modelName: "seeded",
    positions: { t: [...ids.keys()], h: ids.map((_, i) => (i * 2) % 5), w: ids.map((_, i) => 6 - i) },
    ...(table ? { embeds: { prompt: Float32Array.from(ids.flatMap((id) => Array.from(table.subarray(id * H, (id + 1) * H)))), token: (id: number) => table.slice(id * H, (id + 1) * H) } } : {}),
  };
  // sampled (not greedy) so the generated ids depend on the logits' values, not only on their argmax
  const go: GenerateOptions = { temperature: 0.8, topK: 0, topP: 1, seed, maxNewTokens, stopTokens: [], interventions };
  const a = recording(alone, { countTwin: true }), b = recording(twinned, { countTwin: true });
  const ra = await generate(a.model, byteTokenizer, prompt, go);
  const rb = await generate(b.model, byteTokenizer, prompt, go);
  expect(b.twin.calls, "decode steps on the twin").toBe(maxNewTokens - 1);
  expect(rb.newIds).toEqual(ra.newIds);
  expect(rb.trace.tokens).toEqual(ra.trace.tokens);
  let logits = 0, routing = 0, routerLogits = 0, peak = 0;
  a.logits.forEach((l, i) => (logits = Math.max(logits, maxAbs(l, b.logits[i]!))));
  ra.trace.layers.forEach((la, i) => {
    const lb = rb.trace.layers[i]!;
    expect(lb.layer).toBe(la.layer);
    expect(Array.from(lb.mask), `mask of layer ${la.layer}`).toEqual(Array.from(la.mask));
    expect(Array.from(lb.k), `k of layer ${la.layer}`).toEqual(Array.from(la.k));
    if (la.dropped) expect(Array.from(lb.dropped!), `dropped of layer ${la.layer}`).toEqual(Array.from(la.dropped));
    routing = Math.max(routing, maxAbs(la.weights, lb.weights), la.scores ? maxAbs(la.scores, lb.scores!) : 0);
    routerLogits = Math.max(routerLogits, maxAbs(la.routerLogits, lb.routerLogits));
    peak = Math.max(peak, ...Array.from(la.routerLogits, Math.abs));
  });
  expect(logits).toBeLessThanOrEqual(1e-4);
  expect(routing).toBeLessThanOrEqual(1e-5);
  // router logits: float32 rounding of a different summation order, so relative to their size (near-tied routers
  // reach |z| ≈ 27, where 1e-6 relative is 8 float32 steps)
  expect(routerLogits).toBeLessThanOrEqual(Math.max(1e-5, 1e-6 * peak));
  return { logits, routing: Math.max(routing, routerLogits) };
}

/** Router row 1 := row 0 in every layer: exact ties between two dynamic columns. */
function withTies(c: MoeLlmConfig, base: MemoryWeights): WeightSource {
  const map = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const name of base.names()) map.set(name, base.get(name));
  for (let l = 0; l < c.num_hidden_layers; l++) {
    const t = base.get(paramNames.router(l));
    const data = Float32Array.from(t.data);
    data.copyWithin(c.hidden_size, 0, c.hidden_size);
    map.set(paramNames.router(l), { shape: t.shape, data });
  }
  return new MemoryWeights(map);
}

const fmt = (d: { logits: number; routing: number }) => `logits ${d.logits.toExponential(1)}, routing ${d.routing.toExponential(1)}`;

describe("decode twin: sparse prefill + dense decode steps = the sparse graph alone", () => {
  it.each([3, 5])("Uni-MoE seed %i: plain, then bans / forced columns / router bias", async (seed) => {
    const c = randomConfig(seed, { vocab_size: 320 });
    const w = randomWeights(c, seed);
    const plain = await sameGeneration(c, w, seed);
    const r = prng(seed + 9);
    const { num_hidden_layers: L } = c;
    const E = c.mlp_dynamic_expert_num + c.mlp_dynamic_null_expert_num + c.mlp_fixed_expert_num;
    const iv: Interventions = {
      routerBias: Float32Array.from({ length: L * E }, () => r() - 0.5),
      ban: Float32Array.from({ length: L * E }, () => (r() < 0.25 ? 1 : 0)),
      force: Float32Array.from({ length: L * E }, () => (r() < 0.25 ? 1 : 0)),
    };
    const steered = await sameGeneration(c, w, seed, {}, iv);
    console.log(`uni-moe seed ${seed}: ${fmt(plain)}; interventions ${fmt(steered)}`);
  });

  it("Uni-MoE: top_p override 0.3 and >= 1 with exact router ties, input embeddings", async () => {
    const c = randomConfig(13, { vocab_size: 320 });
    const w = withTies(c, randomWeights(c, 13));
    const low = await sameGeneration(c, w, 13, { embeds: true }, { topP: 0.3 });
    const all = await sameGeneration(c, w, 14, {}, { topP: 1.5 });
    console.log(`uni-moe ties: top_p 0.3 (embeds) ${fmt(low)}; top_p 1.5 ${fmt(all)}`);
  });

  it("Uni-MoE: token drop (capacity 2) in bf16 routing as released, and fixed top-k 2", async () => {
    const c = randomConfig(7, { vocab_size: 320, token_drop: true, capacity_factor: 1, min_capacity: 2 } as Partial<MoeLlmConfig>);
    const drop = await sameGeneration(c, randomWeights(c, 7), 7, { routingPrecision: "bf16" });
    const k = randomConfig(8, { vocab_size: 320, mlp_dynamic_top_p: 0, mlp_dynamic_top_k: 2 });
    const topk = await sameGeneration(k, randomWeights(k, 8), 8);
    console.log(`uni-moe token drop bf16 ${fmt(drop)}; top-k 2 ${fmt(topk)}`);
  });

  const families: Family[] = ["qwen2_moe", "mixtral", "deepseek_v2"];
  it.each(families)("%s (seeded checkpoint with near-tied routers), plain and with a top-k override", async (family) => {
    const gpu = family !== "deepseek_v2"; // MLA attention: the twin is the plain dense graph
    const src = path.join(tmp, family);
    await writeFamilyCheckpoint(src, family, { seed: 61, nearTies: true });
    const st = new SafetensorsWeights(src);
    closers.push(() => st.close());
    const map = mapCheckpoint(src, st, family);
    const w = new MappedWeights(st, map);
    const plain = await sameGeneration(map.config, w, 61, {}, undefined, 10, gpu);
    const E = map.config.mlp_dynamic_expert_num + map.config.mlp_fixed_expert_num;
    const r = prng(62);
    const steered = await sameGeneration(map.config, w, 62, {}, { topK: 3, ban: Float32Array.from({ length: map.config.num_hidden_layers * E }, () => (r() < 0.2 ? 1 : 0)) }, 10, gpu);
    console.log(`${family}: ${fmt(plain)}; top-k 3 with bans ${fmt(steered)}`);
  });
});

describe("decode-step twin: one step equals the sparse graph's", () => {
  it("logits, trace, residual streams (lens) and the cache it leaves, from ids and from input embeddings, across a store that grows", async () => {
    const c = randomConfig(11, { vocab_size: 320 });
    const w = randomWeights(c, 11);
    for (const embeds of [false, true]) {
      const { alone, twinned, twin } = await runnersFor(c, w, { lens: true, embeds });
      expect(twin.decodeStep).toBe(true);
      const H = c.hidden_size;
      const table = Float32Array.from({ length: c.vocab_size * H }, prng(12)).map((x) => x * 2 - 1);
      const input = (ids: number[], from: number) => {
        const pos = ids.map((_, i) => from + i);
        return { batch: 1, seq: ids.length, positions: [...pos, ...pos.map((p) => p + 1), ...pos.map((p) => 2 * p)], ...(embeds ? { embeds: Float32Array.from(ids.flatMap((id) => Array.from(table.subarray(id * H, (id + 1) * H)))) } : { ids }) };
      };
      const prompt = randomIds(5, 256, 11);
      let a = (await alone.forward(input(prompt, 0))).present!, b = (await twinned.forward(input(prompt, 0))).present!;
      let worst = 0;
      for (let s = 0; s < 70; s++) {
        const x = input([(s * 37) % 256], 5 + s);
        const [oa, ob] = [await alone.forward({ ...x, past: a }), await twinned.forward({ ...x, past: b })];
        worst = Math.max(worst, maxAbs(oa.logits, ob.logits), maxAbs(oa.lastHidden, ob.lastHidden), ...oa.hidden!.map((h, l) => maxAbs(h, ob.hidden![l]!)));
        oa.trace!.forEach((t, l) => {
          const u = ob.trace![l]!;
          expect(u.layer).toBe(t.layer);
          expect(Array.from(u.mask)).toEqual(Array.from(t.mask));
          expect(Array.from(u.k)).toEqual(Array.from(t.k));
          worst = Math.max(worst, maxAbs(t.weights, u.weights), maxAbs(t.routerLogits, u.routerLogits));
        });
        [a, b] = [oa.present!, ob.present!];
      }
      // the cache the twin leaves, read out compactly, is the sparse graph's
      expect(b.length).toBe(a.length);
      a.keys.forEach((k, l) => (worst = Math.max(worst, maxAbs(k, b.keys[l]!), maxAbs(a.values[l]!, b.values[l]!))));
      expect(worst, embeds ? "from embeddings" : "from ids").toBeLessThanOrEqual(1e-5);
    }
  });
});

describe("decode twin: when it is used", () => {
  it("only for a one-token step of one sequence after a cache; a prompt and a batch of sequences stay on the sparse graph", async () => {
    const c = randomConfig(4, { vocab_size: 320 });
    const { twinned } = await runnersFor(c, randomWeights(c, 4));
    const { twin } = recording(twinned, { countTwin: true });
    const ids = randomIds(8, 256, 4), pos = (n: number, from = 0) => Array.from({ length: 3 * n }, (_, q) => from + (q % n));
    const one = await twinned.forward({ batch: 1, seq: 4, ids: ids.slice(0, 4), positions: pos(4) });
    await twinned.forward({ batch: 1, seq: 2, ids: ids.slice(4, 6), positions: pos(2, 4), past: one.present });
    const two = await twinned.forward({ batch: 2, seq: 2, ids: ids.slice(0, 4), positions: pos(4) });
    await twinned.forward({ batch: 2, seq: 1, ids: ids.slice(0, 2), positions: [2, 2, 2, 2, 2, 2], past: two.present });
    expect(twin.calls).toBe(0);
    await twinned.forward({ batch: 1, seq: 1, ids: [7], positions: [4, 4, 4], past: one.present });
    expect(twin.calls).toBe(1);
    // a position past the device-resident twin's rotary table: the sparse graph takes the step
    const far = ropeTableSize(c);
    expect(twinned.extras.decodeTwin!.options.gpu).toBe(true);
    const alone = await twinned.forward({ batch: 1, seq: 1, ids: [7], positions: [far, far, far], past: one.present });
    expect(twin.calls).toBe(1);
    expect(alone.logits.every(Number.isFinite)).toBe(true);
  });

  it("a twin must be a KV-cache graph of the same model differing only in the dispatch", async () => {
    const c = randomConfig(6, { vocab_size: 320 });
    const w = randomWeights(c, 6);
    const sparse = await MoeLlmRunner.create(c, w, { moe: "sparse", trace: true, kvCache: true }, { intraOpNumThreads: 1 });
    const noTrace = await MoeLlmRunner.create(c, w, { moe: "dense", trace: false, kvCache: true }, { intraOpNumThreads: 1 });
    runners.push(sparse, noTrace);
    expect(() => sparse.withDecodeTwin(noTrace)).toThrow(/differ only in `moe`, `gpu`, `decodeStep` and `expertsOp`/);
  });

  it("decodeTwinOptions: the CPU's fused sparse KV-cache graph gets a decode-step twin (a dense one for windowed attention of a small model); STUDIO_DECODE_TWIN=off, other providers, the unfused graph and large dense twins do not", () => {
    const tiny = referenceConfigs.tiny, small = referenceConfigs.small;
    const o: MoeGraphOptions = { moe: "sparse", trace: true, kvCache: true, embeds: true };
    const step = { ...o, moe: "dense", gpu: true, decodeStep: true, expertsOp: true };
    expect(decodeTwinOptions(tiny, o, "cpu")).toEqual(step);
    expect(decodeTwinOptions(small, o, "cpu")).toEqual(step); // the MoE operator runs only the chosen experts: no size limit
    const windowed = (c: MoeLlmConfig) => ({ ...c, [SLIDING_WINDOW_KEY]: Array(c.num_hidden_layers).fill(16) }) as MoeLlmConfig;
    expect(decodeTwinOptions(windowed(tiny), o, "cpu")).toEqual({ ...o, moe: "dense", gpu: true });
    expect(decodeTwinOptions(tiny, o, "webgpu")).toBeUndefined();
    expect(decodeTwinOptions(tiny, { ...o, kvCache: false }, "cpu")).toBeUndefined();
    expect(decodeTwinOptions(tiny, { ...o, unfused: true }, "cpu")).toBeUndefined();
    expect(decodeTwinOptions(tiny, { ...o, moe: "dense" }, "cpu")).toBeUndefined();
    const p = parameterCounts(small);
    expect(p.layers * small.mlp_dynamic_expert_num * p.perRoutedExpert).toBeGreaterThan(DECODE_TWIN_MAX_ROUTED_PARAMS);
    expect(decodeTwinOptions(windowed(small), o, "cpu")).toBeUndefined();
    const before = process.env.STUDIO_DECODE_TWIN;
    try {
      process.env.STUDIO_DECODE_TWIN = "off";
      expect(decodeTwinOptions(tiny, o, "cpu")).toBeUndefined();
    } finally {
      if (before === undefined) delete process.env.STUDIO_DECODE_TWIN;
      else process.env.STUDIO_DECODE_TWIN = before;
    }
  });
  it("withMoeLlm gives a small model's CPU runner its twin (both sessions from the pool), and generation through it equals STUDIO_DECODE_TWIN=off", async () => {
    const c = randomConfig(9, { vocab_size: 320 });
    const dir = path.join(tmp, "models", "seeded", "m9");
    mkdirSync(dir, { recursive: true });
    writeFileSync(path.join(dir, "config.json"), JSON.stringify(c));
    const w = randomWeights(c, 9);
    await writeSafetensorsFromMap(path.join(dir, "model.safetensors"), new Map(w.names().map((n) => [n, w.get(n)])));
    const model = openModelDir(dir);
    const pool = new SessionPool({ intraOpNumThreads: 1, executionProvider: "cpu" });
    const before = process.env.STUDIO_DECODE_TWIN, modelsBefore = process.env.STUDIO_MODELS_DIR;
    process.env.STUDIO_MODELS_DIR = path.join(tmp, "models"); // the graph cache (.graphs) goes there
    const run = () =>
      withMoeLlm(model, { moe: "sparse", trace: true, kvCache: true }, pool, async ({ runner }) => {
        const r = await generate(runner, byteTokenizer, { ids: randomIds(6, 256, 9), modelName: "m9" }, { temperature: 0.8, topK: 0, topP: 1, seed: 9, maxNewTokens: 6, stopTokens: [] });
        return { twin: runner.extras.decodeTwin && `${runner.extras.decodeTwin.options.moe}${runner.extras.decodeTwin.options.gpu ? " gpu" : ""}`, ids: r.newIds, masks: r.trace.layers.map((l) => Array.from(l.mask)) };
      });
    try {
      const on = await run();
      process.env.STUDIO_DECODE_TWIN = "off";
      const off = await run();
      expect(on.twin).toBe("dense gpu");
      expect(off.twin).toBeUndefined();
      expect(on.ids).toEqual(off.ids);
      expect(on.masks).toEqual(off.masks);
    } finally {
      if (before === undefined) delete process.env.STUDIO_DECODE_TWIN;
      else process.env.STUDIO_DECODE_TWIN = before;
      if (modelsBefore === undefined) delete process.env.STUDIO_MODELS_DIR;
      else process.env.STUDIO_MODELS_DIR = modelsBefore;
      await pool.close();
    }
  });
});
