import { z } from "zod";
import type { TraceQuantization } from "../trace";
import { defineValueKind, MAX_TEXT } from "./kind";

/** An LLM's answer as it flows to the next node. */
export interface LlmOutputValue {
  kind: "llm-output";
  model: string;
  text: string;
  promptIds: number[];
  ids: number[];
  /** How many of `ids` (at their end, before a held-back stop token) were teacher-forced control tokens, not generated. */
  forcedTokens?: number;
  stopReason: string;
  /** Final hidden states of generated special tokens ([IMG*], [TASK*], speech markers), for the generation heads. */
  specialHidden: { token: string; id: number; index: number; hidden: Float32Array }[];
  /** Final hidden states of the last generated tokens that were fed back (up to 67, oldest first): what the released DiT path reads. Absent in outputs of older runs. */
  tailHidden?: Float32Array[];
  prefillMs: number;
  decodeMs: number;
  /** The prompt as text (the chat template's output, or the Prompt Builder's sequence text). */
  promptText?: string;
  /** How the prompt was written: "chat template from tokenizer_config.json", "built-in ChatML", … */
  promptFormat?: string;
  /** The arithmetic the routing ran in. */
  routingPrecision?: "fp32" | "bf16";
  /** Parameters active per token, averaged over the tokens of this run (engine/routing/active.ts). */
  activeParameters?: number;
  /** The model's weight-only quantisation (an int8/int4 import); absent: full precision. */
  quantization?: TraceQuantization;
}

const list = z.custom<unknown[]>((v) => Array.isArray(v));

/** LLM_OUTPUT: generated text, token ids and the hidden states the generation heads read. */
export const llmOutput = defineValueKind<LlmOutputValue>({
  name: "LLM_OUTPUT",
  noun: "an LLM output",
  tag: "llm-output",
  socket: { color: "#4ade80", description: "Generated text, token ids and special-token hidden states." },
  schema: z.object({
    kind: z.literal("llm-output"),
    model: z.string(),
    text: z.string(),
    promptIds: list,
    ids: list,
    stopReason: z.string(),
    specialHidden: list,
    tailHidden: z.array(z.instanceof(Float32Array)).optional(),
  }),
  describe: (o) => ({ type: "text", headline: llmOutputHeadline(o), text: o.text.slice(0, MAX_TEXT), length: o.text.length }),
});

/** "16 generated tokens (max-tokens) + 122 control tokens appended": the forced ones are not the model's. */
export function llmOutputHeadline(o: Pick<LlmOutputValue, "ids" | "forcedTokens" | "stopReason">): string {
  if (o.stopReason.startsWith("scored")) return `${o.ids.length} answer token${o.ids.length === 1 ? "" : "s"} scored (teacher-forced), none generated`;
  const forced = o.forcedTokens ?? 0;
  const generated = o.ids.length - forced;
  return `${generated} generated token${generated === 1 ? "" : "s"} (${o.stopReason})${forced ? ` + ${forced} control token${forced === 1 ? "" : "s"} appended` : ""}`;
}
