import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { modelsDir } from "./uni-moe-tiny";

/** Node types that take a model (each may have a default set on the Models page). */
export const MODEL_NODE_TYPES = ["model.moe-llm"] as const;

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
