import path from "node:path";
import { OutputCache, typedArrayCodec } from "@/engine/cache";
import { makeEvent, TERMINAL_EVENTS, type RunEvent } from "@/engine/events";
import { Executor } from "@/engine/executor";
import type { NodeCatalogue, Outputs } from "@/engine/node";
import { ortTensorCodec, SessionPool } from "@/engine/runtime";
import type { Workflow } from "@/engine/workflow/schema";
import { catalogue } from "@/nodes";
import { describeValue } from "@/nodes/preview";
import { dataDir } from "@/prisma/url";
import { db } from "./db";
import { newId } from "./ids";
import { fileStorage } from "./storage";

export type RunStatus = "queued" | "running" | "finished" | "failed" | "cancelled" | "interrupted";

interface ActiveRun {
  id: string;
  document: Workflow;
  targetNodeId?: string;
  controller: AbortController;
  events: RunEvent[];
  listeners: Set<(e: RunEvent) => void>;
  status: RunStatus;
  /** DB writes of one run, applied in event order. */
  writes: Promise<unknown>;
}

const MB = 1024 * 1024;
const KEEP_FINISHED = 50;

/** JSON-able previews of a node's outputs (images and audio by file id), for events, the DB and the UI. */
export function previewOutputs(outputs: Outputs): Record<string, unknown> {
  const preview: Record<string, unknown> = {};
  for (const [socket, value] of Object.entries(outputs)) {
    // A Preview node's output is already a description: show it as it is.
    const described = typeof value === "object" && value !== null && typeof (value as { headline?: unknown }).headline === "string";
    preview[socket] = described ? value : describeValue(value);
  }
  return preview;
}

/**
 * The embedded run queue: runs wait in priority order, execute one at a time (nodes inside a run run
 * concurrently), stream their events to subscribers, and leave Run/NodeRun rows behind.
 */
export class RunManager {
  readonly executor: Executor;
  readonly cache: OutputCache;
  readonly runtime: SessionPool;
  private readonly pending: ActiveRun[] = [];
  private readonly active = new Map<string, ActiveRun>();
  private readonly finished: ActiveRun[] = [];
  private running = 0;
  private readonly maxRunning = Math.max(1, Number(process.env.STUDIO_MAX_RUNS ?? 1));
  readonly ready: Promise<void>;

  /** `recoverInterrupted`: only the web server's queue owns in-flight runs; a CLI process must not touch them. */
  constructor(options: { recoverInterrupted: boolean; catalogue?: NodeCatalogue }) {
    const storage = fileStorage();
    this.cache = new OutputCache({
      maxBytes: Number(process.env.STUDIO_CACHE_MB ?? 512) * MB,
      storage,
      codecs: [ortTensorCodec, typedArrayCodec],
    });
    this.runtime = new SessionPool({ modelsDir: process.env.STUDIO_MODELS_DIR ?? path.join(dataDir(), "models") });
    this.executor = new Executor({
      catalogue: options.catalogue ?? catalogue,
      storage,
      cache: this.cache,
      runtime: this.runtime,
      concurrency: Number(process.env.STUDIO_NODE_CONCURRENCY ?? 2),
      log: (runId, nodeId, message) => console.log(`[run ${runId}] ${nodeId}: ${message}`),
    });
    this.ready = options.recoverInterrupted ? this.markInterrupted() : Promise.resolve();
  }

  /** Runs that were queued or running when the server stopped can never finish: say so. */
  private async markInterrupted(): Promise<void> {
    const now = new Date();
    await db().nodeRun.updateMany({ where: { status: "running", run: { status: { in: ["queued", "running"] } } }, data: { status: "interrupted", finishedAt: now } });
    await db().run.updateMany({
      where: { status: { in: ["queued", "running"] } },
      data: { status: "interrupted", finishedAt: now, error: "the server stopped before this run finished" },
    });
  }

  async start(input: { document: Workflow; workflowId?: string; workflowVersion?: number; targetNodeId?: string; priority?: number; ownerId?: string }): Promise<string> {
    await this.ready;
    const id = newId();
    await db().run.create({
      data: {
        id,
        workflowId: input.workflowId ?? null,
        workflowVersion: input.workflowVersion ?? null,
        document: JSON.stringify(input.document),
        targetNodeId: input.targetNodeId ?? null,
        ownerId: input.ownerId ?? "local",
        status: "queued",
        priority: input.priority ?? 0,
      },
    });
    const run: ActiveRun = {
      id,
      document: input.document,
      targetNodeId: input.targetNodeId,
      controller: new AbortController(),
      events: [],
      listeners: new Set(),
      status: "queued",
      writes: Promise.resolve(),
    };
    this.active.set(id, run);
    this.pending.push(run);
    this.publish(run, makeEvent("queued", id, {}));
    queueMicrotask(() => this.pump());
    return id;
  }

  /** Cancels a queued run at once, or a running one at its next check (between nodes or inside a loop). */
  async cancel(runId: string): Promise<boolean> {
    const run = this.active.get(runId);
    if (!run) return false;
    const at = this.pending.indexOf(run);
    if (at >= 0) {
      this.pending.splice(at, 1);
      run.status = "cancelled";
      this.publish(run, makeEvent("cancelled", runId, {}));
      this.write(run, () => db().run.update({ where: { id: runId }, data: { status: "cancelled", finishedAt: new Date() } }));
      this.retire(run);
      return true;
    }
    run.controller.abort();
    return true;
  }

  /** Moves a queued run one place earlier or later in the queue. */
  move(runId: string, direction: "up" | "down"): boolean {
    const i = this.pending.findIndex((r) => r.id === runId);
    const j = direction === "up" ? i - 1 : i + 1;
    if (i < 0 || j < 0 || j >= this.pending.length) return false;
    [this.pending[i], this.pending[j]] = [this.pending[j]!, this.pending[i]!];
    return true;
  }

  queue(): { id: string; status: RunStatus; position: number }[] {
    const running = [...this.active.values()].filter((r) => r.status === "running").map((r) => ({ id: r.id, status: r.status, position: -1 }));
    return [...running, ...this.pending.map((r, i) => ({ id: r.id, status: r.status, position: i }))];
  }

  /** Replays what happened so far, then streams live events. Returns undefined for runs no longer in memory. */
  subscribe(runId: string, listener: (e: RunEvent) => void): (() => void) | undefined {
    const run = this.active.get(runId) ?? this.finished.find((r) => r.id === runId);
    if (!run) return undefined;
    for (const e of run.events) listener(e);
    if (TERMINAL_EVENTS.has(run.events.at(-1)?.type ?? "queued")) return () => {};
    run.listeners.add(listener);
    return () => run.listeners.delete(listener);
  }

  /** Resolves when the run has ended (for the CLI and tests). */
  whenDone(runId: string): Promise<RunEvent> {
    return new Promise((resolve) => {
      let unsubscribe: (() => void) | undefined;
      let done = false;
      unsubscribe = this.subscribe(runId, (e) => {
        if (TERMINAL_EVENTS.has(e.type) && !done) {
          done = true;
          queueMicrotask(() => unsubscribe?.());
          resolve(e);
        }
      });
      if (!unsubscribe) resolve(makeEvent("failed", runId, { message: "unknown run" }));
    });
  }

  private publish(run: ActiveRun, event: RunEvent) {
    run.events.push(event);
    for (const l of run.listeners) l(event);
  }

  private write(run: ActiveRun, op: () => Promise<unknown>) {
    run.writes = run.writes.then(op).catch((err: unknown) => console.error(`run ${run.id}: could not record an event:`, err));
  }

  private retire(run: ActiveRun) {
    this.active.delete(run.id);
    run.listeners.clear();
    this.finished.push(run);
    if (this.finished.length > KEEP_FINISHED) this.finished.shift();
  }

  private pump() {
    while (this.running < this.maxRunning && this.pending.length) {
      const run = this.pending.shift()!;
      this.running++;
      void this.execute(run).finally(() => {
        this.running--;
        this.pump();
      });
    }
  }

  private async execute(run: ActiveRun): Promise<void> {
    run.status = "running";
    const nodeType = new Map(run.document.nodes.map((n) => [n.id, n.type]));
    const started = new Map<string, Date>();
    const record = (event: RunEvent) => {
      switch (event.type) {
        case "started":
          this.write(run, () => db().run.update({ where: { id: run.id }, data: { status: "running", startedAt: new Date(event.at), executionProvider: event.executionProvider } }));
          break;
        case "node-start": {
          const at = new Date(event.at);
          started.set(event.nodeId, at);
          this.write(run, () =>
            db().nodeRun.create({ data: { id: newId(), runId: run.id, nodeId: event.nodeId, nodeType: nodeType.get(event.nodeId) ?? "?", status: "running", startedAt: at } }),
          );
          break;
        }
        case "node-cached":
          this.write(run, () =>
            db().nodeRun.create({
              data: { id: newId(), runId: run.id, nodeId: event.nodeId, nodeType: nodeType.get(event.nodeId) ?? "?", status: "cached", cacheHit: true, summary: event.summary, durationMs: 0, finishedAt: new Date(event.at) },
            }),
          );
          break;
        case "node-done":
          this.write(run, () =>
            db().nodeRun.update({ where: { runId_nodeId: { runId: run.id, nodeId: event.nodeId } }, data: { status: "done", summary: event.summary, durationMs: event.ms, finishedAt: new Date(event.at) } }),
          );
          break;
        case "node-error":
          this.write(run, () =>
            db().nodeRun.upsert({
              where: { runId_nodeId: { runId: run.id, nodeId: event.nodeId } },
              create: { id: newId(), runId: run.id, nodeId: event.nodeId, nodeType: nodeType.get(event.nodeId) ?? "?", status: "error", error: event.message, finishedAt: new Date(event.at) },
              update: { status: "error", error: event.message, finishedAt: new Date(event.at) },
            }),
          );
          break;
        default:
          break;
      }
    };
    const onEvent = (event: RunEvent) => {
      record(event);
      // The terminal event is published after the outputs are recorded (below), so a client that
      // reloads the run on "finished" sees everything.
      if (!TERMINAL_EVENTS.has(event.type)) this.publish(run, event);
    };
    let terminal: RunEvent;
    try {
      const result = await this.executor.run(run.document, {
        runId: run.id,
        targetNodeId: run.targetNodeId,
        signal: run.controller.signal,
        onEvent,
        onOutputs: (nodeId, outputs) => {
          const preview = previewOutputs(outputs);
          this.publish(run, makeEvent("node-outputs", run.id, { nodeId, outputs: preview }));
          this.write(run, () => db().nodeRun.updateMany({ where: { runId: run.id, nodeId }, data: { outputs: JSON.stringify(preview) } }));
        },
      });
      for (const [nodeId, info] of result.nodes) {
        if (info.status === "skipped" || info.status === "cancelled") {
          this.write(run, () =>
            db().nodeRun.upsert({
              where: { runId_nodeId: { runId: run.id, nodeId } },
              create: { id: newId(), runId: run.id, nodeId, nodeType: nodeType.get(nodeId) ?? "?", status: info.status, error: info.error ?? null },
              update: { status: info.status, finishedAt: new Date() },
            }),
          );
        }
      }
      run.status = result.status;
      this.write(run, () => db().run.update({ where: { id: run.id }, data: { status: result.status, error: result.error ?? null, finishedAt: new Date() } }));
      terminal =
        result.status === "finished"
          ? makeEvent("finished", run.id, { ms: result.ms })
          : result.status === "cancelled"
            ? makeEvent("cancelled", run.id, {})
            : makeEvent("failed", run.id, { message: result.error ?? "failed" });
    } catch (err) {
      // The executor reports node failures itself; reaching here is a bug or a broken host service.
      const message = `internal error: ${(err as Error).message}`;
      console.error(`run ${run.id}:`, err);
      run.status = "failed";
      this.write(run, () => db().run.update({ where: { id: run.id }, data: { status: "failed", error: message, finishedAt: new Date() } }));
      terminal = makeEvent("failed", run.id, { message });
    }
    await run.writes;
    this.publish(run, terminal);
    this.retire(run);
  }
}

const globalForRuns = globalThis as unknown as { studioRuns?: RunManager };

/** The web server's run queue (created on first use, which also marks runs of a previous process interrupted). */
export function runManager(): RunManager {
  globalForRuns.studioRuns ??= new RunManager({ recoverInterrupted: true });
  return globalForRuns.studioRuns;
}
