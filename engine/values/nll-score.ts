import { z } from "zod";
import { defineValueKind, ownPreview } from "./kind";

/** What an MoE-LLM scoring run (mode score-answer / score-text) outputs on `score`; the trace's tokens carry the same NLL. */
export interface ScoreValue {
  kind: "nll-score";
  /** `type` + `headline` make it its own preview in the editor. */
  type: "score";
  headline: string;
  mode: "answer" | "text";
  model: string;
  tokens: number;
  sumNll: number;
  meanNll: number;
  perplexity: number;
  /** Per scored token, in order: its text and NLL (nats). */
  perToken: { text: string; nll: number }[];
  forwardMs: number;
}

export const nllScore = defineValueKind<ScoreValue>({
  name: "nll-score",
  noun: "an NLL score",
  tag: "nll-score",
  schema: z.object({ kind: z.literal("nll-score"), type: z.literal("score"), headline: z.string(), tokens: z.number(), meanNll: z.number(), perplexity: z.number() }),
  describe: ownPreview,
});
