/**
 * The MoE-LLM node's scoring modes and logit lens on the seeded uni-moe-tiny/tiny model, with a real ONNX
 * Runtime session: the NLL it reports agrees with the plain-TS reference forward of the same weights.
 */
import { describe, expect, it } from "vitest";
import type { RoutingTrace } from "@/engine/trace";
import { SafetensorsWeights } from "@/models/io/safetensors";
import { byteTokenizer } from "@/models/text/tokenizer";
import { ensureReferenceModel } from "@/models/moe-llm/uni-moe-tiny";
import { moeLlm, type LlmOutputValue, type ScoreValue } from "@/nodes/moe-llm";
import { moeLlmWorld } from "./moe-llm-fixture";
import { referenceForward } from "../../reference/moe-llm";

let dir: string;
const { ctx } = moeLlmWorld("score", async () => {
  dir = (await ensureReferenceModel("tiny")).dir;
});

async function run(params: Record<string, unknown>, inputs: Record<string, unknown>) {
  const out = await moeLlm.execute({ inputs, params: moeLlm.params.parse({ maxNewTokens: 3, ...params }), ctx: ctx() });
  return out as { output: LlmOutputValue; trace: RoutingTrace; score?: ScoreValue };
}

describe("MoE-LLM node: teacher-forced scoring", () => {
  it("score-answer: the answer's NLL given the templated prompt equals the plain-TS reference (≤ 1e-5); the trace carries it per token", async () => {
    const out = await run({ mode: "score-answer" }, { prompt: "What is 7 + 5?", answer: "12, of course." });
    const s = out.score!;
    const promptIds = out.output.promptIds;
    const answerIds = byteTokenizer.encode("12, of course.", { allowSpecial: false });
    expect(out.output.ids).toEqual(answerIds);
    expect(s.tokens).toBe(answerIds.length);
    expect(s.mode).toBe("answer");
    const ids = [...promptIds, ...answerIds];
    const w = new SafetensorsWeights(dir);
    const { config } = await ensureReferenceModel("tiny");
    const ref = referenceForward(config, w, { batch: 1, seq: ids.length, ids, positions: [...ids.keys(), ...ids.keys(), ...ids.keys()] });
    w.close();
    const V = config.vocab_size;
    const want = answerIds.map((id, j) => {
      const t = promptIds.length + j;
      const row = Array.from(ref.logits.subarray((t - 1) * V, t * V));
      const mx = Math.max(...row);
      return mx + Math.log(row.reduce((a, v) => a + Math.exp(v - mx), 0)) - row[id]!;
    });
    const d = Math.max(...want.map((v, j) => Math.abs(v - s.perToken[j]!.nll)));
    const mean = want.reduce((a, b) => a + b, 0) / want.length;
    console.log(`tiny, ${ids.length} tokens: per-token |ΔNLL| ${d.toExponential(2)}, mean NLL ${s.meanNll.toFixed(4)} (|Δ| ${Math.abs(mean - s.meanNll).toExponential(2)})`);
    expect(d).toBeLessThan(1e-5);
    expect(Math.abs(mean - s.meanNll)).toBeLessThan(1e-5);
    expect(s.perplexity).toBeCloseTo(Math.exp(s.meanNll), 10);
    const scored = out.trace.tokens.map((t) => t.nll);
    expect(scored.slice(0, promptIds.length).every((v) => v === undefined)).toBe(true);
    expect(scored.slice(promptIds.length)).toEqual(s.perToken.map((p) => p.nll));
    expect(out.trace.tokens).toHaveLength(ids.length);
    expect(moeLlm.summarize!(out)).toMatch(/^14 answer token\(s\): mean NLL \d+\.\d{3} nats · perplexity [\d.]+ \(one forward pass/);
  });

  it("score-text scores every token of the raw prompt after the first; score-answer without an answer is a clear error; a ban changes the NLL", async () => {
    const t = await run({ mode: "score-text" }, { prompt: "the cat sleeps" });
    expect(t.score!.tokens).toBe(byteTokenizer.encode("the cat sleeps").length - 1);
    expect(t.output.promptFormat).toMatch(/no chat template/);
    await expect(run({ mode: "score-answer" }, { prompt: "hi" })).rejects.toThrow(/needs a reference answer/);
    const base = await run({ mode: "score-answer" }, { prompt: "hi", answer: "hello" });
    const banned = await run({ mode: "score-answer", interventions: JSON.stringify([{ layer: "*", expert: "E1", action: "ban" }]) }, { prompt: "hi", answer: "hello" });
    expect(banned.score!.meanNll).not.toBe(base.score!.meanNll);
  });
});

describe("MoE-LLM node: logit lens", () => {
  it("generate: every traced token gets a lens over all layers; the last layer's top-1 at the prompt's end is the greedy first token", async () => {
    const out = await run({ logitLens: true, maxNewTokens: 4 }, { prompt: "Describe the image." });
    const lens = out.trace.lens!;
    const N = out.trace.tokens.length;
    expect(lens.layers).toHaveLength(8);
    expect(lens.k).toBe(5);
    for (const l of lens.layers) {
      expect(l.topIds).toHaveLength(N * 5);
      expect(l.kl).toHaveLength(N);
    }
    const last = lens.layers[7]!;
    expect(Array.from(last.finalRank).every((r) => r === 0)).toBe(true);
    expect(Math.max(...Array.from(last.kl, Math.abs))).toBeLessThan(1e-5);
    const n = out.output.promptIds.length;
    // row n-1 predicts the first generated token; each fed generated token predicts the next
    expect(last.topIds[(n - 1) * 5]).toBe(out.output.ids[0]);
    for (let j = 1; j < out.output.ids.length && n - 1 + j < N; j++) expect(last.topIds[(n - 1 + j) * 5]).toBe(out.output.ids[j]);
    const plain = await run({ maxNewTokens: 4 }, { prompt: "Describe the image." });
    expect(plain.trace.lens).toBeUndefined();
    expect(plain.output.ids).toEqual(out.output.ids);
  });

  it("score mode with the lens: the lens covers prompt and answer", async () => {
    const out = await run({ mode: "score-answer", logitLens: true }, { prompt: "hi", answer: "hello there" });
    expect(out.trace.lens!.layers[0]!.finalRank).toHaveLength(out.trace.tokens.length);
  });
});
