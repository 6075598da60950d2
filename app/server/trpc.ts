import { initTRPC } from "@trpc/server";

export interface Context {
  origin: string | null;
  host: string | null;
}

const t = initTRPC.context<Context>().create();

export const router = t.router;
export const publicProcedure = t.procedure;
