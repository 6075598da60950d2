import { afterAll, describe, expect, it } from "vitest";
import { generate, type GenerateOptions, type PromptInput } from "@/models/moe-llm/generate";
import type { MoeLlmConfig } from "@/models/moe-llm/config";
import { decodeTwinOptions } from "@/models/moe-llm/moe-llm-model";
import { type Interventions, InPlaceKvCache, type KvCache, KV_STORE_GROWTH, MoeLlmRunner } from "@/models/moe-llm/moe-llm-session";
import type { WeightSource } from "@/models/io/weights";
import { byteTokenizer } from "@/models/text/tokenizer";
import { prng, randomConfig, randomIds, randomWeights } from "../../../reference/random";
import { maxAbs, recording } from "./recording";

/**
 * The decode twin's KV cache held in place (InPlaceKvCache) against the GroupQueryAttention twin copying its cache every
 * step: generated ids, routing and every step's logits identical within 1e-5, across a store that fills up and grows,
 * and for callers that branch from an older cache or hand an in-place cache to the prefill graph — for both in-place
 * forms: the decode-step graph (the default: it reads the first rows of a position-major store and the runner appends
 * the new token's keys) and GroupQueryAttention sharing one head-major capacity buffer as past and present (the form
 * for attention with windows or sinks).
 */
const runners: MoeLlmRunner[] = [];
afterAll(async () => {
  for (const r of runners) await r.release();
});

type InPlaceForm = "decode step" | "GroupQueryAttention";
const forms: InPlaceForm[] = ["decode step", "GroupQueryAttention"];

/** The sparse runner with its device-resident dense twin holding the cache in place (in `form`), and the GQA twin copying it. */
async function twins(c: MoeLlmConfig, w: WeightSource, form: InPlaceForm) {
  const make = async (o: Parameters<typeof MoeLlmRunner.create>[2]) => {
    const r = await MoeLlmRunner.create(c, w, o, { intraOpNumThreads: 1 });
    runners.push(r);
    return r;
  };
  const sparse = await make({ moe: "sparse", trace: true, kvCache: true });
  const twinOptions = decodeTwinOptions(c, sparse.options, "cpu");
  expect(twinOptions?.gpu, "the device-resident twin").toBe(true);
  expect(twinOptions?.decodeStep, "the decode-step twin").toBe(true);
  const gqa = await make({ ...twinOptions!, decodeStep: false, expertsOp: false }); // the form for attention with windows or sinks
  const inPlace = form === "decode step" ? await make(twinOptions!) : gqa;
  return { inPlace: sparse.withDecodeTwin(inPlace), copying: sparse.withDecodeTwin(gqa, { kvInPlace: false }) };
}

async function sameGeneration(c: MoeLlmConfig, w: WeightSource, seed: number, maxNewTokens: number, form: InPlaceForm, interventions?: Interventions) {
  const { inPlace, copying } = await twins(c, w, form);
  const ids = randomIds(7, 256, seed);
  const prompt: PromptInput = { ids, modelName: "seeded", positions: { t: [...ids.keys()], h: ids.map((_, i) => (i * 2) % 5), w: ids.map((_, i) => 6 - i) } };
  const go: GenerateOptions = { temperature: 0.8, topK: 0, topP: 1, seed, maxNewTokens, stopTokens: [], interventions };
  const a = recording(copying), b = recording(inPlace);
  const ra = await generate(a.model, byteTokenizer, prompt, go);
  const rb = await generate(b.model, byteTokenizer, prompt, go);
  expect(rb.newIds).toEqual(ra.newIds);
  expect(rb.trace.tokens).toEqual(ra.trace.tokens);
  let logits = 0, routing = 0;
  a.logits.forEach((l, i) => (logits = Math.max(logits, maxAbs(l, b.logits[i]!))));
  ra.trace.layers.forEach((la, i) => {
    const lb = rb.trace.layers[i]!;
    expect(Array.from(lb.mask), `mask of layer ${la.layer}`).toEqual(Array.from(la.mask));
    expect(Array.from(lb.k), `k of layer ${la.layer}`).toEqual(Array.from(la.k));
    routing = Math.max(routing, maxAbs(la.routerLogits, lb.routerLogits), maxAbs(la.weights, lb.weights));
  });
  expect(logits).toBeLessThanOrEqual(1e-5);
  expect(routing).toBeLessThanOrEqual(1e-5);
  // every decode step ran in place; one store per KV_STORE_GROWTH steps (a full store is copied once into a larger one)
  const steps = b.presents.slice(1);
  expect(steps.every((p) => p instanceof InPlaceKvCache)).toBe(true);
  const stores = new Set(steps.map((p) => (p as InPlaceKvCache).store));
  expect(stores.size).toBe(Math.ceil(steps.length / KV_STORE_GROWTH));
  // the final cache read out equals the copying path's
  const last = a.presents.length - 1;
  let cache = 0;
  a.presents[last]!.keys.forEach((k, l) => (cache = Math.max(cache, maxAbs(k, b.presents[last]!.keys[l]!), maxAbs(a.presents[last]!.values[l]!, b.presents[last]!.values[l]!))));
  expect(cache).toBeLessThanOrEqual(1e-5);
  return { logits, routing, cache, stores: stores.size };
}

const step = (r: MoeLlmRunner, past: KvCache, id: number) => r.forward({ batch: 1, seq: 1, ids: [id], positions: [past.length, past.length, past.length], past });

describe.each(forms)("KV cache held in place on the decode twin (%s) = the twin copying it", (form) => {
  it.each([3, 5])("Uni-MoE seed %i: 80 sampled tokens (the store fills and grows), plain and with interventions", async (seed) => {
    const c = randomConfig(seed, { vocab_size: 320 });
    const w = randomWeights(c, seed);
    const plain = await sameGeneration(c, w, seed, 80, form);
    expect(plain.stores).toBe(2);
    const r = prng(seed + 9);
    const E = c.mlp_dynamic_expert_num + c.mlp_dynamic_null_expert_num + c.mlp_fixed_expert_num;
    const n = c.num_hidden_layers * E;
    const iv: Interventions = { routerBias: Float32Array.from({ length: n }, () => r() - 0.5), ban: Float32Array.from({ length: n }, () => (r() < 0.25 ? 1 : 0)) };
    const steered = await sameGeneration(c, w, seed + 1, 12, form, iv);
    console.log(`in-place (${form}) seed ${seed}: logits ${plain.logits.toExponential(1)}, routing ${plain.routing.toExponential(1)}, cache ${plain.cache.toExponential(1)}; interventions logits ${steered.logits.toExponential(1)}`);
  });

  it("the buffers are written in place; a step from an older cache (a branch) copies it and leaves the newer cache intact", async () => {
    const c = randomConfig(6, { vocab_size: 320 });
    const { inPlace, copying } = await twins(c, randomWeights(c, 6), form);
    const ids = randomIds(5, 256, 6), pos = [...ids.keys()];
    const prefill = (r: MoeLlmRunner) => r.forward({ batch: 1, seq: 5, ids, positions: [...pos, ...pos, ...pos] });
    const [p0, q0] = [(await prefill(inPlace)).present!, (await prefill(copying)).present!];
    const p1 = (await step(inPlace, p0, 11)).present as InPlaceKvCache, q1 = (await step(copying, q0, 11)).present!;
    const keys0 = p1.store.keys[0]!;
    const s2 = await step(inPlace, p1, 12), t2 = await step(copying, q1, 12);
    const p2 = s2.present as InPlaceKvCache;
    expect(p2.store).toBe(p1.store);
    expect(p2.store.keys[0]).toBe(keys0); // the same memory, now holding position 6 too
    expect(p2.store.tip).toBe(7);
    // branch: another token after p1; p2 must stay what it was
    const b2 = await step(inPlace, p1, 99), u2 = await step(copying, q1, 99);
    expect((b2.present as InPlaceKvCache).store).not.toBe(p1.store);
    expect(maxAbs(b2.logits, u2.logits)).toBeLessThanOrEqual(1e-5);
    expect(maxAbs(s2.logits, t2.logits)).toBeLessThanOrEqual(1e-5);
    // the older branch goes on in place from its own store, and equals the copying path
    const s3 = await step(inPlace, p2, 13), t3 = await step(copying, t2.present!, 13);
    expect((s3.present as InPlaceKvCache).store).toBe(p1.store);
    expect(maxAbs(s3.logits, t3.logits)).toBeLessThanOrEqual(1e-5);
    const b3 = await step(inPlace, b2.present!, 14), u3 = await step(copying, u2.present!, 14);
    expect(maxAbs(b3.logits, u3.logits)).toBeLessThanOrEqual(1e-5);
    p2.keys.forEach((k, l) => expect(maxAbs(k, t2.present!.keys[l]!)).toBeLessThanOrEqual(1e-6));
    // two steps from the prefill's cache (not in place): each gets its own store
    const x = await step(inPlace, p0, 11);
    expect((x.present as InPlaceKvCache).store).not.toBe(p1.store);
    expect(maxAbs(x.logits, (await step(copying, q0, 11)).logits)).toBeLessThanOrEqual(1e-5);
    // an in-place cache continued by the sparse graph (two tokens): it reads the cache's compact copy
    const two = (r: MoeLlmRunner, past: KvCache) => r.forward({ batch: 1, seq: 2, ids: [1, 2], positions: [8, 9, 8, 9, 8, 9], past });
    expect(maxAbs((await two(inPlace, s3.present!)).logits, (await two(copying, t3.present!)).logits)).toBeLessThanOrEqual(1e-5);
  });
});
