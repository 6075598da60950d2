/**
 * Work that chains through promise continuations only (nodes that do no I/O, synchronous SQLite writes behind an async
 * API) never lets the event loop reach timers, sockets or other requests. `Turns.take()` resolves at once while the
 * current stretch is under `everyMs`, and after a `setImmediate` otherwise, so such a chain gives way now and then.
 */
/** A turn of the event loop: what a long stretch of synchronous work awaits now and then so other requests get in. */
export const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

export class Turns {
  private turnAt = performance.now();

  constructor(private readonly everyMs = 10) {}

  /** Undefined when the chain may go on in this turn; else a promise resolved on a later turn of the event loop. */
  take(): Promise<void> | undefined {
    if (performance.now() - this.turnAt < this.everyMs) return undefined;
    return nextTurn().then(() => {
      this.turnAt = performance.now();
    });
  }
}
