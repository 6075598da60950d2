/**
 * The tokenizer a model reference uses, and its identity, without loading the model's weights or ONNX session:
 * the Prompt Builder tokenises with it and stamps the identity on its SEQUENCE; the MoE-LLM node refuses a
 * sequence whose identity differs from its own model's.
 *
 * Identity = a hash of what decides the ids: `tokenizer.json` for a Hugging Face tokenizer (two models that
 * ship the same file are compatible; chat templates only change the text, not what an id means), a fixed
 * hash of the special-token table for the reference byte tokenizer.
 */
import { createHash } from "node:crypto";
import { existsSync, readFileSync, statSync } from "node:fs";
import path from "node:path";
import { resolveInside } from "@/engine/paths";
import type { SequenceTokenizer } from "@/engine/sequence";
import { byteTokenizer, SPECIAL_TOKENS, type Tokenizer } from "./tokenizer";
import { JsonTokenizer, loadTokenizer } from "./tokenizer-json";
import { REFERENCE_MODEL_NAMES } from "../moe-llm/uni-moe-tiny";
import { modelsDir } from "@/engine/config";

export const BYTE_TOKENIZER_HASH = `byte:${createHash("sha256").update(SPECIAL_TOKENS.join("\n")).digest("hex").slice(0, 16)}`;

const fileHashes = new Map<string, { stamp: string; hash: string }>();

/** Hash of what decides a tokenizer's ids (cached per tokenizer.json until its mtime or size changes). */
export function tokenizerHash(tok: Tokenizer): string {
  if (!(tok instanceof JsonTokenizer)) {
    if (tok !== byteTokenizer) throw new Error("tokenizerHash: unknown tokenizer kind");
    return BYTE_TOKENIZER_HASH;
  }
  const s = statSync(tok.file);
  const stamp = `${s.mtimeMs}/${s.size}`;
  const hit = fileHashes.get(tok.file);
  if (hit?.stamp === stamp) return hit.hash;
  const hash = `json:${createHash("sha256").update(readFileSync(tok.file)).digest("hex").slice(0, 16)}`;
  fileHashes.set(tok.file, { stamp, hash });
  return hash;
}

export function sequenceTokenizer(modelRef: string, tok: Tokenizer): SequenceTokenizer {
  return { model: modelRef, hash: tokenizerHash(tok) };
}

export interface ModelTokenizer {
  tokenizer: Tokenizer;
  identity: SequenceTokenizer;
  /** hidden_size of the model's config.json (undefined for the reference family, whose sizes differ per model). */
  hiddenSize?: number;
}

/**
 * The tokenizer of a model reference as the MoE-LLM node will load it (models/moe-llm/moe-llm-model.ts resolveModel +
 * loadTokenizer), minus the weights: the seeded reference family ("uni-moe-tiny/…") uses the byte tokenizer
 * by definition; any other reference is a directory in the models dir with a config.json.
 */
export function modelTokenizer(ref: string): ModelTokenizer {
  if (ref.startsWith("uni-moe-tiny/") && (REFERENCE_MODEL_NAMES as readonly string[]).includes(ref.slice("uni-moe-tiny/".length))) {
    return { tokenizer: byteTokenizer, identity: sequenceTokenizer(ref, byteTokenizer) };
  }
  const dir = resolveInside(modelsDir(), ref, "model", "the models directory");
  const configFile = path.join(dir, "config.json");
  if (!existsSync(configFile)) throw new Error(`model "${ref}" not found: no config.json in ${dir}`);
  let hiddenSize: number | undefined;
  try {
    const h = (JSON.parse(readFileSync(configFile, "utf8")) as { hidden_size?: unknown }).hidden_size;
    if (typeof h === "number") hiddenSize = h;
  } catch (e) {
    throw new Error(`model "${ref}": config.json is not valid JSON (${(e as Error).message})`);
  }
  const tokenizer = loadTokenizer(dir);
  return { tokenizer, identity: sequenceTokenizer(ref, tokenizer), hiddenSize };
}
