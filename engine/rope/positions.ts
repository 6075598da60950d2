/**
 * Omni-Modality 3D RoPE position ids (t, h, w) for a prompt LAYOUT (PAPER.md §3).
 * Framework-free: no React, Next, Prisma or onnxruntime.
 *
 * A LAYOUT is the prompt as an ordered list of segments:
 *   {"kind":"text","tokens":n}
 *   {"kind":"image","rows":a,"cols":b,"pool":s}           a×b tiles of 384², s×s tokens per tile
 *   {"kind":"video","frames":T,"rows":1,"cols":1,"pool":s,"secondsPerFrame":x}   one 384² tile per frame
 *   {"kind":"audio","chunks":n}                           200 tokens per 30-s chunk
 *
 * Segments count CONTENT tokens only. Marker tokens (`<|vision_start|>`, `<|vision_end|>`, `<|audio_start|>`,
 * `<|im_start|>`, …) are ordinary text tokens (t = h = w = running index), so the caller includes them in the
 * text segments around a span: `[{text 3}, {image}, {text 1}]` for `a b <|vision_start|> [image] <|vision_end|>`.
 *
 * Token order inside a span (the order of the returned arrays), per the released Uni-MoE code:
 *   image: tile by tile (tile rows outer, tile cols inner), raster order (i outer, j inner) inside a tile;
 *   video: frame by frame, raster inside the frame's single tile;
 *   audio: chunk by chunk, 10 segments of 20 tokens per chunk.
 * Only `qwen2.5-omni` changes the order: a video immediately followed by an audio segment is interleaved
 * in 2-s chunks (see `computePositionIds`). Every returned token names its layout segment, so callers can
 * map back.
 *
 * Video sampling (8..frames_upbound frames, even count) is the video SAMPLER's contract, not this rule's:
 * the position-id rule is defined for any frame count, and the RoPE Inspector must be able to show odd
 * layouts. So validation only asks for frames ≥ 1; a frame count the Uni-MoE sampler would never produce
 * (odd, or fewer than 8) is reported in `warnings` by the uni-moe modes, never rejected.
 */
import { z } from "zod";

// ---------------------------------------------------------------------------------------------------------
// Constants (the ones PAPER.md marks as confirmed; pool size s stays a per-layout field).

/** Uni-MoE audio: 30-s chunks of 200 tokens = 10 segments of 20 tokens; one segment covers 3 s. */
export const AUDIO = {
  secondsPerChunk: 30,
  tokensPerChunk: 200,
  segmentsPerChunk: 10,
  tokensPerSegment: 20,
  secondsPerSegment: 3,
} as const;

/** Uni-MoE time scale: 2 position ids per second (released code: `tokens_per_second = 2.0`, `torch.round`). */
export const UNI_MOE_IDS_PER_SECOND = 2;
/** Qwen2.5-Omni TMRoPE: `position_id_per_seconds = 25`, `seconds_per_chunk = 2`. */
export const TMROPE_IDS_PER_SECOND = 25;
export const TMROPE_SECONDS_PER_CHUNK = 2;
/** The Uni-MoE video sampler's contract (PAPER.md §3): at least 8 frames, an even count. */
export const UNI_MOE_MIN_VIDEO_FRAMES = 8;
/** Refuse layouts that would allocate absurd arrays (a typo like `"pool": 7000`). */
export const MAX_LAYOUT_TOKENS = 4_000_000;

// ---------------------------------------------------------------------------------------------------------
// Layout schema (zod is the source of truth; types are z.infer).

const count = (what: string, min = 1) =>
  z
    .number({ error: (iss) => (iss.input === undefined ? `${what} is required` : `${what} must be a number`) })
    .int({ error: `${what} must be a whole number` })
    .min(min, { error: `${what} must be at least ${min}` });

export const zTextSegment = z.strictObject({ kind: z.literal("text"), tokens: count("tokens") });
export const zImageSegment = z.strictObject({
  kind: z.literal("image"),
  rows: count("rows (tiles down)"),
  cols: count("cols (tiles across)"),
  pool: count("pool (tokens per tile side, s)"),
});
export const zVideoSegment = z.strictObject({
  kind: z.literal("video"),
  frames: count("frames"),
  rows: z.literal(1, { error: "video frames are single 384² tiles: rows must be 1" }).default(1),
  cols: z.literal(1, { error: "video frames are single 384² tiles: cols must be 1" }).default(1),
  pool: count("pool (tokens per tile side, s)"),
  /** Seconds between sampled frames (1 fps sampling → 1). */
  secondsPerFrame: z
    .number({ error: (iss) => (iss.input === undefined ? "secondsPerFrame is required" : "secondsPerFrame must be a number") })
    .positive({ error: "secondsPerFrame must be > 0" })
    .max(3600, { error: "secondsPerFrame must be at most 3600" })
    .default(1),
});
export const zAudioSegment = z.strictObject({ kind: z.literal("audio"), chunks: count("chunks (30-s audio chunks)") });

export const zSegment = z.discriminatedUnion("kind", [zTextSegment, zImageSegment, zVideoSegment, zAudioSegment], {
  error: (iss) =>
    iss.code === "invalid_union" ? `kind must be one of "text", "image", "video", "audio"` : iss.code === "invalid_type" ? "a segment must be an object" : undefined,
});

export const zLayout = z.array(zSegment, { error: "a layout is a JSON array of segments" }).superRefine((segs, ctx) => {
  const total = segs.reduce((n, s) => n + segmentTokenCount(s), 0);
  if (total > MAX_LAYOUT_TOKENS) ctx.addIssue({ code: "custom", message: `the layout has ${total} tokens; at most ${MAX_LAYOUT_TOKENS} are allowed` });
});

export type TextSegment = z.infer<typeof zTextSegment>;
export type ImageSegment = z.infer<typeof zImageSegment>;
export type VideoSegment = z.infer<typeof zVideoSegment>;
export type AudioSegment = z.infer<typeof zAudioSegment>;
export type Segment = z.infer<typeof zSegment>;
export type Layout = z.infer<typeof zLayout>;
/** What callers may write: defaults (video rows/cols = 1, secondsPerFrame = 1) may be left out. */
export type LayoutInput = z.input<typeof zLayout>;

export const ROPE_MODES = ["uni-moe", "uni-moe-released", "qwen2-vl", "qwen2.5-omni", "1d"] as const;
export const zRopeMode = z.enum(ROPE_MODES);
export type RopeMode = z.infer<typeof zRopeMode>;

export class LayoutError extends Error {
  constructor(
    message: string,
    readonly issues: string[],
  ) {
    super(message);
    this.name = "LayoutError";
  }
}

/** Parse an unknown value as a layout; throws `LayoutError` listing each problem as `layout[2] (video).frames: …`. */
export function parseLayout(input: unknown): Layout {
  const r = zLayout.safeParse(input);
  if (r.success) return r.data;
  const issues = r.error.issues.map((iss) => {
    const [index, ...rest] = iss.path;
    let where = "layout";
    if (typeof index === "number") {
      const kind = Array.isArray(input) ? (input[index] as { kind?: unknown } | null)?.kind : undefined;
      where = `layout[${index}]${typeof kind === "string" ? ` (${kind})` : ""}`;
      if (rest.length) where += `.${rest.map(String).join(".")}`;
    }
    return `${where}: ${iss.message}`;
  });
  throw new LayoutError(`bad layout:\n  ${issues.join("\n  ")}`, issues);
}

export function segmentTokenCount(s: Segment): number {
  switch (s.kind) {
    case "text":
      return s.tokens;
    case "image":
      return s.rows * s.cols * s.pool * s.pool;
    case "video":
      return s.frames * s.rows * s.cols * s.pool * s.pool;
    case "audio":
      return s.chunks * AUDIO.tokensPerChunk;
  }
}

// ---------------------------------------------------------------------------------------------------------
// Result types

export type Modality = "text" | "image" | "video" | "audio";

interface TokenBase {
  /** Index of the layout segment the token belongs to. */
  segment: number;
  /** Index of the token inside its segment (layout order). */
  index: number;
}
export interface TextToken extends TokenBase {
  modality: "text";
}
export interface ImageToken extends TokenBase {
  modality: "image";
  tileRow: number;
  tileCol: number;
  /** Row / column inside the tile, 0..s-1. */
  i: number;
  j: number;
}
export interface VideoToken extends TokenBase {
  modality: "video";
  frame: number;
  tileRow: 0;
  tileCol: 0;
  i: number;
  j: number;
  /** frame * secondsPerFrame. */
  seconds: number;
}
export interface AudioToken extends TokenBase {
  modality: "audio";
  /** 30-s chunk index. */
  chunk: number;
  /** 20-token segment inside the chunk, 0..9 (the global segment k is chunk * 10 + audioSegment). */
  audioSegment: number;
  /** Start time of the 20-token segment: k * 3 s. */
  seconds: number;
}
export type TokenInfo = TextToken | ImageToken | VideoToken | AudioToken;

export interface SpanInfo {
  segment: number;
  kind: Modality;
  /** The segment's first id: st for a multimodal span, the first running index for text. */
  start: number;
  /** Largest id over all three axes inside the segment. */
  max: number;
  tokens: number;
}

export interface PositionIds {
  mode: RopeMode;
  /** The rule actually applied: `uni-moe-released` resolves to `uni-moe` or `1d`. */
  appliedMode: Exclude<RopeMode, "uni-moe-released">;
  /** position_ids[0], [1], [2] for one sequence, in sequence order. */
  t: number[];
  h: number[];
  w: number[];
  tokens: TokenInfo[];
  spans: SpanInfo[];
  warnings: string[];
}

// ---------------------------------------------------------------------------------------------------------
// Rounding

const EPS = 1e-9;

/**
 * torch.round (half to even), as the released Uni-MoE code rounds `frame * sec_per_frame * 2`. A value within
 * 1e-9 of a half counts as the half, so float noise (0.1 * 5 …) does not decide the result.
 */
export function roundHalfEven(x: number): number {
  const fl = Math.floor(x);
  const frac = x - fl;
  if (Math.abs(frac - 0.5) < EPS) return fl % 2 === 0 ? fl : fl + 1;
  return frac < 0.5 ? fl : fl + 1;
}

/** `.long()` on a non-negative float (truncation), tolerant of float noise just below an integer. */
function truncate(x: number): number {
  return Math.floor(x + EPS);
}

// ---------------------------------------------------------------------------------------------------------
// Per-span offsets relative to the span start st. Each generator yields tokens in LAYOUT order.

interface Offset {
  dt: number;
  dh: number;
  dw: number;
  info: TokenInfo;
}

function* imageTokens(seg: ImageSegment, segment: number): Generator<{ r: number; c: number; i: number; j: number; n: number; info: ImageToken }> {
  const s = seg.pool;
  let n = 0;
  for (let r = 0; r < seg.rows; r++)
    for (let c = 0; c < seg.cols; c++)
      for (let i = 0; i < s; i++)
        for (let j = 0; j < s; j++) {
          yield { r, c, i, j, n, info: { modality: "image", segment, index: n, tileRow: r, tileCol: c, i, j } };
          n++;
        }
}

function* videoTokens(seg: VideoSegment, segment: number): Generator<{ f: number; i: number; j: number; n: number; info: VideoToken }> {
  const s = seg.pool;
  let n = 0;
  for (let f = 0; f < seg.frames; f++)
    for (let i = 0; i < s; i++)
      for (let j = 0; j < s; j++) {
        yield { f, i, j, n, info: { modality: "video", segment, index: n, frame: f, tileRow: 0, tileCol: 0, i, j, seconds: f * seg.secondsPerFrame } };
        n++;
      }
}

function* audioTokens(seg: AudioSegment, segment: number): Generator<{ m: number; k: number; info: AudioToken }> {
  const total = seg.chunks * AUDIO.tokensPerChunk;
  for (let m = 0; m < total; m++) {
    const k = Math.floor(m / AUDIO.tokensPerSegment);
    const chunk = Math.floor(k / AUDIO.segmentsPerChunk);
    yield { m, k, info: { modality: "audio", segment, index: m, chunk, audioSegment: k % AUDIO.segmentsPerChunk, seconds: k * AUDIO.secondsPerSegment } };
  }
}

/**
 * Paper rule (PAPER.md §3), as the released `get_rope_index_new` computes it:
 *   image  t = st, h = st + tile_row*s + i, w = st + tile_col*s + j
 *   video  t = st + round(f * secondsPerFrame * 2), h = st + i, w = st + j
 *   audio  every token of 20-token segment k: st + round(k * 3 s * 2) = st + 6k on all three axes
 */
function uniMoeSpan(seg: Exclude<Segment, TextSegment>, segment: number): Offset[] {
  const out: Offset[] = [];
  if (seg.kind === "image") {
    for (const x of imageTokens(seg, segment)) out.push({ dt: 0, dh: x.r * seg.pool + x.i, dw: x.c * seg.pool + x.j, info: x.info });
  } else if (seg.kind === "video") {
    for (const x of videoTokens(seg, segment)) out.push({ dt: roundHalfEven(x.f * seg.secondsPerFrame * UNI_MOE_IDS_PER_SECOND), dh: x.i, dw: x.j, info: x.info });
  } else {
    for (const x of audioTokens(seg, segment)) {
      const id = roundHalfEven(x.k * AUDIO.secondsPerSegment * UNI_MOE_IDS_PER_SECOND);
      out.push({ dt: id, dh: id, dw: id, info: x.info });
    }
  }
  return out;
}

/**
 * Qwen2-VL's `get_rope_index` applied to this layout's token sequence:
 *   image  t = st; h/w = raster position of the token's SEQUENCE index over the whole (rows*s) × (cols*s) grid,
 *          i.e. Qwen2-VL assumes raster order over the full image. For one tile this equals the paper rule;
 *          for several tiles the tile-by-tile tokens get ids that do not match their tile (that is the point
 *          of the comparison).
 *   video  t = st + frame index (each layout frame is one temporal grid step; real Qwen2-VL merges 2 frames
 *          into one temporal patch, which is not modelled), h/w raster inside the frame.
 *   audio  Qwen2-VL has no audio: its rule gives every non-vision token a 1D running index, so audio tokens
 *          are handled as text by the caller (never reaches here).
 */
function qwenVisionSpan(seg: ImageSegment | VideoSegment, segment: number, videoDt: (f: number) => number): Offset[] {
  const out: Offset[] = [];
  if (seg.kind === "image") {
    const W = seg.cols * seg.pool;
    for (const x of imageTokens(seg, segment)) out.push({ dt: 0, dh: Math.floor(x.n / W), dw: x.n % W, info: x.info });
  } else {
    for (const x of videoTokens(seg, segment)) out.push({ dt: videoDt(x.f), dh: x.i, dw: x.j, info: x.info });
  }
  return out;
}

/** TMRoPE video time: `.long()` of frame * secondsPerFrame * 25 (truncation, as Qwen2.5-Omni does). */
const tmropeVideoDt = (seg: VideoSegment) => (f: number) => truncate(f * seg.secondsPerFrame * TMROPE_IDS_PER_SECOND);

/**
 * TMRoPE audio: Qwen2.5-Omni's audio encoder emits one token per 40 ms, and its code gives audio token m the
 * id st + m on all axes (= 25 ids per second). Uni-MoE audio tokens are 200 per 30 s (0.15 s each), so we place
 * token m at its start time: st + trunc(m * 0.15 s * 25) = st + floor(m * 15 / 4). An approximation of how
 * TMRoPE would time-align these tokens, not a reproduction of any released code path.
 */
function tmropeAudioSpan(seg: AudioSegment, segment: number): Offset[] {
  const out: Offset[] = [];
  for (const x of audioTokens(seg, segment)) {
    const id = Math.floor((x.m * AUDIO.secondsPerChunk * TMROPE_IDS_PER_SECOND) / AUDIO.tokensPerChunk);
    out.push({ dt: id, dh: id, dw: id, info: x.info });
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// The walk

/**
 * Position ids for one prompt.
 *
 * Shared by every 3D mode: text tokens get t = h = w = running index; each multimodal span starts at
 * st = (max id so far over all axes) + 1 (0 at the start of the prompt); text after a span resumes at the
 * span's max + 1 (which is the max so far, since a span starts above everything before it).
 *
 * Modes:
 * - `uni-moe` — the paper rule (PAPER.md §3). Spans are never interleaved: a video's audio track is a separate
 *   audio segment after it, and starts after the video's max. Time ids are rounded half-to-even (torch.round
 *   in the released code): 2 ids/s, so a frame every 2 s steps t by 4, secondsPerFrame 0.75 gives
 *   t offsets 0, 2 (1.5), 3, 4 (4.5), 6, …
 * - `uni-moe-released` — the released code's quirk: its `get_rope_index(_new)` builds 3D ids only when
 *   `image_grid_thw` or `video_grid_thw` is given, i.e. when the prompt has an image or a video. Audio-only and
 *   text-only prompts fall to the plain 1D branch (0..n-1). With an image or video present (with or without
 *   audio) it equals `uni-moe`.
 * - `qwen2-vl` — see `qwenVisionSpan`; audio tokens are 1D running indices like text.
 * - `qwen2.5-omni` — TMRoPE approximation after the public Qwen2.5-Omni `get_rope_index`:
 *   25 ids/s; image t = st, h/w raster over the whole grid; video t = st + trunc(f * secondsPerFrame * 25);
 *   audio see `tmropeAudioSpan`. A video segment IMMEDIATELY followed by an audio segment (no text between)
 *   is that video's audio track (`use_audio_in_video`): both start from ONE st, and the tokens are
 *   interleaved in 2-s chunks (50 ids): chunk c holds the tokens with c*50 <= t - st < (c+1)*50, video tokens
 *   of chunk c first, then audio tokens of chunk c. This is the only case where the returned order differs
 *   from layout order. Not reproduced: Qwen2.5-Omni's paired markers (`<|vision_bos|><|audio_bos|>` share one
 *   id, as do the two eos markers; markers here are ordinary text tokens) and its resumption after the last
 *   appended chunk's max (we resume after the pair's overall max); real Qwen2.5-Omni video grids are 2-frame
 *   temporal patches (each layout frame is one step here).
 * - `1d` — 0..n-1 on all three axes.
 */
export function computePositionIds(layoutInput: LayoutInput | Layout, mode: RopeMode = "uni-moe"): PositionIds {
  const layout = parseLayout(layoutInput);
  const hasVision = layout.some((s) => s.kind === "image" || s.kind === "video");
  const applied: PositionIds["appliedMode"] = mode === "uni-moe-released" ? (hasVision ? "uni-moe" : "1d") : mode;

  const res: PositionIds = { mode, appliedMode: applied, t: [], h: [], w: [], tokens: [], spans: [], warnings: [] };
  if (mode === "uni-moe" || mode === "uni-moe-released") {
    layout.forEach((s, i) => {
      if (s.kind !== "video") return;
      if (s.frames % 2 !== 0 || s.frames < UNI_MOE_MIN_VIDEO_FRAMES)
        res.warnings.push(`layout[${i}] (video): ${s.frames} frame(s); the Uni-MoE video sampler produces an even count of at least ${UNI_MOE_MIN_VIDEO_FRAMES}`);
    });
  }

  let maxSoFar = -1;
  const push = (t: number, h: number, w: number, info: TokenInfo) => {
    res.t.push(t);
    res.h.push(h);
    res.w.push(w);
    res.tokens.push(info);
  };
  const pushText = (segment: number, n: number, kind: Modality, infoAt?: (k: number) => TokenInfo) => {
    const start = maxSoFar + 1;
    for (let k = 0; k < n; k++) {
      const id = start + k;
      push(id, id, id, infoAt ? infoAt(k) : { modality: "text", segment, index: k });
    }
    maxSoFar = start + n - 1;
    res.spans.push({ segment, kind, start, max: maxSoFar, tokens: n });
  };
  const pushSpan = (segment: number, kind: Modality, st: number, offsets: Offset[]) => {
    let max = st;
    for (const o of offsets) {
      push(st + o.dt, st + o.dh, st + o.dw, o.info);
      max = Math.max(max, st + o.dt, st + o.dh, st + o.dw);
    }
    res.spans.push({ segment, kind, start: st, max, tokens: offsets.length });
    return max;
  };

  for (let i = 0; i < layout.length; i++) {
    const seg = layout[i]!;
    if (seg.kind === "text") {
      pushText(i, seg.tokens, "text");
      continue;
    }
    if (applied === "1d") {
      const infos = spanInfos(seg, i);
      pushText(i, infos.length, seg.kind, (k) => infos[k]!);
      continue;
    }
    const st = maxSoFar + 1;
    if (applied === "uni-moe") {
      maxSoFar = pushSpan(i, seg.kind, st, uniMoeSpan(seg, i));
    } else if (applied === "qwen2-vl") {
      if (seg.kind === "audio") {
        const infos = spanInfos(seg, i);
        pushText(i, infos.length, "audio", (k) => infos[k]!);
      } else maxSoFar = pushSpan(i, seg.kind, st, qwenVisionSpan(seg, i, (f) => f));
    } else {
      // qwen2.5-omni
      const next = layout[i + 1];
      if (seg.kind === "video" && next?.kind === "audio") {
        maxSoFar = pushInterleaved(res, i, st, qwenVisionSpan(seg, i, tmropeVideoDt(seg)), tmropeAudioSpan(next, i + 1));
        i++;
      } else if (seg.kind === "audio") maxSoFar = pushSpan(i, "audio", st, tmropeAudioSpan(seg, i));
      else maxSoFar = pushSpan(i, seg.kind, st, qwenVisionSpan(seg, i, seg.kind === "video" ? tmropeVideoDt(seg) : () => 0));
    }
  }
  return res;
}

/** Token infos of a span in layout order (for modes that number the span's tokens like text). */
function spanInfos(seg: Exclude<Segment, TextSegment>, segment: number): TokenInfo[] {
  return uniMoeSpan(seg, segment).map((o) => o.info);
}

/** qwen2.5-omni video + its audio track: one st, interleaved by 2-s chunks (video first within a chunk). */
function pushInterleaved(res: PositionIds, segment: number, st: number, video: Offset[], audio: Offset[]): number {
  const idsPerChunk = TMROPE_IDS_PER_SECOND * TMROPE_SECONDS_PER_CHUNK;
  const chunkOf = (o: Offset) => Math.floor(o.dt / idsPerChunk);
  const lastChunk = (list: Offset[]) => (list.length ? chunkOf(list[list.length - 1]!) : 0); // dt is non-decreasing
  const chunks = Math.max(lastChunk(video), lastChunk(audio)) + 1;
  let vi = 0;
  let ai = 0;
  const emit = (o: Offset) => {
    res.t.push(st + o.dt);
    res.h.push(st + o.dh);
    res.w.push(st + o.dw);
    res.tokens.push(o.info);
  };
  // Both lists are in non-decreasing dt, so each chunk is a contiguous run of each.
  for (let c = 0; c < chunks; c++) {
    while (vi < video.length && chunkOf(video[vi]!) === c) emit(video[vi++]!);
    while (ai < audio.length && chunkOf(audio[ai]!) === c) emit(audio[ai++]!);
  }
  const spanMax = (list: Offset[]) => list.reduce((m, o) => Math.max(m, st + o.dt, st + o.dh, st + o.dw), st);
  const vMax = spanMax(video);
  const aMax = spanMax(audio);
  res.spans.push({ segment, kind: "video", start: st, max: vMax, tokens: video.length });
  res.spans.push({ segment: segment + 1, kind: "audio", start: st, max: aMax, tokens: audio.length });
  return Math.max(vMax, aMax);
}
