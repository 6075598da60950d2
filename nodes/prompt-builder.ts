import { z } from "zod";
import type { FeaturesValue } from "../engine/features";
import { defineNode } from "../engine/node";
import { ROPE_MODES } from "../engine/rope/positions";
import type { SequenceValue } from "../engine/sequence";
import { createHash } from "node:crypto";
import { buildSequence } from "../models/text/prompt";
import { modelTokenizer } from "../models/text/prompt-tokenizer";
import { JsonTokenizer } from "../models/text/tokenizer-json";
import "./params";

function features(v: FeaturesValue | null | undefined, kind: string): FeaturesValue | undefined {
  if (v === undefined || v === null) return undefined;
  if (v.modality !== kind) throw new Error(`the ${kind} input carries ${v.modality} features`);
  return v;
}

export const promptBuilder = defineNode({
  type: "prompt.builder",
  typeVersion: 1,
  title: "Prompt Builder",
  category: "Prompt",
  description: "Chat template + <image>/<video>/<audio> placeholders → a token sequence with 3D (t, h, w) positions, tokenised for the model that will run it.",
  inputs: {
    text: { type: "TEXT", optional: true },
    image: { type: "FEATURES", optional: true },
    video: { type: "FEATURES", optional: true },
    audio: { type: "FEATURES", optional: true },
  },
  outputs: { sequence: { type: "SEQUENCE" } },
  params: z.object({
    model: z
      .string()
      .min(1)
      .default("uni-moe-tiny/tiny")
      .meta({
        widget: "model",
        label: "Tokenize for model",
        description: "The sequence is written with this model's tokenizer and chat template; set it to the MoE-LLM node's model (the MoE-LLM refuses a sequence tokenised for a different tokenizer).",
      }),
    chatTemplate: z
      .enum(["model", "chatml"])
      .default("model")
      .meta({ label: "Chat template", description: "model: the model's own chat template (ChatML when it has none); chatml: always the built-in ChatML format." }),
    template: z.string().max(100_000).default("<image>\n<audio>\n{text}").meta({ widget: "textarea", label: "User message", description: "{text} is the text input; <image>, <video>, <audio> place the connected features." }),
    system: z.string().max(10_000).default("").meta({ widget: "textarea", label: "System prompt" }),
    ropeMode: z.enum(ROPE_MODES).default("uni-moe").meta({ label: "RoPE mode" }),
  }),
  async fingerprint(params) {
    // The ids follow the tokenizer files, the text the chat template: both can change under the same model name.
    const { tokenizer, identity } = modelTokenizer(params.model);
    const template = params.chatTemplate === "model" && tokenizer instanceof JsonTokenizer ? tokenizer.chatTemplate : null;
    return template ? `${identity.hash}:${createHash("sha256").update(template).digest("hex").slice(0, 16)}` : identity.hash;
  },
  async execute({ inputs, params }) {
    const image = features(inputs.image, "image");
    const video = features(inputs.video, "video");
    const audio = features(inputs.audio, "audio");
    // Placeholders of unconnected inputs are dropped, so one template serves with and without media.
    let template = params.template;
    for (const [kind, f] of [["image", image], ["video", video], ["audio", audio]] as const) if (!f) template = template.replaceAll(`<${kind}>\n`, "").replaceAll(`<${kind}>`, "");
    const { tokenizer, identity, hiddenSize } = modelTokenizer(params.model);
    const parts = {
      template,
      system: params.system,
      text: inputs.text ?? "",
      image,
      video,
      audio,
      mode: params.ropeMode,
      chatTemplate: params.chatTemplate,
      tokenizerName: `model "${params.model}"`,
    };
    const built = buildSequence(tokenizer, parts, hiddenSize);
    const sequence: SequenceValue = { ...built, tokenizer: identity };
    return { sequence };
  },
  summarize(outputs) {
    const s = outputs.sequence;
    if (!s) return "no sequence";
    const media = s.modality.filter((m) => m !== "text").length;
    const model = s.tokenizer ? ` for ${s.tokenizer.model}` : "";
    return `${s.ids.length} tokens (${media} media)${model}, ${s.mode} positions`;
  },
});
