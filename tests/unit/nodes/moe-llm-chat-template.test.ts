/**
 * The MoE-LLM node writes its prompt with the model's chat template: a seeded tiny model directory given a
 * Mixtral-style tokenizer (tokenizer.json with <s>/</s> and Mixtral's tokenizer_config.json template).
 */
import { mkdirSync, readFileSync, utimesSync, writeFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { DiskStorage } from "@/engine/storage";
import { loadWorkflow } from "@/engine/workflow/load";
import { CURRENT_SCHEMA_VERSION } from "@/engine/workflow/schema";
import { loadTokenizer } from "@/models/text/tokenizer-json";
import { ensureReferenceModel } from "@/models/moe-llm/uni-moe-tiny";
import { catalogue } from "@/nodes";
import { moeLlm, stopTokenIds, type LlmOutputValue } from "@/nodes/moe-llm";
import { byteTokenizer } from "@/models/text/tokenizer";
import { makeQwen2Mini } from "@/tests/fixtures/tokenizers/make-qwen2-mini";
import { moeLlmWorld } from "./moe-llm-fixture";

const MODEL = "chat/mixtral-style";
const mixtralTemplate = (JSON.parse(readFileSync(path.resolve(__dirname, "../../fixtures/chat-templates/templates.json"), "utf8")) as {
  templates: Record<string, { template: string }>;
}).templates.mixtral!.template;

/** qwen2-mini's byte-level BPE plus Mixtral's special tokens <s>, </s>, <unk> (ids 272–274, inside the tiny model's 320-row vocab). */
function mixtralStyleTokenizer(): Record<string, unknown> {
  const { tokenizer } = makeQwen2Mini();
  const added = tokenizer.added_tokens as { id: number; content: string }[];
  const next = Math.max(...added.map((t) => t.id)) + 1;
  const extra = ["<s>", "</s>", "<unk>"].map((content, i) => ({ id: next + i, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true }));
  return { ...tokenizer, added_tokens: [...added, ...extra] };
}

function writeConfig(config: Record<string, unknown>): void {
  const file = path.join(modelDir, "tokenizer_config.json");
  writeFileSync(file, JSON.stringify(config));
  // a fresh mtime, so the tokenizer cache never serves the previous config within the same millisecond
  const t = new Date(Date.now() + Math.random() * 1e6);
  utimesSync(file, t, t);
}

const { root, ctx } = moeLlmWorld("chat-template", async () => {
  await ensureReferenceModel("tiny", modelDir);
  writeFileSync(path.join(modelDir, "tokenizer.json"), JSON.stringify(mixtralStyleTokenizer()));
  writeConfig({ bos_token: { __type: "AddedToken", content: "<s>" }, eos_token: "</s>", unk_token: "<unk>", chat_template: mixtralTemplate });
});
const modelDir = path.join(root, "models", MODEL);

async function run(params: Record<string, unknown>, prompt = "hello") {
  const out = await moeLlm.execute({ inputs: { prompt }, params: moeLlm.params.parse({ model: MODEL, maxNewTokens: 3, ...params }), ctx: ctx() });
  return out.output as LlmOutputValue;
}

describe("MoE-LLM node + the model's chat template", () => {
  it("a workflow saved before the chatTemplate param loads unchanged, with the model's template", () => {
    const saved = { model: "uni-moe-tiny/tiny", system: "", maxNewTokens: 24, temperature: 0, topK: 0, topP: 1, seed: 0, routingTopP: 0, emit: "none", interventions: "" };
    const doc = {
      schemaVersion: CURRENT_SCHEMA_VERSION,
      name: "saved before chat templates",
      nodes: [{ id: "llm", type: "model.moe-llm", typeVersion: 1, params: saved, position: { x: 0, y: 0 } }, { id: "prompt", type: "input.text", typeVersion: 1, params: { text: "hi" }, position: { x: -300, y: 0 } }],
      edges: [{ id: "e1", source: "prompt", sourceSocket: "text", target: "llm", targetSocket: "prompt" }],
      notes: [],
    };
    const { workflow, problems } = loadWorkflow(doc, catalogue);
    expect(problems).toEqual([]);
    expect(workflow.nodes[0]!.params).toEqual({ ...saved, routingTopP: null, routingTopK: null, chatTemplate: "model", mode: "generate", logitLens: false, routingPrecision: "model" });
    expect(moeLlm.params.safeParse({ chatTemplate: "llama" }).success).toBe(false);
  });

  it("writes the prompt with Mixtral's [INST] template; <s> is the first id; the summary names the template", async () => {
    const o = await run({});
    expect(o.promptText).toBe("<s>[INST] hello [/INST]");
    expect(o.promptFormat).toBe("chat template from tokenizer_config.json");
    const tok = loadTokenizer(modelDir);
    expect(o.promptIds).toEqual(tok.encode("<s>[INST] hello [/INST]"));
    expect(o.promptIds[0]).toBe(tok.tokenId("<s>"));
    expect(o.promptIds.filter((id) => id === tok.tokenId("<s>"))).toHaveLength(1);
    expect(o.ids.length).toBeGreaterThan(0);
    expect(moeLlm.summarize!({ output: o })).toMatch(/; prompt: chat template from tokenizer_config\.json$/);
  });

  it("generation stops at the tokenizer's eos (</s>) as well as ChatML's markers where the vocabulary has them", () => {
    const tok = loadTokenizer(modelDir);
    expect(new Set(stopTokenIds(tok))).toEqual(new Set([tok.tokenId("<|im_end|>"), tok.tokenId("<|endoftext|>"), tok.tokenId("</s>")]));
    expect(stopTokenIds(byteTokenizer)).toEqual([byteTokenizer.tokenId("<|im_end|>"), byteTokenizer.tokenId("<|endoftext|>")]);
    // a vocabulary without ChatML's markers (as Mixtral's): only its eos
    const dir = path.join(root, "no-chatml");
    const json = mixtralStyleTokenizer();
    const added = (json.added_tokens as { content: string }[]).filter((t) => !["<|im_end|>", "<|endoftext|>", "<|im_start|>"].includes(t.content));
    mkdirSync(dir, { recursive: true });
    writeFileSync(path.join(dir, "tokenizer.json"), JSON.stringify({ ...json, added_tokens: added }));
    writeFileSync(path.join(dir, "tokenizer_config.json"), JSON.stringify({ eos_token: "</s>" }));
    const plain = loadTokenizer(dir);
    expect(() => plain.tokenId("<|im_end|>")).toThrow();
    expect(stopTokenIds(plain)).toEqual([plain.tokenId("</s>")]);
  });

  it('chatTemplate: "chatml" forces the built-in ChatML format', async () => {
    const o = await run({ chatTemplate: "chatml" });
    expect(o.promptText).toBe("<|im_start|>user\nhello<|im_end|>\n<|im_start|>assistant\n");
    expect(o.promptFormat).toBe("built-in ChatML");
    expect(moeLlm.summarize!({ output: o })).toMatch(/; prompt: built-in ChatML$/);
  });

  it("a template that refuses the conversation fails the node with the file and the template's message", async () => {
    await expect(run({ system: "Be brief." })).rejects.toThrow(
      `the chat template in ${path.join(modelDir, "tokenizer_config.json")} rejected the conversation: Conversation roles must alternate user/assistant/user/assistant/...`,
    );
    // the same conversation in ChatML is fine
    expect((await run({ system: "Be brief.", chatTemplate: "chatml" })).promptText).toBe(
      "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nhello<|im_end|>\n<|im_start|>assistant\n",
    );
  });

  it("a template that does not parse fails the node naming the file; the fingerprint follows the template", async () => {
    const storage = new DiskStorage(path.join(root, "files"));
    const fingerprint = () => moeLlm.fingerprint!(moeLlm.params.parse({ model: MODEL }), storage);
    const before = await fingerprint();
    writeConfig({ eos_token: "</s>", chat_template: "{% for m in messages %}{{ m.content }" });
    try {
      await expect(run({})).rejects.toThrow(new RegExp(`the chat template in ${path.join(modelDir, "tokenizer_config.json").replace(/[.\\/]/g, "\\$&")} does not parse`));
      expect(await fingerprint()).not.toBe(before);
    } finally {
      writeConfig({ bos_token: { __type: "AddedToken", content: "<s>" }, eos_token: "</s>", unk_token: "<unk>", chat_template: mixtralTemplate });
    }
    expect(await fingerprint()).toBe(before);
  });
});
