import { createRequire } from "node:module";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { runScript, ScriptMemoryError, ScriptRuntimeError, ScriptTimeoutError } from "@/engine/sandbox";
import { sandboxWorkerMain, type JobReply, type JobRequest, type WorkerMessage } from "@/engine/sandbox/worker-main";

const ROOT = path.resolve(__dirname, "../../..");
const MB = 1024 * 1024;

/**
 * The worker body run on this thread (as a worker thread would run it), so what QuickJS prints when it
 * aborts (Emscripten's "Aborted(Assertion failed: …)") lands in the spied console instead of a worker's
 * stderr.
 */
function inProcessWorker() {
  const listeners: ((m: JobRequest) => void)[] = [];
  const waiting = new Map<number, (r: JobReply) => void>();
  let ready!: () => void;
  const started = new Promise<void>((r) => (ready = r));
  const port = {
    on: (_event: "message", l: (m: JobRequest) => void) => listeners.push(l),
    postMessage: (m: WorkerMessage) => {
      if ("type" in m) {
        if (m.type === "ready") ready();
        return;
      }
      waiting.get(m.id)?.(m);
    },
  };
  sandboxWorkerMain(createRequire(path.join(ROOT, "package.json")) as unknown as (name: string) => unknown, port, new Int32Array(new SharedArrayBuffer(4)));
  let id = 0;
  return async (code: string, opts: { timeoutMs?: number; memoryBytes?: number } = {}): Promise<JobReply> => {
    await started;
    const request: JobRequest = { id: ++id, code, inputsJson: "{}", timeoutMs: opts.timeoutMs ?? 1000, memoryBytes: opts.memoryBytes ?? 32 * MB, maxStackBytes: 512 * 1024, maxOutputChars: 1e6, maxLogChars: 65536, seed: 1 };
    const reply = new Promise<JobReply>((resolve) => waiting.set(request.id, resolve));
    for (const l of listeners) l(request);
    return reply;
  };
}

// A promise chain that never ends: each step awaits, then starts the next (it grows until time or memory runs out).
const ENDLESS_CHAIN = "async function step() { await null; return step(); } return step();";

describe("QuickJS runtimes are freed cleanly, whatever the script did", () => {
  const printed: string[] = [];
  let run: ReturnType<typeof inProcessWorker>;
  beforeAll(() => {
    for (const level of ["error", "warn", "log"] as const) vi.spyOn(console, level).mockImplementation((...args: unknown[]) => void printed.push(args.map(String).join(" ")));
    run = inProcessWorker();
  });
  afterAll(() => vi.restoreAllMocks());

  const cases: [string, string, { timeoutMs?: number; memoryBytes?: number }, (r: JobReply) => void][] = [
    ["a promise chain that never ends, out of time", ENDLESS_CHAIN, { timeoutMs: 300, memoryBytes: 256 * MB }, (r) => expect(!r.ok && r.failure).toEqual({ kind: "timeout", message: "interrupted" })],
    // (Out of memory within a second or two; a heavily loaded machine may reach the time limit first.)
    ["a promise chain that never ends, out of memory", ENDLESS_CHAIN, { timeoutMs: 20_000, memoryBytes: 2 * MB }, (r) => expect(["memory", "timeout"]).toContain(!r.ok && r.failure.kind)],
    // quickjs-emscripten #269: many allocations inside a job made freeing the runtime abort.
    ["many objects allocated inside a promise job", "return Promise.resolve().then(() => { const a = []; for (let i = 0; i < 200000; i++) a.push({ i }); return a.length; })", {}, (r) => expect(r.ok && r.outputJson).toBe("200000")],
    ["this thread's stack overflowing inside a built-in", "let a = []; for (let i = 0; i < 1e5; i++) a = [a]; return a", {}, (r) => expect(!r.ok && ["stack", "timeout"]).toContain(!r.ok && r.failure.kind)],
    ["a memory bomb", "const a = []; for (;;) a.push(new Array(1000).fill(1.5))", {}, (r) => expect(!r.ok && r.failure.kind).toBe("memory")],
    ["an endless loop", "for (;;) {}", { timeoutMs: 200 }, (r) => expect(!r.ok && r.failure.kind).toBe("timeout")],
    // An async function turns the interrupt into a rejection; the script must not get to go on after it.
    ["a script that catches its own interrupt", "async function spin() { for (;;) {} } spin(); return 'escaped the time limit'", { timeoutMs: 200 }, (r) => expect(!r.ok && r.failure.kind).toBe("timeout")],
    ["an ordinary script afterwards", "return 1 + 1", {}, (r) => expect(r.ok && r.outputJson).toBe("2")],
  ];
  for (const [what, code, opts, check] of cases) {
    it(`${what}: the expected outcome, no QuickJS abort, the worker stays usable`, async () => {
      printed.length = 0;
      const reply = await run(code, opts);
      check(reply);
      expect(printed.filter((l) => /Assertion failed|Aborted/.test(l))).toEqual([]);
      expect(reply.retire).toBe(false);
    });
  }
});

describe("clear errors where QuickJS gives none", () => {
  it("a never-ending promise chain ends with a time or memory error, never 'Error: null'", async () => {
    for (const [timeoutMs, memoryBytes] of [
      [20_000, 2 * MB],
      [1000, 32 * MB],
    ]) {
      const err = await runScript({ code: ENDLESS_CHAIN, timeoutMs, memoryBytes }).then(
        () => null,
        (e: unknown) => e,
      );
      expect(err instanceof ScriptMemoryError || err instanceof ScriptTimeoutError, String(err)).toBe(true);
      expect((err as Error).message).not.toMatch(/null/);
    }
  });

  it("a script that throws null or undefined is told so", async () => {
    const cases: [string, string][] = [
      ["throw null", "null"],
      ["return Promise.reject(undefined)", "undefined"],
    ];
    for (const [code, what] of cases) {
      const err = await runScript({ code }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ScriptRuntimeError);
      expect((err as Error).message).toBe(`Error: the script threw ${what} (not an Error)`);
    }
  });
});
