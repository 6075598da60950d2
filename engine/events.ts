/**
 * Events of one run, in the order the executor emits them:
 * queued (by the run queue) → started → per node: node-start → progress* → node-done | node-error,
 * or node-cached alone → finished | failed | cancelled.
 * Every event carries the runId and `at`, a wall-clock timestamp in ms since the epoch. Events are plain
 * JSON, so a tRPC subscription can stream them unchanged.
 */
/**
 * Memory of the process that executed a run (engine/runtime/memory-sampler.ts): resident set size at the
 * start and its sampled peak, and on CUDA the peak device memory this process used. Process-wide: runs
 * executing at the same time in one process share these figures.
 */
export interface RunMemory {
  startRssBytes: number;
  peakRssBytes: number;
  /** Absent when it could not be told (not CUDA, no nvidia-smi, or our pid not listed). */
  peakDeviceBytes?: number;
}

interface EventBase {
  runId: string;
  /** Date.now() when the event was emitted. */
  at: number;
}

export interface QueuedEvent extends EventBase {
  type: "queued";
}
export interface StartedEvent extends EventBase {
  type: "started";
  /** "cuda" | "cpu" when an ONNX Runtime layer is attached, "none" otherwise. */
  executionProvider: string;
  /** The nodes this run will visit, in topological order. */
  nodeIds: string[];
  /** Resident set size of the executing process as the run starts (absent when memory is not measured). */
  startRssBytes?: number;
}
export interface NodeStartEvent extends EventBase {
  type: "node-start";
  nodeId: string;
}
export interface ProgressEvent extends EventBase {
  type: "progress";
  nodeId: string;
  /** In [0, 1]. */
  fraction: number;
  message?: string;
  /** A stored file showing the work so far (the DiT's image as it refines). */
  preview?: string;
}
export interface NodeCachedEvent extends EventBase {
  type: "node-cached";
  nodeId: string;
  /** The node's type (e.g. model.moe-llm), for metrics by type. */
  nodeType?: string;
  summary: string;
}
export interface NodeDoneEvent extends EventBase {
  type: "node-done";
  nodeId: string;
  nodeType?: string;
  summary: string;
  ms: number;
  /** Highest resident set size of the process while the node executed (absent when memory is not measured). */
  peakRssBytes?: number;
}
/** Emitted by the run host (not the executor) after node-done/node-cached: JSON previews of the outputs. */
export interface NodeOutputsEvent extends EventBase {
  type: "node-outputs";
  nodeId: string;
  outputs: Record<string, unknown>;
}
export interface NodeErrorEvent extends EventBase {
  type: "node-error";
  nodeId: string;
  /** `Node "<label or id>" (<type>): <cause>` */
  message: string;
  peakRssBytes?: number;
}
export interface FinishedEvent extends EventBase {
  type: "finished";
  ms: number;
  /** The run's memory; absent when it was not measured or the run ended before it started. */
  memory?: RunMemory;
}
export interface FailedEvent extends EventBase {
  type: "failed";
  message: string;
  memory?: RunMemory;
}
export interface CancelledEvent extends EventBase {
  type: "cancelled";
  memory?: RunMemory;
}

export type RunEvent =
  | QueuedEvent
  | StartedEvent
  | NodeStartEvent
  | ProgressEvent
  | NodeCachedEvent
  | NodeDoneEvent
  | NodeOutputsEvent
  | NodeErrorEvent
  | FinishedEvent
  | FailedEvent
  | CancelledEvent;

export type RunEventType = RunEvent["type"];

/** Events that end a run; nothing follows them. */
export const TERMINAL_EVENTS: ReadonlySet<RunEventType> = new Set(["finished", "failed", "cancelled"]);

/** Builds an event stamped with the current time, e.g. `makeEvent("queued", runId, {})` for the run queue. */
export function makeEvent<T extends RunEventType>(
  type: T,
  runId: string,
  fields: Omit<Extract<RunEvent, { type: T }>, "type" | "runId" | "at">,
): Extract<RunEvent, { type: T }> {
  return { type, runId, at: Date.now(), ...fields } as Extract<RunEvent, { type: T }>;
}
