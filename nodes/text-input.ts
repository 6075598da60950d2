import { z } from "zod";
import { defineNode } from "../engine/node";
import "./params";

/** A piece of text typed into the node: a prompt, a question, a caption. */
export const textInput = defineNode({
  type: "input.text",
  typeVersion: 1,
  title: "Text",
  category: "Inputs",
  description: "Text typed into the node, e.g. a prompt or a question.",
  inputs: {},
  outputs: { text: { type: "TEXT" } },
  params: z.object({
    text: z.string().default("").meta({ widget: "textarea", label: "Text" }),
  }),
  async execute({ params }) {
    return { text: params.text };
  },
  warnings: (params) => (/\S/.test(params.text) ? [] : [params.text === "" ? "the text is empty" : "the text is only white space"]),
  summarize(outputs) {
    const text = outputs.text ?? "";
    if (text === "") return "empty text";
    const oneLine = text.trimStart().slice(0, 1000).replace(/\s+/g, " ").trim(); // the headline shows 60 characters; a long text is not copied whole
    const shown = oneLine.length > 60 ? `${oneLine.slice(0, 59)}…` : oneLine;
    return `${text.length} character${text.length === 1 ? "" : "s"}: "${shown}"`;
  },
});
