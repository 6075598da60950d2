import { initTRPC } from "@trpc/server";

export interface Context {
  origin: string | null;
  host: string | null;
  /** Who is asking: "local" on an unauthenticated single-user install, a User id when logged in, null when not. */
  userId: string | null;
}

const t = initTRPC.context<Context>().create();

export const router = t.router;
export const publicProcedure = t.procedure;
