/**
 * FEATURES: what an encoder hands to the Prompt Builder — modality-tagged [N, D] rows already projected to
 * the LLM's hidden size, with the layout the 3D RoPE needs (PAPER.md §3–4).
 */
export interface ImageLayout {
  /** Any-resolution tile grid (384×384 tiles) and the pooled side s (s×s tokens per tile). */
  rows: number;
  cols: number;
  pool: number;
}

export interface VideoLayout {
  frames: number;
  /** Seconds between sampled frames (1 at 1 fps). */
  secondsPerFrame: number;
  pool: number;
}

export interface AudioLayout {
  /** 30-s chunks; 200 tokens each (10 segments × 20 tokens, 20 tokens = 3 s). */
  chunks: number;
  durationSec: number;
}

export interface FeaturesValue {
  kind: "features";
  modality: "image" | "video" | "audio";
  /** Row-major [n × dim]. */
  data: Float32Array;
  n: number;
  dim: number;
  /** Which encoder made them (model ref), e.g. "uni-moe-tiny/vision". */
  encoder: string;
  image?: ImageLayout;
  video?: VideoLayout;
  audio?: AudioLayout;
}

export function isFeatures(v: unknown): v is FeaturesValue {
  return typeof v === "object" && v !== null && (v as { kind?: unknown }).kind === "features";
}
