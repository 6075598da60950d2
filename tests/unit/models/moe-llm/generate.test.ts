import { llmOutputHeadline } from "@/engine/values/llm-output";
import { describe, expect, it } from "vitest";
import { generate, GenerationCancelled, type DecoderModel } from "@/models/moe-llm/generate";
import { MoeLlmRunner, type ForwardInput, type ForwardOutput } from "@/models/moe-llm/moe-llm-session";
import { argmax } from "@/models/text/sampling";
import { byteTokenizer } from "@/models/text/tokenizer";
import { randomConfig, randomWeights } from "../../../reference/random";

const greedy = { temperature: 0, topK: 0, topP: 1, seed: 0 };

describe("generate on a real decoder graph", () => {
  it("greedy decoding with the KV cache equals argmax of full recomputation, with a per-phase trace", async () => {
    const config = randomConfig(11, { vocab_size: 320, num_hidden_layers: 2 });
    const weights = randomWeights(config, 11);
    const cached = await MoeLlmRunner.create(config, weights, { moe: "sparse", trace: true, kvCache: true });
    const full = await MoeLlmRunner.create(config, weights, { moe: "sparse", trace: true, kvCache: false });
    const prompt = [256, 72, 101, 108, 108, 111];
    const result = await generate(cached, byteTokenizer, { ids: prompt, modelName: "random" }, { ...greedy, maxNewTokens: 6, stopTokens: [] });
    // Independent loop: re-run the whole sequence each step, take argmax of the last position.
    const seq = [...prompt];
    for (let step = 0; step < 6; step++) {
      const n = seq.length;
      const pos = [...seq.keys()];
      const out = await full.forward({ batch: 1, seq: n, ids: seq, positions: [...pos, ...pos, ...pos] });
      seq.push(argmax(out.logits.subarray((n - 1) * config.vocab_size, n * config.vocab_size)));
    }
    expect(result.newIds).toEqual(seq.slice(prompt.length));
    expect(result.stopReason).toBe("max-tokens");
    // Every token the model read is traced: the prompt (prefill) and generated tokens fed back (decode).
    const t = result.trace;
    expect(t.tokens.map((x) => x.phase)).toEqual([...Array(prompt.length).fill("prefill"), ...Array(5).fill("decode")]);
    expect(t.tokens.map((x) => x.position[0])).toEqual([...Array(11).keys()]);
    expect(t.layers).toHaveLength(2);
    const E = t.experts.length;
    for (const l of t.layers) {
      expect(l.k).toHaveLength(11);
      expect(l.weights).toHaveLength(11 * E);
      for (let i = 0; i < 11; i++) {
        const row = l.weights.subarray(i * E, (i + 1) * E);
        expect(row.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 4);
      }
    }
    await cached.release();
    await full.release();
  });
});

/** A scripted decoder: emits the given ids in order (logit 10 on the scripted id), hidden = [step]. */
function scripted(ids: number[], H = 4, V = 320): DecoderModel & { calls: ForwardInput[] } {
  let step = 0;
  const calls: ForwardInput[] = [];
  return {
    calls,
    config: randomConfig(1, { vocab_size: V, hidden_size: H, num_hidden_layers: 1 }),
    async forward(input: ForwardInput): Promise<ForwardOutput> {
      calls.push(input);
      const logits = new Float32Array(input.seq * V);
      logits[(input.seq - 1) * V + ids[Math.min(step, ids.length - 1)]!] = 10;
      const lastHidden = new Float32Array(input.seq * H).fill(step);
      step++;
      const E = 7;
      const layer = { layer: 0, routerLogits: new Float32Array(input.seq * E), mask: new Float32Array(input.seq * E), weights: new Float32Array(input.seq * E), k: new BigInt64Array(input.seq) };
      return { logits, lastHidden, present: { length: 0, keys: [], values: [] }, trace: [layer] };
    },
  };
}

describe("generate (loop logic, scripted decoder)", () => {
  const img0 = byteTokenizer.tokenId("[IMG0]");
  const task1 = byteTokenizer.tokenId("[TASK1]");
  const end = byteTokenizer.tokenId("<|im_end|>");

  it("stops on a stop token, keeps it, and does not feed it back", async () => {
    const m = scripted([65, 66, end, 67]);
    const r = await generate(m, byteTokenizer, { ids: [1, 2], modelName: "s" }, { ...greedy, maxNewTokens: 10, stopTokens: [end] });
    expect(r.newIds).toEqual([65, 66, end]);
    expect(r.stopReason).toBe("stop-token");
    expect(r.text).toBe("AB<|im_end|>");
    expect(m.calls).toHaveLength(3); // prefill + feeding A and B
    expect(m.calls[1]!.positions).toEqual([2, 2, 2]);
  });

  it("keeps the hidden state of generated special tokens, feeding one back even when it is the last", async () => {
    const m = scripted([task1, 65, img0]);
    const r = await generate(m, byteTokenizer, { ids: [1], modelName: "s" }, { ...greedy, maxNewTokens: 3, stopTokens: [] });
    expect(r.newIds).toEqual([task1, 65, img0]);
    expect(r.specialHidden.map((s) => [s.token, s.index, s.hidden[0]])).toEqual([
      ["[TASK1]", 0, 1],
      ["[IMG0]", 2, 3],
    ]);
  });

  it("forced control tokens go before the stop token, each fed once, head tokens keep their hidden states", async () => {
    const task0 = byteTokenizer.tokenId("[TASK0]");
    const m = scripted([65, end]);
    const r = await generate(m, byteTokenizer, { ids: [1], modelName: "s" }, { ...greedy, maxNewTokens: 10, stopTokens: [end], forceSuffix: [task0, img0] });
    expect(r.newIds).toEqual([65, task0, img0, end]);
    expect(r.forced).toBe(2);
    // the node's headline counts what the model generated apart from what was appended
    expect(llmOutputHeadline({ ids: r.newIds, forcedTokens: r.forced, stopReason: r.stopReason })).toBe("2 generated tokens (stop-token) + 2 control tokens appended");
    expect(llmOutputHeadline({ ids: [65], stopReason: "max-tokens" })).toBe("1 generated token (max-tokens)");
    expect(llmOutputHeadline({ ids: [65, 66], stopReason: "scored (teacher-forced)" })).toBe("2 answer tokens scored (teacher-forced), none generated");
    expect(r.text).toBe("A[TASK0][IMG0]<|im_end|>");
    expect(r.stopReason).toBe("stop-token");
    expect(m.calls.map((c) => c.ids)).toEqual([[1], [65], [task0], [img0]]);
    expect(r.specialHidden.map((h) => [h.token, h.index, h.hidden[0]])).toEqual([
      ["[TASK0]", 1, 2],
      ["[IMG0]", 2, 3],
    ]);
    expect(r.trace.tokens.map((t) => t.phase)).toEqual(["prefill", "decode", "decode", "decode"]);
  });

  it("cancellation stops between tokens", async () => {
    const controller = new AbortController();
    const m = scripted([65, 66, 67, 68]);
    const p = generate(m, byteTokenizer, { ids: [1], modelName: "s" }, { ...greedy, maxNewTokens: 50, stopTokens: [], signal: controller.signal, onToken: (step) => step === 1 && controller.abort() });
    await expect(p).rejects.toBeInstanceOf(GenerationCancelled);
  });

  it("rejects ids outside the vocabulary and mismatched positions", async () => {
    await expect(generate(scripted([65]), byteTokenizer, { ids: [999], modelName: "s" }, { ...greedy, maxNewTokens: 1, stopTokens: [] })).rejects.toThrow(/outside the model's vocabulary/);
    await expect(
      generate(scripted([65]), byteTokenizer, { ids: [1, 2], positions: { t: [0], h: [0], w: [0] }, modelName: "s" }, { ...greedy, maxNewTokens: 1, stopTokens: [] }),
    ).rejects.toThrow(/positions/);
  });
});

describe("generate from input embeddings (multimodal prompts)", () => {
  it("an embeds prompt whose rows are the token embeddings generates exactly what the ids prompt does", async () => {
    const config = randomConfig(12, { vocab_size: 320, num_hidden_layers: 2 });
    const weights = randomWeights(config, 12);
    const byIds = await MoeLlmRunner.create(config, weights, { moe: "sparse", trace: true, kvCache: true });
    const byEmbeds = await MoeLlmRunner.create(config, weights, { moe: "sparse", trace: true, kvCache: true, embeds: true });
    const H = config.hidden_size;
    const table = weights.get("model.embed_tokens.weight").data;
    const token = (id: number) => table.slice(id * H, (id + 1) * H);
    const prompt = [256, 72, 101, 108, 108, 111, 33];
    const embeds = new Float32Array(prompt.length * H);
    prompt.forEach((id, i) => embeds.set(token(id), i * H));
    // 3D positions as a Prompt Builder would give them for a small span.
    const positions = { t: [0, 1, 2, 2, 2, 2, 5], h: [0, 1, 2, 2, 3, 3, 5], w: [0, 1, 2, 3, 2, 3, 5] };
    const a = await generate(byIds, byteTokenizer, { ids: prompt, positions, modelName: "r" }, { ...greedy, maxNewTokens: 5, stopTokens: [] });
    const b = await generate(byEmbeds, byteTokenizer, { ids: prompt, positions, embeds: { prompt: embeds, token }, modelName: "r" }, { ...greedy, maxNewTokens: 5, stopTokens: [] });
    expect(b.newIds).toEqual(a.newIds);
    expect(b.trace.tokens.map((t) => t.position)).toEqual(a.trace.tokens.map((t) => t.position));
    // Decode continues after the largest position id of the prompt.
    expect(a.trace.tokens[prompt.length]!.position).toEqual([6, 6, 6]);
    await byIds.release();
    await byEmbeds.release();
  });
});
