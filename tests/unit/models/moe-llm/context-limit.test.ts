import { afterEach, describe, expect, it } from "vitest";
import { checkContext, contextLimit } from "@/models/moe-llm/context-limit";
import { MoeLlmRunner } from "@/models/moe-llm/moe-llm-session";
import { randomConfig, randomWeights } from "../../../reference/random";

// A prompt is refused before its embeddings or any tensor exist when it is longer than the server allows
// (STUDIO_MAX_CONTEXT_TOKENS) or the model was built for (max_position_embeddings): the prefill's attention is S² per
// head, so a 16 MB text through a byte tokenizer would otherwise ask for terabytes.
const saved = process.env.STUDIO_MAX_CONTEXT_TOKENS;
afterEach(() => {
  if (saved === undefined) delete process.env.STUDIO_MAX_CONTEXT_TOKENS;
  else process.env.STUDIO_MAX_CONTEXT_TOKENS = saved;
});

describe("context limit", () => {
  it("the smaller of the server's limit and the model's max_position_embeddings", () => {
    const c = randomConfig(3, { vocab_size: 320, num_hidden_layers: 1 });
    delete process.env.STUDIO_MAX_CONTEXT_TOKENS;
    expect(contextLimit({ ...c, max_position_embeddings: 32768 } as never)).toEqual({ tokens: 8192, by: "STUDIO_MAX_CONTEXT_TOKENS (8192)" });
    expect(contextLimit({ ...c, max_position_embeddings: 2048 } as never)).toEqual({ tokens: 2048, by: "the model's max_position_embeddings (2048)" });
    process.env.STUDIO_MAX_CONTEXT_TOKENS = "100";
    expect(() => checkContext(c, 101, "the prompt")).toThrow("the prompt has 101 tokens; at most STUDIO_MAX_CONTEXT_TOKENS (100) fit; shorten the prompt");
    expect(() => checkContext(c, 100)).not.toThrow();
  });

  it("a forward past the limit is refused before it runs (prompt, or decode steps that would pass it)", async () => {
    process.env.STUDIO_MAX_CONTEXT_TOKENS = "16";
    const config = randomConfig(5, { vocab_size: 320, num_hidden_layers: 1 });
    const runner = await MoeLlmRunner.create(config, randomWeights(config, 5), { moe: "sparse", trace: true, kvCache: true });
    const ids = (n: number) => Array.from({ length: n }, (_, i) => (i * 7) % 320);
    // text positions: t = h = w = the token's index
    const positions = (n: number, from = 0) => Int32Array.from({ length: 3 * n }, (_, k) => from + (k % n));
    await expect(runner.forward({ batch: 1, seq: 17, ids: ids(17), positions: positions(17) })).rejects.toThrow("the sequence has 17 tokens; at most STUDIO_MAX_CONTEXT_TOKENS (16) fit");
    const first = await runner.forward({ batch: 1, seq: 16, ids: ids(16), positions: positions(16) });
    await expect(runner.forward({ batch: 1, seq: 1, ids: [1], positions: positions(1, 16), past: first.present })).rejects.toThrow("the sequence has 17 tokens");
  });
});
