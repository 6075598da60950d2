import { z } from "zod";
import { defineNode } from "../engine/node";
import "./params";

/**
 * Longest text a template may produce (characters; as long as one string of a workflow document may be). The template
 * repeats its inputs, so without a limit a 100 kB template of `{a}`s over a long text asks for gigabytes.
 */
export const MAX_TEMPLATE_OUTPUT = 16 * 1024 * 1024;

/** How many times `slot` occurs in `text` (no array of pieces). */
function occurrences(text: string, slot: string): number {
  let count = 0;
  for (let at = text.indexOf(slot); at !== -1; at = text.indexOf(slot, at + slot.length)) count++;
  return count;
}

/**
 * `template` with every `{a}` and `{b}` replaced by the inputs in one pass (a slot inside an input's text stays text:
 * an answer or a dataset record holding "{b}" does not pull `b` in), refused before it is built when the result would
 * be over the limit.
 */
function fill(template: string, values: { "{a}": string; "{b}": string }): string {
  let length = template.length;
  const parts: string[] = [];
  for (const [slot, value] of Object.entries(values)) {
    const count = occurrences(template, slot);
    length += count * (value.length - slot.length);
    if (count) parts.push(`${count.toLocaleString("en")} × ${slot} with ${value.length.toLocaleString("en")} characters each`);
  }
  if (length > MAX_TEMPLATE_OUTPUT) {
    throw new Error(`the filled template would be ${length.toLocaleString("en")} characters (${parts.join(", ")}); at most ${MAX_TEMPLATE_OUTPUT.toLocaleString("en")} are allowed`);
  }
  return template.replace(/\{[ab]\}/g, (slot) => values[slot as "{a}" | "{b}"]);
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
    return { text: fill(params.template, { "{a}": a, "{b}": b }) };
  },
  summarize(outputs) {
    const text = outputs.text ?? "";
    return `${text.length} chars`;
  },
});
