import { nextTurn } from "./turns";

/**
 * Heavy work of the web process taken one piece at a time, with a turn of the event loop before each, and at most
 * `maxWaiting` pieces waiting (past that, `busy()` is thrown at once): a request that asks for many copies of a
 * 15 MB workflow, or a flood of password checks, then delays other requests by one piece, not by all of them.
 */
export class Lane {
  private tail: Promise<unknown> = Promise.resolve();
  private waiting = 0;

  constructor(
    private readonly maxWaiting: number,
    private readonly busy: () => Error,
  ) {}

  run<T>(work: () => Promise<T>): Promise<T> {
    if (this.waiting >= this.maxWaiting) return Promise.reject(this.busy());
    this.waiting++;
    const run = this.tail
      .then(nextTurn)
      .then(work)
      .finally(() => this.waiting--);
    this.tail = run.catch(() => {});
    return run;
  }
}
