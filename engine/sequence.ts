import type { Layout, RopeMode, TokenInfo } from "./rope/positions";

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
}

export function isSequence(v: unknown): v is SequenceValue {
  return typeof v === "object" && v !== null && (v as { kind?: unknown }).kind === "sequence";
}
