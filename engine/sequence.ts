import type { Layout, RopeMode, TokenInfo } from "./rope/positions";

/** The tokenizer a sequence's ids belong to: the model it was built for and a hash of that model's tokenizer files. */
export interface SequenceTokenizer {
  /** Model reference the Prompt Builder tokenised for, e.g. "grin_qwen2_vl/omni". */
  model: string;
  /** Equal hashes = the same ids for the same text (models sharing a tokenizer are compatible). */
  hash: string;
}

/**
 * SEQUENCE: a multimodal prompt ready for an LLM — token ids in sequence order (media positions hold the
 * pad token), the encoder rows to place at those positions, and the (t, h, w) rotary position of every token.
 */
export interface SequenceValue {
  kind: "sequence";
  /** The prompt text with placeholders expanded (markers written out, one pad token per media row shown as a count). */
  text: string;
  ids: number[];
  modality: ("text" | "image" | "video" | "audio")[];
  positions: { t: number[]; h: number[]; w: number[] };
  mode: RopeMode;
  layout: Layout;
  /** Per token, what the RoPE rule saw (tile, frame, audio segment, ...). */
  tokens: TokenInfo[];
  /** Media rows: for sequence index `at[r]`, the embedding is row r of `rows` ([count × dim]). */
  media: { at: Int32Array; rows: Float32Array; dim: number } | null;
  warnings: string[];
  /** Absent on sequences made before Prompt Builders had a model (they were always byte-tokenizer ids). */
  tokenizer?: SequenceTokenizer;
}

export function isSequence(v: unknown): v is SequenceValue {
  return typeof v === "object" && v !== null && (v as { kind?: unknown }).kind === "sequence";
}
