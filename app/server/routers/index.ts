import { catalogInfo } from "../catalog";
import { publicProcedure, router } from "../trpc";
import { workflowRouter } from "./workflow";

export const appRouter = router({
  catalog: publicProcedure.query(() => catalogInfo()),
  workflow: workflowRouter,
});

export type AppRouter = typeof appRouter;
