import { listModels } from "@/models/moe-llm-model";
import { publicProcedure, router } from "../trpc";

export const modelsRouter = router({
  /** Models a node can use: the seeded reference family (built on first use) and model dirs in the models dir. */
  list: publicProcedure.query(() =>
    listModels().map((ref) => ({ ref, label: ref.startsWith("uni-moe-tiny/") ? "seeded, untrained" : undefined })),
  ),
});
