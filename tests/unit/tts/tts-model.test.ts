import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { traceProblems } from "@/engine/routing/export";
import { CodecRunner } from "@/models/tts/codec";
import { SeededRandom } from "@/models/io/seeded-random";
import { byteTokenizer } from "@/models/text/tokenizer";
import { codecLogits, conditioningIds, decodeChunk, pickCodecOrEos, synthesize, TtsRunner, ttsTokenText } from "@/models/tts/tts";
import { checkTtsConfig, ttsIds, ttsParamTable, type TtsConfig } from "@/models/tts/tts-graph";
import { seedTtsWeights, ttsReferenceConfig } from "@/models/tts/tts-tiny";
import { MemoryWeights } from "@/models/io/weights";
import { maxAbsDiff, referenceForward } from "./reference";

const config = ttsReferenceConfig();
const W = seedTtsWeights(config, 7);
let cached: TtsRunner, full: TtsRunner, codec: CodecRunner;
const greedy = { temperature: 0, topK: 0, topP: 1 };

beforeAll(async () => {
  const opts = { intraOpNumThreads: 1 };
  cached = await TtsRunner.create(config, new MemoryWeights(W.decoder), { kvCache: true, trace: true }, opts);
  full = await TtsRunner.create(config, new MemoryWeights(W.decoder), { kvCache: false, trace: true }, opts);
  codec = await CodecRunner.create(config.codec, new MemoryWeights(W.codec), opts);
});
afterAll(async () => {
  await Promise.all([cached?.release(), full?.release(), codec?.release()]);
});

/** A short sequence: conditioning + a few codec codes. */
function sampleSequence(c: TtsConfig): number[] {
  const id = ttsIds(c);
  return [...conditioningIds(c, "Language: English; Speaker: A;", "Hi, there!"), id.code(0), id.code(4095), id.code(1234), id.code(77)];
}

describe("id layout and config", () => {
  it("puts text ids first, then the 6 control tokens, then 4096 codec codes", () => {
    const id = ttsIds(config);
    expect(id.textVocab).toBe(byteTokenizer.vocabSize);
    expect([id.SOPT, id.EOPT, id.BOS, id.EOT, id.SOS, id.EOS]).toEqual([0, 1, 2, 3, 4, 5].map((i) => byteTokenizer.vocabSize + i));
    expect(id.codecOffset).toBe(byteTokenizer.vocabSize + 6);
    expect(config.vocab_size).toBe(id.codecOffset + 4096);
    expect(ttsTokenText(config, id.code(12))).toBe("<c12>");
    expect(ttsTokenText(config, id.EOS)).toBe("[EOS]");
    expect(ttsTokenText(config, 72)).toBe("H");
    expect(() => checkTtsConfig({ ...config, codec_offset: config.codec_offset + 1 })).toThrow(/codec_offset/);
  });

  it("lays out the conditioning as [SOPT] style [EOPT] [BOS] text [EOT] [SOS]", () => {
    const id = ttsIds(config);
    const ids = conditioningIds(config, "S;", "hi");
    expect(ids).toEqual([id.SOPT, 83, 59, id.EOPT, id.BOS, 104, 105, id.EOT, id.SOS]);
    // special-token text inside is spoken as bytes, never as an LLM special id
    expect(conditioningIds(config, "", "<|im_end|>").every((t) => t < 256 || t >= id.textVocab)).toBe(true);
  });

  it("has the parameter table the seeded weights follow", () => {
    const table = ttsParamTable(config);
    expect(W.decoder.size).toBe(table.length);
    for (const p of table) expect(W.decoder.get(p.name)!.shape).toEqual(p.shape);
    expect(W.decoder.get("model.layers.0.mlp.gate.weight")!.shape).toEqual([4, 64]);
  });
});

describe("ONNX graph vs plain-TS reference", () => {
  it("matches one forward over a short sequence (logits and top-2 routing) within 1e-4", async () => {
    const ids = sampleSequence(config);
    const pos = ids.map((_, i) => i);
    const ref = referenceForward(config, W.decoder, ids, pos);
    const out = await full.forward(ids, pos);
    const dLogits = maxAbsDiff(out.logits, ref.logits);
    let dRouter = 0, dWeights = 0;
    out.trace!.forEach((l, i) => {
      const r = ref.routing[i]!;
      dRouter = Math.max(dRouter, maxAbsDiff(l.routerLogits, r.logits));
      dWeights = Math.max(dWeights, maxAbsDiff(l.weights, r.weights));
      expect(Array.from(l.mask)).toEqual(Array.from(r.mask));
      expect(Array.from(l.k)).toEqual(r.k);
    });
    console.log(`TTS graph vs reference (${ids.length} tokens): max |Δlogits| = ${dLogits.toExponential(2)}, |Δrouter logits| = ${dRouter.toExponential(2)}, |Δweights| = ${dWeights.toExponential(2)}`);
    expect(dLogits).toBeLessThan(1e-4);
    expect(dRouter).toBeLessThan(1e-4);
    expect(dWeights).toBeLessThan(1e-4);
    // the seeded routers really route: every expert is used somewhere, and each row uses exactly 2
    const used = new Set<number>();
    out.trace!.forEach((l) => l.mask.forEach((m, j) => m && used.add(j % 4)));
    expect(used.size).toBe(4);
    for (const l of out.trace!) for (let t = 0; t < ids.length; t++) expect(l.mask.subarray(t * 4, t * 4 + 4).reduce((a, b) => a + b, 0)).toBe(2);
  });

  it("decodes with the KV cache exactly as a full recomputation", async () => {
    const ids = sampleSequence(config);
    const V = config.vocab_size;
    const whole = await full.forward(ids);
    const n0 = ids.length - 4;
    let out = await cached.forward(ids.slice(0, n0));
    let d = maxAbsDiff(out.logits, whole.logits.subarray(0, n0 * V));
    let cache = out.present!;
    for (let t = n0; t < ids.length; t++) {
      out = await cached.forward([ids[t]!], undefined, cache);
      cache = out.present!;
      d = Math.max(d, maxAbsDiff(out.logits, whole.logits.subarray(t * V, (t + 1) * V)));
      out.trace!.forEach((l, i) => {
        const w = whole.trace![i]!;
        d = Math.max(d, maxAbsDiff(l.weights, w.weights.subarray(t * 4, t * 4 + 4)), maxAbsDiff(l.routerLogits, w.routerLogits.subarray(t * 4, t * 4 + 4)));
        expect(Array.from(l.mask)).toEqual(Array.from(w.mask.subarray(t * 4, t * 4 + 4)));
      });
    }
    console.log(`TTS KV cache vs full recomputation: max |Δ| = ${d.toExponential(2)}`);
    expect(cache.length).toBe(ids.length);
    expect(d).toBeLessThan(1e-5);
  });

  it("generates the same greedy codes with the cache as by recomputing the whole sequence each step", async () => {
    const id = ttsIds(config);
    const r = await decodeChunk(cached, "Speaker: A;", "One two.", 6, greedy, new SeededRandom(0));
    const seq = conditioningIds(config, "Speaker: A;", "One two.");
    const codes: number[] = [];
    for (let step = 0; step < 6; step++) {
      const out = await full.forward(seq);
      const next = pickCodecOrEos(config, out.logits.subarray((seq.length - 1) * config.vocab_size), greedy, new SeededRandom(0));
      if (next === id.EOS) break;
      codes.push(next - id.codecOffset);
      seq.push(next);
    }
    expect(r.codes).toEqual(codes);
  });
});

describe("decoding", () => {
  it("only ever emits codec codes or [EOS], greedy and sampled", async () => {
    const id = ttsIds(config);
    for (const [o, seed] of [[greedy, 0], [{ temperature: 2, topK: 0, topP: 1 }, 1], [{ temperature: 1, topK: 20, topP: 0.9 }, 2]] as const) {
      const r = await decodeChunk(cached, "", "Test.", 12, o, new SeededRandom(seed));
      for (const t of r.tokens.filter((tk) => tk.phase === "decode")) expect(id.isCode(t.id)).toBe(true);
      for (const code of r.codes) expect(code >= 0 && code < 4096).toBe(true);
    }
    // even when text and control ids would win by far, the pick stays in codes + [EOS]
    const rng = new SeededRandom(3);
    const logits = new Float32Array(config.vocab_size).fill(-5);
    for (let t = 0; t < id.codecOffset; t++) if (t !== id.EOS) logits[t] = 50;
    for (let i = 0; i < 200; i++) {
      const next = pickCodecOrEos(config, logits, { temperature: 1.5, topK: 0, topP: 1 }, rng);
      expect(id.isCode(next) || next === id.EOS).toBe(true);
    }
    logits[id.EOS] = 60;
    expect(pickCodecOrEos(config, logits, greedy, rng)).toBe(id.EOS);
    expect(codecLogits(config, logits).length).toBe(4097);
  });

  it("stops a chunk at [EOS] and does not feed it back", async () => {
    const id = ttsIds(config);
    let calls = 0;
    const fake = {
      config,
      async forward(ids: readonly number[], _pos?: readonly number[], past?: { length: number }) {
        calls++;
        const V = config.vocab_size;
        const logits = new Float32Array(ids.length * V);
        const last = logits.subarray((ids.length - 1) * V);
        if (calls >= 4) last[id.EOS] = 10;
        else last[id.code(100 + calls)] = 10;
        const L = config.num_hidden_layers, S = ids.length;
        const weights = new Float32Array(S * 4).map((_, j) => (j % 4 < 2 ? 0.5 : 0));
        return {
          logits,
          present: { length: (past?.length ?? 0) + S, keys: [], values: [] },
          trace: Array.from({ length: L }, () => ({ routerLogits: new Float32Array(S * 4), mask: Uint8Array.from(weights, (w) => (w > 0 ? 1 : 0)), weights, k: new Int32Array(S).fill(2) })),
        };
      },
    } as unknown as TtsRunner;
    const r = await decodeChunk(fake, "", "x", 100, greedy, new SeededRandom(0));
    expect(r.codes).toEqual([101, 102, 103]);
    expect(r.stopReason).toBe("eos");
    expect(calls).toBe(4);
    expect(r.tokens.filter((t) => t.phase === "decode").map((t) => t.id)).toEqual([101, 102, 103].map(id.code));
  });

  it("honours cancellation", async () => {
    const ac = new AbortController();
    let n = 0;
    await expect(decodeChunk(cached, "", "Cancel me.", 50, { ...greedy, signal: ac.signal, onToken: () => ++n === 3 && ac.abort() }, new SeededRandom(0))).rejects.toThrow(/cancelled/);
    expect(n).toBe(3);
  });

  it("synthesises chunks in turn within max seconds, with one valid routing trace over all of them", async () => {
    const progress: number[] = [];
    const r = await synthesize(cached, codec, [{ style: "Language: English; Speaker: A;", text: "First part. Second part! Third?" }], {
      ...greedy,
      seed: 0,
      maxSeconds: 1,
      modelName: "uni-moe-tiny/tts",
      onProgress: (done) => progress.push(done),
    });
    const total = r.chunks.reduce((a, c) => a + c.codes.length, 0);
    expect(r.chunks.map((c) => c.text)).toEqual(["First part.", "Second part!", "Third?"]);
    expect(total).toBeLessThanOrEqual(40);
    expect(r.waveform.length).toBe(total * 600);
    expect(r.durationSec).toBeCloseTo(total / 40, 10);
    expect(progress).toEqual(Array.from({ length: total }, (_, i) => i + 1));
    const t = r.trace;
    expect(t.experts).toEqual(["E1", "E2", "E3", "E4"].map((name) => ({ name, role: "routed" })));
    expect(t.convention).toMatch(/^MoE-TTS: softmax top-2 over 4 experts/);
    const cond = r.chunks.reduce((a, c) => a + conditioningIds(config, "Language: English; Speaker: A;", c.text).length, 0);
    expect(t.tokens.length).toBe(cond + total);
    expect(t.tokens.filter((tk) => tk.phase === "prefill").length).toBe(cond);
    expect(t.tokens.filter((tk) => tk.phase === "decode").every((tk) => tk.modality === "speech" && /^<c\d+>$/.test(tk.text))).toBe(true);
    expect(t.layers).toHaveLength(config.num_hidden_layers);
    expect(traceProblems(t)).toEqual([]);
  });
});

describe("codec", () => {
  it("gives exactly codes × 600 samples with |x| ≤ 1", async () => {
    const rng = new SeededRandom(5);
    for (const T of [1, 3, 40]) {
      const codes = Array.from({ length: T }, () => rng.int(4096));
      const wave = await codec.decode(codes);
      expect(wave.length).toBe(T * 600);
      let max = 0, ss = 0;
      for (const x of wave) {
        expect(Number.isFinite(x)).toBe(true);
        max = Math.max(max, Math.abs(x));
        ss += x * x;
      }
      expect(max).toBeLessThanOrEqual(1);
      expect(Math.sqrt(ss / wave.length)).toBeGreaterThan(0.01); // audible, not silence
    }
    expect((await codec.decode([])).length).toBe(0);
    await expect(codec.decode([4096])).rejects.toThrow(/outside/);
  });

  it("is local: a code changes only the samples within a few frames of its own", async () => {
    const a = await codec.decode([1, 2, 3, 4, 5, 6, 7, 8]);
    const b = await codec.decode([1, 2, 3, 4, 5, 6, 7, 9]);
    let first = 0;
    while (first < a.length && a[first] === b[first]) first++;
    console.log(`codec: changing code 7 first changes sample ${first} (frame ${(first / 600).toFixed(2)})`);
    // conv_in (k = 7 at the code rate) reaches 3 frames back; the upsampling stack adds less than a frame
    expect(first).toBeGreaterThanOrEqual(3 * 600);
    expect(maxAbsDiff(a.subarray(7 * 600), b.subarray(7 * 600))).toBeGreaterThan(0);
  });
});
