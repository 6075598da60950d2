import { z } from "zod";
import { isFeatures, type FeaturesValue } from "../engine/features";
import { defineNode } from "../engine/node";
import { ROPE_MODES } from "../engine/rope/positions";
import type { SequenceValue } from "../engine/sequence";
import { buildSequence } from "../models/prompt";
import { byteTokenizer } from "../models/tokenizer";
import "./params";

function features(v: unknown, kind: string): FeaturesValue | undefined {
  if (v === undefined) return undefined;
  if (!isFeatures(v)) throw new Error(`the ${kind} input is not encoder features`);
  if (v.modality !== kind) throw new Error(`the ${kind} input carries ${v.modality} features`);
  return v;
}

export const promptBuilder = defineNode({
  type: "prompt.builder",
  typeVersion: 1,
  title: "Prompt Builder",
  category: "Prompt",
  description: "Chat template + <image>/<video>/<audio> placeholders → a token sequence with 3D (t, h, w) positions.",
  inputs: {
    text: { type: "TEXT", optional: true },
    image: { type: "FEATURES", optional: true },
    video: { type: "FEATURES", optional: true },
    audio: { type: "FEATURES", optional: true },
  },
  outputs: { sequence: { type: "SEQUENCE" } },
  params: z.object({
    template: z.string().max(100_000).default("<image>\n<audio>\n{text}").meta({ widget: "textarea", label: "User message", description: "{text} is the text input; <image>, <video>, <audio> place the connected features." }),
    system: z.string().max(10_000).default("").meta({ widget: "textarea", label: "System prompt" }),
    ropeMode: z.enum(ROPE_MODES).default("uni-moe").meta({ label: "RoPE mode" }),
  }),
  async execute({ inputs, params }) {
    const image = features(inputs.image, "image");
    const video = features(inputs.video, "video");
    const audio = features(inputs.audio, "audio");
    // Placeholders of unconnected inputs are dropped, so one template serves with and without media.
    let template = params.template;
    for (const [kind, f] of [["image", image], ["video", video], ["audio", audio]] as const) if (!f) template = template.replaceAll(`<${kind}>\n`, "").replaceAll(`<${kind}>`, "");
    const sequence = buildSequence(byteTokenizer, {
      template,
      system: params.system,
      text: typeof inputs.text === "string" ? inputs.text : "",
      image,
      video,
      audio,
      mode: params.ropeMode,
    });
    return { sequence };
  },
  summarize(outputs) {
    const s = outputs.sequence as SequenceValue | undefined;
    if (!s) return "no sequence";
    const media = s.modality.filter((m) => m !== "text").length;
    return `${s.ids.length} tokens (${media} media), ${s.mode} positions`;
  },
});
