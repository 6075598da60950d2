import { catalogInfo } from "../catalog";
import { publicProcedure, router } from "../trpc";
import { modelsRouter } from "./models";
import { provenanceRouter } from "./provenance";
import { runRouter } from "./run";
import { workflowRouter } from "./workflow";

export const appRouter = router({
  catalog: publicProcedure.query(() => catalogInfo()),
  workflow: workflowRouter,
  run: runRouter,
  models: modelsRouter,
  provenance: provenanceRouter,
});

export type AppRouter = typeof appRouter;
