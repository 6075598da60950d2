import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import type { Tokenizer } from "../text/tokenizer";
import { JsonTokenizer } from "../text/tokenizer-json";

export const GENERATION_CONFIG_FILE = "generation_config.json";

/** `eos_token_id` of a model directory's generation_config.json (a number or a list, as transformers reads it); [] when absent. */
export function generationConfigEosIds(modelDir: string): number[] {
  const file = path.join(modelDir, GENERATION_CONFIG_FILE);
  if (!existsSync(file)) return [];
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(file, "utf8"));
  } catch (e) {
    throw new Error(`${file} is not valid JSON (${(e as Error).message})`);
  }
  const eos = json !== null && typeof json === "object" ? (json as { eos_token_id?: unknown }).eos_token_id : undefined;
  if (eos === undefined || eos === null) return [];
  const ids = Array.isArray(eos) ? eos : [eos];
  if (!ids.every((id) => Number.isInteger(id) && (id as number) >= 0)) throw new Error(`${file}: eos_token_id must be a token id or a list of token ids (got ${JSON.stringify(eos)})`);
  return ids as number[];
}

/**
 * Ids generation stops at: ChatML's end markers when the vocabulary has them as single tokens, the eos token
 * of tokenizer_config.json (`</s>` for Mixtral, `<|endoftext|>` for OLMoE), and — when the model directory is
 * given — every `eos_token_id` of its generation_config.json (what transformers' generate stops at).
 */
export function stopTokenIds(tok: Tokenizer, modelDir?: string): number[] {
  const names = ["<|im_end|>", "<|endoftext|>", ...(tok instanceof JsonTokenizer && tok.eosToken ? [tok.eosToken] : [])];
  const ids = new Set<number>();
  for (const name of names) {
    try {
      ids.add(tok.tokenId(name));
    } catch {
      // not a single token of this vocabulary
    }
  }
  if (modelDir !== undefined) for (const id of generationConfigEosIds(modelDir)) ids.add(id);
  return [...ids];
}

/** The tokens forced after the answer for `emit` (PAPER.md §5 layouts); the speech span speaks the answer. */
export function controlTokens(tok: Tokenizer, emit: "none" | "speech" | "image" | "speech+image"): ((answer: string) => number[]) | undefined {
  if (emit === "none") return undefined;
  return (answer) => {
    const ids: number[] = [];
    if (emit.includes("speech")) {
      // The answer's own text goes in as plain bytes, so stray marker text in it cannot open another span.
      ids.push(...tok.encode("<|speech_start|>Language: English; Speaker: default;<|speech_prompt|>"));
      for (const id of tok.encode(answer.trim() || "…", { allowSpecial: false })) ids.push(id); // (a long answer: no spread)
      ids.push(tok.tokenId("<|speech_end|>"));
    }
    if (emit.includes("image")) ids.push(...tok.encode(`${[0, 1, 2].map((i) => `[TASK${i}]`).join("")}${Array.from({ length: 32 }, (_, i) => `[IMG${i}]`).join("")}`));
    return ids;
  };
}
