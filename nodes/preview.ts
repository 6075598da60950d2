import { z } from "zod";
import { defineNode } from "../engine/node";
import "./params";

/**
 * What a Preview saw, small enough for an event or the JSON socket. Always `type` and a one-line
 * `headline`; then fields by type:
 *   text   { text (first 2,000 chars), length }         number/boolean { value }
 *   image  { file, mime, width, height }                audio { file, mime, sampleRate?, channels?, durationSec? }
 *   video  { file, mime, bytes }                        array { length, items: first 5 described }
 *   typed-array { dtype, length, min, max }             object { kind?, keys (first 20) }
 *   null
 */
export interface PreviewSummary {
  type: string;
  headline: string;
  [detail: string]: unknown;
}

const MAX_TEXT = 2000;

function isTypedArray(v: unknown): v is Float32Array | Float64Array | Int32Array | Uint8Array | BigInt64Array {
  return ArrayBuffer.isView(v) && !(v instanceof DataView);
}

function pick(o: Record<string, unknown>, keys: string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k of keys) if (o[k] !== undefined) out[k] = o[k];
  return out;
}

/** Describes any value for a preview, without copying big payloads; depth-limited, so cycles are safe. */
export function describeValue(value: unknown, depth = 0): PreviewSummary {
  if (value === null || value === undefined) return { type: "null", headline: "nothing" };
  if (typeof value === "string") {
    const oneLine = value.replace(/\s+/g, " ").trim();
    const headline = value === "" ? "empty text" : `text, ${value.length} chars: "${oneLine.length > 60 ? `${oneLine.slice(0, 59)}…` : oneLine}"`;
    return { type: "text", headline, text: value.slice(0, MAX_TEXT), length: value.length };
  }
  if (typeof value === "number") return { type: "number", headline: String(value), value: Number.isFinite(value) ? value : String(value) };
  if (typeof value === "boolean") return { type: "boolean", headline: String(value), value };
  if (typeof value === "bigint") return { type: "number", headline: String(value), value: String(value) };
  if (isTypedArray(value)) {
    const dtype = value.constructor.name.replace(/Array$/, "").toLowerCase();
    let min = Infinity;
    let max = -Infinity;
    if (!(value instanceof BigInt64Array) && !(value instanceof BigUint64Array)) {
      const nums = value as ArrayLike<number>;
      for (let i = 0; i < nums.length; i++) {
        const x = nums[i]!;
        if (x < min) min = x;
        if (x > max) max = x;
      }
    }
    const range = value.length > 0 && Number.isFinite(min) ? { min, max } : {};
    return { type: "typed-array", headline: `${dtype}[${value.length}]`, dtype, length: value.length, ...range };
  }
  if (Array.isArray(value)) {
    const items = depth < 2 ? value.slice(0, 5).map((v) => describeValue(v, depth + 1)) : [];
    return { type: "array", headline: `list of ${value.length}`, length: value.length, items };
  }
  if (typeof value === "object") {
    const o = value as Record<string, unknown>;
    if (o.kind === "image" && typeof o.file === "string") {
      return { type: "image", headline: `image ${o.width}×${o.height}`, ...pick(o, ["file", "mime", "width", "height"]) };
    }
    if (o.kind === "audio" && typeof o.file === "string") {
      const secs = typeof o.durationSec === "number" ? `, ${o.durationSec.toFixed(2)} s` : "";
      // a released MoE-TTS's speech says how it was made (tts.ts SpeechValue)
      const codes = Array.isArray(o.chunks) ? (o.chunks as { codes?: number }[]).reduce((a, c) => a + (c.codes ?? 0), 0) : 0;
      const made = typeof o.mode === "string" ? `; ${codes} codes, ${o.mode} mode${o.mode === "cached" ? " (differs from the release)" : ""}, codec ${String(o.codec)}, ${String(o.drops)} choice(s) dropped by capacity` : "";
      return { type: "audio", headline: `audio (${o.mime})${secs}${made}`, ...pick(o, ["file", "mime", "sampleRate", "channels", "durationSec"]) };
    }
    if (o.kind === "video" && typeof o.file === "string") {
      return { type: "video", headline: `video (${o.mime}), ${typeof o.bytes === "number" ? (o.bytes / (1024 * 1024)).toFixed(1) : "?"} MB`, ...pick(o, ["file", "mime", "bytes"]) };
    }
    if (o.kind === "llm-output" && typeof o.text === "string") {
      const ids = Array.isArray(o.ids) ? o.ids.length : 0;
      return { type: "text", headline: `${ids} generated tokens (${String(o.stopReason)})`, text: o.text.slice(0, MAX_TEXT), length: o.text.length };
    }
    if (o.kind === "sequence" && Array.isArray(o.ids) && Array.isArray(o.modality)) {
      const media = (o.modality as string[]).filter((m) => m !== "text").length;
      return { type: "sequence", headline: `sequence of ${o.ids.length} tokens (${media} media), ${String(o.mode)} positions`, length: o.ids.length };
    }
    if (o.kind === "features" && typeof o.n === "number") {
      return { type: "features", headline: `${String(o.modality)} features ${o.n} × ${String(o.dim)} (${String(o.encoder)})`, n: o.n, dim: o.dim };
    }
    if (o.kind === "compare-report" && typeof o.file === "string") {
      const sm = (o.summary ?? {}) as { maxAbsShareDelta?: number; layer?: number; expert?: string; meanTopAgreement?: number | null };
      const agree = typeof sm.meanTopAgreement === "number" ? `, top expert unchanged for ${(sm.meanTopAgreement * 100).toFixed(0)} %` : "";
      return {
        type: "compare-report",
        headline: `${String(o.labelB)} vs ${String(o.labelA)}: max |Δ share| ${((sm.maxAbsShareDelta ?? 0) * 100).toFixed(1)} % (L${sm.layer ?? "?"}, ${sm.expert ?? "?"})${agree}`,
        file: o.file,
      };
    }
    if (o.kind === "rope-report" && typeof o.file === "string") {
      return { type: "rope-report", headline: `3D positions of ${String(o.tokens)} tokens`, file: o.file };
    }
    if (o.kind === "routing-report" && typeof o.traceFile === "string") {
      return { type: "routing-report", headline: `routing report: ${String(o.tokens)} tokens × ${String(o.layers)} layers`, traceFile: o.traceFile, model: o.model, ...(typeof o.metricsFile === "string" ? { metricsFile: o.metricsFile } : {}) };
    }
    if (o.kind === "routing-trace" && Array.isArray(o.layers) && Array.isArray(o.tokens) && Array.isArray(o.experts)) {
      return { type: "routing-trace", headline: `routing of ${o.tokens.length} tokens × ${o.layers.length} layers × ${o.experts.length} experts`, model: o.model };
    }
    const keys = Object.keys(o);
    const kind = typeof o.kind === "string" ? o.kind : undefined;
    return {
      type: "object",
      headline: kind ? `${kind} (${keys.length} fields)` : `object with ${keys.length} field${keys.length === 1 ? "" : "s"}`,
      ...(kind ? { kind } : {}),
      keys: keys.slice(0, 20),
    };
  }
  return { type: typeof value, headline: typeof value };
}

/** Shows what arrives on its input; its `summary` output describes it (type, text, image size, …). */
export const preview = defineNode({
  type: "output.preview",
  typeVersion: 1,
  title: "Preview",
  category: "Outputs",
  description: "Shows the value on its input: text, an image, an audio clip, numbers or a summary of anything else.",
  inputs: { value: { type: "ANY", label: "Value" } },
  outputs: { summary: { type: "JSON", label: "Summary" } },
  params: z.object({}),
  async execute({ inputs }) {
    return { summary: describeValue(inputs.value) };
  },
  summarize(outputs) {
    const s = outputs.summary as PreviewSummary | undefined;
    return s?.headline ?? "nothing";
  },
});
