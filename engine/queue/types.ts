import type { RunEvent } from "../events";

/**
 * The run queue, one interface for the embedded (in-process) and the Redis (BullMQ) backend.
 * A queued run carries only its id and scheduling facts; the run itself (document, target) lives in
 * the database, which both the web process and the workers read.
 */
export interface QueuedRun {
  runId: string;
  /** Higher runs earlier; equal priorities run in the order they were queued. */
  priority: number;
  /**
   * What a worker should already hold to take this run best (model ids, "workflow:<id>" for its output
   * cache): a worker that ran runs with all of them is preferred.
   */
  models: string[];
}

export interface RunQueue {
  readonly kind: "memory" | "bullmq";
  enqueue(run: QueuedRun): Promise<void>;
  /**
   * Moves a pending run one place earlier or later. Crossing a run of another priority takes that run's
   * priority (so the order stays "priority, then queue time" for runs queued later). Returns the run's
   * priority after the move, or undefined when it cannot move (not pending, or already at that end).
   */
  move(runId: string, direction: "up" | "down"): Promise<number | undefined>;
  /** Removes a run that has not started; false when it is not pending (running, done or unknown). */
  cancelPending(runId: string): Promise<boolean>;
  /** Pending runs in the order they will be taken. */
  pending(): Promise<QueuedRun[]>;
  close(): Promise<void>;
}

/** Carries run events from whoever executes a run to every process that shows them, and cancel requests back. */
export interface EventBus {
  publish(event: RunEvent): Promise<void>;
  /** Every run's events, in the order each run's executor published them. */
  onEvent(listener: (event: RunEvent) => void): () => void;
  requestCancel(runId: string): Promise<void>;
  onCancelRequest(listener: (runId: string) => void): () => void;
  close(): Promise<void>;
}

/** Where a run ended for a reason outside the executor (e.g. its worker died twice). */
export interface LostRun {
  runId: string;
  reason: string;
}

/** Orders two queued runs: higher priority first, then earlier sequence number. */
export function byQueueOrder(a: { priority: number; seq: number }, b: { priority: number; seq: number }): number {
  return b.priority - a.priority || a.seq - b.seq;
}
