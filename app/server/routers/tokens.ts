import { TRPCError } from "@trpc/server";
import { z } from "zod";
import { createToken, listTokens, revokeToken, TokenError } from "../tokens";
import { protectedProcedure, router, sessionProcedure } from "../trpc";

/** The Account page's personal API tokens (also `npm run cli -- token …`). */
export const tokensRouter = router({
  list: protectedProcedure.query(({ ctx }) => listTokens(ctx.userId)),
  create: sessionProcedure.input(z.object({ name: z.string().min(1).max(64), days: z.number().positive().max(3650).optional() })).mutation(async ({ input, ctx }) => {
    try {
      return await createToken(ctx.userId, input.name, { days: input.days });
    } catch (err) {
      if (err instanceof TokenError) throw new TRPCError({ code: "BAD_REQUEST", message: err.message });
      throw err;
    }
  }),
  revoke: sessionProcedure.input(z.object({ id: z.string().min(1).max(64) })).mutation(async ({ input, ctx }) => {
    if (!(await revokeToken(ctx.userId, input.id))) throw new TRPCError({ code: "NOT_FOUND", message: "no such token" });
    return { revoked: true };
  }),
});
