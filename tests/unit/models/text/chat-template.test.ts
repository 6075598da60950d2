import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { importCheckpoint } from "@/models/import/import";
import { ChatTemplateError, CompiledChatTemplate, specialTokenVariables, type ChatTemplateSource } from "@/models/text/chat-template";
import { buildSequence } from "@/models/text/prompt";
import { byteTokenizer, qwenChatTemplate, type ChatMessage } from "@/models/text/tokenizer";
import { JsonTokenizer, loadTokenizer } from "@/models/text/tokenizer-json";
import type { FeaturesValue } from "@/engine/features";
import { makeQwen2Mini } from "@/tests/fixtures/tokenizers/make-qwen2-mini";
import { writeFamilyCheckpoint } from "../../import/family-checkpoints";

const FIXTURES = path.resolve(__dirname, "../../../fixtures/chat-templates");
const RENDER_PY = path.join(FIXTURES, "render.py");

interface TemplateEntry {
  source: string;
  template?: string;
  file?: string;
  special_tokens: Record<string, string | null>;
}
interface Case {
  template: string;
  conversation: string;
  messages: ChatMessage[];
  add_generation_prompt: boolean;
  variables: Record<string, unknown>;
  expected?: string;
  error?: string;
}

const templates = (JSON.parse(readFileSync(path.join(FIXTURES, "templates.json"), "utf8")) as { templates: Record<string, TemplateEntry> }).templates;
const expected = JSON.parse(readFileSync(path.join(FIXTURES, "expected.json"), "utf8")) as { cases: Case[] };

function sourceOf(name: string): ChatTemplateSource {
  const entry = templates[name]!;
  if (entry.file) {
    const file = path.join(FIXTURES, entry.file);
    return { text: readFileSync(file, "utf8"), file, origin: entry.file };
  }
  return { text: entry.template!, file: `${path.join(FIXTURES, "templates.json")}#${name}`, origin: "templates.json" };
}
const compiled = new Map(Object.keys(templates).map((name) => [name, new CompiledChatTemplate(sourceOf(name))]));
const tokensOf = (name: string) => specialTokenVariables(templates[name]!.special_tokens);

function renderCase(c: Case): string {
  return compiled.get(c.template)!.render(c.messages, c.add_generation_prompt, tokensOf(c.template), c.variables);
}

const hasJinja2 = spawnSync("python3", ["-c", "import jinja2"], { encoding: "utf8" }).status === 0;

describe("chat templates rendered by @huggingface/jinja match Python jinja2 (transformers' set-up)", () => {
  it("the fixture covers every template, with and without a generation prompt, and Mixtral's refusals", () => {
    const names = new Set(expected.cases.map((c) => c.template));
    expect([...names].sort()).toEqual(Object.keys(templates).sort());
    expect(expected.cases.length).toBeGreaterThan(200);
    expect(expected.cases.filter((c) => c.error).map((c) => c.template)).toEqual(expect.arrayContaining(["mixtral"]));
    expect(new Set(expected.cases.filter((c) => c.error).map((c) => c.template))).toEqual(new Set(["mixtral"]));
    expect(expected.cases.some((c) => c.template === "qwen3" && c.variables.enable_thinking === false)).toBe(true);
  });

  for (const name of Object.keys(templates)) {
    it(`${name}: every stored rendering is reproduced exactly`, () => {
      const cases = expected.cases.filter((c) => c.template === name);
      let checked = 0;
      for (const c of cases) {
        const label = `${c.conversation} gen=${c.add_generation_prompt} ${JSON.stringify(c.variables)}`;
        if (c.error !== undefined) {
          let thrown: unknown;
          try {
            renderCase(c);
          } catch (e) {
            thrown = e;
          }
          expect(thrown, label).toBeInstanceOf(ChatTemplateError);
          const err = thrown as ChatTemplateError;
          expect(err.raised, label).toBe(true);
          expect(err.message, label).toContain(sourceOf(name).file);
          expect(err.message, label).toContain(c.error);
        } else {
          expect(renderCase(c), label).toBe(c.expected);
        }
        checked++;
      }
      expect(checked).toBe(cases.length);
    });
  }

  it.runIf(hasJinja2)("render.py, run now with python3 + jinja2, still writes the stored fixture", () => {
    const run = spawnSync("python3", [RENDER_PY], { encoding: "utf8", maxBuffer: 64 * 1024 * 1024 });
    expect(run.status, run.stderr).toBe(0);
    expect((JSON.parse(run.stdout) as { cases: Case[] }).cases).toEqual(expected.cases);
  }, 120_000);
});

describe("the built-in ChatML format is what the ChatML templates write", () => {
  const chatmlCases = expected.cases.filter((c) => c.template === "chatml");
  const qwen2Cases = expected.cases.filter((c) => c.template === "qwen2");

  it("qwenChatTemplate equals transformers' ChatML template on every fixture conversation (byte-identical prompts)", () => {
    expect(chatmlCases.length).toBeGreaterThan(30);
    for (const c of chatmlCases) expect(qwenChatTemplate(c.messages, { addGenerationPrompt: c.add_generation_prompt })).toBe(c.expected);
  });

  it("the reference family's own tokenizer_config template renders the same as qwenChatTemplate", () => {
    const source = { text: byteTokenizer.tokenizerConfig().chat_template as string, file: "uni-moe-tiny tokenizer_config.json", origin: "tokenizer_config.json" };
    const t = new CompiledChatTemplate(source);
    for (const c of chatmlCases) expect(t.render(c.messages, c.add_generation_prompt, {})).toBe(qwenChatTemplate(c.messages, { addGenerationPrompt: c.add_generation_prompt }));
  });

  it("Qwen2's template is ChatML with its default system prompt", () => {
    for (const c of qwen2Cases) {
      const opts = { addGenerationPrompt: c.add_generation_prompt, defaultSystem: "You are a helpful assistant." };
      expect(qwenChatTemplate(c.messages, opts)).toBe(c.expected);
    }
  });
});

describe("specialTokenVariables: what a template sees of tokenizer_config.json", () => {
  it("takes strings and AddedToken objects, leaves out unset tokens, keeps additional_special_tokens as strings", () => {
    const config = {
      bos_token: { __type: "AddedToken", content: "<s>", lstrip: false, normalized: false, rstrip: false, single_word: false },
      eos_token: "</s>",
      unk_token: null,
      pad_token: "",
      additional_special_tokens: ["<a>", { content: "<b>" }],
      chat_template: "x",
      model_max_length: 10,
    };
    expect(specialTokenVariables(config)).toEqual({ bos_token: "<s>", eos_token: "</s>", additional_special_tokens: ["<a>", "<b>"] });
  });

  it("special_tokens_map.json fills in (and wins) only on transformers' legacy path, without added_tokens_decoder", () => {
    const map = { eos_token: { content: "<|end|>" }, sep_token: "<sep>" };
    expect(specialTokenVariables({ eos_token: "</s>" }, map)).toEqual({ eos_token: "<|end|>", sep_token: "<sep>" });
    expect(specialTokenVariables({ eos_token: "</s>", added_tokens_decoder: {} }, map)).toEqual({ eos_token: "</s>" });
  });
});

// ---- model directories: tokenizer.json + the template files ---------------------------------------

const tmp = mkdtempSync(path.join(tmpdir(), "chat-template-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
let dirs = 0;

/** qwen2-mini's tokenizer.json plus extra added special tokens (ids after its 272). */
function tokenizerWith(extra: string[]): Record<string, unknown> {
  const { tokenizer } = makeQwen2Mini();
  const added = tokenizer.added_tokens as { id: number; content: string }[];
  const next = Math.max(...added.map((t) => t.id)) + 1;
  const more = extra.map((content, i) => ({ id: next + i, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true }));
  return { ...tokenizer, added_tokens: [...added, ...more] };
}

/** A model dir with a tokenizer and the given files (objects are written as JSON). */
function modelDir(files: Record<string, unknown>, extraTokens: string[] = []): string {
  const dir = path.join(tmp, String(dirs++));
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, "tokenizer.json"), JSON.stringify(tokenizerWith(extraTokens)));
  for (const [name, value] of Object.entries(files)) writeFileSync(path.join(dir, name), typeof value === "string" ? value : JSON.stringify(value));
  return dir;
}

const MIXTRAL = templates.mixtral!.template!;
const QWEN2 = templates.qwen2!.template!;
const mixtralConfig = (extra: Record<string, unknown> = {}) => ({
  bos_token: { __type: "AddedToken", content: "<s>", lstrip: false, normalized: false, rstrip: false, single_word: false },
  eos_token: "</s>",
  unk_token: "<unk>",
  chat_template: MIXTRAL,
  ...extra,
});
const hello: ChatMessage[] = [{ role: "user", content: "hello" }];

describe("JsonTokenizer uses the model's chat template", () => {
  it("Mixtral: [INST] prompt; the template's BOS text is the single <s> id, no BOS added by encode", () => {
    const tok = loadTokenizer(modelDir({ "tokenizer_config.json": mixtralConfig() }, ["<s>", "</s>", "<unk>"])) as JsonTokenizer;
    const text = tok.applyChatTemplate(
      [
        { role: "user", content: "hello" },
        { role: "assistant", content: "hello world" },
        { role: "user", content: "hello" },
      ],
      { addGenerationPrompt: true },
    );
    expect(text).toBe("<s>[INST] hello [/INST]hello world</s>[INST] hello [/INST]");
    const ids = tok.encode(text);
    const bos = tok.tokenId("<s>");
    const eos = tok.tokenId("</s>");
    expect(ids[0]).toBe(bos);
    expect(ids.filter((id) => id === bos)).toHaveLength(1);
    expect(ids.filter((id) => id === eos)).toHaveLength(1);
    expect(tok.decode(ids)).toBe(text);
    expect(tok.eosToken).toBe("</s>");
    expect(tok.chatTemplateLabel()).toBe("chat template from tokenizer_config.json");
    expect(tok.chatTemplateFile).toMatch(/tokenizer_config\.json$/);
  });

  it('template: "chatml" forces the built-in format; a directory without a template uses it too', () => {
    const tok = loadTokenizer(modelDir({ "tokenizer_config.json": mixtralConfig() }, ["<s>", "</s>"]));
    expect(tok.applyChatTemplate(hello, { addGenerationPrompt: true, template: "chatml" })).toBe(qwenChatTemplate(hello, { addGenerationPrompt: true }));
    expect(tok.chatTemplateLabel({ template: "chatml" })).toBe("built-in ChatML");
    const plain = loadTokenizer(modelDir({ "tokenizer_config.json": { eos_token: "<|im_end|>" } }));
    expect(plain.applyChatTemplate(hello, { addGenerationPrompt: true })).toBe("<|im_start|>user\nhello<|im_end|>\n<|im_start|>assistant\n");
    expect(plain.chatTemplateLabel()).toBe("built-in ChatML");
    expect(byteTokenizer.chatTemplateLabel()).toBe("built-in ChatML");
  });

  it("defaultSystem becomes a system message the template renders", () => {
    const tok = loadTokenizer(modelDir({ "tokenizer_config.json": { eos_token: "<|im_end|>", chat_template: QWEN2 } }));
    expect(tok.applyChatTemplate(hello, { addGenerationPrompt: true })).toBe(
      "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nhello<|im_end|>\n<|im_start|>assistant\n",
    );
    expect(tok.applyChatTemplate(hello, { defaultSystem: "Be brief." })).toBe("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nhello<|im_end|>\n");
  });

  it("extra variables reach the template (Qwen3 enable_thinking)", () => {
    const tok = loadTokenizer(modelDir({ "tokenizer_config.json": { eos_token: "<|im_end|>" }, "chat_template.jinja": readFileSync(path.join(FIXTURES, "qwen3.jinja"), "utf8") }));
    expect(tok.applyChatTemplate(hello, { addGenerationPrompt: true, variables: { enable_thinking: false } })).toBe(
      "<|im_start|>user\nhello<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n",
    );
    expect(tok.applyChatTemplate(hello, { addGenerationPrompt: true })).toBe("<|im_start|>user\nhello<|im_end|>\n<|im_start|>assistant\n");
  });
});

describe("where the template comes from (transformers' precedence)", () => {
  const A = "A{% for m in messages %}{{ m.content }}{% endfor %}";
  const B = "B{% for m in messages %}{{ m.content }}{% endfor %}";
  const C = "C{% for m in messages %}{{ m.content }}{% endfor %}";
  const render = (dir: string) => loadTokenizer(dir).applyChatTemplate(hello);
  const label = (dir: string) => loadTokenizer(dir).chatTemplateLabel();

  it("chat_template.jinja beats tokenizer_config.json, which beats chat_template.json", () => {
    const all = modelDir({ "chat_template.jinja": A, "tokenizer_config.json": { chat_template: B }, "chat_template.json": { chat_template: C } });
    expect([render(all), label(all)]).toEqual(["Ahello", "chat template from chat_template.jinja"]);
    const noJinja = modelDir({ "tokenizer_config.json": { chat_template: B }, "chat_template.json": { chat_template: C } });
    expect([render(noJinja), label(noJinja)]).toEqual(["Bhello", "chat template from tokenizer_config.json"]);
    const onlyJson = modelDir({ "tokenizer_config.json": { eos_token: "x" }, "chat_template.json": { chat_template: C } });
    expect([render(onlyJson), label(onlyJson)]).toEqual(["Chello", "chat template from chat_template.json"]);
  });

  it('a list of named templates uses "default"; without one the error names the file and the names', () => {
    const named = modelDir({ "tokenizer_config.json": { chat_template: [{ name: "tool_use", template: A }, { name: "default", template: B }] } });
    expect(render(named)).toBe("Bhello");
    expect(label(named)).toBe('chat template from tokenizer_config.json ("default" of 2)');
    const noDefault = modelDir({ "tokenizer_config.json": { chat_template: [{ name: "rag", template: A }, { name: "tool_use", template: B }] } });
    expect(() => loadTokenizer(noDefault)).toThrow(/tokenizer_config\.json: "chat_template" has several templates and none named "default" \(available: rag, tool_use\)/);
    const bad = modelDir({ "tokenizer_config.json": { chat_template: 7 } });
    expect(() => loadTokenizer(bad)).toThrow(/tokenizer_config\.json: "chat_template" must be a string or a list/);
    const badJson = modelDir({ "chat_template.json": "{ nope" });
    expect(() => loadTokenizer(badJson)).toThrow(/chat_template\.json is not valid JSON/);
  });

  it("the tokenizer cache notices a chat_template.jinja added later", () => {
    const dir = modelDir({ "tokenizer_config.json": { chat_template: B } });
    expect(render(dir)).toBe("Bhello");
    writeFileSync(path.join(dir, "chat_template.jinja"), A);
    expect(render(dir)).toBe("Ahello");
    writeFileSync(path.join(dir, "chat_template.jinja"), C);
    utimesSync(path.join(dir, "chat_template.jinja"), new Date(), new Date(Date.now() + 5000));
    expect(render(dir)).toBe("Chello");
  });
});

describe("template errors name the file and carry the template's own message", () => {
  it("raise_exception (Mixtral's alternation rule)", () => {
    const dir = modelDir({ "tokenizer_config.json": mixtralConfig() }, ["<s>", "</s>"]);
    const tok = loadTokenizer(dir);
    const run = () => tok.applyChatTemplate([{ role: "system", content: "S" }, ...hello], { addGenerationPrompt: true });
    expect(run).toThrow(ChatTemplateError);
    expect(run).toThrow(`the chat template in ${path.join(dir, "tokenizer_config.json")} rejected the conversation: Conversation roles must alternate user/assistant/user/assistant/...`);
  });

  it("a template that does not parse fails when used, not when the tokenizer loads", () => {
    const dir = modelDir({ "chat_template.jinja": "{% for m in messages %}{{ m.content }" });
    const tok = loadTokenizer(dir);
    expect(tok.encode("hello")).toEqual([259]);
    expect(() => tok.applyChatTemplate(hello)).toThrow(new RegExp(`the chat template in ${path.join(dir, "chat_template.jinja").replace(/[.\\/]/g, "\\$&")} does not parse: `));
    expect(tok.applyChatTemplate(hello, { template: "chatml" })).toBe("<|im_start|>user\nhello<|im_end|>\n");
  });

  it("a render-time failure is reported as such", () => {
    const dir = modelDir({ "chat_template.jinja": "{{ messages[0].content.nope() }}" });
    expect(() => loadTokenizer(dir).applyChatTemplate(hello)).toThrow(/chat_template\.jinja failed to render: /);
  });
});

describe("prompt building keeps the media placeholders through the template", () => {
  const MARKERS = ["<|vision_start|>", "<|image_pad|>", "<|vision_end|>", "<|audio_start|>", "<|audio_pad|>", "<|audio_end|>", "<|video_pad|>", "<|im_start|>", "<|im_end|>"];
  const image: FeaturesValue = { kind: "features", modality: "image", n: 1, dim: 2, data: new Float32Array([1, 2]), encoder: "test", image: { rows: 1, cols: 1, pool: 1 } };

  it("the Qwen2 template (with its default system prompt) keeps <image>; the span lands inside the user turn", () => {
    const tok = loadTokenizer(modelDir({ "tokenizer_config.json": { chat_template: QWEN2 } }, MARKERS));
    const seq = buildSequence(tok, { template: "<image>\nWhat is this?", system: "", image, mode: "uni-moe" });
    expect(seq.text).toBe("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n<image>\nWhat is this?<|im_end|>\n<|im_start|>assistant\n");
    expect(seq.modality.filter((m) => m === "image")).toHaveLength(1);
    const at = seq.modality.indexOf("image");
    expect(seq.ids[at - 1]).toBe(tok.tokenId("<|vision_start|>"));
    expect(seq.ids[at + 1]).toBe(tok.tokenId("<|vision_end|>"));
    expect(tok.decode(seq.ids.slice(0, at - 1))).toBe("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n");
  });

  it("a template that drops the user's content is an error naming the template, not a silent prompt without the image", () => {
    const tok = loadTokenizer(modelDir({ "tokenizer_config.json": { chat_template: "{% for m in messages %}{{ m.role }}:{% endfor %}" } }, MARKERS));
    expect(() => buildSequence(tok, { template: "<image>\nWhat is this?", system: "", image, mode: "uni-moe" })).toThrow(
      "the chat template from tokenizer_config.json dropped the <image> placeholder of the user message",
    );
  });
});

describe("imports carry the template files", () => {
  it("chat_template.jinja and tokenizer_config.json are copied; the imported model prompts with the checkpoint's template", async () => {
    const saved = process.env.STUDIO_MODELS_DIR;
    process.env.STUDIO_MODELS_DIR = path.join(tmp, "models");
    try {
      const src = modelDir({ "tokenizer_config.json": mixtralConfig(), "chat_template.jinja": readFileSync(path.join(FIXTURES, "qwen3.jinja"), "utf8") }, ["<s>", "</s>"]);
      await writeFamilyCheckpoint(src, "mixtral", { seed: 3, configOverride: { vocab_size: 320 } });
      const result = await importCheckpoint(src, { name: "chat" });
      for (const f of ["tokenizer.json", "tokenizer_config.json", "chat_template.jinja"]) expect(readFileSync(path.join(result.dir, f), "utf8")).toBe(readFileSync(path.join(src, f), "utf8"));
      const tok = loadTokenizer(result.dir);
      expect(tok.chatTemplateLabel()).toBe("chat template from chat_template.jinja");
      expect(tok.applyChatTemplate(hello, { addGenerationPrompt: true })).toBe("<|im_start|>user\nhello<|im_end|>\n<|im_start|>assistant\n");
    } finally {
      if (saved === undefined) delete process.env.STUDIO_MODELS_DIR;
      else process.env.STUDIO_MODELS_DIR = saved;
    }
  });
});
