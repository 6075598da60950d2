import * as ort from "onnxruntime-node";
import { afterAll, describe, expect, it } from "vitest";
import { paramNames, type MoeLlmConfig } from "@/models/moe-llm/config";
import { buildLensHeadGraph, LENS_TOP_K, runLogitLens } from "@/models/moe-llm/logit-lens";
import { buildMoeLlmGraph, moeDims, type MoeGraphOptions } from "@/models/moe-llm/moe-llm-graph";
import { MoeLlmRunner } from "@/models/moe-llm/moe-llm-session";
import { continuePositions, scoredSequence, scoreSequence, summarizeNll, tokenNll } from "@/models/moe-llm/scoring";
import { byteTokenizer } from "@/models/text/tokenizer";
import type { WeightSource } from "@/models/io/weights";
import { referenceLens } from "../../../reference/lens";
import { referenceForward } from "../../../reference/moe-llm";
import { randomConfig, randomIds, randomWeights } from "../../../reference/random";

const runners: MoeLlmRunner[] = [];
const sessions: ort.InferenceSession[] = [];
afterAll(async () => {
  for (const r of runners) await r.release();
  for (const s of sessions) await s.release();
});
async function runner(c: MoeLlmConfig, w: WeightSource, o: Partial<MoeGraphOptions> = {}): Promise<MoeLlmRunner> {
  const r = await MoeLlmRunner.create(c, w, { moe: "sparse", trace: true, kvCache: false, ...o }, { intraOpNumThreads: 1 });
  runners.push(r);
  return r;
}

/** Plain loops, float64: NLL of ids[t] under row t-1 of the reference logits. */
function referenceNll(logits: Float64Array, V: number, ids: number[], from: number): number[] {
  const out: number[] = [];
  for (let t = from; t < ids.length; t++) {
    const row = Array.from(logits.subarray((t - 1) * V, t * V));
    const mx = Math.max(...row);
    const lse = mx + Math.log(row.reduce((a, v) => a + Math.exp(v - mx), 0));
    out.push(lse - row[ids[t]!]!);
  }
  return out;
}

const seeds = [1, 2, 3, 4, 5, 6];
const positions1d = (n: number) => ({ t: [...Array(n).keys()], h: [...Array(n).keys()], w: [...Array(n).keys()] });

describe("teacher-forced NLL vs the plain-TS reference", () => {
  it.each(seeds)("seed %i: per-token and mean NLL within 1e-5", async (seed) => {
    const c = randomConfig(seed);
    const w = randomWeights(c, seed);
    const prompt = randomIds(5, c.vocab_size, seed + 10);
    const answer = randomIds(7, c.vocab_size, seed + 20);
    const { ids, scoreFrom } = scoredSequence(prompt, answer);
    const r = await runner(c, w);
    const got = await scoreSequence(r, byteTokenizer, { ids, scoreFrom, modelName: "random" });
    const ref = referenceForward(c, w, { batch: 1, seq: ids.length, ids, positions: [...ids.keys(), ...ids.keys(), ...ids.keys()] });
    const want = referenceNll(ref.logits, c.vocab_size, ids, scoreFrom);
    const per = want.map((v, i) => Math.abs(v - got.nll[scoreFrom + i]!));
    const meanWant = want.reduce((a, b) => a + b, 0) / want.length;
    const dMean = Math.abs(meanWant - got.summary.mean);
    console.log(`seed ${seed}: NLL per token max |Δ| ${Math.max(...per).toExponential(2)}, mean NLL ${got.summary.mean.toFixed(4)} |Δ| ${dMean.toExponential(2)}`);
    expect(got.summary.tokens).toBe(answer.length);
    expect(Math.max(...per)).toBeLessThan(1e-5);
    expect(dMean).toBeLessThan(1e-5);
    expect(got.summary.perplexity).toBeCloseTo(Math.exp(got.summary.mean), 12);
    // aligned with the trace: the prompt carries no NLL, each answer token its own
    got.trace.tokens.forEach((t, i) => expect(t.nll).toBe(i >= scoreFrom ? got.nll[i] : undefined));
    expect(got.trace.tokens).toHaveLength(ids.length);
  });

  it.each([1, 4])("seed %i: invariant to batching (three sequences in one forward = each alone) and to KV-cache chunking", async (seed) => {
    const c = randomConfig(seed);
    const w = randomWeights(c, seed);
    const V = c.vocab_size;
    const S = 9;
    const seqs = [0, 1, 2].map((b) => randomIds(S, V, seed * 31 + b));
    const r = await runner(c, w);
    const alone = await Promise.all(seqs.map(async (ids) => tokenNll((await r.forward({ batch: 1, seq: S, ids, positions: [...ids.keys(), ...ids.keys(), ...ids.keys()] })).logits, V, ids, (t) => t >= 4)));
    const pos = Array.from({ length: 3 }, () => [0, 1, 2].flatMap(() => [...Array(S).keys()])).flat();
    const batched = await r.forward({ batch: 3, seq: S, ids: seqs.flat(), positions: pos });
    let maxB = 0;
    seqs.forEach((ids, b) => {
      const nll = tokenNll(batched.logits.subarray(b * S * V, (b + 1) * S * V), V, ids, (t) => t >= 4);
      nll.forEach((v, t) => (maxB = Math.max(maxB, Number.isNaN(v) ? 0 : Math.abs(v - alone[b]![t]!))));
      expect(Array.from(nll, Number.isNaN)).toEqual(Array.from(alone[b]!, Number.isNaN));
    });
    // The prompt through the KV cache, then the answer in a second call: the same NLL as one pass.
    const kv = await runner(c, w, { kvCache: true });
    const ids = seqs[0]!;
    const first = await kv.forward({ batch: 1, seq: 4, ids: ids.slice(0, 4), positions: [0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3] });
    const rest = await kv.forward({ batch: 1, seq: S - 4, ids: ids.slice(4), positions: [4, 5, 6, 7, 8, 4, 5, 6, 7, 8, 4, 5, 6, 7, 8], past: first.present });
    const logits = new Float32Array(S * V);
    logits.set(first.logits);
    logits.set(rest.logits, 4 * V);
    const chunked = tokenNll(logits, V, ids, (t) => t >= 4);
    let maxKv = 0;
    chunked.forEach((v, t) => (maxKv = Math.max(maxKv, Number.isNaN(v) ? 0 : Math.abs(v - alone[0]![t]!))));
    console.log(`seed ${seed}: batched vs alone max |ΔNLL| ${maxB.toExponential(2)}; KV-cache chunked vs one pass ${maxKv.toExponential(2)}`);
    expect(maxB).toBeLessThan(1e-5);
    expect(maxKv).toBeLessThan(1e-5);
  });

  it("language-model scoring scores every text token after the first; media tokens are never scored", async () => {
    const c = randomConfig(2);
    const w = randomWeights(c, 2);
    const ids = randomIds(6, c.vocab_size, 3);
    const r = await runner(c, w);
    const lm = scoredSequence(ids, null);
    const got = await scoreSequence(r, byteTokenizer, { ...lm, modelName: "m", modalities: ["text", "image", "image", "text", "text", "text"] });
    expect(Array.from(got.nll, (v) => !Number.isNaN(v))).toEqual([false, false, false, true, true, true]);
    expect(summarizeNll(got.nll).tokens).toBe(3);
    expect(() => scoredSequence([1], null)).toThrow(/at least two tokens/);
    expect(() => scoredSequence([1, 2], [])).toThrow(/answer to score is empty/);
    expect(continuePositions({ t: [0, 1, 1], h: [0, 1, 2], w: [0, 3, 1] }, 2)).toEqual({ t: [0, 1, 1, 4, 5], h: [0, 1, 2, 4, 5], w: [0, 3, 1, 4, 5] });
  });
});

describe("logit lens", () => {
  it("off: the decoder graph is byte-identical to one built without the option; on: the same logits and routing", async () => {
    const c = randomConfig(3);
    const w = randomWeights(c, 3);
    const base = { moe: "sparse", trace: true, kvCache: true } as const;
    const plain = buildMoeLlmGraph(c, w, base);
    expect(Buffer.from(buildMoeLlmGraph(c, w, { ...base, lens: false })).equals(Buffer.from(plain))).toBe(true);
    expect(buildMoeLlmGraph(c, w, { ...base, lens: true }).length).toBeGreaterThan(plain.length);
    const ids = randomIds(6, c.vocab_size, 9);
    const positions = [...ids.keys(), ...ids.keys(), ...ids.keys()];
    const off = await (await runner(c, w, base)).forward({ batch: 1, seq: 6, ids, positions });
    const on = await (await runner(c, w, { ...base, lens: true })).forward({ batch: 1, seq: 6, ids, positions });
    expect(off.hidden).toBeUndefined();
    expect(on.hidden).toHaveLength(c.num_hidden_layers);
    expect(Array.from(on.logits)).toEqual(Array.from(off.logits));
    on.trace!.forEach((t, l) => expect(Array.from(t.weights)).toEqual(Array.from(off.trace![l]!.weights)));
  });

  it.each(seeds)("seed %i: residual states and the lens agree with the plain-TS reference; the last layer's lens is the model's own prediction", async (seed) => {
    const c = randomConfig(seed);
    const w = randomWeights(c, seed);
    const { L, H, V } = moeDims(c);
    const B = 2, S = 5, N = B * S;
    const ids = randomIds(N, V, seed + 50);
    const positions = Array.from({ length: 3 }, () => [0, 1].flatMap(() => [...Array(S).keys()])).flat();
    const out = await (await runner(c, w, { lens: true })).forward({ batch: B, seq: S, ids, positions });
    const ref = referenceForward(c, w, { batch: B, seq: S, ids, positions });
    let dHidden = 0;
    out.hidden!.forEach((h, l) => h.forEach((v, i) => (dHidden = Math.max(dHidden, Math.abs(v - ref.hidden[l]![i]!)))));
    expect(dHidden).toBeLessThan(1e-4);

    const session = await ort.InferenceSession.create(buildLensHeadGraph(c, w), { intraOpNumThreads: 1 });
    sessions.push(session);
    // a small chunk budget: several chunks of tokens
    const lens = await runLogitLens(session, c, out.hidden!, N, 3 * L * V * 4 * 3);
    const K = Math.min(LENS_TOP_K, V);
    expect(lens.k).toBe(K);
    const head = { norm: w.get(paramNames.finalNorm).data, eps: c.rms_norm_eps, head: w.get(c.tie_word_embeddings ? paramNames.embed : paramNames.lmHead).data };
    const want = referenceLens(head, ref.hidden, N, H, V, K);
    let dLp = 0, dKl = 0;
    for (let l = 0; l < L; l++)
      for (let n = 0; n < N; n++) {
        const r = want[l]![n]!;
        const got = lens.layers[l]!;
        expect(Array.from(got.topIds.subarray(n * K, (n + 1) * K)), `top ids L${l} token ${n}`).toEqual(r.ids);
        r.logprobs.forEach((v, j) => (dLp = Math.max(dLp, Math.abs(v - got.topLogprobs[n * K + j]!))));
        expect(got.finalRank[n], `rank L${l} token ${n}`).toBe(r.rank);
        dKl = Math.max(dKl, Math.abs(r.kl - got.kl[n]!));
      }
    // The last layer's lens is the model's own distribution: log-softmax of its logits, rank 0, KL 0.
    const last = lens.layers[L - 1]!;
    let dLast = 0;
    for (let n = 0; n < N; n++) {
      const row = Array.from(out.logits.subarray(n * V, (n + 1) * V));
      const mx = Math.max(...row);
      const lse = mx + Math.log(row.reduce((a, v) => a + Math.exp(v - mx), 0));
      const order = [...row.keys()].sort((a, b) => row[b]! - row[a]! || a - b).slice(0, K);
      expect(Array.from(last.topIds.subarray(n * K, (n + 1) * K))).toEqual(order);
      order.forEach((v, j) => (dLast = Math.max(dLast, Math.abs(row[v]! - lse - last.topLogprobs[n * K + j]!))));
      expect(last.finalRank[n]).toBe(0);
      expect(Math.abs(last.kl[n]!)).toBeLessThan(1e-6);
    }
    console.log(`seed ${seed} (L${L} H${H} V${V}): |Δresidual| ${dHidden.toExponential(2)} |Δlens logprob| ${dLp.toExponential(2)} |ΔKL| ${dKl.toExponential(2)}; last layer vs own logits ${dLast.toExponential(2)}`);
    expect(dLp).toBeLessThan(1e-4);
    expect(dKl).toBeLessThan(1e-4);
    expect(dLast).toBeLessThan(1e-5);
  });
});
