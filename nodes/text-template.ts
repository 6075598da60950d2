import { z } from "zod";
import { defineNode } from "../engine/node";
import "./params";

/** Fills `{a}` and `{b}` in a template: joins prompts, wraps a question in an instruction. */
export const textTemplate = defineNode({
  type: "text.template",
  typeVersion: 1,
  title: "Text Template",
  category: "Utility",
  description: "Fills {a} and {b} in a template with the connected texts.",
  inputs: { a: { type: "TEXT" }, b: { type: "TEXT", optional: true } },
  outputs: { text: { type: "TEXT" } },
  params: z.object({
    template: z.string().max(100_000).default("{a}").meta({ widget: "textarea", label: "Template", description: "{a} and {b} are replaced by the inputs." }),
  }),
  async execute({ inputs, params }) {
    const a = inputs.a;
    const b = inputs.b ?? "";
    return { text: params.template.replaceAll("{a}", a).replaceAll("{b}", b) };
  },
  summarize(outputs) {
    const text = outputs.text ?? "";
    return `${text.length} chars`;
  },
});
