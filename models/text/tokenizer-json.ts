/**
 * Tokenizers from a model directory's Hugging Face `tokenizer.json` (+ `tokenizer_config.json` when
 * present), through `@huggingface/tokenizers` (pure JS, no network: the files are read from disk here and
 * handed over as objects). Without a `tokenizer.json` the directory uses the byte tokenizer of the
 * reference family. Chat prompts use the directory's chat template (models/text/chat-template.ts) when it has
 * one, else the built-in ChatML format.
 *
 * Conventions shared with `ByteTokenizer`: `encode` adds no BOS/EOS (the chat template writes the special
 * tokens it needs — a template's `{{ bos_token }}` is the token's text, which encodes to its single id),
 * special tokens written literally in text are single ids unless `allowSpecial: false`, ids past the
 * tokenizer decode as U+FFFD, and stream decoding never emits half a character.
 */
import { existsSync, readFileSync, statSync } from "node:fs";
import path from "node:path";
import { Tokenizer as HfTokenizer } from "@huggingface/tokenizers";
import {
  CHAT_TEMPLATE_JINJA_FILE,
  CHAT_TEMPLATE_JSON_FILE,
  CompiledChatTemplate,
  findChatTemplate,
  SPECIAL_TOKENS_MAP_FILE,
  specialTokenVariables,
  type ChatTemplateSource,
} from "./chat-template";
import {
  BUILTIN_CHATML_LABEL,
  byteTokenizer,
  qwenChatTemplate,
  type ChatMessage,
  type ChatTemplateOptions,
  type DecodeOptions,
  type EncodeOptions,
  type StreamDecoder,
  type Tokenizer,
} from "./tokenizer";

export const TOKENIZER_FILE = "tokenizer.json";
export const TOKENIZER_CONFIG_FILE = "tokenizer_config.json";

interface AddedTokenJson {
  id: number;
  content: string;
  special?: boolean;
}

type Json = Record<string, unknown>;

function readJsonObject(file: string, what: string): Json {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (e) {
    throw new Error(`tokenizer: cannot read ${file}: ${(e as Error).message}`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new Error(`tokenizer: ${file} is not valid JSON (${(e as Error).message})`);
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) throw new Error(`tokenizer: ${file} is not a ${what} (expected a JSON object)`);
  return value as Json;
}

/** Checks the parts of the format this module relies on, so errors name the file instead of a library internal. */
function checkTokenizerJson(file: string, json: Json): AddedTokenJson[] {
  const bad = (why: string) => new Error(`tokenizer: ${file} is not a usable tokenizer.json: ${why}`);
  const model = json.model;
  if (model === null || typeof model !== "object" || Array.isArray(model)) throw bad(`"model" must be an object`);
  const added = json.added_tokens ?? [];
  if (!Array.isArray(added)) throw bad(`"added_tokens" must be an array`);
  added.forEach((t: unknown, i) => {
    const ok =
      t !== null &&
      typeof t === "object" &&
      Number.isInteger((t as AddedTokenJson).id) &&
      (t as AddedTokenJson).id >= 0 &&
      typeof (t as AddedTokenJson).content === "string" &&
      (t as AddedTokenJson).content.length > 0;
    if (!ok) throw bad(`added_tokens[${i}] needs an integer "id" and a non-empty "content"`);
  });
  return added as AddedTokenJson[];
}

function buildHf(file: string, json: Json, config: Json): HfTokenizer {
  // The library requires these keys to exist (null is fine); real files always have them.
  const full: Json = { normalizer: null, pre_tokenizer: null, post_processor: null, decoder: null, added_tokens: [], ...json };
  try {
    return new HfTokenizer(full, config);
  } catch (e) {
    throw new Error(`tokenizer: ${file} is not a usable tokenizer.json: ${(e as Error).message}`);
  }
}

/** A `Tokenizer` over a Hugging Face `tokenizer.json`. */
export class JsonTokenizer implements Tokenizer {
  readonly vocabSize: number;
  readonly specialTokens: readonly string[];
  /** The model's chat template source (null: none, prompts use the built-in ChatML format). */
  readonly chatTemplate: string | null;
  /** File the chat template was read from (null without one). */
  readonly chatTemplateFile: string | null;
  /** The special tokens a chat template sees (bos_token, eos_token, …), as strings. */
  readonly specialTokenMap: Readonly<Record<string, string | string[]>>;
  /** Parsed once, on first use: a template that does not parse fails the prompts that use it, not the tokenizer. */
  private compiledTemplate: CompiledChatTemplate | null = null;
  private readonly templateSource: ChatTemplateSource | null;
  private readonly hf: HfTokenizer;
  /** Same tokenizer without the special added tokens, for `allowSpecial: false` (built on first use). */
  private hfNoSpecial: HfTokenizer | null = null;
  private readonly specialIds: ReadonlySet<number>;
  private readonly specialByName: ReadonlyMap<string, number>;
  private readonly cleanUpSpaces: boolean;

  constructor(
    /** Path of the tokenizer.json (for error messages). */
    readonly file: string,
    private readonly json: Json,
    private readonly config: Json = {},
    extras: { chatTemplate?: ChatTemplateSource | null; specialTokensMap?: Json | null } = {},
  ) {
    const added = checkTokenizerJson(file, json);
    this.hf = buildHf(file, json, config);
    const special = added.filter((t) => t.special === true).sort((a, b) => a.id - b.id);
    this.specialTokens = special.map((t) => t.content);
    this.specialIds = new Set(special.map((t) => t.id));
    this.specialByName = new Map(special.map((t) => [t.content, t.id] as const));
    let max = -1;
    for (const id of this.hf.get_vocab(true).values()) if (id > max) max = id;
    this.vocabSize = max + 1;
    this.cleanUpSpaces = config.clean_up_tokenization_spaces === true;
    this.templateSource = extras.chatTemplate !== undefined ? extras.chatTemplate : findChatTemplate(path.dirname(file), config);
    this.chatTemplate = this.templateSource?.text ?? null;
    this.chatTemplateFile = this.templateSource?.file ?? null;
    this.specialTokenMap = specialTokenVariables(config, extras.specialTokensMap ?? null);
  }

  /** The eos token's text (tokenizer_config.json), or null. */
  get eosToken(): string | null {
    const eos = this.specialTokenMap.eos_token;
    return typeof eos === "string" ? eos : null;
  }

  encode(text: string, opts: EncodeOptions = {}): number[] {
    const hf = opts.allowSpecial === false ? this.noSpecial() : this.hf;
    const ids = hf.encode(text, { add_special_tokens: false }).ids;
    const unknown = ids.findIndex((id) => id === undefined);
    if (unknown >= 0) throw new Error(`tokenizer: ${this.file} cannot encode ${JSON.stringify(text)} (no id for a piece and no unk_token)`);
    return ids;
  }

  decode(ids: readonly number[], opts: DecodeOptions = {}): string {
    let out = "";
    let run: number[] = [];
    const flushRun = () => {
      if (run.length > 0) out += this.hf.decode(run, { skip_special_tokens: opts.skipSpecial ?? false, clean_up_tokenization_spaces: this.cleanUpSpaces });
      run = [];
    };
    for (const id of ids) {
      if (!Number.isInteger(id) || id < 0) throw new Error(`tokenizer: invalid token id ${id}`);
      if (this.hf.id_to_token(id) === undefined) {
        flushRun();
        out += "\uFFFD";
      } else run.push(id);
    }
    flushRun();
    return out;
  }

  /**
   * Decodes a window of the ids pushed so far and emits what it adds to the text already emitted, holding
   * it back while the text ends in U+FFFD (an incomplete UTF-8 character). The window starts at the token
   * before the last emitted one so decoders that treat the first token specially (a leading "▁" or space)
   * decode each token in context; the cost per id is bounded by the window, not the stream length.
   */
  createStreamDecoder(opts: DecodeOptions = {}): StreamDecoder {
    const ids: number[] = [];
    let prefixOffset = 0;
    let readOffset = 0;
    const step = (final: boolean): string => {
      const prefix = this.decode(ids.slice(prefixOffset, readOffset), opts);
      const text = this.decode(ids.slice(prefixOffset), opts);
      if (text.length <= prefix.length || (!final && text.endsWith("\uFFFD"))) return "";
      const fresh = text.slice(prefix.length);
      prefixOffset = readOffset;
      readOffset = ids.length;
      return fresh;
    };
    return {
      push: (id: number): string => {
        if (!Number.isInteger(id) || id < 0) throw new Error(`tokenizer: invalid token id ${id}`);
        ids.push(id);
        return step(false);
      },
      flush: (): string => step(true),
    };
  }

  tokenId(name: string): number {
    const special = this.specialByName.get(name);
    if (special !== undefined) return special;
    const id = this.hf.token_to_id(name);
    if (id !== undefined) return id;
    const ids = this.encode(name);
    if (ids.length === 1) return ids[0]!;
    throw new Error(`tokenizer: "${name}" is not a single token of ${this.file}`);
  }

  isSpecial(id: number): boolean {
    return this.specialIds.has(id);
  }

  /**
   * The model's chat template (unless `template: "chatml"` or it has none), rendered as HF's
   * apply_chat_template does. Throws a ChatTemplateError naming the file when the template does not parse
   * or refuses the conversation (raise_exception).
   */
  applyChatTemplate(messages: readonly ChatMessage[], opts: ChatTemplateOptions = {}): string {
    const compiled = this.template(opts);
    if (!compiled) return qwenChatTemplate(messages, opts);
    const withSystem =
      opts.defaultSystem !== undefined && messages[0]?.role !== "system" ? [{ role: "system", content: opts.defaultSystem }, ...messages] : messages;
    return compiled.render(withSystem, opts.addGenerationPrompt ?? false, this.specialTokenMap, opts.variables);
  }

  chatTemplateLabel(opts: ChatTemplateOptions = {}): string {
    return opts.template === "chatml" || !this.templateSource ? BUILTIN_CHATML_LABEL : `chat template from ${this.templateSource.origin}`;
  }

  private template(opts: ChatTemplateOptions): CompiledChatTemplate | null {
    if (opts.template === "chatml" || !this.templateSource) return null;
    this.compiledTemplate ??= new CompiledChatTemplate(this.templateSource);
    return this.compiledTemplate;
  }

  private noSpecial(): HfTokenizer {
    if (!this.hfNoSpecial) {
      const added = (this.json.added_tokens as AddedTokenJson[] | undefined) ?? [];
      const json = { ...this.json, added_tokens: added.filter((t) => t.special !== true) };
      const config = { ...this.config, additional_special_tokens: [] };
      this.hfNoSpecial = buildHf(this.file, json, config);
    }
    return this.hfNoSpecial;
  }
}

/** mtime and size of a file ("" if it does not exist), the cache key of its contents. */
function stamp(file: string): string {
  try {
    const s = statSync(file);
    return `${s.mtimeMs}/${s.size}`;
  } catch {
    return "";
  }
}

const cache = new Map<string, { key: string; tokenizer: JsonTokenizer }>();

/**
 * Reads `dir/tokenizer.json` (+ `tokenizer_config.json`, `special_tokens_map.json` and the chat template
 * files), uncached. Throws, naming the file, when malformed.
 */
export function readJsonTokenizer(dir: string): JsonTokenizer {
  const file = path.join(dir, TOKENIZER_FILE);
  const json = readJsonObject(file, "tokenizer.json");
  const configFile = path.join(dir, TOKENIZER_CONFIG_FILE);
  const config = existsSync(configFile) ? readJsonObject(configFile, "tokenizer_config.json") : {};
  const mapFile = path.join(dir, SPECIAL_TOKENS_MAP_FILE);
  const specialTokensMap = existsSync(mapFile) ? readJsonObject(mapFile, "special_tokens_map.json") : null;
  return new JsonTokenizer(file, json, config, { chatTemplate: findChatTemplate(dir, config), specialTokensMap });
}

/**
 * The tokenizer of a model directory: its `tokenizer.json` when there is one, else the byte tokenizer.
 * Cached per directory until one of its files' mtime or size changes.
 */
export function loadTokenizer(modelDir: string): Tokenizer {
  const dir = path.resolve(modelDir);
  const file = path.join(dir, TOKENIZER_FILE);
  const main = stamp(file);
  if (main === "") {
    cache.delete(dir);
    return byteTokenizer;
  }
  const key = [main, ...[TOKENIZER_CONFIG_FILE, SPECIAL_TOKENS_MAP_FILE, CHAT_TEMPLATE_JINJA_FILE, CHAT_TEMPLATE_JSON_FILE].map((f) => stamp(path.join(/*turbopackIgnore: true*/ dir, f)))].join(":");
  const hit = cache.get(dir);
  if (hit && hit.key === key) return hit.tokenizer;
  const tokenizer = readJsonTokenizer(dir);
  cache.set(dir, { key, tokenizer });
  return tokenizer;
}
