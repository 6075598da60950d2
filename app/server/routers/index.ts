import { catalogInfo } from "../catalog";
import { publicProcedure, router } from "../trpc";
import { apiRouter } from "./api";
import { tokensRouter } from "./tokens";
import { ablationRouter } from "./ablation";
import { historyRouter } from "./history";
import { modelsRouter } from "./models";
import { provenanceRouter } from "./provenance";
import { runRouter } from "./run";
import { shareRouter } from "./share";
import { workflowRouter } from "./workflow";

export const appRouter = router({
  catalog: publicProcedure.query(() => catalogInfo()),
  workflow: workflowRouter,
  run: runRouter,
  models: modelsRouter,
  provenance: provenanceRouter,
  history: historyRouter,
  share: shareRouter,
  api: apiRouter,
  tokens: tokensRouter,
  ablation: ablationRouter,
});

export type AppRouter = typeof appRouter;
