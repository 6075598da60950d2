import { z } from "zod";
import { diffVersions, listHistory, restoreVersion } from "../history";
import { protectedProcedure, router } from "../trpc";

const zId = z.string().min(1).max(64);
const zVersion = z.number().int().positive();

export const historyRouter = router({
  /** Versions of one of the user's workflows, newest first (time, author, message). */
  list: protectedProcedure.input(z.object({ workflowId: zId })).query(({ ctx, input }) => listHistory(ctx.userId, input.workflowId)),
  /** What changed from one version to another: nodes, params, moves, links, notes, metadata. */
  diff: protectedProcedure
    .input(z.object({ workflowId: zId, from: zVersion, to: zVersion }))
    .query(({ ctx, input }) => diffVersions(ctx.userId, input.workflowId, input.from, input.to)),
  /** Saves version N's document as a new version; history is never rewritten. */
  restore: protectedProcedure
    .input(z.object({ workflowId: zId, version: zVersion }))
    .mutation(({ ctx, input }) => restoreVersion(ctx.userId, input.workflowId, input.version)),
});
