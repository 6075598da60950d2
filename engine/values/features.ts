import { z } from "zod";
import type { FeaturesValue } from "../features";
import { defineValueKind } from "./kind";

export type { FeaturesValue };

/** FEATURES: modality-tagged [N, D] encoder rows (engine/features.ts). */
export const features = defineValueKind<FeaturesValue>({
  name: "FEATURES",
  noun: "encoder features",
  tag: "features",
  socket: { color: "#fb923c", description: "Modality-tagged [N, D] encoder features." },
  schema: z.object({
    kind: z.literal("features"),
    modality: z.enum(["image", "video", "audio"]),
    data: z.instanceof(Float32Array),
    n: z.number(),
    dim: z.number(),
    encoder: z.string(),
  }),
  describe: (o) => ({ type: "features", headline: `${o.modality} features ${o.n} × ${o.dim} (${o.encoder})`, n: o.n, dim: o.dim }),
});
