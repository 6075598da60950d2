import { TRPCError } from "@trpc/server";
import { z } from "zod";
import { TERMINAL_EVENTS, type RunEvent } from "@/engine/events";
import { zWorkflow, type Workflow } from "@/engine/workflow/schema";
import { db } from "../db";
import { runManager } from "../runs";
import { publicProcedure, router } from "../trpc";

const zId = z.string().min(1).max(64);

function parseJson(text: string | null): unknown {
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

export const runRouter = router({
  start: publicProcedure
    .input(z.object({ document: zWorkflow, workflowId: zId.optional(), workflowVersion: z.number().int().optional(), targetNodeId: zId.optional() }))
    .mutation(async ({ input }) => {
      if (input.targetNodeId && !input.document.nodes.some((n) => n.id === input.targetNodeId)) {
        throw new TRPCError({ code: "BAD_REQUEST", message: `node "${input.targetNodeId}" is not in this workflow` });
      }
      const runId = await runManager().start(input);
      return { runId };
    }),
  cancel: publicProcedure.input(z.object({ runId: zId })).mutation(async ({ input }) => ({ cancelled: await runManager().cancel(input.runId) })),
  move: publicProcedure.input(z.object({ runId: zId, direction: z.enum(["up", "down"]) })).mutation(({ input }) => ({ moved: runManager().move(input.runId, input.direction) })),
  list: publicProcedure.input(z.object({ workflowId: zId.optional(), limit: z.number().int().min(1).max(200).default(30) })).query(async ({ input }) => {
    const queue = runManager().queue();
    const rows = await db().run.findMany({
      where: input.workflowId ? { workflowId: input.workflowId } : {},
      orderBy: { createdAt: "desc" },
      take: input.limit,
      select: { id: true, workflowId: true, workflowVersion: true, status: true, targetNodeId: true, executionProvider: true, error: true, createdAt: true, startedAt: true, finishedAt: true },
    });
    return rows.map((r) => ({
      ...r,
      createdAt: r.createdAt.toISOString(),
      startedAt: r.startedAt?.toISOString() ?? null,
      finishedAt: r.finishedAt?.toISOString() ?? null,
      queuePosition: queue.find((q) => q.id === r.id)?.position ?? null,
    }));
  }),
  /** A run with every node's status and output previews (also for runs of past server processes). */
  get: publicProcedure.input(z.object({ runId: zId })).query(async ({ input }) => {
    const run = await db().run.findUnique({ where: { id: input.runId }, include: { nodeRuns: true } });
    if (!run) throw new TRPCError({ code: "NOT_FOUND", message: `run ${input.runId} does not exist` });
    return {
      id: run.id,
      workflowId: run.workflowId,
      status: run.status,
      error: run.error,
      executionProvider: run.executionProvider,
      createdAt: run.createdAt.toISOString(),
      document: parseJson(run.document) as Workflow | null,
      nodes: run.nodeRuns.map((n) => ({
        nodeId: n.nodeId,
        nodeType: n.nodeType,
        status: n.status,
        cacheHit: n.cacheHit,
        summary: n.summary,
        error: n.error,
        durationMs: n.durationMs,
        outputs: parseJson(n.outputs) as Record<string, unknown> | null,
      })),
    };
  }),
  /** Live events of one run over SSE: what happened so far, then each event as it happens. */
  events: publicProcedure.input(z.object({ runId: zId })).subscription(async function* ({ input, signal }) {
    const queue: RunEvent[] = [];
    let wake: (() => void) | undefined;
    const unsubscribe = runManager().subscribe(input.runId, (e) => {
      queue.push(e);
      wake?.();
    });
    if (!unsubscribe) {
      const row = await db().run.findUnique({ where: { id: input.runId }, select: { status: true, error: true } });
      if (!row) throw new TRPCError({ code: "NOT_FOUND", message: `run ${input.runId} does not exist` });
      const at = Date.now();
      if (row.status === "finished") yield { type: "finished", runId: input.runId, at, ms: 0 } as RunEvent;
      else if (row.status === "cancelled") yield { type: "cancelled", runId: input.runId, at } as RunEvent;
      else yield { type: "failed", runId: input.runId, at, message: row.error ?? row.status } as RunEvent;
      return;
    }
    // One abort listener for the whole subscription (not one per wait, which would pile up).
    const onAbort = () => wake?.();
    signal?.addEventListener("abort", onAbort, { once: true });
    try {
      while (!signal?.aborted) {
        while (queue.length) {
          const e = queue.shift()!;
          yield e;
          if (TERMINAL_EVENTS.has(e.type)) return;
        }
        await new Promise<void>((resolve) => {
          wake = resolve;
          if (signal?.aborted) resolve();
        });
        wake = undefined;
      }
    } finally {
      signal?.removeEventListener("abort", onAbort);
      unsubscribe();
    }
  }),
  runtime: publicProcedure.query(async () => {
    const m = runManager();
    return { executionProvider: await m.runtime.resolveExecutionProvider(), preference: m.runtime.preference, cache: m.cache.stats(), sessions: m.runtime.stats() };
  }),
});
