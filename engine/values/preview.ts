import { z } from "zod";
import { defineValueKind, type PreviewSummary } from "./kind";

/** A Preview node's summary: a preview already (`type` names its view), shown as it is. */
export const preview = defineValueKind<PreviewSummary>({
  name: "preview",
  noun: "a preview",
  schema: z.object({ type: z.string(), headline: z.string() }),
  describe: (value) => value,
});
