/**
 * A batch window: requests made concurrently by the records of one dataset batch are gathered and run together.
 *
 * The batch runner runs each record's workflow inside `window.participate(...)`. Model code that can serve several
 * requests with one call (the MoE-LLM: one padded forward, models/moe-llm-session.ts) finds the window of the record
 * it is running for with `currentBatchWindow()` and `submit`s its request under a key (same session, graph options,
 * step kind and interventions). The window runs a group's requests as soon as they fill a call (`maxBatch`), and
 * everything pending when every participant is waiting on it (no timers: a record still busy elsewhere, e.g. in the
 * vision encoder, is waited for; a record that finishes or fails leaves); one call at a time, each of at most
 * `maxBatch` requests and `maxTokens` padded tokens (requests sorted by length, longest first, so a call pads little).
 *
 * The vision encoder (nodes/vision-encoder.ts) submits its tiles the same way, as "early" requests: they run first
 * and alone when everyone waits, so the image records they free reach the same LLM step as their batch-mates.
 * In a dataset with media the window asks for input embeddings from every record (`feedEmbeddings`): the forwards of a
 * record with an image feed embeddings, and a text-only record feeding token ids would need another graph, so another
 * key (a mixed batch would run as two forwards at every step, on two sessions each holding the weights).
 *
 * A chunk that fails is retried one request at a time, so a bad record fails alone and its batch-mates get their
 * own results. Requests made outside any participant (or of another window) run at once, alone.
 */
import { AsyncLocalStorage } from "node:async_hooks";

export interface BatchLimits {
  /** Requests per call (records per forward). */
  maxBatch: number;
  /** Padded tokens per call: requests × the longest request's tokens. */
  maxTokens: number;
}

export interface BatchWindowStats {
  /** Calls made (batched or alone). */
  calls: number;
  /** Requests served. */
  requests: number;
  /** The largest number of requests served by one call. */
  largest: number;
  /** Chunks that failed as a whole and were retried one request at a time. */
  retried: number;
  /** Σ of the calls' durations (ms). */
  ms: number;
}

/** The window's counts: the model forwards (requests submitted without a `stats` name), and apart from them each named kind. */
export interface BatchWindowTotals extends BatchWindowStats {
  /** Requests submitted with a `stats` name (e.g. "vision encoder"), counted here rather than above. */
  others?: Record<string, BatchWindowStats>;
}

interface Item {
  payload: unknown;
  tokens: number;
  resolve: (value: unknown) => void;
  reject: (err: unknown) => void;
}

interface Group {
  items: Item[];
  run: (payloads: unknown[]) => Promise<unknown[]>;
  stats: BatchWindowStats;
  early: boolean;
}

const scope = new AsyncLocalStorage<BatchWindow>();

/** The window of the record this code runs for (inside `participate`), if any. */
export function currentBatchWindow(): BatchWindow | undefined {
  return scope.getStore();
}

/** Splits requests into calls: longest first, each call within the limits (a request over them runs alone). */
export function chunkRequests<T extends { tokens: number }>(items: readonly T[], limits: BatchLimits): T[][] {
  const sorted = [...items].sort((a, b) => b.tokens - a.tokens);
  const chunks: T[][] = [];
  let chunk: T[] = [];
  for (const it of sorted) {
    // sorted longest first: the chunk's first request sets its padded length
    const longest = chunk[0]?.tokens ?? it.tokens;
    if (chunk.length > 0 && (chunk.length >= limits.maxBatch || (chunk.length + 1) * longest > limits.maxTokens)) {
      chunks.push(chunk);
      chunk = [];
    }
    chunk.push(it);
  }
  if (chunk.length) chunks.push(chunk);
  return chunks;
}

export interface BatchWindowOptions {
  /** The MoE-LLM forwards of every record feed input embeddings, with media or not (one graph for a mixed batch). */
  feedEmbeddings?: boolean;
}

export class BatchWindow {
  private active = 0;
  private waiting = 0;
  private busy = false;
  private checkScheduled = false;
  private readonly pending = new Map<string, Group>();
  readonly stats: BatchWindowTotals = { calls: 0, requests: 0, largest: 0, retried: 0, ms: 0 };
  readonly feedEmbeddings: boolean;

  constructor(
    readonly limits: BatchLimits,
    options: BatchWindowOptions = {},
  ) {
    this.feedEmbeddings = options.feedEmbeddings ?? false;
    if (!(limits.maxBatch >= 1 && limits.maxTokens >= 1)) throw new Error("a batch window needs maxBatch >= 1 and maxTokens >= 1");
  }

  /** Runs `fn` (one record) as a participant: the window waits for it before running what is pending. */
  async participate<T>(fn: () => Promise<T>): Promise<T> {
    this.active++;
    try {
      return await scope.run(this, fn);
    } finally {
      this.active--;
      this.maybeFlush();
    }
  }

  /**
   * Queues one request; `runMany` serves several requests of the same `key` with one call, returning one result per
   * payload in order. `tokens` is the request's length (for the token limit). `opts.stats`: count these requests
   * under `stats.others[name]` instead of with the model forwards. `opts.early`: requests whose results the records
   * need before their model forwards (an encoder in front of the LLM): when every participant waits, early groups
   * run first and alone, so the records they free reach the same model step as their batch-mates.
   */
  submit<P, R>(key: string, payload: P, tokens: number, runMany: (payloads: P[]) => Promise<R[]>, opts: { stats?: string; early?: boolean } = {}): Promise<R> {
    if (scope.getStore() !== this) return runMany([payload]).then((r) => r[0]!);
    return new Promise<R>((resolve, reject) => {
      let group = this.pending.get(key);
      if (!group) {
        group = { items: [], run: runMany as (payloads: unknown[]) => Promise<unknown[]>, stats: this.statsFor(opts.stats), early: opts.early ?? false };
        this.pending.set(key, group);
      }
      group.items.push({ payload, tokens, resolve: resolve as (v: unknown) => void, reject });
      this.waiting++;
      this.maybeFlush();
    });
  }

  /**
   * Runs what is pending when every participant is waiting; before that, a group that already holds a full call
   * (`maxBatch` requests) runs its full calls, so one wave of records can be in the model while the others still
   * prepare their inputs (read media, encode images). One call at a time.
   */
  private maybeFlush(): void {
    // Decided on the next turn of the event loop, so records joining in the same synchronous stretch are counted.
    if (this.checkScheduled) return;
    this.checkScheduled = true;
    setImmediate(() => {
      this.checkScheduled = false;
      this.flushIfReady();
    });
  }

  private flushIfReady(): void {
    if (this.busy || this.pending.size === 0) return;
    const all = this.waiting >= this.active;
    const earlyOnly = all && [...this.pending.values()].some((g) => g.early);
    const calls: [Group, Item[]][] = [];
    for (const [key, group] of this.pending) {
      if (earlyOnly && !group.early) continue;
      if (!all && group.items.length < this.limits.maxBatch) continue;
      const chunks = chunkRequests(group.items, this.limits);
      const take = all ? chunks : chunks.filter((c) => c.length >= this.limits.maxBatch);
      if (take.length === 0) continue;
      for (const c of take) calls.push([group, c]);
      const taken = new Set(take.flat());
      group.items = group.items.filter((it) => !taken.has(it));
      if (group.items.length === 0) this.pending.delete(key);
    }
    if (calls.length === 0) return;
    this.busy = true;
    void this.flush(calls);
  }

  private async flush(calls: [Group, Item[]][]): Promise<void> {
    try {
      for (const [group, chunk] of calls) await this.serve(group, chunk);
    } finally {
      this.busy = false;
      this.maybeFlush();
    }
  }

  private statsFor(name: string | undefined): BatchWindowStats {
    if (name === undefined) return this.stats;
    const others = (this.stats.others ??= {});
    return (others[name] ??= { calls: 0, requests: 0, largest: 0, retried: 0, ms: 0 });
  }

  private async serve(group: Group, chunk: Item[]): Promise<void> {
    const stats = group.stats;
    const settle = (it: Item, ok: boolean, value: unknown) => {
      this.waiting--;
      if (ok) it.resolve(value);
      else it.reject(value);
    };
    stats.calls++;
    stats.requests += chunk.length;
    stats.largest = Math.max(stats.largest, chunk.length);
    let results: unknown[] | undefined;
    const t0 = performance.now();
    try {
      results = await group.run(chunk.map((it) => it.payload));
      stats.ms += performance.now() - t0;
      if (results.length !== chunk.length) throw new Error(`internal: ${results.length} results for ${chunk.length} requests`);
    } catch (err) {
      if (chunk.length === 1) return settle(chunk[0]!, false, err);
      results = undefined;
    }
    if (results) {
      chunk.forEach((it, i) => settle(it, true, results![i]));
      return;
    }
    // One bad request must not fail its batch-mates: each alone, with its own result or error.
    stats.retried++;
    for (const it of chunk) {
      stats.calls++;
      try {
        settle(it, true, (await group.run([it.payload]))[0]);
      } catch (err) {
        settle(it, false, err);
      }
    }
  }
}
