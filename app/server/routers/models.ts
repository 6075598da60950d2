import { TRPCError } from "@trpc/server";
import { z } from "zod";
import { expertColumns } from "@/models/config";
import { listModels, resolveModel } from "@/models/moe-llm-model";
import { publicProcedure, router } from "../trpc";

export const modelsRouter = router({
  /** Models a node can use: the seeded reference family (built on first use) and model dirs in the models dir. */
  list: publicProcedure.query(() =>
    listModels().map((ref) => ({ ref, label: ref.startsWith("uni-moe-tiny/") ? "seeded, untrained" : undefined })),
  ),
  /** Layers and router columns of a model, for the intervention editor. */
  info: publicProcedure.input(z.object({ ref: z.string().min(1).max(300) })).query(async ({ input }) => {
    try {
      const m = await resolveModel(input.ref);
      return { ref: m.ref, layers: m.config.num_hidden_layers, experts: expertColumns(m.config), label: m.label ?? null };
    } catch (err) {
      throw new TRPCError({ code: "NOT_FOUND", message: (err as Error).message });
    }
  }),
});
