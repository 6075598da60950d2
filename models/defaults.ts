import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { modelsDir } from "@/engine/config";

/** Node types that take a model (each may have a default set on the Models page). */
export const MODEL_NODE_TYPES = ["model.moe-llm"] as const;

/**
 * Node types without a default of their own that start on another type's default model. The Prompt Builder
 * tokenises for the MoE-LLM it feeds, and the MoE-LLM refuses a sequence made with another tokenizer: a
 * separate default could only make freshly added pairs disagree, so it follows the MoE-LLM's.
 */
export const MODEL_DEFAULT_FOLLOWS: Readonly<Record<string, (typeof MODEL_NODE_TYPES)[number]>> = { "prompt.builder": "model.moe-llm" };

/** The default model for new nodes of a type (its own, or the one it follows), if the Models page set one. */
export function defaultModelFor(nodeType: string, defaults: Record<string, string>): string | undefined {
  const own = defaults[nodeType];
  if (typeof own === "string") return own;
  const followed = MODEL_DEFAULT_FOLLOWS[nodeType];
  const value = followed ? defaults[followed] : undefined;
  return typeof value === "string" ? value : undefined;
}

const defaultsFile = () => path.join(modelsDir(), "defaults.json");

/** The default model per node type, as set on the Models page (<models dir>/defaults.json); none when the file is missing or unreadable. */
export function readDefaults(): Record<string, string> {
  try {
    return JSON.parse(readFileSync(defaultsFile(), "utf8")) as Record<string, string>;
  } catch {
    return {};
  }
}

export function writeDefaults(defaults: Record<string, string>): void {
  mkdirSync(modelsDir(), { recursive: true });
  writeFileSync(defaultsFile(), JSON.stringify(defaults, null, 2));
}
