/**
 * A model directory's own chat template (Jinja), rendered with `@huggingface/jinja` — the library
 * transformers.js renders chat templates with — and the variables transformers' `apply_chat_template`
 * passes: `messages`, `add_generation_prompt`, `tools`/`documents` (None here), the special tokens of
 * `special_tokens_map` as strings, and `raise_exception` (the library defines it, as HF does).
 *
 * Where the template comes from follows transformers' loading code (tokenization_utils_base.py
 * `_from_pretrained`, processing_utils.py `get_processor_dict`):
 *   1. `chat_template.jinja` — the tokenizer reads it and it "clobbers any template in the config";
 *   2. `chat_template` of `tokenizer_config.json` — a string, or a list of {name, template} of which
 *      `apply_chat_template` uses "default" (no default → transformers' own error);
 *   3. `chat_template.json` ({"chat_template": "..."}) — read only by the processor in transformers (the
 *      legacy file of multimodal checkpoints, which often carry no template elsewhere), so it is used
 *      only when the tokenizer has none.
 */
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { Template } from "@huggingface/jinja";

export const CHAT_TEMPLATE_JINJA_FILE = "chat_template.jinja";
export const CHAT_TEMPLATE_JSON_FILE = "chat_template.json";
export const SPECIAL_TOKENS_MAP_FILE = "special_tokens_map.json";

type Json = Record<string, unknown>;

export interface ChatTemplateSource {
  /** The Jinja source. */
  text: string;
  /** Path of the file it was read from (error messages). */
  file: string;
  /** Where in that file, for the run summary: "chat_template.jinja", "tokenizer_config.json", … */
  origin: string;
}

/** A template error, naming the file; `raised` is true when the template itself called raise_exception. */
export class ChatTemplateError extends Error {
  constructor(
    message: string,
    readonly file: string,
    readonly raised: boolean,
  ) {
    super(message);
    this.name = "ChatTemplateError";
  }
}

function readText(file: string): string {
  try {
    return readFileSync(file, "utf8");
  } catch (e) {
    throw new Error(`tokenizer: cannot read ${file}: ${(e as Error).message}`);
  }
}

/** The template in `tokenizer_config.json`'s `chat_template` (string or named list), or null. */
function fromTokenizerConfig(config: Json, configFile: string): ChatTemplateSource | null {
  const value = config.chat_template;
  if (value === undefined || value === null) return null;
  if (typeof value === "string") return { text: value, file: configFile, origin: path.basename(configFile) };
  const bad = (why: string) => new Error(`tokenizer: ${configFile}: "chat_template" ${why}`);
  if (!Array.isArray(value)) throw bad("must be a string or a list of {name, template}");
  const named = new Map<string, string>();
  value.forEach((entry: unknown, i) => {
    const e = entry as { name?: unknown; template?: unknown } | null;
    if (!e || typeof e.name !== "string" || typeof e.template !== "string") throw bad(`[${i}] needs a string "name" and "template"`);
    named.set(e.name, e.template);
  });
  const text = named.get("default");
  if (text === undefined) {
    // transformers raises the same when no template name is passed
    throw bad(`has several templates and none named "default" (available: ${[...named.keys()].sort().join(", ")})`);
  }
  return { text, file: configFile, origin: `${path.basename(configFile)} ("default" of ${named.size})` };
}

/** Finds a model directory's chat template in transformers' order (see the module comment), or null. */
export function findChatTemplate(dir: string, config: Json): ChatTemplateSource | null {
  const jinjaFile = path.join(dir, CHAT_TEMPLATE_JINJA_FILE);
  if (existsSync(jinjaFile)) return { text: readText(jinjaFile), file: jinjaFile, origin: CHAT_TEMPLATE_JINJA_FILE };
  const fromConfig = fromTokenizerConfig(config, path.join(dir, "tokenizer_config.json"));
  if (fromConfig) return fromConfig;
  const jsonFile = path.join(dir, CHAT_TEMPLATE_JSON_FILE);
  if (!existsSync(jsonFile)) return null;
  let parsed: unknown;
  try {
    parsed = JSON.parse(readText(jsonFile));
  } catch (e) {
    throw new Error(`tokenizer: ${jsonFile} is not valid JSON (${(e as Error).message})`);
  }
  const text = (parsed as { chat_template?: unknown } | null)?.chat_template;
  if (typeof text !== "string") throw new Error(`tokenizer: ${jsonFile} has no string "chat_template"`);
  return { text, file: jsonFile, origin: CHAT_TEMPLATE_JSON_FILE };
}

/** transformers' SPECIAL_TOKENS_ATTRIBUTES: what `special_tokens_map` (and so the template) can see. */
const SPECIAL_TOKEN_KEYS = ["bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token", "additional_special_tokens"] as const;

/** A token as tokenizer_config.json writes it: a string or an AddedToken object {content, ...}. */
function tokenText(value: unknown): string | null {
  if (typeof value === "string") return value;
  if (value !== null && typeof value === "object" && typeof (value as { content?: unknown }).content === "string") return (value as { content: string }).content;
  return null;
}

/**
 * The special tokens a template sees, as transformers' `special_tokens_map`: strings, unset (None or
 * empty) tokens left out. `special_tokens_map.json` fills in only on transformers' legacy path — a
 * `tokenizer_config.json` without `added_tokens_decoder` — where its values win.
 */
export function specialTokenVariables(config: Json, specialTokensMap: Json | null = null): Record<string, string | string[]> {
  const merged: Json = { ...config };
  if (specialTokensMap && config.added_tokens_decoder === undefined) Object.assign(merged, specialTokensMap);
  const out: Record<string, string | string[]> = {};
  for (const key of SPECIAL_TOKEN_KEYS) {
    const value = merged[key];
    if (key === "additional_special_tokens") {
      const list = Array.isArray(value) ? value.map(tokenText).filter((t): t is string => t !== null) : [];
      if (list.length) out[key] = list;
    } else {
      const text = tokenText(value);
      if (text) out[key] = text;
    }
  }
  return out;
}

/** A parsed (once) chat template. */
export class CompiledChatTemplate {
  private readonly template: Template;

  constructor(readonly source: ChatTemplateSource) {
    try {
      this.template = new Template(source.text);
    } catch (e) {
      throw new ChatTemplateError(`the chat template in ${source.file} does not parse: ${(e as Error).message}`, source.file, false);
    }
  }

  /** Renders with transformers' variables; `extra` (e.g. enable_thinking) is passed through as HF's kwargs. */
  render(
    messages: readonly { role: string; content: string }[],
    addGenerationPrompt: boolean,
    specialTokens: Record<string, string | string[]>,
    extra: Record<string, unknown> = {},
  ): string {
    try {
      return this.template.render({
        ...specialTokens,
        ...extra,
        messages: messages.map((m) => ({ ...m })),
        add_generation_prompt: addGenerationPrompt,
        tools: null,
        documents: null,
      });
    } catch (e) {
      const message = (e as Error).message;
      // The library's raise_exception throws a plain Error with the template's own text (it cannot be
      // replaced: render() declares it itself); its messages are literals in the template source.
      const raised = (e as Error).constructor === Error && message.length > 0 && this.source.text.includes(message);
      const what = raised ? "rejected the conversation" : "failed to render";
      throw new ChatTemplateError(`the chat template in ${this.source.file} ${what}: ${message}`, this.source.file, raised);
    }
  }
}
