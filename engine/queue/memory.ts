import { log } from "../log";
import { byQueueOrder, type QueuedRun, type RunQueue } from "./types";

interface Entry extends QueuedRun {
  seq: number;
}

/**
 * The embedded queue: pending runs in memory in priority order, handed to `execute` while fewer than
 * `concurrency` are running. Nothing survives the process (the web server marks such runs interrupted).
 */
export class MemoryRunQueue implements RunQueue {
  readonly kind = "memory";
  private readonly entries: Entry[] = [];
  private seq = 0;
  private running = 0;
  private closed = false;

  constructor(
    private readonly execute: (run: QueuedRun) => Promise<void>,
    private readonly concurrency = 1,
  ) {}

  async enqueue(run: QueuedRun): Promise<void> {
    if (this.closed) throw new Error("the run queue is closed");
    const entry: Entry = { ...run, seq: this.seq++ };
    // Insert after every run that sorts before it (stable: equal priorities keep queue order).
    let at = this.entries.length;
    while (at > 0 && byQueueOrder(this.entries[at - 1]!, entry) > 0) at--;
    this.entries.splice(at, 0, entry);
    queueMicrotask(() => this.pump());
  }

  async move(runId: string, direction: "up" | "down"): Promise<number | undefined> {
    const i = this.entries.findIndex((e) => e.runId === runId);
    const j = direction === "up" ? i - 1 : i + 1;
    if (i < 0 || j < 0 || j >= this.entries.length) return undefined;
    const self = this.entries[i]!;
    const other = this.entries[j]!;
    // Take the neighbour's priority and sequence slot: the two swap places and the order stays sorted.
    [self.seq, other.seq] = [other.seq, self.seq];
    self.priority = other.priority;
    this.entries[i] = other;
    this.entries[j] = self;
    return self.priority;
  }

  async cancelPending(runId: string): Promise<boolean> {
    const i = this.entries.findIndex((e) => e.runId === runId);
    if (i < 0) return false;
    this.entries.splice(i, 1);
    return true;
  }

  async pending(): Promise<QueuedRun[]> {
    return this.entries.map(({ runId, priority, models }) => ({ runId, priority, models }));
  }

  async close(): Promise<void> {
    this.closed = true;
    this.entries.length = 0;
  }

  private pump() {
    while (!this.closed && this.running < this.concurrency && this.entries.length) {
      const { runId, priority, models } = this.entries.shift()!;
      this.running++;
      void this.execute({ runId, priority, models })
        .catch((err: unknown) => log().error({ runId, err }, "the queue's executor threw"))
        .finally(() => {
          this.running--;
          this.pump();
        });
    }
  }
}
