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
  private readonly waitingBy = new Map<string, number>();
  private readonly inside = new AsyncLocalStorage<true>();

  /** `maxWaitingPerKey`: how many of the waiting pieces one key (e.g. one user) may hold, so one cannot fill the lane. */
  constructor(
    private readonly maxWaiting: number,
    private readonly busy: () => Error,
    private readonly maxWaitingPerKey = maxWaiting,
  ) {}

  run<T>(work: () => Promise<T>, key = ""): Promise<T> {
    if (this.inside.getStore()) return work();
    const mine = this.waitingBy.get(key) ?? 0;
    if (this.waiting >= this.maxWaiting || mine >= this.maxWaitingPerKey) return Promise.reject(this.busy());
    this.waiting++;
    this.waitingBy.set(key, mine + 1);
    const run = this.tail
      .then(nextTurn)
      .then(() => this.inside.run(true, work))
      .finally(() => {
        this.waiting--;
        const left = this.waitingBy.get(key)! - 1;
        if (left > 0) this.waitingBy.set(key, left);
        else this.waitingBy.delete(key);
      });
    this.tail = run.catch(() => {});
    return run;
  }
}
