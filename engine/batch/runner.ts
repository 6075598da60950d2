/**
 * Batch execution: runs a workflow once per dataset record and sums the routing traces it yields.
 *
 * - The run set is the collected node (the one whose ROUTING_TRACE is aggregated) and its ancestors; the
 *   Dataset node among them is fed one record at a time (feeder.ts).
 * - Media a record lacks prune their branch: edges from the Dataset node's missing sockets go, then any
 *   node left with a required input unconnected goes too (so a text-only record skips the vision encoder
 *   and the Prompt Builder gets no image). If that removes the collected node the record fails.
 * - Records run `concurrency` at a time; each record's trace becomes a one-record RoutingAggregate that is
 *   written to the RecordStore (resume ledger + per-record cache) and merged into the total in record
 *   order (a small reorder buffer), so the result does not depend on concurrency or on what was cached.
 * - Batching (`batch` > 1, the default: DEFAULT_BATCH): `batch` records run at once inside one batch window
 *   (window.ts), so the MoE-LLM forwards they make at the same step (prefill, each decode step) run as ONE padded
 *   forward of up to `batch` records and `batchTokens` padded tokens; each record still gets its own result, the same
 *   as alone. `batch` 1 runs one record per forward.
 * - Memory: the running total, the in-flight records and the reorder buffer; never the traces.
 */
import { setMaxListeners } from "node:events";
import { ancestors, type Executor } from "../executor";
import { hashValue } from "../hash";
import type { NodeCatalogue, Storage } from "../node";
import { recordGroup, RoutingAggregate, type AggregateOptions } from "../routing/aggregate";
import { isRoutingTrace } from "../trace";
import type { Workflow, WorkflowEdge } from "../workflow/schema";
import { MEDIA_FIELDS, readRows, resolveRecord, scanDataset, type DatasetRecord, type DatasetScan, type RowError } from "./dataset";
import { AGGREGATE_NODE_TYPE, DATASET_NODE_TYPE } from "./feeder";
import { addNll, traceNll, type NllTotals } from "./scores";
import { RecordStore } from "./store";
import { BatchWindow, type BatchWindowTotals } from "./window";

/**
 * Records per padded forward and padded tokens per forward when a batch does not say (measured on tiny, 2 cores:
 * docs/benchmarks.md "Batched datasets"): more records per forward stop paying once a forward holds about
 * DEFAULT_BATCH_TOKENS tokens, and past 8 records the records waiting for the slowest step cost more than they save.
 */
export const DEFAULT_BATCH = 8;
export const DEFAULT_BATCH_TOKENS = 2048;

export interface CollectTarget {
  nodeId: string;
  socket: string;
}

export interface BatchProgress {
  total: number;
  /** Records finished so far: ran + cached + failed. */
  done: number;
  ran: number;
  cached: number;
  failed: number;
  elapsedMs: number;
  /** Estimated time left, from the rate of records that ran (null until one has). */
  etaMs: number | null;
  lastError?: string;
}

export interface BatchOptions {
  doc: Workflow;
  /** The catalogue with the record feeder in place of the Dataset node (feeder.ts `batchCatalogue`). */
  executor: Executor;
  /** The app's catalogue (for node fingerprints and definitions). */
  catalogue: NodeCatalogue;
  storage: Storage;
  /** Dataset path (JSONL, CSV or folder); default: the Dataset node's resolved source via `resolveSource`. */
  source: string;
  /** Root of the RecordStore (e.g. `<data dir>/batch`). */
  storeDir: string;
  /** Which trace to aggregate; default: the input of the Routing Aggregate node. */
  collect?: CollectTarget;
  concurrency?: number;
  /** Records per padded model forward (1 = one record per forward); default DEFAULT_BATCH. Runs at least this many records at once. */
  batch?: number;
  /** Padded tokens per forward (records × longest); default DEFAULT_BATCH_TOKENS. */
  batchTokens?: number;
  signal?: AbortSignal;
  /** Stop at the first bad row or failed record (default: report and skip). */
  stopOnError?: boolean;
  vocabulary?: AggregateOptions["vocabulary"];
  onProgress?: (p: BatchProgress) => void;
  /** A scan of `source` already made (saves a pass). */
  scan?: DatasetScan;
  /** Prefix of the executor run ids. */
  runId?: string;
  /** Run only the first N valid records (default: all). */
  maxRecords?: number;
}

export interface BatchResult {
  status: "finished" | "failed" | "cancelled";
  error?: string;
  aggregate: RoutingAggregate | null;
  /** Teacher-forced NLL per record group, when the collected traces were scored (models/moe-llm/scoring.ts); else empty. */
  nll: NllTotals;
  total: number;
  ran: number;
  cached: number;
  failed: number;
  /** Failed records (first 50): model errors, bad media, pruned branches. */
  failures: RowError[];
  scan: DatasetScan;
  workflowFingerprint: string;
  storeDir: string;
  ms: number;
  /** Σ of the executor's run times of the records that ran. */
  modelMs: number;
  /** Σ of the time spent turning traces into partial aggregates and merging them (in memory). */
  aggregateMs: number;
  /** Σ of the time spent serialising per-record results for the store (the resume ledger); the file writes themselves overlap the next record's run. */
  storeMs: number;
  /** Records per forward asked for (1: unbatched). */
  batch: number;
  /** What the batch window did (absent when `batch` is 1). */
  batching?: BatchWindowTotals;
}

export const STORE_FORMAT = 1;

/** The Routing Aggregate node's trace input, when there is exactly one such node. */
export function findCollectTarget(doc: Workflow): CollectTarget {
  const aggs = doc.nodes.filter((n) => n.type === AGGREGATE_NODE_TYPE);
  if (aggs.length === 0) throw new Error("the workflow has no Routing Aggregate node: add one and connect the trace to aggregate");
  if (aggs.length > 1) throw new Error(`the workflow has ${aggs.length} Routing Aggregate nodes (${aggs.map((a) => a.id).join(", ")}); a batch aggregates one`);
  const edge = doc.edges.find((e) => e.target === aggs[0]!.id && e.targetSocket === "trace");
  if (!edge) throw new Error(`the Routing Aggregate node "${aggs[0]!.id}" has no trace connected`);
  return { nodeId: edge.source, socket: edge.sourceSocket };
}

/** The sub-workflow a batch runs per record, and its Dataset node. */
export function batchPlan(doc: Workflow, collect: CollectTarget): { doc: Workflow; datasetNodeId: string } {
  if (!doc.nodes.some((n) => n.id === collect.nodeId)) throw new Error(`there is no node "${collect.nodeId}" to collect a trace from`);
  const keep = ancestors(doc, collect.nodeId);
  const datasets = doc.nodes.filter((n) => keep.has(n.id) && n.type === DATASET_NODE_TYPE);
  if (datasets.length === 0) throw new Error(`no Dataset node feeds "${collect.nodeId}": connect a Dataset node's text/media to the model`);
  if (datasets.length > 1) throw new Error(`${datasets.length} Dataset nodes feed "${collect.nodeId}" (${datasets.map((d) => d.id).join(", ")}); a batch iterates one`);
  return {
    doc: { ...doc, nodes: doc.nodes.filter((n) => keep.has(n.id)), edges: doc.edges.filter((e) => keep.has(e.source) && keep.has(e.target)), notes: [] },
    datasetNodeId: datasets[0]!.id,
  };
}

/**
 * Fingerprint of what a record's result depends on besides the record: node types, versions, parsed
 * params and node fingerprints (model content hashes), the edges, the collected socket, the vocabulary
 * setting. Not positions, labels or the Dataset node's own params (its record is hashed separately).
 */
export async function workflowFingerprint(plan: { doc: Workflow; datasetNodeId: string }, collect: CollectTarget, catalogue: NodeCatalogue, storage: Storage, vocabulary: AggregateOptions["vocabulary"]): Promise<string> {
  const nodes = [];
  for (const n of [...plan.doc.nodes].sort((a, b) => (a.id < b.id ? -1 : 1))) {
    if (n.id === plan.datasetNodeId) {
      nodes.push([n.id, n.type]);
      continue;
    }
    const def = catalogue.get(n.type);
    if (!def) throw new Error(`node "${n.id}" has unknown type "${n.type}"`);
    let params: unknown;
    try {
      params = def.params.parse(n.params);
    } catch (err) {
      throw new Error(`node "${n.label ?? n.id}" (${n.type}) has invalid params: ${(err as Error).message}`);
    }
    const fp = def.fingerprint ? await def.fingerprint(params as never, storage) : null;
    nodes.push([n.id, n.type, def.typeVersion, params, fp]);
  }
  const edges = plan.doc.edges.map((e) => [e.source, e.sourceSocket, e.target, e.targetSocket]).sort((a, b) => (a.join("\0") < b.join("\0") ? -1 : 1));
  return hashValue({ format: STORE_FORMAT, nodes, edges, collect, vocabulary: vocabulary ?? false });
}

/** The per-record document: the record in the Dataset node, missing-media branches pruned. */
export function recordDocument(plan: { doc: Workflow; datasetNodeId: string }, catalogue: NodeCatalogue, record: { image?: unknown; audio?: unknown; video?: unknown; answer?: string }, extraParams: Record<string, unknown>): { doc: Workflow; removed: string[] } {
  const present = new Set(["text", "record", "dataset", ...(["image", "audio", "video"] as const).filter((m) => record[m] !== undefined), ...(record.answer ? ["answer"] : [])]);
  let edges: WorkflowEdge[] = plan.doc.edges.filter((e) => e.source !== plan.datasetNodeId || present.has(e.sourceSocket));
  const nodes = new Map(plan.doc.nodes.map((n) => [n.id, n]));
  const removed: string[] = [];
  for (let changed = true; changed; ) {
    changed = false;
    for (const n of nodes.values()) {
      if (n.id === plan.datasetNodeId) continue;
      const def = catalogue.get(n.type);
      if (!def) continue;
      const missing = Object.entries(def.inputs).some(([socket, spec]) => !spec.optional && !edges.some((e) => e.target === n.id && e.targetSocket === socket));
      if (missing) {
        nodes.delete(n.id);
        removed.push(n.id);
        edges = edges.filter((e) => e.source !== n.id && e.target !== n.id);
        changed = true;
      }
    }
  }
  const ds = nodes.get(plan.datasetNodeId)!;
  nodes.set(ds.id, { ...ds, params: { record: extraParams.record } });
  return { doc: { ...plan.doc, nodes: [...nodes.values()], edges }, removed };
}

/** Runs the dataset through the workflow; see the file comment. */
export async function runBatch(opts: BatchOptions): Promise<BatchResult> {
  const t0 = performance.now();
  const collect = opts.collect ?? findCollectTarget(opts.doc);
  const plan = batchPlan(opts.doc, collect);
  const scan = opts.scan ?? (await scanDataset(opts.source));
  const fp = await workflowFingerprint(plan, collect, opts.catalogue, opts.storage, opts.vocabulary);
  const store = new RecordStore(opts.storeDir, fp);
  const batch = Math.max(1, Math.min(64, Math.floor(opts.batch ?? DEFAULT_BATCH)));
  const limits = { maxBatch: batch, maxTokens: Math.max(1, Math.floor(opts.batchTokens ?? DEFAULT_BATCH_TOKENS)) };
  const window = batch > 1 ? new BatchWindow(limits, { feedEmbeddings: MEDIA_FIELDS.some((m) => (scan.modalities[m] ?? 0) > 0) }) : undefined;
  // Batched: `batch` records at once (onnxruntime-node runs a session on the main thread, so a second wave preparing
  // its inputs would not overlap the model; measured: docs/benchmarks.md).
  const concurrency = Math.max(batch > 1 ? batch : 1, Math.min(16, Math.max(1, Math.floor(opts.concurrency ?? 1))));
  const limit = opts.maxRecords === undefined ? scan.count : Math.max(0, Math.min(scan.count, Math.floor(opts.maxRecords)));
  const result: BatchResult = { status: "finished", aggregate: null, nll: {}, total: limit, ran: 0, cached: 0, failed: 0, failures: [], scan, workflowFingerprint: fp, storeDir: store.dir, ms: 0, modelMs: 0, aggregateMs: 0, storeMs: 0, batch, ...(window ? { batching: window.stats } : {}) };
  const fail = (message: string) => {
    result.status = "failed";
    result.error ??= message;
  };
  if (opts.stopOnError && scan.errorCount > 0) {
    fail(`the dataset has ${scan.errorCount} bad row(s), e.g. ${scan.errors[0]!.message}`);
    result.ms = performance.now() - t0;
    return result;
  }

  const controller = new AbortController();
  const onAbort = () => controller.abort(opts.signal?.reason);
  if (opts.signal?.aborted) controller.abort(opts.signal.reason);
  opts.signal?.addEventListener("abort", onAbort, { once: true });
  const signal = controller.signal;
  setMaxListeners(Math.max(10, 4 * concurrency), signal); // each record in flight listens (its executor run, its nodes)

  // Reorder buffer: partials are merged in record order (ordinal among valid records).
  type Part = { agg: RoutingAggregate; group: string; score?: { sum: number; tokens: number } };
  const ready = new Map<number, Part | null>();
  let nextToMerge = 0;
  const mergeReady = () => {
    while (ready.has(nextToMerge)) {
      const item = ready.get(nextToMerge)!;
      ready.delete(nextToMerge++);
      if (!item) continue;
      const part = item.agg;
      if (item.score) addNll(result.nll, item.group, item.score);
      const t = performance.now();
      if (!result.aggregate) result.aggregate = part.emptyLike();
      result.aggregate.merge(part);
      result.aggregateMs += performance.now() - t;
    }
  };
  const progress = (lastError?: string) => {
    const elapsedMs = performance.now() - t0;
    const done = result.ran + result.cached + result.failed;
    const perRecord = result.ran > 0 ? result.modelMs / result.ran / concurrency : null;
    const p: BatchProgress = { total: limit, done, ran: result.ran, cached: result.cached, failed: result.failed, elapsedMs, etaMs: perRecord === null ? null : perRecord * Math.max(0, limit - done), ...(lastError ? { lastError } : {}) };
    try {
      opts.onProgress?.(p);
    } catch {
      /* a listener's failure must not break the batch */
    }
  };
  const recordFailed = (rec: DatasetRecord, message: string) => {
    result.failed++;
    if (result.failures.length < 50) result.failures.push({ index: rec.index, line: rec.line, message });
    if (opts.stopOnError) {
      fail(`record ${rec.id} (line ${rec.line}) failed: ${message}`);
      controller.abort();
    }
    progress(message);
  };

  const writes = new Set<Promise<unknown>>();
  const runOne = async (rec: DatasetRecord, ordinal: number) => {
    let part: Part | null = null;
    try {
      const resolved = await resolveRecord(rec, opts.storage);
      const group = recordGroup(resolved.task, resolved.label);
      const cached = await store.get(resolved.hash);
      if (cached) {
        const t = performance.now();
        part = { agg: RoutingAggregate.fromJSON(cached.aggregate), group, ...(cached.score ? { score: cached.score } : {}) };
        result.aggregateMs += performance.now() - t;
        result.cached++;
        progress();
        return;
      }
      const { doc, removed } = recordDocument(plan, opts.catalogue, resolved, { record: resolved });
      if (!doc.nodes.some((n) => n.id === collect.nodeId)) {
        recordFailed(rec, `the record has none of the inputs "${collect.nodeId}" needs (left out: ${removed.join(", ")})`);
        return;
      }
      const run = await opts.executor.run(doc, { runId: `${opts.runId ?? "batch"}-${rec.index}`, targetNodeId: collect.nodeId, signal });
      if (run.status === "cancelled") return;
      if (run.status !== "finished") {
        recordFailed(rec, run.error ?? "the run failed");
        return;
      }
      result.modelMs += run.ms;
      const trace = run.outputs.get(collect.nodeId)?.[collect.socket];
      if (!isRoutingTrace(trace)) {
        recordFailed(rec, `"${collect.nodeId}".${collect.socket} is not a routing trace`);
        return;
      }
      const t = performance.now();
      const score = traceNll(trace);
      part = { agg: new RoutingAggregate(trace.experts, trace.layers.length, undefined, { vocabulary: opts.vocabulary }).add(trace, { group }), group, ...(score ? { score } : {}) };
      const t1 = performance.now();
      result.aggregateMs += t1 - t;
      // The ledger write runs while the next record computes; a kill before it lands only re-runs this record.
      const entry = JSON.stringify({ v: 1, record: resolved.hash, ms: run.ms, aggregate: part.agg.toJSON(), ...(score ? { score } : {}) });
      result.storeMs += performance.now() - t1;
      // A record counts as ran once its entry is on disk, so the progress never claims more than a restart finds.
      const write = store
        .putText(resolved.hash, entry)
        .then(
          () => {
            result.ran++;
            progress();
          },
          (err: Error) => fail(`cannot write the batch store under ${store.dir}: ${err.message}`),
        )
        .finally(() => writes.delete(write));
      writes.add(write);
      if (writes.size > 2 * concurrency) await Promise.race(writes);
    } catch (err) {
      if (signal.aborted) return;
      recordFailed(rec, (err as Error).message);
    } finally {
      ready.set(ordinal, part);
      try {
        mergeReady();
      } catch (err) {
        // Incompatible partials (e.g. a cached entry of another model): the batch cannot be summed.
        fail((err as Error).message);
        controller.abort();
      }
    }
  };

  const rows = readRows(opts.source);
  let ordinal = 0;
  const read = async (): Promise<{ rec: DatasetRecord; ordinal: number } | null> => {
    for (;;) {
      if (ordinal >= limit) return null;
      const r = await rows.next();
      if (r.done) return null;
      if (r.value.ok) return { rec: r.value.record, ordinal: ordinal++ };
    }
  };
  // One reader at a time: concurrent workers would all pass the limit check before any ordinal is taken.
  let reading: Promise<unknown> = Promise.resolve();
  const next = (): Promise<{ rec: DatasetRecord; ordinal: number } | null> => {
    const p = reading.then(read);
    reading = p.catch(() => undefined);
    return p;
  };
  const worker = async () => {
    while (!signal.aborted) {
      const item = await next();
      if (!item) return;
      await runOne(item.rec, item.ordinal);
    }
  };
  try {
    // Each worker is one participant of the window for its whole life (also while it reads its next record), so a
    // forward waits for every worker that may still join it; a worker with nothing left leaves.
    await Promise.all(Array.from({ length: concurrency }, () => (window ? window.participate(worker) : worker())));
  } finally {
    opts.signal?.removeEventListener("abort", onAbort);
    await rows.return(undefined);
    await Promise.all(writes);
  }
  if (signal.aborted && result.status !== "failed") {
    result.status = "cancelled";
    result.error = "cancelled";
  }
  if (result.status === "finished" && result.aggregate) await store.writeFile("aggregate.json", JSON.stringify(result.aggregate.toJSON()));
  result.ms = performance.now() - t0;
  return result;
}
