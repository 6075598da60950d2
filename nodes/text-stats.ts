import { z } from "zod";
import { defineNode } from "../engine/node";
import { textStats } from "../engine/values/text-stats";
import "./params";

/** Counts the words, characters and lines of a text: a quick check on a prompt or a reply. */
export const textStatsNode = defineNode({
  type: "text.stats",
  typeVersion: 1,
  title: "Text Stats",
  category: "Utility",
  description: "Counts the words, characters and lines of the connected text.",
  inputs: { text: { type: "TEXT" } },
  outputs: { stats: { type: "JSON", kind: textStats } },
  params: z.object({}),
  async execute({ inputs }) {
    const t = inputs.text; // a string: checked against TEXT before execute runs
    return { stats: { kind: "text-stats", words: t.split(/\s+/).filter(Boolean).length, chars: [...t].length, lines: t === "" ? 0 : t.split("\n").length } };
  },
  summarize: (outputs) => (outputs.stats ? `${outputs.stats.words} words` : "no text"),
});
