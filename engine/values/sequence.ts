import { z } from "zod";
import type { SequenceValue } from "../sequence";
import { defineValueKind } from "./kind";

export type { SequenceValue };

const list = z.custom<unknown[]>((v) => Array.isArray(v));

/** SEQUENCE: a multimodal prompt with (t, h, w) positions (engine/sequence.ts). */
export const sequence = defineValueKind<SequenceValue>({
  name: "SEQUENCE",
  noun: "a sequence",
  tag: "sequence",
  socket: { color: "#facc15", description: "Multimodal token sequence with (t, h, w) position ids." },
  schema: z.object({
    kind: z.literal("sequence"),
    text: z.string(),
    ids: list,
    modality: list,
    positions: z.object({ t: list, h: list, w: list }),
    mode: z.string(),
    tokens: list,
    media: z.object({ at: z.instanceof(Int32Array), rows: z.instanceof(Float32Array), dim: z.number() }).nullable(),
  }),
  describe(o) {
    const media = o.modality.filter((m) => m !== "text").length;
    return { type: "sequence", headline: `sequence of ${o.ids.length} tokens (${media} media), ${o.mode} positions`, length: o.ids.length };
  },
});
