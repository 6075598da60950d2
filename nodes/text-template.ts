import { z } from "zod";
import { defineNode } from "../engine/node";
import "./params";

/**
 * Longest text a template may produce (characters; as long as one string of a workflow document may be). The template
 * repeats its inputs, so without a limit a 100 kB template of `{a}`s over a long text asks for gigabytes.
 */
export const MAX_TEMPLATE_OUTPUT = 16 * 1024 * 1024;

/** `template` with every `slot` replaced by `value`, refused before it is built when it would be over the limit. */
function fill(template: string, slot: string, value: string): string {
  const count = template.split(slot).length - 1;
  const length = template.length + count * (value.length - slot.length);
  if (length > MAX_TEMPLATE_OUTPUT) {
    const n = (x: number) => x.toLocaleString("en");
    throw new Error(`the filled template would be ${n(length)} characters (${n(count)} × ${slot} with ${n(value.length)} characters each); at most ${n(MAX_TEMPLATE_OUTPUT)} are allowed`);
  }
  return template.replaceAll(slot, value);
}

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
    return { text: fill(fill(params.template, "{a}", a), "{b}", b) };
  },
  summarize(outputs) {
    const text = outputs.text ?? "";
    return `${text.length} chars`;
  },
});
