/**
 * Runs user JavaScript in a QuickJS (WebAssembly) sandbox with time and memory limits.
 *
 * Scripts run in worker threads, not on the caller's thread: QuickJS's sync build blocks while it
 * evaluates, and on the server's main thread an endless loop would stall every request (and a cancel
 * could not even be heard) until the time limit. Each worker loads the WebAssembly module once and
 * gives every script a fresh runtime and context. The script sees its `inputs` (parsed from JSON), a
 * `console` whose lines are copied out as strings, and the standard built-ins — no require, process,
 * fetch, timers, modules or any other host object. Its return value leaves as JSON.
 */
import { Worker } from "node:worker_threads";
import path from "node:path";
import {
  SandboxError,
  ScriptCancelledError,
  ScriptError,
  ScriptMemoryError,
  ScriptOutputError,
  ScriptRuntimeError,
  ScriptStackOverflowError,
  ScriptSyntaxError,
  ScriptTimeoutError,
} from "./errors";
import { inputsToJson, parseOutputJson } from "./marshal";
import { sandboxWorkerMain, type JobFailure, type JobReply, type JobRequest, type WorkerMessage } from "./worker-main";
import { config } from "../config";

export * from "./errors";

export interface RunScriptOptions {
  /** The body of a function of `inputs`; what it returns (or its promise resolves to) is the result. */
  code: string;
  inputs?: Record<string, unknown>;
  /** Wall-clock limit of the script itself (default 2,000 ms, at most 60,000). */
  timeoutMs?: number;
  /** Memory the script may allocate (default 32 MB, between 1 MB and 1 GB). */
  memoryBytes?: number;
  /** Cancels a waiting or running script (it is interrupted within a few milliseconds). */
  signal?: AbortSignal;
  /** Seed of Math.random inside the sandbox (default 1). */
  seed?: number;
  /** Largest result as JSON, in characters (default 1,000,000). */
  maxOutputChars?: number;
  /** Largest inputs as JSON, in characters (default 16,000,000). */
  maxInputChars?: number;
}

export interface RunScriptResult {
  /** The value the script returned, as JSON (undefined becomes null). */
  outputs: unknown;
  /** console.log/info/warn/error lines, in order. */
  logs: string[];
  /** Time spent in the sandbox. */
  ms: number;
}

const MB = 1024 * 1024;
const MAX_STACK_BYTES = 512 * 1024;
const MAX_LOG_CHARS = 64 * 1024;
/** How long past its time limit a worker may stay silent before it is killed. */
const WATCHDOG_GRACE_MS = 2000;
/** How long a cancelled script may take to stop before its worker is killed. */
const CANCEL_GRACE_MS = 1000;
const IDLE_WORKER_MS = 30_000;

export async function runScript(options: RunScriptOptions): Promise<RunScriptResult> {
  const timeoutMs = Math.round(options.timeoutMs ?? 2000);
  const memoryBytes = Math.round(options.memoryBytes ?? 32 * MB);
  if (!(timeoutMs >= 1 && timeoutMs <= 60_000)) throw new RangeError(`timeoutMs must be between 1 and 60000 (got ${options.timeoutMs})`);
  if (!(memoryBytes >= MB && memoryBytes <= 1024 * MB)) throw new RangeError(`memoryBytes must be between 1 MB and 1 GB (got ${options.memoryBytes})`);
  if (typeof options.code !== "string") throw new TypeError("code must be a string");
  const inputsJson = inputsToJson(options.inputs ?? {}, options.maxInputChars ?? 16_000_000);
  const signal = options.signal;
  if (signal?.aborted) throw new ScriptCancelledError();

  const request: Omit<JobRequest, "id"> = {
    code: options.code,
    inputsJson,
    timeoutMs,
    memoryBytes,
    maxStackBytes: MAX_STACK_BYTES,
    maxOutputChars: options.maxOutputChars ?? 1_000_000,
    maxLogChars: MAX_LOG_CHARS,
    seed: options.seed ?? 1,
  };
  const pool = sandboxPool();
  const worker = await pool.acquire(signal);
  let reply: JobReply;
  try {
    reply = await worker.run(request, signal);
  } finally {
    pool.release(worker);
  }
  if (!reply.ok) {
    const error = toScriptError(reply.failure, request);
    error.logs = reply.logs;
    throw error;
  }
  return { outputs: parseOutputJson(reply.outputJson), logs: reply.logs, ms: reply.ms };
}

function toScriptError(f: JobFailure, req: Omit<JobRequest, "id">): ScriptError {
  switch (f.kind) {
    case "timeout":
      return new ScriptTimeoutError(req.timeoutMs);
    case "memory":
      return new ScriptMemoryError(req.memoryBytes);
    case "stack":
      return new ScriptStackOverflowError(f.line);
    case "syntax": {
      // Past the code's last line is the wrapper's closing "})": the code ended in the middle of something.
      const lines = req.code.split("\n").length;
      if (f.line !== undefined && f.line > lines) return new ScriptSyntaxError("the script ends too early (an unfinished expression, or an unclosed bracket, string or comment)", lines);
      return new ScriptSyntaxError(f.message, f.line, f.column);
    }
    case "runtime":
      return new ScriptRuntimeError(f.name ?? "Error", f.message, f.line, f.stack);
    case "output":
      return new ScriptOutputError(f.name ? `${f.name}: ${f.message}` : f.message);
    case "cancelled":
      return new ScriptCancelledError();
    case "internal":
      return new SandboxError(f.message);
  }
}

/**
 * Source of a worker: resolves the QuickJS packages from the app's node_modules, then runs the body.
 * `__name` is the helper esbuild (tsx, the CLI's runner) inserts into functions to keep their names;
 * the stringified body may call it, so the worker defines it.
 */
const WORKER_SOURCE = `
function __name(fn) { return fn; }
const { parentPort, workerData } = require("node:worker_threads");
const load = require("node:module").createRequire(workerData.resolveFrom);
(${sandboxWorkerMain.toString()})(load, parentPort, new Int32Array(workerData.cancel));
`;

let nextJobId = 1;

/** One worker thread with its own QuickJS module; runs one script at a time. */
class SandboxWorker {
  private readonly worker: Worker;
  private readonly cancelFlag = new Int32Array(new SharedArrayBuffer(4));
  readonly ready: Promise<void>;
  /** Set once the worker died or must not be reused. */
  dead = false;
  idleTimer?: ReturnType<typeof setTimeout>;
  private current?: { onMessage(m: JobReply): void; onDeath(err: Error): void };

  constructor() {
    this.worker = new Worker(WORKER_SOURCE, {
      eval: true,
      workerData: { resolveFrom: path.join(process.cwd(), "package.json"), cancel: this.cancelFlag.buffer },
      // The V8 heap of the worker (not the sandbox's WebAssembly memory, which QuickJS limits itself).
      resourceLimits: { maxOldGenerationSizeMb: 256 },
      stdout: false,
      stderr: false,
    });
    this.ready = new Promise<void>((resolve, reject) => {
      const onInit = (m: WorkerMessage) => {
        if ("type" in m) {
          this.worker.off("message", onInit);
          if (m.type === "ready") resolve();
          else reject(new SandboxError(`QuickJS could not be loaded: ${m.message}`));
        }
      };
      this.worker.on("message", onInit);
      this.worker.once("error", (err) => reject(new SandboxError(err.message)));
      this.worker.once("exit", (code) => reject(new SandboxError(`the worker exited (code ${code}) while starting`)));
    });
    this.ready.catch(() => (this.dead = true));
    this.worker.on("message", (m: WorkerMessage) => {
      if (!("type" in m)) this.current?.onMessage(m);
    });
    this.worker.on("error", (err) => {
      this.dead = true;
      this.current?.onDeath(err);
    });
    this.worker.on("exit", (code) => {
      this.dead = true;
      this.current?.onDeath(new Error(`the worker exited (code ${code})`));
    });
  }

  run(request: Omit<JobRequest, "id">, signal: AbortSignal | undefined): Promise<JobReply> {
    const id = nextJobId++;
    Atomics.store(this.cancelFlag, 0, 0);
    this.worker.ref();
    return new Promise<JobReply>((resolve, reject) => {
      let cancelTimer: ReturnType<typeof setTimeout> | undefined;
      const settle = (fn: () => void) => {
        clearTimeout(watchdog);
        clearTimeout(cancelTimer);
        signal?.removeEventListener("abort", onAbort);
        this.current = undefined;
        this.worker.unref();
        fn();
      };
      const onAbort = () => {
        // The interrupt handler reads this flag between bytecodes; the kill is for a worker that does not.
        Atomics.store(this.cancelFlag, 0, 1);
        cancelTimer = setTimeout(() => {
          this.kill();
          settle(() => reject(new ScriptCancelledError()));
        }, CANCEL_GRACE_MS);
      };
      const watchdog = setTimeout(() => {
        this.kill();
        settle(() => reject(new ScriptTimeoutError(request.timeoutMs)));
      }, request.timeoutMs + WATCHDOG_GRACE_MS);
      this.current = {
        onMessage: (m) => {
          if (m.id !== id) return;
          if (m.retire) this.kill();
          settle(() => resolve(m));
        },
        onDeath: (err) => {
          const oom = (err as { code?: string }).code === "ERR_WORKER_OUT_OF_MEMORY";
          settle(() => reject(oom ? new ScriptMemoryError(request.memoryBytes) : new SandboxError(err.message)));
        },
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      this.worker.postMessage({ ...request, id } satisfies JobRequest);
    });
  }

  kill(): void {
    this.dead = true;
    void this.worker.terminate();
  }

  unref(): void {
    this.worker.unref();
  }
}

/** Up to `max` workers; a script waits for a free one. Idle workers stop after a while. */
class SandboxPool {
  private readonly idle: SandboxWorker[] = [];
  private size = 0;
  private readonly waiting: { resolve(w: SandboxWorker): void; reject(e: Error): void; signal?: AbortSignal; onAbort(): void }[] = [];

  constructor(private readonly max: number) {}

  async acquire(signal?: AbortSignal): Promise<SandboxWorker> {
    while (this.idle.length) {
      const w = this.idle.pop()!;
      clearTimeout(w.idleTimer);
      if (!w.dead) return w;
      this.size--;
    }
    if (this.size < this.max) {
      this.size++;
      const w = new SandboxWorker();
      try {
        await w.ready;
      } catch (err) {
        this.size--;
        w.kill();
        throw err;
      }
      w.unref();
      if (signal?.aborted) {
        this.release(w);
        throw new ScriptCancelledError();
      }
      return w;
    }
    return new Promise<SandboxWorker>((resolve, reject) => {
      const entry = {
        resolve,
        reject,
        signal,
        onAbort: () => {
          const i = this.waiting.indexOf(entry);
          if (i >= 0) this.waiting.splice(i, 1);
          reject(new ScriptCancelledError());
        },
      };
      signal?.addEventListener("abort", entry.onAbort, { once: true });
      this.waiting.push(entry);
    });
  }

  release(w: SandboxWorker): void {
    if (w.dead) {
      this.size--;
      // A replacement for whoever waits.
      const next = this.waiting.shift();
      if (next) {
        next.signal?.removeEventListener("abort", next.onAbort);
        this.acquire(next.signal).then(next.resolve, next.reject);
      }
      return;
    }
    const next = this.waiting.shift();
    if (next) {
      next.signal?.removeEventListener("abort", next.onAbort);
      next.resolve(w);
      return;
    }
    w.idleTimer = setTimeout(() => {
      const i = this.idle.indexOf(w);
      if (i >= 0) {
        this.idle.splice(i, 1);
        this.size--;
        w.kill();
      }
    }, IDLE_WORKER_MS);
    w.idleTimer.unref();
    this.idle.push(w);
  }
}

let shared: SandboxPool | undefined;
/** Created on first use, so the setting is read after start-up has loaded and checked the environment. */
const sandboxPool = () => (shared ??= new SandboxPool(config().STUDIO_SCRIPT_WORKERS));
