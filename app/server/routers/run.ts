import { TRPCError } from "@trpc/server";
import { z } from "zod";
import { providerLabel } from "@/engine/runtime/webgpu";
import { TERMINAL_EVENTS, type RunEvent } from "@/engine/events";
import { planRunSet } from "@/engine/executor";
import type { Workflow } from "@/engine/workflow/schema";
import { catalogue } from "@/nodes";
import { fileRefs, readableFiles, versionComputation } from "../access";
import { documentWork } from "../large-documents";
import { db } from "../db";
import { checkWorkflowDocument } from "../document-guard";
import { storedComputation } from "../computation";
import { maxRunsPerUser } from "../limits";
import { isAdmin } from "../auth";
import { log } from "@/engine/log";
import { runManager } from "../runs";
import { redactStrings } from "../redact";
import { protectedProcedure, router } from "../trpc";

const zId = z.string().min(1).max(64);
/** The runs an admin's queue view lists at most (oldest first). */
const SERVER_QUEUE_ROWS = 200;

function parseJson(text: string | null): unknown {
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

/** A run of this owner; someone else's run is NOT_FOUND, the same as a missing one. */
export async function ownedRun(ownerId: string, runId: string): Promise<void> {
  const run = await db().run.findFirst({ where: { id: runId, ownerId }, select: { id: true } });
  if (!run) throw new TRPCError({ code: "NOT_FOUND", message: `run ${runId} does not exist` });
}

/**
 * Refuses a run that could not start (the executor's own pre-run rule: errors in the nodes it would
 * run, duplicate ids, unknown node types) with BAD_REQUEST, before it takes a place in the queue.
 */
function checkRunnable(doc: Workflow, target: string | undefined): void {
  if (target !== undefined && !doc.nodes.some((n) => n.id === target)) {
    throw new TRPCError({ code: "BAD_REQUEST", message: `node "${target}" is not in this workflow` });
  }
  const { blocking } = planRunSet(doc, catalogue, target);
  if (blocking.length) {
    throw new TRPCError({ code: "BAD_REQUEST", message: `the workflow cannot run: ${blocking.slice(0, 5).join("; ")}${blocking.length > 5 ? ` (and ${blocking.length - 5} more)` : ""}` });
  }
}

// Starts of one owner are serialised, so two at once cannot both slip under the cap.
const startLocks = new Map<string, Promise<unknown>>();
function serialised<T>(key: string, task: () => Promise<T>): Promise<T> {
  const previous = startLocks.get(key) ?? Promise.resolve();
  const result = previous.catch(() => {}).then(task);
  const tail = result.catch(() => {});
  startLocks.set(key, tail);
  void tail.then(() => {
    if (startLocks.get(key) === tail) startLocks.delete(key);
  });
  return result;
}

/**
 * Checks and queues a run for `ownerId` (the run.start procedure and the HTTP API): the document must be
 * runnable, its files readable by the owner, the workflow (if named) the owner's, and the owner under
 * their cap of active runs.
 */
export async function startRun(ownerId: string, input: { document: unknown; workflowId?: string; workflowVersion?: number; targetNodeId?: string }): Promise<string> {
  // Refused at the cap before any work on the document: a refused start costs one count.
  await refuseAtRunCap(ownerId);
  const document = checkWorkflowDocument(input.document);
  checkRunnable(document, input.targetNodeId);
  // A run reads only files its owner may read; any other file id is "does not exist", as a missing one.
  const refs = fileRefs(document);
  const readable = await readableFiles(ownerId, refs.map((r) => r.fileId));
  const unreadable = refs.find((r) => !readable.has(r.fileId));
  if (unreadable) throw new TRPCError({ code: "BAD_REQUEST", message: `node "${unreadable.label}": the file ${unreadable.fileId.slice(0, 80)} does not exist; upload it again` });
  if (input.workflowId && !(await db().workflow.findFirst({ where: { id: input.workflowId, ownerId }, select: { id: true } }))) {
    throw new TRPCError({ code: "NOT_FOUND", message: `workflow ${input.workflowId} does not exist` });
  }
  const workflowVersion = await runVersion(input.workflowId, input.workflowVersion, document);
  // Checked again in turn: two starts at once cannot both slip under the cap.
  return serialised(ownerId, async () => {
    await refuseAtRunCap(ownerId);
    return runManager().start({ ...input, workflowVersion, document, ownerId });
  });
}

/** TOO_MANY_REQUESTS when the owner already has their cap of queued and running runs. */
export async function refuseAtRunCap(ownerId: string): Promise<void> {
  const cap = maxRunsPerUser();
  const active = await db().run.count({ where: { ownerId, status: { in: ["queued", "running"] } } });
  if (active >= cap) {
    throw new TRPCError({
      code: "TOO_MANY_REQUESTS",
      message: `you have ${active} run(s) queued or running, and the limit is ${cap} at a time; wait for one to finish or cancel one`,
    });
  }
}

/**
 * The saved version a run is of: the one named, if the document is that version's computation (storedComputation:
 * positions and names aside); else none (an edited, unsaved document). A share link pinned to a version shows that
 * version's runs only, so the outputs of unsaved edits (a private image swapped in) are not shown as the version's.
 */
async function runVersion(workflowId: string | undefined, version: number | undefined, document: Workflow): Promise<number | undefined> {
  if (!workflowId || version === undefined) return undefined;
  const saved = await versionComputation(workflowId, version); // remembered: saved versions never change
  if (saved === undefined || saved === null) return undefined; // null: a version that no longer reads is not what ran
  return saved === storedComputation(JSON.stringify(document)) ? version : undefined;
}

/** A run of this owner with every node's status and output previews; NOT_FOUND for anyone else's. */
export async function runDetails(ownerId: string, runId: string) {
  const run = await db().run.findFirst({ where: { id: runId, ownerId }, include: { nodeRuns: true } });
  if (!run) throw new TRPCError({ code: "NOT_FOUND", message: `run ${runId} does not exist` });
  // A run of MBs of document and previews is answered in its turn, like a large workflow (app/server/large-documents.ts).
  const chars = run.document.length + run.nodeRuns.reduce((sum, n) => sum + (n.outputs?.length ?? 0), 0);
  return documentWork(chars, async () => ({
    id: run.id,
    workflowId: run.workflowId,
    workflowVersion: run.workflowVersion,
    status: run.status,
    error: run.error,
    executionProvider: run.executionProvider,
    // Memory of the process that executed it (null on runs recorded before these were measured).
    startRssBytes: run.startRssBytes,
    peakRssBytes: run.peakRssBytes,
    peakDeviceBytes: run.peakDeviceBytes,
    createdAt: run.createdAt.toISOString(),
    startedAt: run.startedAt?.toISOString() ?? null,
    finishedAt: run.finishedAt?.toISOString() ?? null,
    document: parseJson(run.document) as Workflow | null,
    nodes: run.nodeRuns.map((n) => ({
      nodeId: n.nodeId,
      nodeType: n.nodeType,
      status: n.status,
      cacheHit: n.cacheHit,
      summary: n.summary,
      error: n.error,
      durationMs: n.durationMs,
      peakRssBytes: n.peakRssBytes,
      outputs: parseJson(n.outputs) as Record<string, unknown> | null,
    })),
  }), `run\u0000${runId}`);
}

/** Event streams one user may hold open at once (each open run view holds one; 2,000 held streams took 1,778 fds). */
export const MAX_EVENT_STREAMS_PER_USER = 32;
const openStreams = new Map<string, number>();

/** The events of one of the owner's runs: what happened so far, then each as it happens, up to the terminal one. */
export async function* runEvents(ownerId: string, runId: string, signal?: AbortSignal): AsyncGenerator<RunEvent> {
  await ownedRun(ownerId, runId);
  const open = openStreams.get(ownerId) ?? 0;
  if (open >= MAX_EVENT_STREAMS_PER_USER) {
    throw new TRPCError({ code: "TOO_MANY_REQUESTS", message: `you have ${open} run event streams open, the most one user may; close some (each open run view holds one)` });
  }
  openStreams.set(ownerId, open + 1);
  try {
    yield* followRun(runId, signal);
  } finally {
    const left = openStreams.get(ownerId)! - 1;
    if (left > 0) openStreams.set(ownerId, left);
    else openStreams.delete(ownerId);
  }
}

async function* followRun(runId: string, signal?: AbortSignal): AsyncGenerator<RunEvent> {
  const queue: RunEvent[] = [];
  let wake: (() => void) | undefined;
  const unsubscribe = runManager().subscribe(runId, (e) => {
    queue.push(e);
    wake?.();
  });
  if (!unsubscribe) {
    const row = await db().run.findUnique({ where: { id: runId }, select: { status: true, error: true } });
    if (!row) throw new TRPCError({ code: "NOT_FOUND", message: `run ${runId} does not exist` });
    const at = Date.now();
    if (row.status === "finished") yield { type: "finished", runId, at, ms: 0 } as RunEvent;
    else if (row.status === "cancelled") yield { type: "cancelled", runId, at } as RunEvent;
    else yield { type: "failed", runId, at, message: row.error ?? row.status } as RunEvent;
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
}

export const runRouter = router({
  start: protectedProcedure
    .input(z.object({ document: z.unknown(), workflowId: zId.optional(), workflowVersion: z.number().int().min(0).optional(), targetNodeId: zId.optional() }))
    .mutation(async ({ input, ctx }) => ({ runId: await startRun(ctx.userId, input) })),
  /** The owner cancels a run; an admin of the server may cancel anyone's (a run that holds the queue for others). */
  cancel: protectedProcedure.input(z.object({ runId: zId })).mutation(async ({ input, ctx }) => {
    const row = await db().run.findUnique({ where: { id: input.runId }, select: { ownerId: true } });
    if (row && row.ownerId !== ctx.userId && (await isAdmin(ctx.userId))) log().info({ runId: input.runId, by: ctx.userId, owner: row.ownerId }, "an admin cancels another user's run");
    else await ownedRun(ctx.userId, input.runId);
    return { cancelled: await runManager().cancel(input.runId) };
  }),
  /**
   * Every user's queued and running runs, for an admin (others get `admin: false` and no runs): whose, since when and
   * where in this process's queue; no document, no workflow name (those stay their owner's).
   */
  serverQueue: protectedProcedure.query(async ({ ctx }) => {
    if (!(await isAdmin(ctx.userId))) return { admin: false, runs: [] };
    const rows = await db().run.findMany({
      where: { status: { in: ["queued", "running"] } },
      orderBy: { createdAt: "asc" },
      take: SERVER_QUEUE_ROWS,
      select: { id: true, ownerId: true, status: true, createdAt: true, startedAt: true },
    });
    const owners = await db().user.findMany({ where: { id: { in: [...new Set(rows.map((r) => r.ownerId))] } }, select: { id: true, name: true } });
    const names = new Map(owners.map((u) => [u.id, u.name]));
    const positions = new Map((await runManager().queue()).map((q) => [q.id, q.position]));
    return {
      admin: true,
      runs: rows.map((r) => ({ id: r.id, owner: names.get(r.ownerId) ?? r.ownerId, mine: r.ownerId === ctx.userId, status: r.status, createdAt: r.createdAt, startedAt: r.startedAt, position: positions.get(r.id) ?? null })),
    };
  }),
  move: protectedProcedure.input(z.object({ runId: zId, direction: z.enum(["up", "down"]) })).mutation(async ({ input, ctx }) => {
    await ownedRun(ctx.userId, input.runId);
    return { moved: await runManager().move(input.runId, input.direction) };
  }),
  list: protectedProcedure.input(z.object({ workflowId: zId.optional(), limit: z.number().int().min(1).max(200).default(30) })).query(async ({ input, ctx }) => {
    const queue = await runManager().queue();
    const rows = await db().run.findMany({
      where: { ownerId: ctx.userId, ...(input.workflowId ? { workflowId: input.workflowId } : {}) },
      orderBy: { createdAt: "desc" },
      take: input.limit,
      select: {
        id: true,
        workflowId: true,
        workflowVersion: true,
        status: true,
        targetNodeId: true,
        executionProvider: true,
        startRssBytes: true,
        peakRssBytes: true,
        peakDeviceBytes: true,
        error: true,
        createdAt: true,
        startedAt: true,
        finishedAt: true,
      },
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
  get: protectedProcedure.input(z.object({ runId: zId })).query(({ input, ctx }) => runDetails(ctx.userId, input.runId)),
  /** Live events of one run over SSE: what happened so far, then each event as it happens. */
  events: protectedProcedure.input(z.object({ runId: zId })).subscription(({ input, ctx, signal }) => runEvents(ctx.userId, input.runId, signal)),
  runtime: protectedProcedure.query(async () => {
    const m = runManager();
    const executionProvider = await m.runtime.resolveExecutionProvider();
    return { executionProvider, label: providerLabel(executionProvider), preference: m.runtime.preference, cache: m.cache.stats(), sessions: redactStrings(m.runtime.stats()) };
  }),
});
