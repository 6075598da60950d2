import { z } from "zod";
import { defineValueKind } from "./kind";

/** Words, characters and lines of a text. */
export interface TextStats {
  kind: "text-stats";
  words: number;
  chars: number;
  lines: number;
}

export const textStats = defineValueKind<TextStats>({
  name: "text-stats",
  noun: "text statistics",
  tag: "text-stats",
  schema: z.object({ kind: z.literal("text-stats"), words: z.number().int().nonnegative(), chars: z.number().int().nonnegative(), lines: z.number().int().nonnegative() }),
  describe: (s) => ({ type: "text-stats", headline: `${s.words} words · ${s.chars} chars · ${s.lines} lines`, words: s.words, chars: s.chars, lines: s.lines }),
});
