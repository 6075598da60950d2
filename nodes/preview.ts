import { z } from "zod";
import { defineNode } from "../engine/node";
import { describeValue, type PreviewSummary } from "../engine/values";
import { preview as previewKind } from "../engine/values/preview";
import "./params";

/** What a Preview saw (engine/values/index.ts describeValue: by the value's kind, else by its JavaScript type). */
export { describeValue, type PreviewSummary };

/** Shows what arrives on its input; its `summary` output describes it (type, text, image size, …). */
export const preview = defineNode({
  type: "output.preview",
  typeVersion: 1,
  title: "Preview",
  category: "Outputs",
  description: "Shows the value on its input: text, an image, an audio clip, numbers or a summary of anything else.",
  inputs: { value: { type: "ANY", label: "Value" } },
  outputs: { summary: { type: "JSON", label: "Summary", kind: previewKind } },
  params: z.object({}),
  async execute({ inputs }) {
    return { summary: describeValue(inputs.value) };
  },
  summarize(outputs) {
    return outputs.summary?.headline ?? "nothing";
  },
});
