import { config } from "../../engine/config";
import type { MoeLlmConfig } from "./config";

/**
 * The most tokens one sequence of this model may hold (prompt and generated): the server's STUDIO_MAX_CONTEXT_TOKENS,
 * and the model's own max_position_embeddings. Attention and logits grow with it (the prefill's attention is S² per
 * head), so a prompt of a million bytes is refused before its embeddings exist rather than exhausting the process.
 */
export function contextLimit(c: MoeLlmConfig): { tokens: number; by: string } {
  const server = config().STUDIO_MAX_CONTEXT_TOKENS;
  const own = (c as { max_position_embeddings?: unknown }).max_position_embeddings;
  if (typeof own === "number" && Number.isInteger(own) && own > 0 && own < server) return { tokens: own, by: `the model's max_position_embeddings (${own})` };
  return { tokens: server, by: `STUDIO_MAX_CONTEXT_TOKENS (${server})` };
}

/** Throws a message meant for the user when `tokens` do not fit the model's context (see contextLimit). */
export function checkContext(c: MoeLlmConfig, tokens: number, what = "the sequence"): void {
  const limit = contextLimit(c);
  if (tokens > limit.tokens) throw new Error(`${what} has ${tokens.toLocaleString("en")} tokens; at most ${limit.by} fit; shorten the prompt`);
}
