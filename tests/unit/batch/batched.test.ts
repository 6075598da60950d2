/**
 * Batched datasets at the model level: records that generate (or score) concurrently inside a batch window
 * (engine/batch/window.ts) have their MoE-LLM forwards coalesced into padded forwards (MoeLlmRunner.forwardPadded:
 * the prompts as one right-padded prefill, then every decode step as one forward over the batch's padded KV cache),
 * and each gets what it gets alone from the plain graph: generated ids, routing masks and k identical, router
 * logits, weights, residual streams and last hidden within 1e-5, NLL within 1e-5. Seeded random Uni-MoE configs.
 * Plus the window's own rules (when it runs, chunking, a bad request failing alone).
 */
import { afterAll, describe, expect, it } from "vitest";
import { BatchWindow, chunkRequests, currentBatchWindow } from "@/engine/batch/window";
import type { MoeLlmConfig } from "@/models/moe-llm/config";
import { generate, type GenerateResult } from "@/models/moe-llm/generate";
import { MoeLlmRunner, type ForwardInput } from "@/models/moe-llm/moe-llm-session";
import type { MoeGraphOptions } from "@/models/moe-llm/moe-llm-graph";
import { scoreSequence } from "@/models/moe-llm/scoring";
import { byteTokenizer } from "@/models/text/tokenizer";
import type { WeightSource } from "@/models/io/weights";
import { randomConfig, randomIds, randomWeights } from "../../reference/random";

const runners: MoeLlmRunner[] = [];
afterAll(async () => {
  for (const r of runners) await r.release();
});

const maxAbs = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!) / Math.max(1, Math.abs(b[i]!)));
  return m;
};

/** A plain runner (the unbatched reference) and one on the padding graph of the same model that coalesces in `window`. */
async function pair(c: MoeLlmConfig, w: WeightSource, window: BatchWindow, o: Partial<MoeGraphOptions> = {}) {
  const graph: MoeGraphOptions = { moe: "sparse", trace: true, kvCache: true, lens: true, ...o };
  const plain = await MoeLlmRunner.create(c, w, graph, { intraOpNumThreads: 1 });
  const padded0 = await MoeLlmRunner.create(c, w, { ...graph, padding: true }, { intraOpNumThreads: 1 });
  runners.push(plain, padded0);
  return { plain, padded: MoeLlmRunner.fromSession(c, padded0.options, padded0.session, undefined, { window }) };
}

/** Prompts of different lengths with 3D positions (h, w differ from t), and how many tokens each generates. */
function prompts(c: MoeLlmConfig, seed: number) {
  const lens = [5, 11, 1, 8, 3];
  const steps = [4, 2, 6, 1, 3];
  return lens.map((n, r) => ({
    ids: randomIds(n, c.vocab_size, seed * 10 + r),
    positions: { t: Array.from({ length: n }, (_, s) => s), h: Array.from({ length: n }, (_, s) => (s * 2 + r) % 7), w: Array.from({ length: n }, (_, s) => n - s) },
    maxNewTokens: steps[r]!,
  }));
}

function compareGeneration(got: GenerateResult, want: GenerateResult, what: string): number {
  expect(got.newIds, `${what}: generated ids`).toEqual(want.newIds);
  expect(got.trace.tokens.map((t) => [t.id, t.phase, t.position])).toEqual(want.trace.tokens.map((t) => [t.id, t.phase, t.position]));
  let d = 0;
  got.trace.layers.forEach((l, i) => {
    const u = want.trace.layers[i]!;
    expect(Array.from(l.mask), `${what}: mask of layer ${l.layer}`).toEqual(Array.from(u.mask));
    expect(Array.from(l.k), `${what}: k of layer ${l.layer}`).toEqual(Array.from(u.k));
    d = Math.max(d, maxAbs(l.routerLogits, u.routerLogits), maxAbs(l.weights, u.weights));
  });
  got.hidden!.forEach((h, i) => (d = Math.max(d, maxAbs(h, want.hidden![i]!))));
  got.tailHidden.forEach((h, i) => (d = Math.max(d, maxAbs(h, want.tailHidden[i]!))));
  return d;
}

describe("batched generation and scoring == each record alone", () => {
  it.each([1, 2, 3])("seed %i: concurrent generations share padded prefill and decode forwards", async (seed) => {
    const c = randomConfig(seed, { vocab_size: 256 });
    const w = randomWeights(c, seed);
    const window = new BatchWindow({ maxBatch: 8, maxTokens: 4096 });
    const { plain, padded } = await pair(c, w, window);
    const ps = prompts(c, seed);
    const opts = (p: (typeof ps)[number]) => ({ maxNewTokens: p.maxNewTokens, temperature: 0, topK: 0, topP: 1, seed: 0, stopTokens: [] });
    const alone: GenerateResult[] = [];
    for (const p of ps) alone.push(await generate(plain, byteTokenizer, { ids: p.ids, positions: p.positions, modelName: "m" }, opts(p)));
    const batched = await Promise.all(ps.map((p) => window.participate(() => generate(padded, byteTokenizer, { ids: p.ids, positions: p.positions, modelName: "m" }, opts(p)))));
    let d = 0;
    batched.forEach((b, r) => (d = Math.max(d, compareGeneration(b, alone[r]!, `seed ${seed} record ${r}`))));
    expect(d).toBeLessThan(1e-5);
    // 5 prefills in one forward, then decode steps with 5, 4, 3, 2, 1 … records left (records stop at 1 … 6 tokens)
    const steps = ps.reduce((a, p) => a + p.maxNewTokens - 1, 0) + ps.length;
    expect(window.stats.requests).toBe(steps);
    expect(window.stats.largest).toBe(5);
    expect(window.stats.calls).toBe(1 + Math.max(...ps.map((p) => p.maxNewTokens)) - 1);
    console.log(`seed ${seed}: ${window.stats.requests} record steps in ${window.stats.calls} forwards, max rel. diff ${d.toExponential(2)}`);
  });

  it("bf16 routing, dense experts and the unfused graph too", async () => {
    const c = randomConfig(5, { vocab_size: 256 });
    const w = randomWeights(c, 5);
    for (const o of [{ routingPrecision: "bf16", moe: "dense" }, { unfused: true }] as Partial<MoeGraphOptions>[]) {
      const window = new BatchWindow({ maxBatch: 8, maxTokens: 4096 });
      const { plain, padded } = await pair(c, w, window, o);
      const ps = prompts(c, 5);
      const opts = (p: (typeof ps)[number]) => ({ maxNewTokens: p.maxNewTokens, temperature: 0, topK: 0, topP: 1, seed: 0, stopTokens: [] });
      const alone: GenerateResult[] = [];
      for (const p of ps) alone.push(await generate(plain, byteTokenizer, { ids: p.ids, positions: p.positions, modelName: "m" }, opts(p)));
      const batched = await Promise.all(ps.map((p) => window.participate(() => generate(padded, byteTokenizer, { ids: p.ids, positions: p.positions, modelName: "m" }, opts(p)))));
      let d = 0;
      batched.forEach((b, r) => (d = Math.max(d, compareGeneration(b, alone[r]!, `${JSON.stringify(o)} record ${r}`))));
      expect(d).toBeLessThan(1e-5);
      expect(window.stats.largest).toBe(5);
    }
  });

  it("teacher-forced NLL of concurrent scorings within 1e-5 of each alone", async () => {
    const c = randomConfig(6, { vocab_size: 256 });
    const w = randomWeights(c, 6);
    const window = new BatchWindow({ maxBatch: 8, maxTokens: 4096 });
    const { plain, padded } = await pair(c, w, window);
    const seqs = [7, 12, 3, 9].map((n, r) => ({ ids: randomIds(n, c.vocab_size, 60 + r), scoreFrom: Math.max(1, n - 4), modelName: "m" }));
    const alone: Awaited<ReturnType<typeof scoreSequence>>[] = [];
    for (const s of seqs) alone.push(await scoreSequence(plain, byteTokenizer, s));
    const batched = await Promise.all(seqs.map((s) => window.participate(() => scoreSequence(padded, byteTokenizer, s))));
    batched.forEach((b, r) => {
      expect(b.summary.tokens).toBe(alone[r]!.summary.tokens);
      expect(Math.abs(b.summary.sum - alone[r]!.summary.sum)).toBeLessThan(1e-5);
      b.nll.forEach((v, t) => (Number.isNaN(v) ? expect(alone[r]!.nll[t]).toBeNaN() : expect(Math.abs(v - alone[r]!.nll[t]!)).toBeLessThan(1e-5)));
    });
    expect(window.stats).toMatchObject({ calls: 1, requests: 4, largest: 4 });
  });

  it("a record whose forward fails does not fail its batch-mates: the batch is retried one record at a time", async () => {
    const c = randomConfig(7, { vocab_size: 256 });
    const w = randomWeights(c, 7);
    const window = new BatchWindow({ maxBatch: 8, maxTokens: 4096 });
    const { plain, padded } = await pair(c, w, window);
    const input = (ids: number[]): ForwardInput => ({ batch: 1, seq: ids.length, ids, positions: [...ids.keys(), ...ids.keys(), ...ids.keys()] });
    const good = [randomIds(4, 256, 1), randomIds(6, 256, 2)];
    const results = await Promise.allSettled([good[0]!, [3, 1_000_000, 5], good[1]!].map((ids) => window.participate(() => padded.forward(input(ids)))));
    expect(results.map((r) => r.status)).toEqual(["fulfilled", "rejected", "fulfilled"]);
    for (const [i, r] of [0, 2].entries()) {
      const want = await plain.forward(input(good[i]!));
      const got = (results[r] as PromiseFulfilledResult<Awaited<ReturnType<typeof plain.forward>>>).value;
      expect(maxAbs(got.logits, want.logits)).toBeLessThan(1e-5);
      expect(Array.from(got.trace![0]!.mask)).toEqual(Array.from(want.trace![0]!.mask));
    }
    expect(window.stats.retried).toBe(1);
  });
});

describe("batch window", () => {
  it("chunks longest first within the record and token limits; a request over the token limit runs alone", () => {
    const items = [3, 9, 1, 7, 5, 2, 20].map((tokens) => ({ tokens }));
    expect(chunkRequests(items, { maxBatch: 3, maxTokens: 1000 }).map((c) => c.map((i) => i.tokens))).toEqual([[20, 9, 7], [5, 3, 2], [1]]);
    expect(chunkRequests(items, { maxBatch: 8, maxTokens: 20 }).map((c) => c.map((i) => i.tokens))).toEqual([[20], [9, 7], [5, 3, 2, 1]]);
    expect(chunkRequests(items, { maxBatch: 8, maxTokens: 10 }).map((c) => c.map((i) => i.tokens))).toEqual([[20], [9], [7], [5, 3], [2, 1]]);
  });

  it("runs when every participant waits (no timers); a participant that leaves releases the others; outside a participant a request runs alone", async () => {
    const window = new BatchWindow({ maxBatch: 8, maxTokens: 100 });
    const calls: string[][] = [];
    const runMany = async (ps: string[]) => {
      calls.push([...ps]);
      return ps.map((p) => p.toUpperCase());
    };
    let release!: () => void;
    const busy = new Promise<void>((r) => (release = r));
    const a = window.participate(() => window.submit("k", "a", 1, runMany));
    const b = window.participate(async () => {
      expect(currentBatchWindow()).toBe(window);
      return window.submit("k", "b", 2, runMany);
    });
    const c = window.participate(async () => {
      await busy; // still preparing its input: the window waits for it
      return "c left without a request";
    });
    await new Promise((r) => setTimeout(r, 20));
    expect(calls).toEqual([]);
    release();
    expect(await Promise.all([a, b, c])).toEqual(["A", "B", "c left without a request"]);
    expect(calls).toEqual([["b", "a"]]);
    expect(currentBatchWindow()).toBeUndefined();
    expect(await window.submit("k", "solo", 1, runMany)).toBe("SOLO");
    expect(calls[1]).toEqual(["solo"]);
  });

  it("a group that fills a call runs before the other participants are done", async () => {
    const window = new BatchWindow({ maxBatch: 2, maxTokens: 100 });
    const calls: string[][] = [];
    const runMany = async (ps: string[]) => (calls.push([...ps]), ps);
    let release!: () => void;
    const busy = new Promise<void>((r) => (release = r));
    const first = Promise.all(["x", "y"].map((p) => window.participate(() => window.submit("k", p, 1, runMany))));
    const late = window.participate(async () => (await busy, window.submit("k", "z", 1, runMany)));
    expect(await first).toEqual(["x", "y"]);
    expect(calls).toEqual([["x", "y"]]);
    release();
    expect(await late).toBe("z");
    expect(calls).toEqual([["x", "y"], ["z"]]);
  });

  it("early requests (an encoder before the model) run first and alone, so their records join the same model call; counted apart", async () => {
    const window = new BatchWindow({ maxBatch: 8, maxTokens: 100 });
    const calls: string[][] = [];
    const runMany = (tag: string) => async (ps: string[]) => (calls.push([tag, ...ps]), ps);
    const text = window.participate(() => window.submit("model", "t", 1, runMany("model")));
    const image = window.participate(async () => {
      const features = await window.submit("encoder", "i", 1, runMany("encoder"), { stats: "encoder", early: true });
      return window.submit("model", `${features}+prompt`, 2, runMany("model"));
    });
    expect(await Promise.all([text, image])).toEqual(["t", "i+prompt"]);
    expect(calls).toEqual([["encoder", "i"], ["model", "i+prompt", "t"]]);
    expect(window.stats).toMatchObject({ calls: 1, requests: 2, largest: 2 });
    expect(window.stats.others?.encoder).toMatchObject({ calls: 1, requests: 1, largest: 1 });
  });
});
