/**
 * The released MoE-TTS graph (models/tts/tts-released.ts) against the plain-TS reference (released-reference.ts) on
 * seeded generated weights in the released tensor layout: every attention mode × capacity mode, Gumbel second-expert
 * sampling and attention dropout fed the same noise, KV-cache ("cached") decoding and release-mode decoding, and the
 * teacher-forced forward of `cli tts-forward`. Logits within 1e-4, selections, masks and capacity drops exact.
 */
import * as ort from "onnxruntime-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SeededRandom } from "@/models/io/seeded-random";
import { buildSpeechGraph, speechDims, type SpeechGenConfig } from "@/models/tts/tts-released";
import { attentionBias, conditioningRows, decodeSpeechChunk, speechCapacity, SpeechRunner, teacherForced, type SpeechAttention, type SpeechCapacity, type SpeechRow } from "@/models/tts/tts-released-run";
import { MemoryWeights } from "@/models/io/weights";
import { referenceSpeechForward, seedSpeechWeights, smallSpeechConfig, speechCodes } from "./released-reference";

const c: SpeechGenConfig = smallSpeechConfig();
const W = seedSpeechWeights(c, 11);
const ws = new MemoryWeights(W);
const { Vo, E, L, NH } = speechDims(c);
let full: SpeechRunner, cached: SpeechRunner, noisy: SpeechRunner;

beforeAll(async () => {
  const make = async (kvCache: boolean, dropout: boolean) => new SpeechRunner(c, { kvCache, dropout }, await ort.InferenceSession.create(buildSpeechGraph(c, ws, { kvCache, dropout }), { logSeverityLevel: 3 }));
  [full, cached, noisy] = await Promise.all([make(false, false), make(true, false), make(false, true)]);
});
afterAll(async () => {
  for (const r of [full, cached, noisy]) await r?.session.release();
});

function randomRows(seed: number, nText: number, nPrompt: number, nCodes: number): { rows: SpeechRow[]; C: number } {
  const r = new SeededRandom(seed);
  const cond = conditioningRows(c, Array.from({ length: nText }, () => r.int(c.text_vocab_size)), Array.from({ length: nPrompt }, () => r.int(c.text_vocab_size)), null);
  const codes = Array.from({ length: nCodes }, () => r.int(Vo));
  return { rows: [...cond, { kind: "audio", id: speechCodes(c).SOS }, ...codes.map((id) => ({ kind: "audio" as const, id }))], C: cond.length };
}

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

describe("released MoE-TTS graph vs the plain-TS reference", () => {
  const cases: [SpeechAttention, SpeechCapacity, number][] = [
    ["none", "train", 1],
    ["prefix_causal", "train", 2],
    ["causal", "eval", 3],
    ["none", "off", 4],
    ["prefix_causal", "eval", 5],
  ];
  let dropsSeen = 0;
  for (const [attention, capacity, seed] of cases) {
    it(`attention ${attention}, capacity ${capacity}: logits ≤ 1e-4, e1/e2, masks and drops exact`, async () => {
      const { rows, C } = randomRows(seed, 6 + seed, 3, 8 + 2 * seed);
      const S = rows.length;
      const cap = speechCapacity(c, S, capacity);
      const g = await full.forward(rows, attentionBias(attention, C, 0, S), cap);
      const ref = referenceSpeechForward(c, W, rows, C, { attention, cap });
      const dl = maxDiff(g.logits, ref.logits);
      let dw = 0, drops = 0;
      for (let l = 0; l < L; l++) {
        expect(Array.from(g.layers[l]!.selected)).toEqual(ref.routing[l]!.selected);
        expect(Array.from(g.layers[l]!.mask)).toEqual(Array.from(ref.routing[l]!.mask));
        expect(Array.from(g.layers[l]!.dropped)).toEqual(Array.from(ref.routing[l]!.dropped));
        dw = Math.max(dw, maxDiff(g.layers[l]!.weights, ref.routing[l]!.weights), maxDiff(g.layers[l]!.routerLogits, ref.routing[l]!.logits));
        drops += ref.routing[l]!.dropped.reduce((a, b) => a + b, 0);
      }
      dropsSeen += drops;
      console.log(`${attention}/${capacity} S=${S} cap=${cap}: max |Δlogits| ${dl.toExponential(2)}, max |Δrouting| ${dw.toExponential(2)}, drops ${drops}`);
      expect(dl).toBeLessThanOrEqual(1e-4);
      expect(dw).toBeLessThanOrEqual(1e-5);
      if (capacity === "off") expect(drops).toBe(0);
    });
  }
  it("the seeded routers are skewed enough that training capacity drops choices", () => expect(dropsSeen).toBeGreaterThan(0));

  it("seeded Gumbel second-expert sampling and attention dropout: the same noise in both gives the same result", async () => {
    const { rows, C } = randomRows(9, 7, 2, 10);
    const S = rows.length;
    const cap = speechCapacity(c, S, "train");
    const noise = { gumbel: new SeededRandom(5), dropout: new SeededRandom(6) };
    const g = await noisy.forward(rows, attentionBias("none", C, 0, S), cap, noise);
    // replay the runner's draw order: all Gumbel values, then the dropout multipliers
    const gr = new SeededRandom(5), dr = new SeededRandom(6);
    const gumbel = Float32Array.from({ length: L * S * E }, () => -Math.log(-Math.log(Math.max(gr.uniform(), 1e-20))));
    const p = c.transformer_dropout_rate;
    const keep = Float32Array.from({ length: L * NH * S * S }, () => (dr.uniform() < p ? 0 : 1 / (1 - p)));
    const ref = referenceSpeechForward(c, W, rows, C, { attention: "none", cap, gumbel, keep });
    const quiet = referenceSpeechForward(c, W, rows, C, { attention: "none", cap });
    const dl = maxDiff(g.logits, ref.logits);
    console.log(`gumbel + dropout: max |Δlogits| ${dl.toExponential(2)} (vs noiseless ${maxDiff(ref.logits, quiet.logits).toExponential(2)})`);
    expect(dl).toBeLessThanOrEqual(1e-4);
    for (let l = 0; l < L; l++) expect(Array.from(g.layers[l]!.selected)).toEqual(ref.routing[l]!.selected);
    expect(maxDiff(ref.logits, quiet.logits)).toBeGreaterThan(1e-3);
  });

  it("cached mode (prefix mask, KV cache, no capacity) decodes the same codes as the reference's prefix-causal recompute, rows within 1e-4", async () => {
    const { rows } = randomRows(21, 9, 3, 0);
    const cond = rows.slice(0, -1);
    const out = await decodeSpeechChunk(cached, cond, { mode: "cached", maxCodes: 12 });
    // reference: greedy with a full prefix-causal forward per step
    const seq = [...cond, { kind: "audio" as const, id: speechCodes(c).SOS }];
    const codes: number[] = [];
    let ref = referenceSpeechForward(c, W, seq, cond.length, { attention: "prefix_causal", cap: Infinity });
    for (let step = 0; step < 12; step++) {
      const last = ref.logits.subarray((seq.length - 1) * Vo, seq.length * Vo);
      const next = last.indexOf(Math.max(...last));
      if (next === speechCodes(c).EOS) break;
      codes.push(next);
      seq.push({ kind: "audio", id: next });
      ref = referenceSpeechForward(c, W, seq, cond.length, { attention: "prefix_causal", cap: Infinity });
    }
    expect(out.codes).toEqual(codes);
    expect(out.rows.length).toBe(seq.length);
    const masks = out.layers.map((l) => Array.from(l.mask));
    expect(masks).toEqual(ref.routing.map((r) => Array.from(r.mask)));
    expect(maxDiff(out.layers[L - 1]!.routerLogits, ref.routing[L - 1]!.logits)).toBeLessThanOrEqual(1e-4);
  });

  it("release mode recomputes the whole sequence per code (no mask, training capacity) as the reference does", async () => {
    const { rows } = randomRows(22, 8, 2, 0);
    const cond = rows.slice(0, -1);
    const out = await decodeSpeechChunk(full, cond, { mode: "release", maxCodes: 10 });
    const seq = [...cond, { kind: "audio" as const, id: speechCodes(c).SOS }];
    const codes: number[] = [];
    let ref;
    for (;;) {
      ref = referenceSpeechForward(c, W, seq, cond.length, { attention: "none", cap: speechCapacity(c, seq.length, "train") });
      if (codes.length >= 10) break;
      const last = ref.logits.subarray((seq.length - 1) * Vo, seq.length * Vo);
      const next = last.indexOf(Math.max(...last));
      if (next === speechCodes(c).EOS) break;
      codes.push(next);
      seq.push({ kind: "audio", id: next });
    }
    expect(out.codes).toEqual(codes);
    expect(out.layers.map((l) => Array.from(l.dropped))).toEqual(ref.routing.map((r) => Array.from(r.dropped)));
  });

  it("teacher-forced recompute: row t is the last row of the forward over C+1+t rows; single: rows C..C+n of one forward", async () => {
    const r = new SeededRandom(31);
    const input = { text_ids: [5, 17, 250, 3, 99], prompt_ids: [] as number[], prefix_codes: null, codes: Array.from({ length: 7 }, () => r.int(Vo)) };
    const cond = conditioningRows(c, input.text_ids, input.prompt_ids, null);
    const C = cond.length;
    const all = [...cond, { kind: "audio" as const, id: speechCodes(c).SOS }, ...input.codes.map((id) => ({ kind: "audio" as const, id }))];
    const rec = await teacherForced(full, { ...input, mode: { attention: "none", steps: "recompute", capacity: "train" } });
    const sgl = await teacherForced(full, { ...input, mode: { attention: "none", steps: "single", capacity: "train" } });
    expect(rec.logits.length).toBe(8);
    let d = 0, dSingle = 0, gap = 0;
    for (let t = 0; t <= 7; t++) {
      const S = C + 1 + t;
      const ref = referenceSpeechForward(c, W, all.slice(0, S), C, { attention: "none", cap: speechCapacity(c, S, "train") });
      d = Math.max(d, maxDiff(rec.logits[t]!, ref.logits.subarray((S - 1) * Vo, S * Vo)));
    }
    const refFull = referenceSpeechForward(c, W, all, C, { attention: "none", cap: speechCapacity(c, all.length, "train") });
    for (let t = 0; t <= 7; t++) {
      dSingle = Math.max(dSingle, maxDiff(sgl.logits[t]!, refFull.logits.subarray((C + t) * Vo, (C + t + 1) * Vo)));
      gap = Math.max(gap, maxDiff(sgl.logits[t]!, rec.logits[t]!));
    }
    console.log(`tts-forward: recompute max |Δ| ${d.toExponential(2)}, single ${dSingle.toExponential(2)}; recompute vs single differ by ${gap.toFixed(3)} (no mask)`);
    expect(d).toBeLessThanOrEqual(1e-4);
    expect(dSingle).toBeLessThanOrEqual(1e-4);
    expect(rec.layers[0]!.mask.length).toBe(all.length);
    expect(rec.layers.map((l) => l.mask.flat())).toEqual(refFull.routing.map((x) => Array.from(x.mask)));
    expect(rec.layers[1]!.selected[0]).toEqual(refFull.routing[1]!.selected.slice(0, 2));
  });
});
