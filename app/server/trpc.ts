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

/** Where in `value` a string (or key) is not well-formed Unicode (a lone UTF-16 surrogate), or null. */
export function loneSurrogateAt(value: unknown): string | null {
  const stack: [unknown, string][] = [[value, "input"]];
  while (stack.length) {
    const [v, at] = stack.pop()!;
    if (typeof v === "string") {
      if (!v.isWellFormed()) return at;
    } else if (v && typeof v === "object") {
      for (const [k, child] of Object.entries(v)) {
        if (!k.isWellFormed()) return `${at} (a key)`;
        stack.push([child, `${at}.${k.slice(0, 40)}`]);
      }
    }
  }
  return null;
}

/**
 * Every procedure: text in the input must be well-formed Unicode. JSON may carry a lone surrogate ("\ud800"), which
 * the database driver refuses to write: a workflow name or search answered 500, and a run whose error quoted one
 * stayed "running" for good.
 */
export const publicProcedure = t.procedure.use(async ({ getRawInput, next }) => {
  const at = loneSurrogateAt(await getRawInput());
  if (at) throw new TRPCError({ code: "BAD_REQUEST", message: `${at} holds a lone UTF-16 surrogate, which is not valid Unicode text` });
  return next();
});

/** For everything that reads or changes a user's data: refuses with UNAUTHORIZED unless someone is logged in. */
export const protectedProcedure = publicProcedure.use(({ ctx, next }) => {
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
