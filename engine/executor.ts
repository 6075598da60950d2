import { estimateBytes, type OutputCache } from "./cache";
import { makeEvent, type RunEvent, type RunMemory } from "./events";
import { hashValue } from "./hash";
import { checkOutputs, recordingWrites, type AnyNodeDefinition, type NodeCatalogue, type Outputs, type RunContext, type Storage } from "./node";
import { defaultMemoryProbe, MemorySampler, type MemoryProbe, type MemoryWindow } from "./runtime/memory-sampler";
import type { Runtime } from "./runtime/types"; // type only: the executor core never loads onnxruntime
import { Turns } from "./turns";
import { documentForFiles, type Workflow, type WorkflowNode } from "./workflow/schema";
import { validateWorkflow, type Problem } from "./workflow/validate";

/** Characters of a progress message that reach the run's events (a node may put user text in it: a swept value). */
const MAX_PROGRESS_MESSAGE = 300;
/** The nodes a failed run's message names; each node keeps its own error. */
const MAX_ERRORS_NAMED = 5;

export interface ExecutorOptions {
  catalogue: NodeCatalogue;
  storage: Storage;
  /** Output cache shared across runs; without one every node executes every time. */
  cache?: OutputCache;
  /** Nodes executing at once (default 2). */
  concurrency?: number;
  /** The ONNX Runtime layer, passed to nodes as ctx.runtime. */
  runtime?: Runtime;
  /** Receives ctx.log lines of nodes. */
  log?: (runId: string, nodeId: string, message: string) => void;
  /**
   * Measures each run's memory in this process: the probe for the run's execution provider (default: RSS,
   * plus nvidia-smi on CUDA), or false for none.
   */
  memoryProbe?: ((executionProvider: string) => MemoryProbe) | false;
  /** RSS sampling period while a run executes, besides node starts and ends (default 50 ms). */
  memorySampleMs?: number;
  /** Check each output against its kind as it leaves a node (default true; false only to measure what the check costs: tests/bench/main.ts). */
  checkOutputs?: boolean;
  /**
   * Bytes the outputs of one run's executed nodes may hold together (estimateBytes; default: no limit). A run keeps
   * every output until it ends, so a workflow of many nodes each making a large value fails its node with a message
   * instead of exhausting the process.
   */
  maxRunOutputBytes?: number;
  /** Bytes one run's nodes may write to storage together (files: images, audio, exports; default: no limit). */
  maxRunFileBytes?: number;
}

export interface RunOptions {
  runId: string;
  /** Run only this node and its ancestors. */
  targetNodeId?: string;
  signal?: AbortSignal;
  /** Called synchronously for every event; an exception thrown here is ignored. */
  onEvent?: (event: RunEvent) => void;
  /**
   * Called with a node's outputs as soon as they exist (just after its node-done or node-cached event),
   * e.g. to store previews. Outputs are shared with the cache: read, never mutate. Exceptions are ignored.
   * `files`: the stored files the node wrote while computing these outputs (on a cache hit, those written
   * when they were computed), so a host can tell its artifacts from file ids that merely appear in values.
   */
  onOutputs?: (nodeId: string, outputs: Outputs, status: "done" | "cached", files: readonly string[]) => void;
  /** The storage this run's nodes see (default: the executor's), e.g. one that records who wrote what. */
  storage?: Storage;
  /**
   * Runs share cached outputs only within one scope (the web host: the run's owner). A node's files can carry its
   * run's document (a PNG or WAV with the workflow embedded), and a hit on someone else's entry would also tell that
   * they ran the same thing.
   */
  cacheScope?: string;
}

export type NodeRunStatus = "done" | "cached" | "error" | "skipped" | "cancelled";

export interface NodeRunInfo {
  status: NodeRunStatus;
  /** Wall time of execute (0 for cached, skipped and never-started nodes). */
  ms: number;
  /** Undefined when the node never got a key (skipped, cancelled before start) or is uncacheable. */
  cacheKey?: string;
  summary?: string;
  error?: string;
  /** Highest RSS of the process while the node executed (nodes that executed, when memory is measured). */
  peakRssBytes?: number;
}

export interface RunResult {
  status: "finished" | "failed" | "cancelled";
  /** Outputs of every node that finished or was served from the cache. */
  outputs: Map<string, Outputs>;
  /** One entry per node in the run set, in topological order. */
  nodes: Map<string, NodeRunInfo>;
  /** Summary of what went wrong (failed) or "cancelled". */
  error?: string;
  /** Problems found while validating (warnings included). */
  problems: Problem[];
  ms: number;
  /** Memory of this process during the run (absent when not measured, or the run failed before it started). */
  memory?: RunMemory;
}

/** One node of a compiled plan, with its lookups resolved to indices. */
interface PlanNode {
  node: WorkflowNode;
  def: AnyNodeDefinition;
  name: string;
  /** Inputs sorted by socket name: [socket, upstream index, upstream socket]. */
  inputs: [string, number, string][];
  dependents: number[];
  /** Output sockets that some dependent reads; each must be present in the outputs. */
  usedOutputs: string[];
}

/** What the nodes of one run share: made once per `Executor.run`, read and filled in by `runNode`. */
interface RunState {
  runId: string;
  /** What nodes get as ctx.workflow: documentForFiles of the run's document. */
  doc: Workflow;
  plan: PlanNode[];
  /** Per plan index: the node's outputs once done or cached, its cache key, what happened to it. */
  outputs: (Outputs | undefined)[];
  keys: (string | undefined)[];
  infos: NodeRunInfo[];
  /** The run-local signal (aborted by the caller's, or by cancel). */
  signal: AbortSignal;
  emit: (e: RunEvent) => void;
  /** Messages of the nodes that failed, for the run's summary. */
  errors: string[];
  onOutputs: RunOptions["onOutputs"];
  memory: MemorySampler | undefined;
  storage: Storage;
  cacheScope: string | null;
  /** estimateBytes of the outputs this run's nodes made so far. */
  outputBytes: number;
  /** Bytes this run's nodes wrote to storage so far (maxRunFileBytes). */
  fileBytes: number;
}

const PENDING = 0, RUNNING = 1, DONE = 2;

class CancelledError extends Error {}

/**
 * Runs workflow documents: validate → pick the run set → topological order → per node a cache key →
 * reuse or execute, up to `concurrency` nodes at once. One Executor serves many runs (and concurrent
 * runs); all per-run state lives inside `run`.
 */
export class Executor {
  /** The node types it runs (hosts read their output specs, e.g. to preview outputs by kind). */
  readonly catalogue: NodeCatalogue;
  readonly storage: Storage;
  private readonly cache?: OutputCache;
  private readonly concurrency: number;
  private readonly runtime?: Runtime;
  private readonly log: (runId: string, nodeId: string, message: string) => void;
  private readonly memoryProbe: ((executionProvider: string) => MemoryProbe) | false;
  private readonly memorySampleMs: number;
  private readonly checkOutputs: boolean;
  private readonly maxRunOutputBytes: number | undefined;
  private readonly maxRunFileBytes: number | undefined;
  /** Resolved once: the runtime's provider does not change within a process. */
  private executionProvider?: string;

  constructor(options: ExecutorOptions) {
    this.catalogue = options.catalogue;
    this.storage = options.storage;
    this.cache = options.cache;
    this.concurrency = Math.max(1, Math.floor(options.concurrency ?? 2));
    this.runtime = options.runtime;
    this.log = options.log ?? (() => {});
    this.memoryProbe = options.memoryProbe ?? defaultMemoryProbe;
    this.memorySampleMs = options.memorySampleMs ?? 50;
    this.checkOutputs = options.checkOutputs ?? true;
    this.maxRunOutputBytes = options.maxRunOutputBytes;
    this.maxRunFileBytes = options.maxRunFileBytes;
  }

  async run(doc: Workflow, opts: RunOptions): Promise<RunResult> {
    const t0 = performance.now();
    const { runId, signal } = opts;
    const onEvent = opts.onEvent;
    const onOutputs = opts.onOutputs;
    const emit = onEvent
      ? (e: RunEvent) => {
          try {
            onEvent(e);
          } catch {
            /* a listener's failure must not break the run */
          }
        }
      : () => {};
    const result: RunResult = { status: "finished", outputs: new Map(), nodes: new Map(), problems: [], ms: 0 };
    const fail = (message: string): RunResult => {
      result.status = "failed";
      result.error = message;
      result.ms = performance.now() - t0;
      emit(makeEvent("failed", runId, { message }));
      return result;
    };

    // 1. Validate, and choose the run set.
    const { problems, byId, inSet, blocking } = planRunSet(doc, this.catalogue, opts.targetNodeId);
    result.problems = problems;
    if (opts.targetNodeId !== undefined && !byId.has(opts.targetNodeId)) {
      return fail(`the run target "${opts.targetNodeId}" is not a node of this workflow`);
    }
    if (blocking.length) return fail(`the workflow cannot run: ${blocking.join("; ")}`);

    // 2. Compile the plan (topological order, index lookups).
    const plan = this.compile(doc, byId, inSet);
    const n = plan.length;
    const nodeIds = plan.map((p) => p.node.id);
    const infos: NodeRunInfo[] = plan.map(() => ({ status: "skipped", ms: 0 }));
    const outputs: (Outputs | undefined)[] = new Array(n);
    const keys: (string | undefined)[] = new Array(n);
    const state = new Uint8Array(n);
    const waiting = new Int32Array(n);
    for (let i = 0; i < n; i++) waiting[i] = plan[i]!.inputs.length;

    let executionProvider = this.executionProvider ?? "none";
    if (this.runtime && !this.executionProvider) {
      try {
        executionProvider = this.executionProvider = await this.runtime.resolveExecutionProvider();
      } catch (err) {
        return fail((err as Error).message);
      }
    }
    const memory = this.memoryProbe ? new MemorySampler(this.memoryProbe(executionProvider), { intervalMs: this.memorySampleMs }) : undefined;
    const startRssBytes = memory?.start();
    emit(makeEvent("started", runId, { executionProvider, nodeIds, ...(startRssBytes === undefined ? {} : { startRssBytes }) }));

    // A run-local controller: nodes see its signal; the caller's signal aborts it.
    const controller = new AbortController();
    const onAbort = () => controller.abort(signal?.reason);
    if (signal) {
      if (signal.aborted) controller.abort(signal.reason);
      else signal.addEventListener("abort", onAbort, { once: true });
    }
    const runSignal = controller.signal;

    const errors: string[] = [];
    const run: RunState = { runId, doc: documentForFiles(doc), plan, outputs, keys, infos, signal: runSignal, emit, errors, onOutputs, memory, storage: opts.storage ?? this.storage, cacheScope: opts.cacheScope ?? null, outputBytes: 0, fileBytes: 0 };
    const ready: number[] = [];
    for (let i = n - 1; i >= 0; i--) if (waiting[i] === 0) ready.push(i); // stack: pops in topological order
    let running = 0;
    let finish!: () => void;
    const allDone = new Promise<void>((resolve) => (finish = resolve));

    const skipDependents = (i: number) => {
      const stack = [...plan[i]!.dependents];
      while (stack.length) {
        const j = stack.pop()!;
        if (state[j] !== PENDING) continue;
        state[j] = DONE;
        infos[j] = { status: "skipped", ms: 0 };
        stack.push(...plan[j]!.dependents);
      }
    };

    const complete = (i: number) => {
      running--;
      state[i] = DONE;
      const p = plan[i]!;
      if (infos[i]!.status === "done" || infos[i]!.status === "cached") {
        for (const j of p.dependents) if (--waiting[j]! === 0 && state[j] === PENDING) ready.push(j);
      } else if (infos[i]!.status === "error") {
        skipDependents(i);
      } // cancelled: dependents stay pending and are reported as cancelled
      pump();
    };

    // A run of 2,000 Text nodes held the web process for ~28 s before nodes started a turn later now and then.
    const turns = new Turns();
    const start = (i: number): Promise<void> => turns.take()?.then(() => this.runNode(i, run)) ?? this.runNode(i, run);

    const pump = () => {
      while (running < this.concurrency && ready.length && !runSignal.aborted) {
        const i = ready.pop()!;
        state[i] = RUNNING;
        running++;
        start(i).then(
          () => complete(i),
          () => complete(i),
        );
      }
      if (running === 0 && (ready.length === 0 || runSignal.aborted)) finish();
    };
    try {
      pump();
      await allDone;
    } finally {
      signal?.removeEventListener("abort", onAbort);
      // However the run ends, the sampler stops here (and the terminal event below carries its figures).
      if (memory) result.memory = await memory.stop();
    }

    // 3. Summarise.
    for (let i = 0; i < n; i++) {
      if (state[i] === PENDING) infos[i] = { status: runSignal.aborted ? "cancelled" : "skipped", ms: 0 };
      result.nodes.set(nodeIds[i]!, infos[i]!);
      const o = outputs[i];
      if (o) result.outputs.set(nodeIds[i]!, o);
    }
    result.ms = performance.now() - t0;
    if (runSignal.aborted) {
      result.status = "cancelled";
      result.error = "cancelled";
      emit(makeEvent("cancelled", runId, withMemory(result)));
    } else if (errors.length) {
      const skipped = infos.filter((x) => x.status === "skipped").length;
      const named = errors.slice(0, MAX_ERRORS_NAMED).join("; ") + (errors.length > MAX_ERRORS_NAMED ? `; and ${errors.length - MAX_ERRORS_NAMED} more` : "");
      const msg = `${errors.length} node${errors.length > 1 ? "s" : ""} failed: ${named}` + (skipped ? `; ${skipped} dependent node${skipped > 1 ? "s" : ""} skipped` : "");
      result.status = "failed";
      result.error = msg;
      emit(makeEvent("failed", runId, { message: msg, ...withMemory(result) }));
    } else {
      emit(makeEvent("finished", runId, { ms: result.ms, ...withMemory(result) }));
    }
    return result;
  }

  /** Kahn's algorithm over the run set; validation has already ruled out cycles and bad edges. */
  private compile(doc: Workflow, byId: Map<string, WorkflowNode>, inSet: Set<string>): PlanNode[] {
    const ids = [...new Set(doc.nodes.map((x) => x.id))].filter((id) => inSet.has(id));
    const local = new Map<string, number>(ids.map((id, k) => [id, k]));
    const inputs: [string, number, string][][] = ids.map(() => []);
    const children: number[][] = ids.map(() => []);
    const used: Set<string>[] = ids.map(() => new Set());
    const indeg = new Int32Array(ids.length);
    for (const e of doc.edges) {
      const s = local.get(e.source);
      const t = local.get(e.target);
      if (s === undefined || t === undefined) continue;
      inputs[t]!.push([e.targetSocket, s, e.sourceSocket]);
      children[s]!.push(t);
      used[s]!.add(e.sourceSocket);
      indeg[t]!++;
    }
    const order: number[] = [];
    const queue: number[] = [];
    for (let k = 0; k < ids.length; k++) if (indeg[k] === 0) queue.push(k);
    for (let h = 0; h < queue.length; h++) {
      const k = queue[h]!;
      order.push(k);
      for (const c of children[k]!) if (--indeg[c]! === 0) queue.push(c);
    }
    if (order.length !== ids.length) throw new Error("internal: the run set has a cycle that validation missed");
    const pos = new Int32Array(ids.length);
    order.forEach((k, p) => (pos[k] = p));
    return order.map((k) => {
      const node = byId.get(ids[k]!)!;
      return {
        node,
        def: this.catalogue.get(node.type)!,
        name: `Node "${node.label ?? node.id}" (${node.type})`,
        inputs: inputs[k]!.map(([sock, s, ss]) => [sock, pos[s]!, ss] as [string, number, string]).sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)),
        dependents: children[k]!.map((c) => pos[c]!),
        usedOutputs: [...used[k]!],
      };
    });
  }

  /**
   * The run's storage, counting what its nodes write (maxRunFileBytes): a node that would write past the budget fails
   * with a message before the file exists (one run of a small document could fill the disk: a dataset sweep
   * writes an export per value).
   */
  private budgetedStorage(run: RunState): Storage {
    const limit = this.maxRunFileBytes;
    if (limit === undefined) return run.storage;
    return {
      pathOf: (id) => run.storage.pathOf(id),
      read: (id) => run.storage.read(id),
      exists: (id) => run.storage.exists(id),
      write: async (bytes, ext) => {
        if (run.fileBytes + bytes.byteLength > limit) {
          const mb = (b: number) => `${Math.round(b / 2 ** 20).toLocaleString("en")} MB`;
          throw new Error(`the run's files would take ${mb(run.fileBytes + bytes.byteLength)}, over the ${mb(limit)} one run may write (STUDIO_RUN_FILES_MB)`);
        }
        run.fileBytes += bytes.byteLength;
        return run.storage.write(bytes, ext);
      },
    };
  }

  private async runNode(i: number, run: RunState): Promise<void> {
    const { plan, outputs, keys, infos, runId, signal, emit, errors, onOutputs, doc, memory, storage } = run;
    const p = plan[i]!;
    const { node, def } = p;
    const nodeId = node.id;
    let key: string | undefined;
    let window: MemoryWindow | undefined;
    try {
      const params = def.params.parse(node.params) as Record<string, unknown>;
      const inputs: Record<string, unknown> = {};
      let cacheable = !def.nondeterministic && this.cache !== undefined;
      const inputKeys: [string, string, string][] = [];
      for (const [socket, up, upSocket] of p.inputs) {
        inputs[socket] = outputs[up]![upSocket];
        const upKey = keys[up];
        if (upKey === undefined) cacheable = false;
        else inputKeys.push([socket, upKey, upSocket]);
      }

      if (cacheable) {
        try {
          const fingerprint = def.fingerprint ? await def.fingerprint(params as never, storage) : null;
          key = hashValue([run.cacheScope, def.type, def.typeVersion, params, inputKeys, fingerprint]);
        } catch {
          key = undefined; // unhashable params or a failing fingerprint: never a hit, always run
        }
      }
      keys[i] = key;
      if (key !== undefined) {
        const hit = await this.cache!.get(key);
        if (hit) {
          outputs[i] = hit;
          const summary = summarize(def, hit);
          infos[i] = { status: "cached", ms: 0, cacheKey: key, summary };
          emit(makeEvent("node-cached", runId, { nodeId, nodeType: def.type, summary }));
          notify(onOutputs, nodeId, hit, "cached", this.cache!.filesOf(key));
          return;
        }
      }
      if (signal.aborted) throw new CancelledError();

      emit(makeEvent("node-start", runId, { nodeId }));
      const written: string[] = [];
      const ctx: RunContext = {
        runId,
        nodeId,
        signal,
        storage: recordingWrites(this.budgetedStorage(run), (id) => void written.push(id)),
        runtime: this.runtime,
        workflow: doc,
        catalogue: this.catalogue,
        ...(run.cacheScope === null ? {} : { cacheScope: run.cacheScope }),
        progress: (fraction, message, preview) => {
          const f = Number.isFinite(fraction) ? Math.min(1, Math.max(0, fraction)) : 0;
          emit(makeEvent("progress", runId, { nodeId, fraction: f, ...(message === undefined ? {} : { message: message.slice(0, MAX_PROGRESS_MESSAGE) }), ...(preview ? { preview } : {}) }));
        },
        log: (message) => this.log(runId, nodeId, message),
      };
      window = memory?.open();
      const t = performance.now();
      const out = await def.execute({ inputs, params, ctx });
      const ms = performance.now() - t;
      const peakRssBytes = window?.close();
      // Whatever a node returns after the run was cancelled may be half-done: do not keep it.
      if (signal.aborted) throw new CancelledError();
      if (out === null || typeof out !== "object") throw new Error(`execute returned ${out === null ? "null" : typeof out}, not an outputs object`);
      for (const socket of p.usedOutputs) {
        if (out[socket] === undefined) throw new Error(`output "${socket}" is missing from what execute returned`);
      }
      // Each output is a value of its kind where it leaves the node (engine/values/), so the next node can trust it.
      if (this.checkOutputs) checkOutputs(def.outputs, out);
      if (this.maxRunOutputBytes !== undefined) {
        run.outputBytes += estimateBytes(out);
        if (run.outputBytes > this.maxRunOutputBytes) {
          const mb = (b: number) => `${Math.round(b / 2 ** 20).toLocaleString("en")} MB`;
          throw new Error(`the run's outputs would hold ${mb(run.outputBytes)}, over the ${mb(this.maxRunOutputBytes)} one run may keep (STUDIO_RUN_OUTPUT_MB); make fewer or smaller values`);
        }
      }
      outputs[i] = out;
      if (key !== undefined) await this.cache!.set(key, out, written);
      const summary = summarize(def, out);
      infos[i] = { status: "done", ms, cacheKey: key, summary, ...(peakRssBytes === undefined ? {} : { peakRssBytes }) };
      emit(makeEvent("node-done", runId, { nodeId, nodeType: def.type, summary, ms, ...(peakRssBytes === undefined ? {} : { peakRssBytes }) }));
      notify(onOutputs, nodeId, out, "done", written);
    } catch (err) {
      outputs[i] = undefined;
      const peakRssBytes = window?.close(); // closing twice returns the same figure
      if (signal.aborted) {
        infos[i] = { status: "cancelled", ms: 0, cacheKey: key };
        return;
      }
      const cause = err instanceof Error ? err.message : String(err);
      const message = `${p.name}: ${cause}`;
      errors.push(message);
      const peak = peakRssBytes === undefined ? {} : { peakRssBytes };
      infos[i] = { status: "error", ms: 0, cacheKey: key, error: message, ...peak };
      emit(makeEvent("node-error", runId, { nodeId, message, ...peak }));
    }
  }
}

function withMemory(result: RunResult): { memory?: RunMemory } {
  return result.memory ? { memory: result.memory } : {};
}

function notify(cb: RunOptions["onOutputs"], nodeId: string, outputs: Outputs, status: "done" | "cached", files: readonly string[]): void {
  if (!cb) return;
  try {
    cb(nodeId, outputs, status, files);
  } catch {
    /* a listener's failure must not break the run */
  }
}

/** The node's own summary, or a short default like `image: Float32Array[3072], text: "hello…"`. */
export function summarize(def: AnyNodeDefinition, outputs: Outputs): string {
  if (def.summarize) {
    try {
      return def.summarize(outputs);
    } catch {
      /* fall back to the default */
    }
  }
  const parts: string[] = [];
  for (const socket of Object.keys(outputs)) parts.push(`${socket}: ${describe(outputs[socket])}`);
  return parts.join(", ");
}

function describe(v: unknown): string {
  if (v === null || v === undefined) return String(v);
  if (typeof v === "string") return v.length > 40 ? JSON.stringify(v.slice(0, 40) + "…") : JSON.stringify(v);
  if (typeof v === "number" || typeof v === "boolean" || typeof v === "bigint") return String(v);
  if (ArrayBuffer.isView(v)) return `${v.constructor.name}[${(v as unknown as { length?: number }).length ?? v.byteLength}]`;
  if (Array.isArray(v)) return `array[${v.length}]`;
  const o = v as { dims?: unknown; type?: unknown };
  if (Array.isArray(o.dims) && typeof o.type === "string") return `${o.type}[${o.dims.join("×")}]`; // a tensor
  return "object";
}

/** `target` and every node it depends on, following the edges between nodes of `doc` (dangling edges are ignored). */
export function ancestors(doc: Workflow, target: string): Set<string> {
  const ids = new Set(doc.nodes.map((n) => n.id));
  const parents = new Map<string, string[]>();
  for (const e of doc.edges) {
    if (!ids.has(e.source) || !ids.has(e.target)) continue;
    let list = parents.get(e.target);
    if (!list) parents.set(e.target, (list = []));
    list.push(e.source);
  }
  const set = new Set<string>([target]);
  const stack = [target];
  while (stack.length) {
    for (const p of parents.get(stack.pop()!) ?? []) {
      if (!set.has(p)) {
        set.add(p);
        stack.push(p);
      }
    }
  }
  return set;
}

/**
 * The executor's pre-run rule, for it and for callers that refuse a run before queueing it: the nodes a
 * run (to `target`, or whole) executes, and why it cannot start (errors in those nodes or of the whole
 * graph, duplicate ids, unknown node types), deduplicated. A `target` that is not a node is the caller's to report.
 */
export function planRunSet(doc: Workflow, catalogue: NodeCatalogue, target?: string): { problems: Problem[]; byId: Map<string, WorkflowNode>; inSet: Set<string>; blocking: string[] } {
  const problems = validateWorkflow(doc, catalogue);
  const byId = new Map<string, WorkflowNode>();
  for (const n of doc.nodes) if (!byId.has(n.id)) byId.set(n.id, n);
  const inSet = target === undefined ? new Set(byId.keys()) : ancestors(doc, target);
  const blocking: string[] = [];
  for (const p of problems) {
    if (p.severity === "error" && (p.code === "duplicate-node-id" || p.nodeId === undefined || inSet.has(p.nodeId))) blocking.push(p.message);
  }
  for (const id of inSet) {
    const n = byId.get(id);
    if (n && !catalogue.get(n.type)) blocking.push(`node "${n.label ?? n.id}" has unknown type "${n.type}" and cannot run`);
  }
  return { problems, byId, inSet, blocking: [...new Set(blocking)] };
}
