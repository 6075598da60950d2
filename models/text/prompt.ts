import type { FeaturesValue } from "@/engine/features";
import { computePositionIds, type Layout, type RopeMode, type Segment } from "@/engine/rope/positions";
import type { SequenceValue } from "@/engine/sequence";
import { config } from "@/engine/config";
import type { Tokenizer } from "./tokenizer";

export interface PromptParts {
  /** User text with `<image>`, `<video>`, `<audio>` placeholders (each used at most once per connected input). */
  template: string;
  system: string;
  /** Replaces `{text}` in the template. */
  text?: string;
  image?: FeaturesValue;
  video?: FeaturesValue;
  audio?: FeaturesValue;
  mode: RopeMode;
  /** "model" (default): the tokenizer's own chat template when it has one; "chatml": the built-in ChatML format. */
  chatTemplate?: "model" | "chatml";
  /** Whose tokenizer this is, for error messages (e.g. 'model "grin_qwen2_vl/omni"'). */
  tokenizerName?: string;
}

const MARKERS = {
  image: ["<|vision_start|>", "<|image_pad|>", "<|vision_end|>"],
  video: ["<|vision_start|>", "<|video_pad|>", "<|vision_end|>"],
  audio: ["<|audio_start|>", "<|audio_pad|>", "<|audio_end|>"],
} as const;

type MediaKind = keyof typeof MARKERS;

/**
 * The ids of a media kind's [start, pad, end] markers; a tokenizer without one of them as a single token
 * cannot carry that medium, and the error says which marker and whose tokenizer.
 */
function markerIds(tok: Tokenizer, kind: MediaKind, who: string): [number, number, number] {
  return MARKERS[kind].map((marker) => {
    try {
      return tok.tokenId(marker);
    } catch {
      throw new Error(
        `${who} has no "${marker}" token, which marks ${kind} input (${MARKERS[kind].join(" … ")}, the Qwen2-VL / Uni-MoE-2.0 convention): ` +
          `this model cannot take ${kind} here; pick a model whose tokenizer has these tokens or disconnect the ${kind} input`,
      );
    }
  }) as [number, number, number];
}

function segmentOf(kind: MediaKind, f: FeaturesValue): Segment {
  if (kind === "image") {
    if (!f.image) throw new Error("the image features carry no tile layout");
    return { kind: "image", rows: f.image.rows, cols: f.image.cols, pool: f.image.pool };
  }
  if (kind === "video") {
    if (!f.video) throw new Error("the video features carry no frame layout");
    return { kind: "video", frames: f.video.frames, rows: 1, cols: 1, pool: f.video.pool, secondsPerFrame: f.video.secondsPerFrame };
  }
  if (!f.audio) throw new Error("the audio features carry no chunk layout");
  return { kind: "audio", chunks: f.audio.chunks };
}

/**
 * Chat template + placeholders → token ids, media rows and 3D positions. Each placeholder becomes
 * `<start marker>` + one pad token per encoder row + `<end marker>`; the markers are text tokens.
 * Connected media with no placeholder is placed before the text (image, video, audio order), as the
 * released code does when the prompt names none.
 */
export function buildSequence(tok: Tokenizer, p: PromptParts, hiddenSize?: number): SequenceValue {
  const media: Partial<Record<MediaKind, FeaturesValue>> = { image: p.image, video: p.video, audio: p.audio };
  let user = p.template.replaceAll("{text}", p.text ?? "");
  for (const kind of ["audio", "video", "image"] as const) {
    if (media[kind] && !user.includes(`<${kind}>`)) user = `<${kind}>\n${user}`;
  }
  for (const kind of ["image", "video", "audio"] as const) {
    if (!media[kind] && user.includes(`<${kind}>`)) throw new Error(`the prompt has <${kind}> but no ${kind} features are connected`);
    if ((user.split(`<${kind}>`).length - 1) > 1) throw new Error(`<${kind}> appears more than once; each input can be placed once`);
  }
  const who = p.tokenizerName ? `the tokenizer of ${p.tokenizerName}` : "the tokenizer";
  const markers: Partial<Record<MediaKind, [number, number, number]>> = {};
  for (const kind of ["image", "video", "audio"] as const) if (media[kind]) markers[kind] = markerIds(tok, kind, who);
  const messages = [...(p.system ? [{ role: "system", content: p.system }] : []), { role: "user", content: user }];
  const templateOptions = { addGenerationPrompt: true, template: p.chatTemplate ?? "model" } as const;
  const full = tok.applyChatTemplate(messages, templateOptions);
  for (const kind of ["image", "video", "audio"] as const) {
    const count = full.split(`<${kind}>`).length - 1;
    if (media[kind] && count === 0) throw new Error(`the ${tok.chatTemplateLabel(templateOptions)} dropped the <${kind}> placeholder of the user message`);
    // the system prompt (or the template) can bring placeholders too: each would be a whole copy of the media
    if (count > (media[kind] ? 1 : 0)) throw new Error(`<${kind}> appears ${count} time${count === 1 ? "" : "s"} in the prompt as templated (the system prompt or the chat template has it too); each input can be placed once, in the prompt text`);
  }

  // Split the templated text at the placeholders; text pieces are tokenised, media pieces become spans.
  const pieces = full.split(/(<image>|<video>|<audio>)/);
  const layout: Layout = [];
  const chunks: ({ kind: "text"; ids: number[] } | { kind: MediaKind; f: FeaturesValue })[] = [];
  let pendingText: number[] = [];
  const maxTokens = config().STUDIO_MAX_CONTEXT_TOKENS;
  let textTokens = 0;
  const flushText = () => {
    if (pendingText.length) {
      layout.push({ kind: "text", tokens: pendingText.length });
      chunks.push({ kind: "text", ids: pendingText });
      pendingText = [];
    }
  };
  for (const piece of pieces) {
    const kind = /^<(image|video|audio)>$/.exec(piece)?.[1] as MediaKind | undefined;
    if (!kind) {
      const ids = tok.encode(piece);
      textTokens += ids.length;
      if (textTokens > maxTokens) throw new Error(`the prompt has ${textTokens.toLocaleString("en")} text tokens or more; at most STUDIO_MAX_CONTEXT_TOKENS (${maxTokens}) fit; shorten the prompt`);
      for (const id of ids) pendingText.push(id); // (a spread of 200,000 ids overflows the stack)
      continue;
    }
    const f = media[kind]!;
    if (hiddenSize !== undefined && f.dim !== hiddenSize) throw new Error(`the ${kind} features have ${f.dim} columns but the LLM's hidden size is ${hiddenSize}${p.tokenizerName ? ` (${p.tokenizerName})` : ""}`);
    pendingText.push(markers[kind]![0]);
    flushText();
    const seg = segmentOf(kind, f);
    layout.push(seg);
    chunks.push({ kind, f });
    pendingText.push(markers[kind]![2]);
  }
  flushText();

  const pos = computePositionIds(layout, p.mode);
  const counts = pos.spans.map((s) => s.tokens);
  chunks.forEach((c, i) => {
    if (c.kind !== "text" && c.f.n !== counts[i]) {
      throw new Error(`the ${c.kind} features have ${c.f.n} rows but their layout needs ${counts[i]} tokens`);
    }
  });
  // Build in the order the RoPE rule returned (qwen2.5-omni interleaves video and audio).
  const ids: number[] = [];
  const modality: SequenceValue["modality"] = [];
  const at: number[] = [];
  const dims = new Set(chunks.filter((c) => c.kind !== "text").map((c) => (c as { f: FeaturesValue }).f.dim));
  const dim = dims.size ? [...dims][0]! : 0;
  const rows: number[][] = [];
  for (const info of pos.tokens) {
    const c = chunks[info.segment]!;
    if (c.kind === "text") {
      ids.push(c.ids[info.index]!);
      modality.push("text");
    } else {
      ids.push(markers[c.kind]![1]);
      modality.push(c.kind);
      at.push(ids.length - 1);
      rows.push(Array.from(c.f.data.subarray(info.index * c.f.dim, (info.index + 1) * c.f.dim)));
    }
  }
  const flat = new Float32Array(rows.length * dim);
  rows.forEach((r, i) => flat.set(r, i * dim));
  return {
    kind: "sequence",
    text: full,
    ids,
    modality,
    positions: { t: pos.t, h: pos.h, w: pos.w },
    mode: p.mode,
    layout,
    tokens: pos.tokens,
    media: at.length ? { at: Int32Array.from(at), rows: flat, dim } : null,
    warnings: pos.warnings,
  };
}
