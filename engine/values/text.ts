import { z } from "zod";
import { defineValueKind, MAX_TEXT } from "./kind";

/** TEXT: a string. */
export const text = defineValueKind<string>({
  name: "TEXT",
  noun: "text",
  socket: { color: "#e2e8f0", description: "A string of text." },
  schema: z.string(),
  is: (v) => typeof v === "string",
  describe(value) {
    const oneLine = value.trimStart().slice(0, 1000).replace(/\s+/g, " ").trim(); // the headline shows 60 characters; a long text is not copied whole
    const headline = value === "" ? "empty text" : `text, ${value.length} chars: "${oneLine.length > 60 ? `${oneLine.slice(0, 59)}…` : oneLine}"`;
    return { type: "text", headline, text: value.slice(0, MAX_TEXT), length: value.length };
  },
});
