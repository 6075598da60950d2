import { OutputCache, typedArrayCodec } from "@/engine/cache";
import { makeEvent, TERMINAL_EVENTS, type RunEvent } from "@/engine/events";
import { Executor } from "@/engine/executor";
import { recordingWrites, type NodeCatalogue, type OutputSpec, type Outputs } from "@/engine/node";
import { BullRunQueue, RelayEventBus } from "@/engine/queue/bullmq";
import { MemoryRunQueue } from "@/engine/queue/memory";
import type { EventBus, LostRun, RunQueue } from "@/engine/queue/types";
import { ortTensorCodec, SessionPool } from "@/engine/runtime";
import type { Workflow } from "@/engine/workflow/schema";
import { Turns } from "@/engine/turns";
import { catalogue } from "@/nodes";
import { describeAs } from "@/engine/values";
import { SOCKET_KINDS } from "@/engine/sockets";
import { db } from "./db";
import { newId } from "./ids";
import { fileRefs, grantFiles } from "./access";
import { redactPaths } from "./redact";
import { fileStorage, prefetchFiles } from "./storage";
import { config } from "@/engine/config";
import { escapeLogControls, log, nodeOutput } from "@/engine/log";
import { observeEvent } from "./metrics";
import { modelsDir } from "@/engine/config";

export type RunStatus = "queued" | "running" | "finished" | "failed" | "cancelled" | "interrupted";

/** What this process knows of a run: its events so far and who listens. */
interface RunRecord {
  id: string;
  /** What a late subscriber replays: every event but progress, of which each node's latest only (it replaces the one before). */
  events: RunEvent[];
  /** Where each node's latest progress event sits in `events`. */
  progressAt?: Map<string, number>;
  listeners: Set<(e: RunEvent) => void>;
  status: RunStatus;
  /** Set while this process executes the run (embedded mode). */
  controller?: AbortController;
  /** Characters of `events` as JSON (what retire() counts against KEEP_FINISHED_CHARS). */
  chars?: number;
}

const MB = 1024 * 1024;
const KEEP_FINISHED = 50;
/**
 * Characters of events the finished runs kept for replay may hold together (~64 MB of strings): past it the oldest
 * are dropped sooner (a late subscriber of one then reads the run from the database). 50 runs of 8 MB previews each
 * held ~400 MB.
 */
const KEEP_FINISHED_CHARS = 32 * MB;

/** STUDIO_QUEUE: unset or "memory" = the embedded in-process queue; redis://… or postgresql://… = BullMQ. */
export function queueUrl(): string | undefined {
  const url = config().STUDIO_QUEUE;
  return url && url !== "memory" ? url : undefined;
}

/**
 * What a worker should hold warm to take this run best: the model ids its nodes name (their `model`
 * param) and the saved workflow it belongs to ("workflow:<id>"; that worker's output cache has the
 * nodes of its last run, so a re-run after a small change reuses them).
 */
export function affinityOf(document: Workflow, workflowId?: string): string[] {
  return [...modelsOf(document), ...(workflowId ? [`workflow:${workflowId}`] : [])];
}

/** Model ids a document names (the `model` param of its nodes). */
export function modelsOf(document: Workflow): string[] {
  const ids = new Set<string>();
  for (const n of document.nodes) {
    const model = (n.params as Record<string, unknown> | undefined)?.model;
    if (typeof model === "string" && model) ids.add(model);
  }
  return [...ids].sort();
}

/**
 * Keeps an event for replay. A node's progress replaces its previous progress (a dataset run reports once per record,
 * a DiT per step): only the latest counts, and keeping them all let one run hold hundreds of MB of them.
 */
function keepForReplay(run: RunRecord, raw: RunEvent) {
  // Kept after the run (KEEP_FINISHED runs) as a copy: a preview's text is a slice of the node's output, and a V8
  // slice keeps its whole parent string alive (2,000 characters shown, 16 M characters held, per node and run).
  const json = JSON.stringify(raw);
  const event = JSON.parse(json) as RunEvent;
  run.chars = (run.chars ?? 0) + json.length;
  if (event.type !== "progress") {
    run.events.push(event);
    return;
  }
  run.progressAt ??= new Map();
  const at = run.progressAt.get(event.nodeId);
  if (at === undefined) run.progressAt.set(event.nodeId, run.events.push(event) - 1);
  else run.events[at] = event;
}

/**
 * Run messages go to browsers and the database (events, run rows): without the server's absolute paths (a model file
 * ORT could not read…), and as well-formed text: a lone UTF-16 surrogate in a Script's error or an output's summary
 * made the database refuse the write, and the run stayed "running" for good.
 */
function withoutServerPaths(event: RunEvent): RunEvent {
  const e = { ...event } as Record<string, unknown>;
  for (const key of ["message", "summary", "error"]) if (typeof e[key] === "string") e[key] = recordable(e[key] as string);
  return e as unknown as RunEvent;
}

/** Text as it may be stored and shown: no server path, no lone surrogate (U+FFFD instead). */
function recordable(text: string): string {
  return redactPaths(text.toWellFormed());
}

/** A node output's preview, and a run's previews in all, are kept up to these sizes (JSON characters). */
export const MAX_PREVIEW_CHARS = 64 * 1024;
export const MAX_RUN_PREVIEW_CHARS = 8 * MB;

/**
 * JSON-able previews of a node's outputs (images and audio by file id), for events, the DB and the UI: each by the
 * kind its output spec names (engine/values/: a report's `kind`, else the socket type's), else by what the value is.
 * Previews are small by design; one that is not (a Script's JSON can claim a report's kind, and a report is its own
 * preview), or one past the run's `budget` of characters, is kept as a headline only: run.get, a share link and the
 * event replay hand previews of every node at once.
 */
export function previewOutputs(outputs: Outputs, specs: Record<string, OutputSpec> = {}, budget = { chars: MAX_RUN_PREVIEW_CHARS }): Record<string, unknown> {
  const preview: Record<string, unknown> = {};
  for (const [socket, value] of Object.entries(outputs)) {
    const spec = Object.prototype.hasOwnProperty.call(specs, socket) ? specs[socket] : undefined;
    const full = describeAs(spec ? (spec.kind ?? SOCKET_KINDS[spec.type]) : undefined, value);
    const chars = JSON.stringify(full)?.length ?? 0;
    if (chars <= MAX_PREVIEW_CHARS && chars <= budget.chars) {
      budget.chars -= chars;
      preview[socket] = full;
      continue;
    }
    const why = chars > MAX_PREVIEW_CHARS ? `over the ${MAX_PREVIEW_CHARS / 1024} kB a preview may take` : `the run's previews are over ${MAX_RUN_PREVIEW_CHARS / MB} MB`;
    preview[socket] = { type: "object", headline: `${String(full.headline).slice(0, 200)} (preview of ${Math.ceil(chars / 1024)} kB not kept: ${why})` };
  }
  return preview;
}

/** The executor with its output cache, storage and ONNX Runtime sessions, as the web process and workers build it. */
export function createExecutor(options: { catalogue?: NodeCatalogue } = {}): { executor: Executor; cache: OutputCache; runtime: SessionPool } {
  const storage = fileStorage();
  const cache = new OutputCache({
    maxBytes: config().STUDIO_CACHE_MB * MB,
    storage,
    codecs: [ortTensorCodec, typedArrayCodec],
  });
  const runtime = new SessionPool({ modelsDir: modelsDir() });
  const executor = new Executor({
    catalogue: options.catalogue ?? catalogue,
    storage,
    cache,
    runtime,
    concurrency: config().STUDIO_NODE_CONCURRENCY,
    maxRunOutputBytes: config().STUDIO_RUN_OUTPUT_MB * MB,
    maxRunFileBytes: config().STUDIO_RUN_FILES_MB * MB,
    log: (runId, nodeId, message) => nodeOutput(log(), runId, nodeId, message),
  });
  return { executor, cache, runtime };
}

/** One log line per run and node milestone (in the process that executes the run), with the run's and node's ids as fields. */
function logEvent(e: RunEvent): void {
  const ids = { runId: e.runId, ...("nodeId" in e ? { nodeId: escapeLogControls(e.nodeId) } : {}) };
  switch (e.type) {
    case "started":
      return log().info({ ...ids, nodes: e.nodeIds.length, executionProvider: e.executionProvider }, "run started");
    case "node-done":
      return log().info({ ...ids, ms: Math.round(e.ms * 10) / 10 }, "node done");
    case "node-cached":
      return log().info(ids, "node cached");
    case "node-error":
      return log().warn({ ...ids, error: escapeLogControls(e.message) }, "node failed");
    case "finished":
      return log().info({ ...ids, ms: Math.round(e.ms), ...e.memory }, "run finished");
    case "failed":
      return log().warn({ ...ids, error: escapeLogControls(e.message), ...e.memory }, "run failed");
    case "cancelled":
      return log().info(ids, "run cancelled");
  }
}

/**
 * Executes one run wherever it is (the web process, the CLI or a worker): events go to `publish` in the
 * executor's order, Run/NodeRun rows are written in that order too, and the terminal event is published
 * only after every row is written, so a client that reloads the run on "finished" sees everything.
 */
export async function executeRun(
  executor: Executor,
  run: { id: string; document: Workflow; targetNodeId?: string; ownerId: string },
  signal: AbortSignal,
  publishEvent: (event: RunEvent) => void,
  /** Turns false when another worker has taken this run over: from then on nothing is written or published. */
  owned: () => boolean = () => true,
): Promise<RunEvent> {
  let writes: Promise<unknown> = Promise.resolve();
  // better-sqlite3 writes synchronously behind Prisma's promises: a long queue of them drained in one stretch
  // (1,000 trivial nodes: 200–400 ms at a time, over and over) unless the chain gives way.
  const turns = new Turns();
  const publish = (event: RunEvent) => {
    if (owned()) publishEvent(event);
  };
  const write = (op: () => Promise<unknown>) => {
    if (!owned()) return;
    writes = writes.then(() => turns.take()?.then(op) ?? op()).catch((err: unknown) => log().error({ runId: run.id, err }, "could not record an event"));
  };
  const nodeType = new Map(run.document.nodes.map((n) => [n.id, n.type]));
  /**
   * A node's done (or cached) row, written with its outputs' preview: the executor announces the outputs right after
   * the event, and one write a node instead of two matters for runs of many cheap nodes (each write is ~1 ms of Prisma).
   */
  const held = new Map<string, (outputs: string | undefined) => Promise<unknown>>();
  const writeHeld = (nodeId: string, outputs: string | undefined) => {
    const row = held.get(nodeId);
    held.delete(nodeId);
    if (row) write(() => row(outputs));
    else if (outputs !== undefined) write(() => db().nodeRun.updateMany({ where: { runId: run.id, nodeId }, data: { outputs } }));
  };
  const record = (event: RunEvent) => {
    logEvent(event);
    switch (event.type) {
      case "started":
        write(() =>
          db().run.update({ where: { id: run.id }, data: { status: "running", startedAt: new Date(event.at), executionProvider: event.executionProvider, startRssBytes: event.startRssBytes ?? null } }),
        );
        break;
      case "node-start":
        write(() =>
          db().nodeRun.create({ data: { id: newId(), runId: run.id, nodeId: event.nodeId, nodeType: nodeType.get(event.nodeId) ?? "?", status: "running", startedAt: new Date(event.at) } }),
        );
        break;
      case "node-cached":
        held.set(event.nodeId, (outputs) =>
          db().nodeRun.create({
            data: { id: newId(), runId: run.id, nodeId: event.nodeId, nodeType: nodeType.get(event.nodeId) ?? "?", status: "cached", cacheHit: true, summary: event.summary, durationMs: 0, finishedAt: new Date(event.at), outputs },
          }),
        );
        break;
      case "node-done":
        held.set(event.nodeId, (outputs) =>
          db().nodeRun.update({
            where: { runId_nodeId: { runId: run.id, nodeId: event.nodeId } },
            data: { status: "done", summary: event.summary, durationMs: event.ms, peakRssBytes: event.peakRssBytes ?? null, finishedAt: new Date(event.at), outputs },
          }),
        );
        break;
      case "node-error":
        write(() =>
          db().nodeRun.upsert({
            where: { runId_nodeId: { runId: run.id, nodeId: event.nodeId } },
            create: { id: newId(), runId: run.id, nodeId: event.nodeId, nodeType: nodeType.get(event.nodeId) ?? "?", status: "error", error: event.message, peakRssBytes: event.peakRssBytes ?? null, finishedAt: new Date(event.at) },
            update: { status: "error", error: event.message, peakRssBytes: event.peakRssBytes ?? null, finishedAt: new Date(event.at) },
          }),
        );
        break;
      default:
        break;
    }
  };
  let terminal: RunEvent;
  // A run may take STUDIO_MAX_RUN_MINUTES: past it, it is stopped like a cancel and recorded as failed with why.
  const minutes = config().STUDIO_MAX_RUN_MINUTES;
  const overtime = new AbortController();
  const timer = setTimeout(() => overtime.abort(), minutes * 60_000);
  timer.unref?.();
  try {
    await prefetchFiles(run.document);
    // What the run may show to its owner (and a share link of it): its input files, and the files its
    // nodes write, granted before a node can hand their ids on (a preview fetched at once finds it).
    await grantFiles(fileRefs(run.document).map((r) => r.fileId), { runId: run.id });
    const storage = recordingWrites(executor.storage, (id) => grantFiles([id], { runId: run.id }));
    const previewBudget = { chars: MAX_RUN_PREVIEW_CHARS };
    const result = await executor.run(run.document, {
      runId: run.id,
      targetNodeId: run.targetNodeId,
      signal: AbortSignal.any([signal, overtime.signal]),
      storage,
      cacheScope: run.ownerId,
      onEvent: (raw) => {
        const event = withoutServerPaths(raw);
        record(event);
        if (!TERMINAL_EVENTS.has(event.type)) publish(event);
      },
      onOutputs: (nodeId, outputs, status, files) => {
        try {
          const type = nodeType.get(nodeId);
          const preview = previewOutputs(outputs, (type && executor.catalogue.get(type)?.outputs) || {}, previewBudget);
          const event = makeEvent("node-outputs", run.id, { nodeId, outputs: preview });
          // Outputs from the cache name files written by an earlier run: granted to this one before they are shown.
          if (status === "cached" && files.length) write(() => grantFiles(files, { runId: run.id }).then(() => publish(event)));
          else publish(event);
          writeHeld(nodeId, JSON.stringify(preview));
        } finally {
          writeHeld(nodeId, undefined); // a preview that failed: the row without it
        }
      },
    });
    for (const nodeId of [...held.keys()]) writeHeld(nodeId, undefined); // announced done, outputs never came
    clearTimeout(timer);
    if (overtime.signal.aborted && result.status === "cancelled") Object.assign(result, { status: "failed", error: `the run took longer than the ${minutes} minutes a run may take (STUDIO_MAX_RUN_MINUTES) and was stopped` });
    for (const [nodeId, info] of result.nodes) {
      if (info.status === "skipped" || info.status === "cancelled") {
        write(() =>
          db().nodeRun.upsert({
            where: { runId_nodeId: { runId: run.id, nodeId } },
            create: { id: newId(), runId: run.id, nodeId, nodeType: nodeType.get(nodeId) ?? "?", status: info.status, error: info.error === undefined ? null : recordable(info.error) },
            update: { status: info.status, finishedAt: new Date() },
          }),
        );
      }
    }
    // Measured here, in the process that executed the run (a worker's own figures when distributed).
    const memory = result.memory;
    write(() =>
      db().run.update({
        where: { id: run.id },
        data: {
          status: result.status,
          error: result.error === undefined ? null : recordable(result.error),
          finishedAt: new Date(),
          ...(memory ? { startRssBytes: memory.startRssBytes, peakRssBytes: memory.peakRssBytes, peakDeviceBytes: memory.peakDeviceBytes ?? null } : {}),
        },
      }),
    );
    const withMemory = memory ? { memory } : {};
    terminal =
      result.status === "finished"
        ? makeEvent("finished", run.id, { ms: result.ms, ...withMemory })
        : result.status === "cancelled"
          ? makeEvent("cancelled", run.id, withMemory)
          : makeEvent("failed", run.id, { message: recordable(result.error ?? "failed"), ...withMemory });
  } catch (err) {
    // The executor reports node failures itself; reaching here is a bug or a broken host service.
    const message = recordable(`internal error: ${(err as Error).message}`);
    log().error({ runId: run.id, err }, "the run failed inside the host");
    write(() => db().run.update({ where: { id: run.id }, data: { status: "failed", error: message, finishedAt: new Date() } }));
    terminal = makeEvent("failed", run.id, { message });
  } finally {
    clearTimeout(timer);
  }
  for (const nodeId of [...held.keys()]) writeHeld(nodeId, undefined); // the host failed between the two
  await writes;
  publish(terminal);
  return terminal;
}

/**
 * The run queue of the web process (and the CLI). Embedded (STUDIO_QUEUE unset): runs wait in memory in
 * priority order and execute here, one at a time (STUDIO_MAX_RUNS), nodes inside a run concurrently.
 * Distributed (STUDIO_QUEUE=redis://… or postgresql://…): runs become BullMQ jobs that `npm run worker`
 * processes execute; their events come back over BullMQ's relay. Either way subscribers get the same
 * RunEvents in the same order, and Run/NodeRun rows are left behind.
 */
export class RunManager {
  readonly executor: Executor;
  readonly cache: OutputCache;
  readonly runtime: SessionPool;
  readonly mode: "embedded" | "distributed";
  private readonly queueUrl?: string;
  private readonly runQueue: RunQueue;
  private readonly bus?: EventBus;
  private readonly active = new Map<string, RunRecord>();
  private readonly finished: RunRecord[] = [];
  private finishedChars = 0;
  private readonly keepFinishedChars: number;
  readonly ready: Promise<void>;

  /**
   * `recoverInterrupted`: only the web server's queue owns in-flight runs; a CLI process must not touch
   * them. Embedded, runs of a previous process are marked interrupted; distributed, only runs the queue
   * no longer holds are. `keepFinishedChars` (tests): KEEP_FINISHED_CHARS.
   */
  constructor(options: { recoverInterrupted: boolean; catalogue?: NodeCatalogue; queueUrl?: string; keepFinishedChars?: number }) {
    this.keepFinishedChars = options.keepFinishedChars ?? KEEP_FINISHED_CHARS;
    ({ executor: this.executor, cache: this.cache, runtime: this.runtime } = createExecutor({ catalogue: options.catalogue }));
    // queueUrl "memory" forces the embedded queue whatever STUDIO_QUEUE says.
    const url = options.queueUrl === undefined ? queueUrl() : options.queueUrl === "memory" ? undefined : options.queueUrl;
    this.queueUrl = url;
    if (url) {
      this.mode = "distributed";
      const queue = new BullRunQueue({ url, onFailed: (lost) => void this.onLost(lost) });
      const bus = new RelayEventBus({ url });
      bus.onEvent((e) => this.receive(e));
      this.runQueue = queue;
      this.bus = bus;
      this.ready = Promise.all([queue.ready(), bus.ready()]).then(() => (options.recoverInterrupted ? this.reconcile(queue) : undefined));
    } else {
      this.mode = "embedded";
      this.runQueue = new MemoryRunQueue((run) => this.executeHere(run.runId), config().STUDIO_MAX_RUNS);
      this.ready = options.recoverInterrupted ? this.markInterrupted() : Promise.resolve();
    }
  }

  /** Runs that were queued or running when the server stopped can never finish: say so. */
  private async markInterrupted(ids?: string[]): Promise<void> {
    const now = new Date();
    const which = ids ? { id: { in: ids } } : { status: { in: ["queued", "running"] } };
    await db().nodeRun.updateMany({ where: { status: "running", run: { ...which, status: { in: ["queued", "running"] } } }, data: { status: "interrupted", finishedAt: now } });
    await db().run.updateMany({
      where: { ...which, status: { in: ["queued", "running"] } },
      data: { status: "interrupted", finishedAt: now, error: "the server stopped before this run finished" },
    });
  }

  /** Distributed: a queued/running row whose job the queue no longer holds (or failed) gets that outcome. */
  private async reconcile(queue: BullRunQueue): Promise<void> {
    const open = await db().run.findMany({ where: { status: { in: ["queued", "running"] } }, select: { id: true } });
    const gone: string[] = [];
    for (const { id } of open) {
      const job = await queue.queue.getJob(id);
      if (!job) gone.push(id);
      else if ((await job.getState()) === "failed") await this.onLost({ runId: id, reason: job.failedReason });
    }
    if (gone.length) await this.markInterrupted(gone);
  }

  async start(input: { document: Workflow; workflowId?: string; workflowVersion?: number; targetNodeId?: string; priority?: number; ownerId?: string }): Promise<string> {
    await this.ready;
    const id = newId();
    const priority = input.priority ?? 0;
    await db().run.create({
      data: {
        id,
        workflowId: input.workflowId ?? null,
        workflowVersion: input.workflowVersion ?? null,
        document: JSON.stringify(input.document),
        targetNodeId: input.targetNodeId ?? null,
        ownerId: input.ownerId ?? "local",
        status: "queued",
        priority,
      },
    });
    this.track(id);
    this.deliver(makeEvent("queued", id, {}));
    try {
      await this.runQueue.enqueue({ runId: id, priority, models: affinityOf(input.document, input.workflowId) });
    } catch (err) {
      const message = `could not queue the run: ${(err as Error).message}`;
      await db().run.update({ where: { id }, data: { status: "failed", error: message, finishedAt: new Date() } });
      this.deliver(makeEvent("failed", id, { message }));
      throw new Error(message);
    }
    return id;
  }

  /**
   * For /api/health: embedded, nothing to check; distributed, whether the queue's datastore answers
   * (within 3 s) and which workers announced themselves recently.
   */
  async queueHealth(): Promise<{ mode: "embedded" } | { mode: "distributed"; ok: boolean; backend: string; error?: string; workers: { id: string; host: string; executionProvider: string; running: number; concurrency: number }[] }> {
    if (!this.bus || !(this.bus instanceof RelayEventBus)) return { mode: "embedded" };
    const backend = this.queueUrl!.startsWith("redis") ? "redis" : "postgresql";
    const workers = this.bus.liveWorkers().map((w) => ({ id: w.id, host: w.host, executionProvider: w.executionProvider, running: w.running, concurrency: w.concurrency }));
    try {
      await Promise.race([this.bus.ping(), new Promise((_, reject) => setTimeout(() => reject(new Error("no answer within 3 s")), 3000).unref())]);
      return { mode: "distributed", ok: true, backend, workers };
    } catch (err) {
      return { mode: "distributed", ok: false, backend, error: (err as Error).message, workers };
    }
  }

  /** Cancels a queued run at once, or a running one at its next check (between nodes or inside a loop). */
  async cancel(runId: string): Promise<boolean> {
    await this.ready;
    if (await this.runQueue.cancelPending(runId)) {
      await db().run.updateMany({ where: { id: runId, status: "queued" }, data: { status: "cancelled", finishedAt: new Date() } });
      await this.emit(makeEvent("cancelled", runId, {}));
      return true;
    }
    const run = this.active.get(runId);
    if (run?.controller) {
      run.controller.abort();
      return true;
    }
    if (this.bus) {
      const row = await db().run.findUnique({ where: { id: runId }, select: { status: true } });
      if (row?.status !== "running" && row?.status !== "queued") return false;
      await this.bus.requestCancel(runId);
      return true;
    }
    return false;
  }

  /**
   * Moves a queued run one place earlier or later in the queue (it takes the priority of a run it passes), past a run
   * of the same owner only: passing someone else's queued run would be jumping the queue.
   */
  async move(runId: string, direction: "up" | "down"): Promise<boolean> {
    const pending = await this.runQueue.pending();
    const i = pending.findIndex((r) => r.runId === runId);
    const neighbour = i < 0 ? undefined : pending[direction === "up" ? i - 1 : i + 1];
    if (!neighbour) return false;
    const owners = await db().run.findMany({ where: { id: { in: [runId, neighbour.runId] } }, select: { ownerId: true } });
    if (owners.length !== 2 || owners[0]!.ownerId !== owners[1]!.ownerId) return false;
    const priority = await this.runQueue.move(runId, direction);
    if (priority === undefined) return false;
    await db().run.updateMany({ where: { id: runId }, data: { priority } });
    return true;
  }

  async queue(): Promise<{ id: string; status: RunStatus; position: number }[]> {
    const pending = await this.runQueue.pending();
    const running = [...this.active.values()].filter((r) => r.status === "running").map((r) => ({ id: r.id, status: r.status, position: -1 }));
    return [...running, ...pending.map((r, i) => ({ id: r.runId, status: "queued" as const, position: i }))];
  }

  /**
   * Replays what happened so far, then streams live events. Embedded: undefined for runs no longer in
   * memory. Distributed: a run this process has not seen (queued by another web process, or before a
   * restart) is followed from now on; its database row supplies the ending if it has already ended.
   */
  subscribe(runId: string, listener: (e: RunEvent) => void): (() => void) | undefined {
    let run = this.active.get(runId) ?? this.finished.find((r) => r.id === runId);
    if (!run) {
      if (!this.bus) return undefined;
      run = this.track(runId);
      void this.adopt(runId);
    }
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

  /** Stops listening to the queue (distributed) and releases sessions; for the CLI and tests. */
  async close(): Promise<void> {
    await this.runQueue.close();
    await this.bus?.close();
    await this.runtime.close();
  }

  /** Distributed: the ending of a run followed without its history, from its row (when it has ended). */
  private async adopt(runId: string): Promise<void> {
    const row = await db().run.findUnique({ where: { id: runId }, select: { status: true, error: true } }).catch(() => null);
    const run = this.active.get(runId);
    if (!run || run.events.length) return; // its events are arriving
    if (!row) this.deliver(makeEvent("failed", runId, { message: `run ${runId} does not exist` }));
    else if (row.status === "finished") this.deliver(makeEvent("finished", runId, { ms: 0 }));
    else if (row.status === "cancelled") this.deliver(makeEvent("cancelled", runId, {}));
    else if (row.status === "running") run.status = "running";
    else if (row.status !== "queued") this.deliver(makeEvent("failed", runId, { message: row.error ?? row.status }));
  }

  private track(id: string): RunRecord {
    let run = this.active.get(id);
    if (!run) {
      run = { id, events: [], listeners: new Set(), status: "queued" };
      this.active.set(id, run);
    }
    return run;
  }

  /** An event of a run, to this process's listeners. */
  private deliver(event: RunEvent) {
    // Distributed: events of runs other processes queued arrive too; a retired run's stragglers are dropped.
    if (!this.active.has(event.runId) && this.finished.some((r) => r.id === event.runId)) return;
    observeEvent(event);
    const run = this.track(event.runId);
    if (event.type === "started") run.status = "running";
    keepForReplay(run, event);
    for (const l of run.listeners) l(event);
    if (TERMINAL_EVENTS.has(event.type)) {
      run.status = event.type as RunStatus;
      this.retire(run);
    }
  }

  /** An event every process should see: over the bus when distributed (it comes back to us through it). */
  private async emit(event: RunEvent) {
    if (this.bus) await this.bus.publish(event);
    else this.deliver(event);
  }

  private receive(event: RunEvent) {
    // "queued" was delivered here by start(); other processes' queued runs announce themselves on "started".
    if (event.type === "queued" && this.active.has(event.runId)) return;
    this.deliver(event);
  }

  /** BullMQ failed a job: a worker died twice while running it, or crashed outside the executor. */
  private async onLost(lost: LostRun) {
    const reason = /stalled/.test(lost.reason) ? `worker lost: the worker running it stopped twice (${lost.reason})` : `worker failed: ${lost.reason}`;
    const now = new Date();
    const { count } = await db().run.updateMany({ where: { id: lost.runId, status: { in: ["queued", "running"] } }, data: { status: "failed", error: reason, finishedAt: now } });
    if (!count) return; // already recorded (by the worker, or by another web process)
    await db().nodeRun.updateMany({ where: { runId: lost.runId, status: "running" }, data: { status: "interrupted", finishedAt: now } });
    await this.emit(makeEvent("failed", lost.runId, { message: reason }));
  }

  private retire(run: RunRecord) {
    run.progressAt = undefined;
    this.active.delete(run.id);
    run.listeners.clear();
    this.finished.push(run);
    this.finishedChars += run.chars ?? 0;
    while (this.finished.length > 1 && (this.finished.length > KEEP_FINISHED || this.finishedChars > this.keepFinishedChars)) this.finishedChars -= this.finished.shift()!.chars ?? 0;
  }

  /** Embedded: executes a queued run in this process. */
  private async executeHere(runId: string): Promise<void> {
    const run = this.track(runId);
    const row = await db().run.findUnique({ where: { id: runId }, select: { document: true, targetNodeId: true, ownerId: true } });
    if (!row) return;
    run.status = "running";
    run.controller = new AbortController();
    await executeRun(this.executor, { id: runId, document: JSON.parse(row.document) as Workflow, targetNodeId: row.targetNodeId ?? undefined, ownerId: row.ownerId }, run.controller.signal, (e) => this.deliver(e));
  }
}

const globalForRuns = globalThis as unknown as { studioRuns?: RunManager };

/** The web server's run queue (created on first use, which also marks runs of a previous process interrupted). */
export function runManager(): RunManager {
  globalForRuns.studioRuns ??= new RunManager({ recoverInterrupted: true });
  return globalForRuns.studioRuns;
}
