/**
 * Tokenizers. `ByteTokenizer` is the uni-moe-tiny reference family's tokenizer:
 *
 *   ids 0..255          the raw UTF-8 bytes
 *   ids 256..256+S-1    the special tokens, in the order of SPECIAL_TOKENS below (fixed: it is part of
 *                       the reference models' identity — append new tokens at the end, never reorder)
 *
 * Special tokens written literally in text encode to their single id. Models may have a larger vocab
 * (uni-moe-tiny rounds up to a multiple of 64); ids past the tokenizer decode as U+FFFD.
 */

export const SPECIAL_TOKENS: readonly string[] = [
  "<|endoftext|>",
  "<|im_start|>",
  "<|im_end|>",
  "<|vision_start|>",
  "<|vision_end|>",
  "<|image_pad|>",
  "<|video_pad|>",
  "<|audio_start|>",
  "<|audio_end|>",
  "<|audio_pad|>",
  "<|speech_start|>",
  "<|speech_prompt|>",
  "<|speech_end|>",
  "<|speech_split|>",
  ...Array.from({ length: 32 }, (_, i) => `[IMG${i}]`),
  ...Array.from({ length: 3 }, (_, i) => `[TASK${i}]`),
];

export interface ChatMessage {
  role: string;
  content: string;
}

export interface ChatTemplateOptions {
  /** Append the assistant's turn opener (`<|im_start|>assistant\n` in ChatML) so the model continues as the assistant. */
  addGenerationPrompt?: boolean;
  /** Inserted as a system message when the conversation does not start with one (none by default). */
  defaultSystem?: string;
  /** "model" (default): the model's own chat template when it has one; "chatml": always the built-in ChatML format. */
  template?: "model" | "chatml";
  /** Extra template variables, as keyword arguments to HF's apply_chat_template (e.g. `enable_thinking`). */
  variables?: Record<string, unknown>;
}

export interface EncodeOptions {
  /** Recognise special tokens written literally in the text (default true); if false they are plain bytes. */
  allowSpecial?: boolean;
}

export interface DecodeOptions {
  /** Leave special tokens out of the text (default false: they appear as written). */
  skipSpecial?: boolean;
}

/** Incremental decoding of generated ids: `push` returns only complete characters. */
export interface StreamDecoder {
  /** Text that became complete with this id ("" while a UTF-8 character is still incomplete). */
  push(id: number): string;
  /** Ends the stream: incomplete bytes left over come out as U+FFFD. */
  flush(): string;
}

export interface Tokenizer {
  /** Number of ids the tokenizer defines (a model's vocab_size may be larger). */
  readonly vocabSize: number;
  readonly specialTokens: readonly string[];
  encode(text: string, opts?: EncodeOptions): number[];
  decode(ids: readonly number[], opts?: DecodeOptions): string;
  createStreamDecoder(opts?: DecodeOptions): StreamDecoder;
  /** Id of a special token (or, for the byte tokenizer, of a single-byte string); throws if unknown. */
  tokenId(name: string): number;
  isSpecial(id: number): boolean;
  /** Chat prompt text: the model's chat template, or the Qwen ChatML format `<|im_start|>role\ncontent<|im_end|>\n` per message. */
  applyChatTemplate(messages: readonly ChatMessage[], opts?: ChatTemplateOptions): string;
  /** Which format `applyChatTemplate` writes with these options, for run summaries ("built-in ChatML", "chat template from tokenizer_config.json"). */
  chatTemplateLabel(opts?: ChatTemplateOptions): string;
}

export const BUILTIN_CHATML_LABEL = "built-in ChatML";

/** The Qwen chat format, shared by every tokenizer that uses `<|im_start|>` / `<|im_end|>`. */
export function qwenChatTemplate(messages: readonly ChatMessage[], opts: ChatTemplateOptions = {}): string {
  let out = "";
  if (opts.defaultSystem !== undefined && messages[0]?.role !== "system") out += `<|im_start|>system\n${opts.defaultSystem}<|im_end|>\n`;
  for (const m of messages) out += `<|im_start|>${m.role}\n${m.content}<|im_end|>\n`;
  if (opts.addGenerationPrompt) out += "<|im_start|>assistant\n";
  return out;
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

const BYTE_COUNT = 256;

export class ByteTokenizer implements Tokenizer {
  readonly specialTokens = SPECIAL_TOKENS;
  readonly vocabSize = BYTE_COUNT + SPECIAL_TOKENS.length;
  private readonly specialIds = new Map(SPECIAL_TOKENS.map((t, i) => [t, BYTE_COUNT + i] as const));
  /** Longest first, so a token that is a prefix of another never wins. */
  private readonly specialRe = new RegExp(
    [...SPECIAL_TOKENS].sort((a, b) => b.length - a.length).map(escapeRegExp).join("|"),
    "g",
  );
  private readonly encoder = new TextEncoder();

  encode(text: string, opts: EncodeOptions = {}): number[] {
    const ids: number[] = [];
    const pushBytes = (s: string) => {
      for (const b of this.encoder.encode(s)) ids.push(b);
    };
    if (opts.allowSpecial === false) {
      pushBytes(text);
      return ids;
    }
    let last = 0;
    for (const m of text.matchAll(this.specialRe)) {
      pushBytes(text.slice(last, m.index));
      ids.push(this.specialIds.get(m[0])!);
      last = m.index + m[0].length;
    }
    pushBytes(text.slice(last));
    return ids;
  }

  decode(ids: readonly number[], opts: DecodeOptions = {}): string {
    const d = this.createStreamDecoder(opts);
    let out = "";
    for (const id of ids) out += d.push(id);
    return out + d.flush();
  }

  createStreamDecoder(opts: DecodeOptions = {}): StreamDecoder {
    const td = new TextDecoder("utf-8", { fatal: false, ignoreBOM: true });
    const one = new Uint8Array(1);
    return {
      push: (id: number): string => {
        this.checkId(id);
        if (id < BYTE_COUNT) {
          one[0] = id;
          return td.decode(one, { stream: true });
        }
        const pending = td.decode(); // incomplete bytes before a special token become U+FFFD
        if (id >= this.vocabSize) return `${pending}\uFFFD`;
        return opts.skipSpecial ? pending : pending + SPECIAL_TOKENS[id - BYTE_COUNT]!;
      },
      flush: (): string => td.decode(),
    };
  }

  tokenId(name: string): number {
    const id = this.specialIds.get(name);
    if (id !== undefined) return id;
    const bytes = this.encoder.encode(name);
    if (bytes.length === 1) return bytes[0]!;
    throw new Error(`tokenizer: "${name}" is neither a special token nor a single byte`);
  }

  isSpecial(id: number): boolean {
    return id >= BYTE_COUNT && id < this.vocabSize;
  }

  applyChatTemplate(messages: readonly ChatMessage[], opts: ChatTemplateOptions = {}): string {
    return qwenChatTemplate(messages, opts);
  }

  chatTemplateLabel(): string {
    return BUILTIN_CHATML_LABEL;
  }

  /** The special tokens as `tokenizer_config.json` lists them (HF field names). */
  tokenizerConfig(): Record<string, unknown> {
    return {
      tokenizer_class: "ByteTokenizer",
      description: "ids 0..255 are raw UTF-8 bytes; then the special tokens below, in order",
      vocab_size: this.vocabSize,
      added_tokens_decoder: Object.fromEntries(SPECIAL_TOKENS.map((t, i) => [String(BYTE_COUNT + i), { content: t, special: true }])),
      additional_special_tokens: [...SPECIAL_TOKENS],
      eos_token: "<|im_end|>",
      pad_token: "<|endoftext|>",
      bos_token: null,
      chat_template:
        "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}",
    };
  }

  private checkId(id: number): void {
    if (!Number.isInteger(id) || id < 0) throw new Error(`tokenizer: invalid token id ${id}`);
  }
}

/** The shared byte tokenizer instance. */
export const byteTokenizer = new ByteTokenizer();
