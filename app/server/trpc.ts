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

/** Levels of an input the well-formed-text check walks (deeper documents are refused by their own checks). */
const TEXT_CHECK_DEPTH = 100;

/**
 * Where in `value` a string (or key) is not well-formed Unicode (a lone UTF-16 surrogate), or null. Each object is
 * visited once (an input built in-process may refer to itself) and paths are only spelled out for the one found: a
 * 3-million-element array cost 3 million path strings and the process its heap.
 */
export function loneSurrogateAt(value: unknown): string | null {
  interface Step { v: unknown; key: string; parent: Step | null; depth: number }
  const where = (s: Step): string => {
    const keys: string[] = [];
    for (let at: Step | null = s; at; at = at.parent) keys.push(at.key);
    return keys.reverse().join(".");
  };
  const seen = new WeakSet<object>();
  const stack: Step[] = [{ v: value, key: "input", parent: null, depth: 0 }];
  while (stack.length) {
    const step = stack.pop()!;
    const v = step.v;
    if (typeof v === "string") {
      if (!v.isWellFormed()) return where(step);
      continue;
    }
    if (!v || typeof v !== "object" || seen.has(v) || step.depth >= TEXT_CHECK_DEPTH) continue;
    seen.add(v);
    // strings are checked where they are; only objects take a place on the stack
    const visit = (child: unknown, key: string): string | null => {
      if (typeof child === "string") return child.isWellFormed() ? null : `${where(step)}.${key}`;
      if (child && typeof child === "object") stack.push({ v: child, key, parent: step, depth: step.depth + 1 });
      return null;
    };
    if (Array.isArray(v)) {
      for (let i = 0; i < v.length; i++) {
        const bad = visit(v[i], String(i));
        if (bad) return bad;
      }
      continue;
    }
    for (const k in v) {
      if (!Object.hasOwn(v, k)) continue;
      if (!k.isWellFormed()) return `${where(step)} (a key)`;
      const bad = visit((v as Record<string, unknown>)[k], k.slice(0, 40));
      if (bad) return bad;
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
