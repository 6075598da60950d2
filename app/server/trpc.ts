import { initTRPC, TRPCError } from "@trpc/server";
import type { OpenApiMeta } from "trpc-to-openapi";
import { isAdmin } from "./auth";
import { redactPaths } from "./redact";

export interface Context {
  origin: string | null;
  host: string | null;
  /** Who is asking: "local" on an unauthenticated single-user install, a User id when logged in, null when not. */
  userId: string | null;
  /** The caller proved who it is with an API token (`Authorization: Bearer`), not a login session. */
  viaToken?: boolean;
}

// Procedures with `meta({ openapi })` are also served as the REST API under /api/v1 (routers/api.ts).
const t = initTRPC.context<Context>().meta<OpenApiMeta>().create({
  // Every error message leaves without the server's absolute paths (and without a stack).
  errorFormatter: ({ shape }) => ({ ...shape, message: redactPaths(shape.message), data: { ...shape.data, stack: undefined } }),
});

export const router = t.router;
export const publicProcedure = t.procedure;

/** For everything that reads or changes a user's data: refuses with UNAUTHORIZED unless someone is logged in. */
export const protectedProcedure = t.procedure.use(({ ctx, next }) => {
  if (!ctx.userId) throw new TRPCError({ code: "UNAUTHORIZED", message: "log in to use MoE Studio" });
  return next({ ctx: { ...ctx, userId: ctx.userId } });
});

/**
 * What manages a user's credentials (API tokens): a login session only. A token that could mint tokens would outlive
 * its own expiry and revocation.
 */
export const sessionProcedure = protectedProcedure.use(({ ctx, next }) => {
  if (ctx.viaToken) throw new TRPCError({ code: "FORBIDDEN", message: "API tokens are managed from a login session (the Account page or the CLI), not with a token" });
  return next();
});

/** What changes things every user shares (installed models, the server's defaults): admins only (everyone on a single-user install). */
export const adminProcedure = protectedProcedure.use(async ({ ctx, next }) => {
  if (!(await isAdmin(ctx.userId))) throw new TRPCError({ code: "FORBIDDEN", message: "only an admin of this server can do this (the first account is one; `npm run cli -- user add <name> --admin` makes more)" });
  return next();
});
