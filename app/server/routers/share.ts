import { TRPCError } from "@trpc/server";
import { z } from "zod";
import { createShare, forkShare, listShares, resolveShare, revokeShare } from "../shares";
import { protectedProcedure, publicProcedure, router } from "../trpc";

const zId = z.string().min(1).max(64);
// Any string up to a sane length: a malformed token gets the same NOT_FOUND as an unknown one.
const zToken = z.string().max(200);

export const shareRouter = router({
  create: protectedProcedure
    .input(z.object({ workflowId: zId, version: z.number().int().positive().optional(), expiresAt: z.string().datetime().optional() }))
    .mutation(({ ctx, input }) =>
      createShare(ctx.userId, { workflowId: input.workflowId, version: input.version, expiresAt: input.expiresAt ? new Date(input.expiresAt) : undefined }),
    ),
  list: protectedProcedure.input(z.object({ workflowId: zId })).query(({ ctx, input }) => listShares(ctx.userId, input.workflowId)),
  revoke: protectedProcedure.input(z.object({ id: zId })).mutation(({ ctx, input }) => revokeShare(ctx.userId, input.id)),
  /** The shared page's data; needs no login. */
  resolve: publicProcedure.input(z.object({ token: zToken })).query(({ input }) => resolveShare(input.token)),
  /** Copies the shared workflow into the viewer's workspace; needs a user. */
  fork: publicProcedure.input(z.object({ token: zToken })).mutation(({ ctx, input }) => {
    if (!ctx.userId) throw new TRPCError({ code: "UNAUTHORIZED", message: "log in to fork this workflow" });
    return forkShare(ctx.userId, input.token);
  }),
});
