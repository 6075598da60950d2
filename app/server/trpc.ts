import { initTRPC, TRPCError } from "@trpc/server";
import type { OpenApiMeta } from "trpc-to-openapi";

export interface Context {
  origin: string | null;
  host: string | null;
  /** Who is asking: "local" on an unauthenticated single-user install, a User id when logged in, null when not. */
  userId: string | null;
}

// Procedures with `meta({ openapi })` are also served as the REST API under /api/v1 (routers/api.ts).
const t = initTRPC.context<Context>().meta<OpenApiMeta>().create();

export const router = t.router;
export const publicProcedure = t.procedure;

/** For everything that reads or changes a user's data: refuses with UNAUTHORIZED unless someone is logged in. */
export const protectedProcedure = t.procedure.use(({ ctx, next }) => {
  if (!ctx.userId) throw new TRPCError({ code: "UNAUTHORIZED", message: "log in to use MoE Studio" });
  return next({ ctx: { ...ctx, userId: ctx.userId } });
});
