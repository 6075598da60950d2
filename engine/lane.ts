import { AsyncLocalStorage } from "node:async_hooks";
import { nextTurn } from "./turns";

/**
 * Heavy work of the web process taken one piece at a time, with a turn of the event loop before each, and at most
 * `maxWaiting` pieces waiting (past that, `busy()` is thrown at once): a request that asks for many copies of a
 * 15 MB workflow, or a flood of password checks, then delays other requests by one piece, not by all of them.
 * Work already running in the lane that asks the lane again runs at once (it would otherwise wait for itself).
 */
export class Lane {
  private tail: Promise<unknown> = Promise.resolve();
  private waiting = 0;
  private readonly inside = new AsyncLocalStorage<true>();

  constructor(
    private readonly maxWaiting: number,
    private readonly busy: () => Error,
  ) {}

  run<T>(work: () => Promise<T>): Promise<T> {
    if (this.inside.getStore()) return work();
    if (this.waiting >= this.maxWaiting) return Promise.reject(this.busy());
    this.waiting++;
    const run = this.tail
      .then(nextTurn)
      .then(() => this.inside.run(true, work))
      .finally(() => this.waiting--);
    this.tail = run.catch(() => {});
    return run;
  }
}
