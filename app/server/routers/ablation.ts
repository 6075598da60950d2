import { TRPCError } from "@trpc/server";
import { z } from "zod";
import { resolveDatasetSource } from "@/engine/batch/dataset";
import { estimateAblation } from "@/nodes/expert-ablation";
import { protectedProcedure, router } from "../trpc";

export const ablationRouter = router({
  /**
   * What an Expert Ablation node would cost before it starts: records × (ablations + baseline) × text tokens.
   * `source` is the Dataset node's param (the same path rules as a run: examples/… or inside <data dir>/datasets).
   */
  plan: protectedProcedure
    .input(
      z.object({
        source: z.string().max(1000),
        model: z.string().min(1).max(300),
        spec: z.string().max(100_000),
        mode: z.string().max(40),
        maxAblations: z.number().int().min(0).max(10_000),
        maxRecords: z.number().int().min(0).max(10_000_000),
      }),
    )
    .query(async ({ input }) => {
      try {
        return await estimateAblation({
          source: resolveDatasetSource(input.source),
          modelRef: input.model,
          spec: input.spec,
          maxAblations: input.maxAblations || undefined,
          maxRecords: input.maxRecords || undefined,
          scoreText: input.mode === "score-text",
        });
      } catch (err) {
        throw new TRPCError({ code: "BAD_REQUEST", message: (err as Error).message });
      }
    }),
});
