import os from "node:os";
import { log } from "../log";
import { createPostgresBackend, createPostgresRelayBackend, Queue, QueueEvents, Relay, WaitingError, Worker, type Job } from "bullmq";
import type { RunEvent } from "../events";
import type { EventBus, LostRun, QueuedRun, RunQueue } from "./types";

/** BullMQ orders prioritized jobs by ascending number in [1, 2^21]; our priorities run the other way. */
const PRIORITY_ZERO = 1_000_000;
const MAX_BULL_PRIORITY = 2 ** 21;
/** Affinity keys a worker announces (the most recently used ones). */
const MAX_WARM_KEYS = 64;

export function toBullPriority(priority: number): number {
  return Math.min(MAX_BULL_PRIORITY, Math.max(1, PRIORITY_ZERO - Math.round(priority)));
}
function fromBullPriority(bull: number): number {
  return PRIORITY_ZERO - bull;
}

interface JobData {
  runId: string;
  models: string[];
  /** Id of a worker that handed this run back once, so a worker holding its models warm could take it. */
  deferredBy?: string;
}

export interface BackendOptions {
  /** redis://host:port[/db] (BullMQ's Redis backend, needs the ioredis package) or postgresql://… (BullMQ's PostgreSQL backend). */
  url: string;
  /** BullMQ queue name, also the prefix of our relay topics (default "studio-runs"). */
  name?: string;
}

/** BullMQ's queue classes take (options, backendFactory): Redis is its default, PostgreSQL a factory. */
interface Backend {
  connection: object;
  factory?: unknown;
  relay?: unknown;
}

export function queueBackend(url: string): Backend {
  const u = new URL(url);
  if (u.protocol === "redis:" || u.protocol === "rediss:") {
    const db = Number(u.pathname.slice(1) || 0);
    return {
      connection: {
        host: u.hostname,
        port: Number(u.port || 6379),
        db,
        ...(u.username ? { username: decodeURIComponent(u.username) } : {}),
        ...(u.password ? { password: decodeURIComponent(u.password) } : {}),
        ...(u.protocol === "rediss:" ? { tls: {} } : {}),
      },
    };
  }
  if (u.protocol === "postgres:" || u.protocol === "postgresql:") {
    // Its own schema, so BullMQ's tables never mix with Prisma's when both use one database.
    return { connection: { connectionString: url, schema: "bullmq", migrate: true }, factory: createPostgresBackend, relay: createPostgresRelayBackend };
  }
  throw new Error(`STUDIO_QUEUE must be redis://… or postgresql://…, not "${u.protocol}…"`);
}

// The classes' overloads tie the options type to the factory; one cast here keeps call sites plain.
type AnyCtor = new (...args: unknown[]) => never;
function make<T>(ctor: unknown, ...args: unknown[]): T {
  return new (ctor as AnyCtor)(...args) as T;
}
function queueArgs(backend: Backend, opts: object): unknown[] {
  const withConnection = { ...opts, connection: backend.connection };
  return backend.factory ? [withConnection, backend.factory] : [withConnection];
}
function makeRelay(backend: Backend, name: string): Relay {
  return new Relay({ connection: backend.connection, namespace: name, ...(backend.relay ? { backend: backend.relay } : {}) } as never);
}

/**
 * The producer side: runs become BullMQ jobs (job id = run id, so a run can never be queued twice),
 * ordered by BullMQ's priority (then insertion order within one priority).
 */
export class BullRunQueue implements RunQueue {
  readonly kind = "bullmq";
  readonly queue: Queue<JobData>;
  private readonly queueEvents?: QueueEvents;

  /** `onFailed` hears every job BullMQ failed, including stalled ones it gave up on (a worker died twice). */
  constructor(options: BackendOptions & { onFailed?: (lost: LostRun) => void }) {
    const name = options.name ?? "studio-runs";
    const backend = queueBackend(options.url);
    this.queue = make<Queue<JobData>>(Queue, name, ...queueArgs(backend, {}));
    if (options.onFailed) {
      this.queueEvents = make<QueueEvents>(QueueEvents, name, ...queueArgs(backend, {}));
      const onFailed = options.onFailed;
      this.queueEvents.on("failed", ({ jobId, failedReason }) => onFailed({ runId: jobId, reason: failedReason }));
    }
  }

  /** Resolves once connected, and the failure listener with it (failures before that would be missed). */
  async ready(): Promise<void> {
    await this.queue.waitUntilReady();
    await this.queueEvents?.waitUntilReady();
  }

  async enqueue(run: QueuedRun): Promise<void> {
    await this.queue.add(
      "run",
      { runId: run.runId, models: run.models },
      {
        jobId: run.runId,
        priority: toBullPriority(run.priority),
        attempts: 1, // a failing run fails; only a lost worker (stalled job) is retried, by maxStalledCount
        removeOnComplete: { count: 5000 },
        removeOnFail: { count: 5000 },
      },
    );
  }

  private async ordered(): Promise<Job<JobData>[]> {
    return ((await this.queue.getJobs(["prioritized", "waiting"], 0, -1, true)) as Job<JobData>[]).filter(Boolean);
  }

  async pending(): Promise<QueuedRun[]> {
    return (await this.ordered()).map((j) => ({ runId: j.data.runId, priority: fromBullPriority(j.priority), models: j.data.models }));
  }

  /**
   * BullMQ has no "swap two jobs". What it has: changePriority (without lifo) re-adds a job at the END
   * of its priority group. So to put X at index k of group q, re-add X and then every job from index k
   * on, in the wanted order; the jobs before k keep their places.
   */
  async move(runId: string, direction: "up" | "down"): Promise<number | undefined> {
    const order = await this.ordered();
    const i = order.findIndex((j) => j.id === runId);
    const neighbour = order[direction === "up" ? i - 1 : i + 1];
    if (i < 0 || !neighbour) return undefined;
    const q = neighbour.priority;
    const group = order.filter((j) => j.priority === q && j.id !== runId);
    const at = group.indexOf(neighbour) + (direction === "up" ? 0 : 1);
    for (const job of [order[i]!, ...group.slice(at)]) await job.changePriority({ priority: q });
    return fromBullPriority(q);
  }

  async cancelPending(runId: string): Promise<boolean> {
    const job = await this.queue.getJob(runId);
    if (!job) return false;
    const state = await job.getState();
    if (state !== "prioritized" && state !== "waiting" && state !== "delayed") return false;
    try {
      await job.remove();
      return true;
    } catch {
      return false; // a worker took it in between: it is running now
    }
  }

  async close(): Promise<void> {
    await this.queueEvents?.close();
    await this.queue.close();
  }
}

/**
 * Run events and cancel requests over BullMQ's Relay (pub/sub on the queue's own datastore). Each
 * process publishes through one relay node, so the events of one run arrive in the order they were sent.
 */
export class RelayEventBus implements EventBus {
  readonly relay: Relay;
  private readonly topic: string;
  private readonly eventListeners = new Set<(e: RunEvent) => void>();
  private readonly cancelListeners = new Set<(runId: string) => void>();
  private readonly workers = new Map<string, WorkerInfo & { seenAt: number }>();
  private readonly subscribed: Promise<unknown>;
  private sending: Promise<unknown> = Promise.resolve();

  constructor(options: BackendOptions) {
    const name = options.name ?? "studio-runs";
    this.topic = name;
    this.relay = makeRelay(queueBackend(options.url), name);
    this.relay.on("error", (err: Error) => log().error({ error: err.message }, "run events relay"));
    this.subscribed = Promise.all([
      this.relay.subscribe<RunEvent>(`${name}.events`, (m) => {
        for (const l of this.eventListeners) l(m.data);
      }),
      this.relay.subscribe<string>(`${name}.cancel`, (m) => {
        for (const l of this.cancelListeners) l(m.data);
      }),
      // Workers announce themselves at half their lock period (BullRunWorker.announce); running < 0 = leaving.
      this.relay.subscribe<WorkerInfo>(`${name}.workers`, (m) => {
        if (m.data.running < 0) this.workers.delete(m.data.id);
        else this.workers.set(m.data.id, { ...m.data, seenAt: Date.now() });
      }),
    ]);
  }

  /** Resolves once subscribed (messages published before that are not seen). */
  async ready(): Promise<void> {
    await this.subscribed;
  }

  /** Publishes are chained: the next one starts after the previous one is stored, which keeps their order. */
  publish(event: RunEvent): Promise<void> {
    const sent = this.sending.then(() => this.relay.publish(`${this.topic}.events`, event));
    this.sending = sent.catch(() => undefined);
    return sent.then(() => undefined);
  }

  onEvent(listener: (event: RunEvent) => void): () => void {
    this.eventListeners.add(listener);
    return () => this.eventListeners.delete(listener);
  }

  async requestCancel(runId: string): Promise<void> {
    await this.relay.publish(`${this.topic}.cancel`, runId);
  }

  /** Workers heard from within `maxAgeMs` (their announcements come every half lock period, 15 s by default). */
  liveWorkers(maxAgeMs = 45_000, now = Date.now()): WorkerInfo[] {
    return [...this.workers.values()].filter((w) => now - w.seenAt <= maxAgeMs).map(({ seenAt: _, ...w }) => w);
  }

  /** Round trip to the queue's datastore (Redis or PostgreSQL), for health checks; throws when it is unreachable. */
  async ping(): Promise<void> {
    await this.relay.publish(`${this.topic}.ping`, Date.now());
  }

  onCancelRequest(listener: (runId: string) => void): () => void {
    this.cancelListeners.add(listener);
    return () => this.cancelListeners.delete(listener);
  }

  async close(): Promise<void> {
    await this.sending;
    this.eventListeners.clear();
    this.cancelListeners.clear();
    await this.relay.close();
  }
}

export interface WorkerInfo {
  id: string;
  host: string;
  pid: number;
  concurrency: number;
  running: number;
  /** Affinity keys (model ids, "workflow:<id>") of runs this worker finished recently: sessions and cached outputs it likely still holds. */
  warmModels: string[];
  executionProvider: string;
  at: number;
}

export interface BullRunWorkerOptions extends BackendOptions {
  concurrency: number;
  /** A job's lock lasts this long and is renewed at half of it while the worker lives (BullMQ's heartbeat). */
  lockMs?: number;
  /** How often workers look for jobs whose lock expired (their worker died). */
  stalledCheckMs?: number;
  /** How long a worker without the run's models keeps the slot after handing a run to a warm worker (0 = never hand off). */
  warmHandoffMs?: number;
  executionProvider: string;
  /**
   * Executes one run; `attempt` is 2 when a previous worker died while running it (BullMQ's stalled
   * counter; a warm hand-off does not count). `owned()` turns false
   * (and `signal` aborts) when this worker lost the run's lock (its event loop stalled past the lock time
   * and another worker took the run over): from then on it must write and publish nothing.
   */
  execute: (run: QueuedRun & { attempt: number }, signal: AbortSignal, owned: () => boolean) => Promise<void>;
}

/**
 * The consumer side: a BullMQ Worker with `concurrency` slots. BullMQ's lock renewal is the heartbeat of
 * each running job; a job whose lock lapses (its worker died) is put back once (maxStalledCount 1) and
 * failed after that. Every worker also announces itself on the relay (which models it holds warm, free
 * slots) at half the lock period; the warm hand-off below reads those announcements.
 */
export class BullRunWorker {
  readonly id = `${os.hostname()}-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
  private readonly worker: Worker<JobData>;
  private readonly relay: Relay;
  private readonly topic: string;
  private readonly peers = new Map<string, WorkerInfo>();
  private readonly controllers = new Map<string, AbortController>();
  private readonly lockLost = new Set<string>();
  private announcing: Promise<void> = Promise.resolve();
  private readonly warm = new Map<string, number>(); // model id → last finished run using it
  private readonly heartbeat: NodeJS.Timeout;
  private readonly options: BullRunWorkerOptions;
  private readonly lockMs: number;
  private readonly subscribed: Promise<unknown>;

  constructor(options: BullRunWorkerOptions) {
    this.options = options;
    const name = options.name ?? "studio-runs";
    const backend = queueBackend(options.url);
    this.lockMs = options.lockMs ?? 30_000;
    this.topic = `${name}.workers`;
    this.relay = makeRelay(backend, name);
    this.relay.on("error", (err: Error) => log().error({ worker: this.id, error: err.message }, "relay"));
    this.subscribed = this.relay.subscribe<WorkerInfo>(this.topic, (m) => {
      const known = this.peers.has(m.data.id);
      if (m.data.running < 0) this.peers.delete(m.data.id); // a worker that left
      else this.peers.set(m.data.id, m.data);
      // A newcomer has not heard us yet: answer at once rather than at the next heartbeat.
      if (!known && m.data.id !== this.id && m.data.running >= 0) void this.announce();
    });
    this.worker = make<Worker<JobData>>(
      Worker,
      name,
      (job: Job<JobData>, token?: string) => this.process(job, token),
      ...queueArgs(backend, {
        concurrency: options.concurrency,
        lockDuration: this.lockMs,
        stalledInterval: options.stalledCheckMs ?? this.lockMs,
        maxStalledCount: 1,
      }),
    );
    this.worker.on("error", (err) => log().error({ worker: this.id, error: err.message }, "worker error"));
    this.worker.on("lockRenewalFailed", (jobIds: string[]) => {
      for (const id of jobIds) {
        this.lockLost.add(id);
        this.controllers.get(id)?.abort(new Error("this worker lost the run's lock; another worker has taken it over"));
      }
    });
    this.heartbeat = setInterval(() => void this.announce(), Math.max(250, Math.floor(this.lockMs / 2)));
  }

  async ready(): Promise<void> {
    await this.subscribed;
    await this.worker.waitUntilReady();
    await this.announce();
  }

  /** Aborts a run this worker is executing (a cancel request from the web process). */
  cancel(runId: string): boolean {
    const c = this.controllers.get(runId);
    c?.abort(new Error("cancelled"));
    return !!c;
  }

  info(): WorkerInfo {
    return {
      id: this.id,
      host: os.hostname(),
      pid: process.pid,
      concurrency: this.options.concurrency,
      running: this.controllers.size,
      warmModels: [...this.warm.keys()],
      executionProvider: this.options.executionProvider,
      at: Date.now(),
    };
  }

  /** Announcements are chained, so peers never hear an older state after a newer one. */
  private announce(running?: number): Promise<void> {
    this.announcing = this.announcing.then(async () => {
      try {
        await this.relay.publish(this.topic, { ...this.info(), ...(running === undefined ? {} : { running }) });
      } catch (err) {
        log().error({ worker: this.id, error: (err as Error).message }, "heartbeat failed");
      }
    });
    return this.announcing;
  }

  /**
   * Warm preference, within what BullMQ allows (it has no worker affinity): a worker that does not hold
   * all of a run's models, while another live worker holds them and has a free slot, hands the job back
   * to the front of its priority group (job.moveToWait) once, and keeps this slot for `warmHandoffMs` so
   * the warm worker can take it. If it comes back (the warm one was busy after all) it runs here.
   */
  private wantsHandOff(job: Job<JobData>): boolean {
    const models = job.data.models;
    if (!models.length || job.data.deferredBy || models.every((m) => this.warm.has(m))) return false;
    const alive = Date.now() - this.lockMs * 2;
    return [...this.peers.values()].some((w) => w.id !== this.id && w.at > alive && w.running < w.concurrency && models.every((m) => w.warmModels.includes(m)));
  }

  private async process(job: Job<JobData>, token?: string): Promise<void> {
    const { runId, models } = job.data;
    const handoffMs = this.options.warmHandoffMs ?? 300;
    if (handoffMs > 0 && this.wantsHandOff(job)) {
      log().info({ worker: this.id, runId, models }, "run handed back for a worker that holds its models warm");
      await job.updateData({ ...job.data, deferredBy: this.id });
      await job.moveToWait(token);
      await new Promise((r) => setTimeout(r, handoffMs));
      throw new WaitingError();
    }
    const controller = new AbortController();
    this.controllers.set(runId, controller);
    this.lockLost.delete(runId);
    void this.announce();
    try {
      await this.options.execute({ runId, models, priority: fromBullPriority(job.priority), attempt: 1 + job.stalledCounter }, controller.signal, () => !this.lockLost.has(runId));
      for (const m of models) {
        this.warm.delete(m); // re-insert: the map stays ordered from least to most recently used
        this.warm.set(m, Date.now());
      }
      for (const oldest of this.warm.keys()) {
        if (this.warm.size <= MAX_WARM_KEYS) break;
        this.warm.delete(oldest);
      }
    } finally {
      this.controllers.delete(runId);
      this.lockLost.delete(runId);
      void this.announce();
    }
  }

  /** Stops taking runs, waits for the running ones, says goodbye on the relay. */
  async close(): Promise<void> {
    clearInterval(this.heartbeat);
    await this.worker.close();
    await this.announce(-1);
    await this.relay.close();
  }
}
