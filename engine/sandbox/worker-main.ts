import type { QuickJSContext, QuickJSHandle, QuickJSRuntime, QuickJSWASMModule } from "quickjs-emscripten-core";

/** One script execution, sent from the host thread to a sandbox worker. */
export interface JobRequest {
  id: number;
  code: string;
  /** `{ socket: value }` as JSON; parsed inside the sandbox. */
  inputsJson: string;
  timeoutMs: number;
  memoryBytes: number;
  maxStackBytes: number;
  /** Longest result, in JSON characters. */
  maxOutputChars: number;
  /** Total characters of console output kept. */
  maxLogChars: number;
  /** Seed of the sandbox's Math.random (so a script's result is a function of its code and inputs). */
  seed: number;
}

export type FailureKind = "timeout" | "memory" | "stack" | "syntax" | "runtime" | "output" | "cancelled" | "internal";

export interface JobFailure {
  kind: FailureKind;
  name?: string;
  message: string;
  /** 1-based, in the user's code. */
  line?: number;
  column?: number;
  stack?: string;
}

export type JobReply =
  | { id: number; ok: true; outputJson: string; logs: string[]; ms: number; retire: boolean }
  | { id: number; ok: false; failure: JobFailure; logs: string[]; ms: number; retire: boolean };

type Outcome = { ok: true; outputJson: string } | { ok: false; failure: JobFailure };

export type WorkerMessage = { type: "ready" } | { type: "init-error"; message: string } | JobReply;

/** The slice of worker_threads' MessagePort the worker body uses. */
export interface WorkerPort {
  on(event: "message", listener: (message: JobRequest) => void): unknown;
  postMessage(message: WorkerMessage): void;
}

/**
 * The body of a sandbox worker thread. It is turned into source text (Function#toString) and evaluated
 * in the worker, so it must reference nothing outside itself: the QuickJS packages arrive through `load`.
 * It loads the WebAssembly module once, then runs each job in a fresh QuickJS runtime + context that is
 * disposed afterwards, so no state survives between scripts. `cancelFlag[0] !== 0` interrupts a job.
 */
export function sandboxWorkerMain(load: (name: string) => unknown, port: WorkerPort, cancelFlag: Int32Array): void {
  // Runs inside the sandbox before the user's code; returns the helpers the host calls. Captures the
  // built-ins it needs first, so a script that overwrites JSON or Function.prototype.call cannot
  // interfere with how its result is read.
  const SETUP = `(function (hostLog, seed) {
  const parse = JSON.parse, stringify = JSON.stringify, isArray = Array.isArray;
  const format = (v) => {
    if (typeof v === "string") return v;
    if (v === undefined) return "undefined";
    if (typeof v === "function") return "[function " + (v.name || "anonymous") + "]";
    if (typeof v === "bigint") return String(v) + "n";
    try { const s = stringify(v); return s === undefined ? String(v) : s; } catch (e) { return String(v); }
  };
  const line = (prefix) => function (...args) { hostLog(prefix + args.map(format).join(" ")); };
  globalThis.console = Object.freeze({ log: line(""), info: line(""), debug: line(""), warn: line("warn: "), error: line("error: ") });
  // A seeded xorshift32 instead of a host-random source.
  let s = (seed >>> 0) || 0x9e3779b9;
  Math.random = function random() { s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0; return s / 4294967296; };
  return {
    call: (fn, inputsJson) => fn(parse(inputsJson)),
    isPromise: (v) => v instanceof Promise,
    toJson: (v) => { const s = stringify(v); return s === undefined ? "null" : s; },
  };
})`;
  // The user's code is the body of a function of `inputs`; the prefix line shifts line numbers by one.
  const PREFIX = "(function (inputs) {\n";
  const SUFFIX = "\n})";
  const LINE_OFFSET = 1;
  const FILE = "script.js";
  const MAX_STACK_TEXT = 4000;
  const MAX_LOG_LINE = 10_000;
  /** Lines a script may log: each becomes a server log line, empty ones too. */
  const MAX_LOG_LINES = 1000;
  const MAX_MESSAGE = 2000;

  const core = load("quickjs-emscripten-core") as typeof import("quickjs-emscripten-core");
  const variantModule = load("@jitl/quickjs-wasmfile-release-sync") as { default?: unknown };
  const variant = (variantModule.default ?? variantModule) as Parameters<typeof core.newQuickJSWASMModuleFromVariant>[0] & Parameters<typeof core.newVariant>[0];
  const fs = load("node:fs") as typeof import("node:fs");
  const resolve = (load as unknown as { resolve(name: string): string }).resolve;
  const PAGE = 65536;
  // The Emscripten build starts with 16 MB of linear memory (stack, data, QuickJS's own heap).
  const BASE_PAGES = 256;

  // Compiled once per worker; every job gets a fresh instance with its own linear memory, capped at
  // the job's limit. The cap is what bounds memory. JS_SetMemoryLimit is not used: this QuickJS build
  // cannot measure its allocations (no malloc_usable_size), so that limit counts 8 bytes per live
  // allocation, and when it trips QuickJS cannot even allocate its "out of memory" error.
  let compiled: WebAssembly.Module | undefined;
  WebAssembly.compile(fs.readFileSync(resolve("@jitl/quickjs-wasmfile-release-sync/wasm"))).then(
    (m) => {
      compiled = m;
      port.postMessage({ type: "ready" });
    },
    (err: unknown) => port.postMessage({ type: "init-error", message: err instanceof Error ? err.message : String(err) }),
  );

  let queue: Promise<unknown> = Promise.resolve();
  port.on("message", (req) => {
    queue = queue.then(() =>
      instantiate(req.memoryBytes).then(
        (instance) => port.postMessage(runJob(instance, req)),
        (err: unknown) =>
          port.postMessage({ id: req.id, ok: false, failure: { kind: "internal", message: `QuickJS could not start: ${err instanceof Error ? err.message : String(err)}` }, logs: [], ms: 0, retire: true }),
      ),
    );
  });

  /** What a job leaves besides its outcome: reuse this worker? was it interrupted? */
  type JobState = { retire: boolean; stopped?: "timeout" | "cancelled" };

  /** One job's QuickJS module, and whether its heap ran out (see instantiate). */
  type Instance = { qjs: QuickJSWASMModule; heap: { exhausted: boolean } };

  /**
   * The linear memory is allocated at its cap from the start and never grows. quickjs-emscripten reads
   * results through typed-array views it made before calling into QuickJS (e.g. the context pointer in
   * executePendingJobs); when a job grows the memory, those views are detached and read as undefined, the
   * library then wraps a brand-new JSContext that nobody disposes, and freeing the runtime aborts with
   * "Assertion failed: list_empty(&rt->gc_obj_list)" (quickjs-emscripten issue #240). Pages not yet
   * touched take no resident memory.
   *
   * Since the memory is already at its cap, the allocator asks to grow it only when an allocation does
   * not fit: that request is recorded as `heap.exhausted`. Out of memory, QuickJS cannot always build its
   * error object (a promise is then rejected with null) nor the glue its reply (a failed job then reads
   * as "0 jobs run"); the flag tells those apart from a script that threw null or really waits forever.
   */
  function instantiate(memoryBytes: number): Promise<Instance> {
    const pages = BASE_PAGES + Math.ceil(memoryBytes / PAGE);
    const wasmMemory = new WebAssembly.Memory({ initial: pages, maximum: pages });
    const heap = { exhausted: false };
    wasmMemory.grow = () => {
      heap.exhausted = true;
      throw new RangeError("the sandbox's memory is at its limit");
    };
    return core.newQuickJSWASMModuleFromVariant(core.newVariant(variant, { wasmModule: compiled!, wasmMemory })).then((qjs) => ({ qjs, heap }));
  }

  /** `script.js:L:C` positions in the user's coordinates (the wrapper's first line removed). */
  function userPosition(stack: string | undefined): { line?: number; column?: number } {
    const m = stack ? /script\.js:(\d+):(\d+)/.exec(stack) : null;
    if (!m) return {};
    const line = Number(m[1]) - LINE_OFFSET;
    return line >= 1 ? { line, column: Number(m[2]) } : {};
  }

  function userStack(stack: string | undefined): string | undefined {
    if (!stack) return undefined;
    const lines = stack
      .split("\n")
      .filter((l) => l.trim() !== "" && !l.includes("sandbox-setup.js"))
      .map((l) => l.replace(/script\.js:(\d+):(\d+)/g, (_all, ln: string, col: string) => `${FILE}:${Math.max(1, Number(ln) - LINE_OFFSET)}:${col}`));
    let text = lines.slice(0, 30).join("\n");
    if (lines.length > 30) text += `\n    … ${lines.length - 30} more frames`;
    return text.length > MAX_STACK_TEXT ? `${text.slice(0, MAX_STACK_TEXT)}…` : text;
  }

  function runJob(instance: Instance, req: JobRequest): JobReply {
    const t0 = Date.now();
    const state: JobState = { retire: false };
    const logs: string[] = [];
    let outcome = attempt(instance, req, state, logs);
    // Once interrupted, the job is over whatever happened next: an async function turns the interrupt
    // into a rejection that the script could catch (and go on), or that a later job could lose.
    if (state.stopped) outcome = { ok: false, failure: { kind: state.stopped, message: state.stopped === "timeout" ? "interrupted" : "cancelled" } };
    return { id: req.id, ...outcome, logs, ms: Date.now() - t0, retire: state.retire } as JobReply;
  }

  /**
   * Runs one job in a fresh instance (runtime + context in their own linear memory). The runtime is freed
   * afterwards, unless a host-side exception (e.g. this thread's stack overflowing inside a QuickJS
   * built-in) unwound through QuickJS's C frames: its heap is then inconsistent, freeing it would trip
   * QuickJS's leak assertion, and the instance is dropped whole instead (it is this job's alone).
   * Sets `state.retire` when this worker should not be reused.
   */
  function attempt({ qjs, heap }: Instance, req: JobRequest, state: JobState, logs: string[]): Outcome {
    let logChars = 0;
    let logsFull = false;
    let unwound = false;
    const deadline = Date.now() + req.timeoutMs;
    const outOfMemory = (): JobFailure => ({ kind: "memory", message: "out of memory" });

    let runtime: QuickJSRuntime | undefined;
    let ctx: QuickJSContext | undefined;
    const handles: QuickJSHandle[] = [];
    const keep = (h: QuickJSHandle): QuickJSHandle => (handles.push(h), h);

    /** Reads a thrown value and says what it was, in the host's terms. */
    const failureOf = (errHandle: QuickJSHandle, phase: "compile" | "run" | "output"): JobFailure => {
      let dumped: unknown;
      try {
        dumped = ctx!.dump(errHandle);
      } catch {
        // Reading the error failed: the runtime is in trouble, most likely out of memory.
        return { kind: "memory", message: "the error could not be read" };
      }
      if (dumped === null || dumped === undefined) {
        if (heap.exhausted) return outOfMemory();
        return { kind: "runtime", name: "Error", message: `the script threw ${String(dumped)} (not an Error)` };
      }
      const e = (typeof dumped === "object" ? dumped : { message: String(dumped) }) as { name?: unknown; message?: unknown; stack?: unknown };
      const name = typeof e.name === "string" ? e.name : "Error";
      const full = typeof e.message === "string" ? e.message : typeof dumped === "string" ? dumped : (JSON.stringify(dumped) ?? String(dumped));
      const message = full.length > MAX_MESSAGE ? `${full.slice(0, MAX_MESSAGE)}… (${full.length} chars)` : full;
      const stack = typeof e.stack === "string" ? e.stack : undefined;
      if (name === "InternalError" && message === "out of memory") return { kind: "memory", message };
      if (name === "InternalError" && message === "stack overflow") return { kind: "stack", message, ...userPosition(stack) };
      if (phase === "compile" && name === "SyntaxError") return { kind: "syntax", name, message, ...userPosition(stack) };
      if (phase === "output") return { kind: "output", name, message };
      return { kind: "runtime", name, message, ...userPosition(stack), stack: userStack(stack) };
    };

    try {
      runtime = qjs.newRuntime();
      runtime.setMaxStackSize(req.maxStackBytes);
      runtime.setInterruptHandler(() => {
        if (Atomics.load(cancelFlag, 0) !== 0) state.stopped = "cancelled";
        else if (Date.now() > deadline) state.stopped = "timeout";
        return state.stopped !== undefined;
      });
      const vm = (ctx = runtime.newContext());

      // The one host function the sandbox gets: it copies a string into the log, nothing else.
      const hostLog = keep(
        vm.newFunction("log", (h) => {
          if (logsFull) return;
          let text = vm.typeof(h) === "string" ? vm.getString(h) : "";
          if (text.length > MAX_LOG_LINE) text = `${text.slice(0, MAX_LOG_LINE)}… (${text.length} chars)`;
          // a line counts with its newline: empty lines are not free
          if (logChars + text.length + 1 > req.maxLogChars || logs.length >= MAX_LOG_LINES) {
            logsFull = true;
            logs.push("… (log limit reached; further output dropped)");
            return;
          }
          logChars += text.length + 1;
          logs.push(text);
        }),
      );
      const setupFn = vm.evalCode(SETUP, "sandbox-setup.js", { type: "global", strict: true });
      if (setupFn.error) return { ok: false, failure: { ...failureOf(keep(setupFn.error), "run"), kind: "internal" } };
      const seed = keep(vm.newNumber(req.seed));
      const helpers = vm.callFunction(keep(setupFn.value), vm.undefined, hostLog, seed);
      if (helpers.error) return { ok: false, failure: { ...failureOf(keep(helpers.error), "run"), kind: "internal" } };
      const helperObj = keep(helpers.value);
      const call = keep(vm.getProp(helperObj, "call"));
      const isPromise = keep(vm.getProp(helperObj, "isPromise"));
      const toJson = keep(vm.getProp(helperObj, "toJson"));

      // Compile: syntax errors surface here, with the user's line and column.
      const compiled = vm.evalCode(PREFIX + req.code + SUFFIX, FILE, { type: "global", strict: true });
      if (compiled.error) return { ok: false, failure: failureOf(keep(compiled.error), "compile") };
      const fn = keep(compiled.value);

      // Run.
      const inputsJson = keep(vm.newString(req.inputsJson));
      const ran = vm.callFunction(call, vm.undefined, fn, inputsJson);
      if (ran.error) return { ok: false, failure: failureOf(keep(ran.error), "run") };
      let result = keep(ran.value);

      // An async script: settle its promise by running the sandbox's job queue (there is no event loop).
      const promiseCheck = vm.callFunction(isPromise, vm.undefined, result);
      if (promiseCheck.error) return { ok: false, failure: failureOf(keep(promiseCheck.error), "run") };
      if (vm.dump(keep(promiseCheck.value)) === true) {
        for (;;) {
          const settled = vm.getPromiseState(result);
          if (settled.type === "fulfilled") {
            result = keep(settled.value);
            break;
          }
          if (settled.type === "rejected") return { ok: false, failure: failureOf(keep(settled.error), "run") };
          const hadJobs = runtime.hasPendingJob();
          const jobs = runtime.executePendingJobs();
          if (jobs.error) return { ok: false, failure: failureOf(keep(jobs.error), "run") };
          if (jobs.value === 0) {
            // A job was there but none reported as run: its result could not even be allocated.
            if (hadJobs || heap.exhausted) return { ok: false, failure: outOfMemory() };
            return { ok: false, failure: { kind: "runtime", name: "Error", message: "the script's promise never settles (the sandbox has no timers or I/O to wait for)" } };
          }
        }
      }

      // Serialise inside the sandbox (under the same limits), then copy out only if it is small enough.
      const json = vm.callFunction(toJson, vm.undefined, result);
      if (json.error) return { ok: false, failure: failureOf(keep(json.error), "output") };
      const jsonHandle = keep(json.value);
      if (vm.typeof(jsonHandle) !== "string") return { ok: false, failure: { kind: "output", message: "JSON.stringify did not return a string" } };
      const length = vm.getNumber(keep(vm.getProp(jsonHandle, "length")));
      if (length > req.maxOutputChars) {
        return { ok: false, failure: { kind: "output", message: `the result is ${length} characters as JSON; the limit is ${req.maxOutputChars}` } };
      }
      return { ok: true, outputJson: vm.getString(jsonHandle) };
    } catch (err) {
      // A host-side exception (e.g. the WebAssembly module trapped) left QuickJS's own state half-done.
      unwound = true;
      if (state.stopped) return { ok: false, failure: { kind: state.stopped, message: state.stopped } };
      // Recursion inside a QuickJS built-in (e.g. JSON.stringify of a 1e5-deep array) can exhaust this
      // thread's own stack before QuickJS's stack limit sees it: still the script's stack overflow.
      if (err instanceof RangeError && /call stack/i.test(err.message)) return { ok: false, failure: { kind: "stack", message: "stack overflow (inside a built-in function)" } };
      // Anything else is unexplained: this worker is not reused.
      state.retire = true;
      return { ok: false, failure: { kind: "internal", message: err instanceof Error ? err.message : String(err) } };
    } finally {
      if (!unwound) {
        try {
          for (const h of handles) if (h.alive) h.dispose();
          ctx?.dispose();
          runtime?.dispose();
        } catch {
          // Freeing failed (a QuickJS abort): nothing of this worker's own state is shared with the
          // instance, but a worker that saw it is not reused.
          state.retire = true;
        }
      }
    }
  }
}
