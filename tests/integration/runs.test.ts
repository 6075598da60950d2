import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import v8 from "node:v8";
import vm from "node:vm";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import type { RunEvent } from "@/engine/events";
import { defineNode, NodeCatalogue } from "@/engine/node";
import { emptyWorkflow, type Workflow } from "@/engine/workflow/schema";
import { freshDataDir } from "./fresh-db";
import { cliEntry } from "../cli-bundle";

// The run host against a real SQLite database (Prisma), with test-only node types.
process.env.STUDIO_DATA_DIR = freshDataDir();
process.env.STUDIO_EP = "cpu"; // the provider a run records is asserted below
const { db } = await import("@/app/server/db");
const { RunManager, runManager } = await import("@/app/server/runs");
const { appRouter } = await import("@/app/server/routers");

const gates = new Map<string, () => void>();
/** What test.alloc holds while it runs (released by the test). */
let held: Float64Array | undefined;
const catalogue = new NodeCatalogue([
  defineNode({
    type: "test.alloc",
    typeVersion: 1,
    title: "Alloc",
    category: "Utility",
    description: "Fills `mb` MB of memory and keeps it for 120 ms.",
    inputs: {},
    outputs: { text: { type: "TEXT" } },
    params: z.object({ mb: z.number().default(64) }),
    nondeterministic: true,
    async execute({ params }) {
      held = new Float64Array((params.mb * 1e6) / 8).fill(1); // filled: its pages are resident
      await new Promise((r) => setTimeout(r, 120));
      return { text: `${params.mb} MB` };
    },
  }),
  defineNode({
    type: "test.gate",
    typeVersion: 1,
    title: "Gate",
    category: "Utility",
    description: "Waits until the test opens it (or the run is cancelled).",
    inputs: {},
    outputs: { text: { type: "TEXT" } },
    params: z.object({ name: z.string().default("g") }),
    async execute({ params, ctx }) {
      await new Promise<void>((resolve, reject) => {
        gates.set(params.name, resolve);
        ctx.signal.addEventListener("abort", () => reject(ctx.signal.reason ?? new Error("aborted")), { once: true });
      });
      return { text: params.name };
    },
  }),
  defineNode({
    type: "test.provenance",
    typeVersion: 1,
    title: "Provenance",
    category: "Utility",
    description: "Writes a file with its run's document in it, as the DiT (PNG) and TTS (WAV) nodes do.",
    inputs: {},
    outputs: { text: { type: "TEXT" } },
    params: z.object({ seed: z.number().default(1) }),
    async execute({ ctx }) {
      return { text: await ctx.storage.write(new TextEncoder().encode(JSON.stringify(ctx.workflow ?? null)), "json") };
    },
  }),
  defineNode({
    type: "test.bigtext",
    typeVersion: 1,
    title: "Big text",
    category: "Utility",
    description: "A fresh text output of `mb` million characters on every run (never cached).",
    inputs: {},
    outputs: { text: { type: "TEXT" } },
    params: z.object({ mb: z.number().default(1), seed: z.number().default(0) }),
    nondeterministic: true,
    async execute({ params }) {
      return { text: `${params.seed}:`.padEnd(params.mb * 1e6, "x") };
    },
  }),
  defineNode({
    type: "test.surrogate",
    typeVersion: 1,
    title: "Lone surrogate",
    category: "Utility",
    description: "Fails with an error holding a lone UTF-16 surrogate (as a Script may).",
    inputs: {},
    outputs: { text: { type: "TEXT" } },
    params: z.object({}),
    async execute() {
      throw new Error(`boom ${String.fromCharCode(0xd800)} here`);
    },
  }),
  defineNode({
    type: "test.chatty",
    typeVersion: 1,
    title: "Chatty",
    category: "Utility",
    description: "Reports progress many times with a long message (user text in it), as a dataset run does per record.",
    inputs: {},
    outputs: { text: { type: "TEXT" } },
    params: z.object({ times: z.number().default(1000) }),
    async execute({ params, ctx }) {
      for (let i = 1; i <= params.times; i++) ctx.progress(i / params.times, `record ${i}: ${"\u0001".repeat(10_000)}`);
      return { text: "done" };
    },
  }),
]);

function gateDoc(name: string): Workflow {
  return { ...emptyWorkflow(name), nodes: [{ id: "g", type: "test.gate", typeVersion: 1, params: { name }, position: { x: 0, y: 0 } }], edges: [] };
}

async function until(check: () => boolean | Promise<boolean>, ms = 5000) {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error("timed out");
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe("run host", () => {
  let manager: InstanceType<typeof RunManager>;
  beforeAll(() => {
    manager = new RunManager({ recoverInterrupted: false, catalogue });
  });
  afterAll(async () => {
    await manager.runtime.close();
  });

  it("records a run of many cheap nodes in WAL mode, one write a node once it is done, giving the event loop turns", async () => {
    // rollback-journal commits fsync'd each write (1,000 trivial nodes took 21 s to record), and the writes drained in
    // stretches of 200–400 ms that no request could interrupt
    expect(await db().$queryRawUnsafe("PRAGMA journal_mode")).toEqual([{ journal_mode: "wal" }]);
    const doc: Workflow = {
      ...emptyWorkflow("many"),
      nodes: Array.from({ length: 400 }, (_, i) => ({ id: `c${i}`, type: "test.chatty", typeVersion: 1, params: { times: 0 }, position: { x: 0, y: i } })),
      edges: [],
    };
    let turns = 0;
    const timer = setInterval(() => turns++, 0);
    const t0 = performance.now();
    const id = await manager.start({ document: doc });
    expect((await manager.whenDone(id)).type).toBe("finished");
    const ms = performance.now() - t0;
    clearInterval(timer);
    expect(turns, `${turns} turns in ${ms.toFixed(0)} ms`).toBeGreaterThan(ms / 40);
    const rows = await db().nodeRun.findMany({ where: { runId: id } });
    expect(rows).toHaveLength(400);
    for (const r of rows) {
      expect(["done", "cached"]).toContain(r.status);
      expect(JSON.parse(r.outputs!)).toMatchObject({ text: { type: "text", text: "done" } });
    }
  });

  it("a finished run keeps its outputs' previews, not the outputs: the replay events hold copies, not slices", async () => {
    // a 2,000-character preview sliced from a 16 M-character text kept the whole text alive with the run's events
    v8.setFlagsFromString("--expose-gc");
    const gc = vm.runInNewContext("gc") as () => void;
    const runOnce = async (seed: number) => {
      const doc: Workflow = { ...emptyWorkflow("big"), nodes: [{ id: "t", type: "test.bigtext", typeVersion: 1, params: { mb: 24, seed }, position: { x: 0, y: 0 } }], edges: [] };
      const id = await manager.start({ document: doc });
      expect((await manager.whenDone(id)).type).toBe("finished");
    };
    await runOnce(0);
    gc();
    const before = process.memoryUsage().heapUsed;
    for (let seed = 1; seed <= 4; seed++) await runOnce(seed);
    gc();
    const grownMb = (process.memoryUsage().heapUsed - before) / 1e6;
    expect(grownMb, `${grownMb.toFixed(0)} MB more after 4 runs of a 24 MB text each`).toBeLessThan(24);
  });

  it("finished runs kept for replay are bounded in characters too: past the budget the oldest go (read from the database)", async () => {
    const small = new RunManager({ recoverInterrupted: false, catalogue, keepFinishedChars: 6_000 });
    try {
      const ids: string[] = [];
      for (let seed = 1; seed <= 4; seed++) {
        const id = await small.start({ document: { ...emptyWorkflow("big"), nodes: [{ id: "t", type: "test.bigtext", typeVersion: 1, params: { mb: 0.01, seed }, position: { x: 0, y: 0 } }], edges: [] } });
        expect((await small.whenDone(id)).type).toBe("finished");
        ids.push(id);
      }
      // each run's events hold its text preview (~2,000 characters): under 3,000 characters a run, so two fit
      const replayable = ids.map((id) => {
        const stop = small.subscribe(id, () => {});
        stop?.();
        return stop !== undefined;
      });
      expect(replayable).toEqual([false, false, true, true]);
    } finally {
      await small.runtime.close();
    }
  });

  it("an error holding a lone UTF-16 surrogate is recorded (as U+FFFD) and the run ends failed; such input is refused", async () => {
    // the database refused the lone surrogate, and the run stayed "running" for good, using up its owner's run slots
    const id = await manager.start({ document: { ...emptyWorkflow("lone"), nodes: [{ id: "x", type: "test.surrogate", typeVersion: 1, params: {}, position: { x: 0, y: 0 } }], edges: [] } });
    expect((await manager.whenDone(id)).type).toBe("failed");
    const row = await db().run.findUniqueOrThrow({ where: { id }, include: { nodeRuns: true } });
    expect(row.status).toBe("failed");
    expect(row.error).toContain("boom \ufffd here");
    expect(row.nodeRuns[0]).toMatchObject({ status: "error" });
    expect(row.nodeRuns[0]!.error).toContain("boom \ufffd here");
    const caller = appRouter.createCaller({ origin: null, host: null, userId: "local" });
    await expect(caller.workflow.create({ name: `a${String.fromCharCode(0xdfff)}` })).rejects.toThrow(/input\.name holds a lone UTF-16 surrogate/);
    await expect(caller.workflow.list({ search: String.fromCharCode(0xd83d) } as never)).rejects.toThrow(/lone UTF-16 surrogate/);
  });

  it("marks runs of a previous process interrupted on start, never leaving them running", async () => {
    await db().run.create({ data: { id: "old-running", document: "{}", status: "running" } });
    await db().run.create({ data: { id: "old-queued", document: "{}", status: "queued" } });
    await db().run.create({ data: { id: "old-done", document: "{}", status: "finished" } });
    await db().nodeRun.create({ data: { id: "nr1", runId: "old-running", nodeId: "a", nodeType: "x", status: "running" } });
    const restarted = new RunManager({ recoverInterrupted: true, catalogue });
    await restarted.ready;
    const rows = await db().run.findMany({ where: { id: { startsWith: "old-" } }, orderBy: { id: "asc" } });
    expect(rows.map((r) => [r.id, r.status])).toEqual([
      ["old-done", "finished"],
      ["old-queued", "interrupted"],
      ["old-running", "interrupted"],
    ]);
    expect(rows.find((r) => r.id === "old-running")!.error).toMatch(/server stopped/);
    expect((await db().nodeRun.findUnique({ where: { id: "nr1" } }))!.status).toBe("interrupted");
  });

  it("cached outputs are shared among one owner's runs only: a file with another user's document in it is never handed over", async () => {
    // the owner's words are in the params of a node p does not read (files carry params, not names: documentForFiles)
    const doc = (name: string): Workflow => ({
      ...emptyWorkflow(name),
      nodes: [
        { id: "p", type: "test.provenance", typeVersion: 1, params: { seed: 7 }, position: { x: 0, y: 0 } },
        { id: "words", type: "test.alloc", typeVersion: 1, params: { mb: 0.001, words: name }, position: { x: 0, y: 200 } },
      ],
      edges: [],
    });
    const run = async (ownerId: string, name: string) => {
      const id = await manager.start({ document: doc(name), ownerId });
      expect((await manager.whenDone(id)).type).toBe("finished");
      const node = await db().nodeRun.findFirstOrThrow({ where: { runId: id, nodeId: "p" } });
      const file = (JSON.parse(node.outputs!) as { text: { text: string } }).text.text;
      return { status: node.status, written: (await manager.executor.storage.read(file)).toString("utf8") };
    };
    expect(await run("alice", "alice's private plan")).toMatchObject({ status: "done" });
    const again = await run("alice", "alice, renamed");
    expect(again.status).toBe("cached"); // her own earlier output
    const bob = await run("bob", "bob's copy");
    expect(bob.status).toBe("done");
    expect(bob.written).toContain("bob's copy");
    expect(bob.written).not.toContain("alice");
  });

  it("queues runs in order, re-orders and cancels pending ones, cancels a running one", async () => {
    const a = await manager.start({ document: gateDoc("a") });
    await until(() => gates.has("a"));
    const b = await manager.start({ document: gateDoc("b") });
    const c = await manager.start({ document: gateDoc("c") });
    const d = await manager.start({ document: gateDoc("d") });
    expect((await manager.queue()).map((q) => q.id)).toEqual([a, b, c, d]);
    expect(await manager.move(d, "up")).toBe(true);
    expect((await manager.queue()).map((q) => q.id)).toEqual([a, b, d, c]);
    expect(await manager.move(b, "up")).toBe(false); // already first in the queue
    // another user's queued run is not passed (nor passes ours): a run moves among its owner's runs only
    const e = await manager.start({ document: gateDoc("e"), ownerId: "someone-else" });
    const f = await manager.start({ document: gateDoc("f") });
    expect(await manager.move(f, "up")).toBe(false);
    expect(await manager.move(e, "up")).toBe(false);
    expect(await manager.move(c, "down")).toBe(false);
    expect((await manager.queue()).map((q) => q.id)).toEqual([a, b, d, c, e, f]);
    for (const r of [e, f]) await manager.cancel(r);

    await manager.cancel(c);
    expect((await manager.whenDone(c)).type).toBe("cancelled");
    expect((await db().run.findUniqueOrThrow({ where: { id: c } })).status).toBe("cancelled");

    gates.get("a")!();
    expect((await manager.whenDone(a)).type).toBe("finished");
    await until(() => gates.has("b"));
    expect(gates.has("d")).toBe(false); // one run at a time
    await manager.cancel(b);
    expect((await manager.whenDone(b)).type).toBe("cancelled");
    await until(() => gates.has("d"));
    gates.get("d")!();
    expect((await manager.whenDone(d)).type).toBe("finished");

    const rowA = await db().run.findUniqueOrThrow({ where: { id: a }, include: { nodeRuns: true } });
    expect(rowA.status).toBe("finished");
    expect(rowA.executionProvider).toMatch(/^(cpu|cuda)$/);
    expect(rowA.nodeRuns.map((n) => [n.nodeId, n.status])).toEqual([["g", "done"]]);
    expect(JSON.parse(rowA.nodeRuns[0]!.outputs!)).toMatchObject({ text: { type: "text", text: "a" } });
    const rowB = await db().run.findUniqueOrThrow({ where: { id: b }, include: { nodeRuns: true } });
    expect(rowB.status).toBe("cancelled");
  });

  it("a late subscriber gets the whole event history, ending with the terminal event", async () => {
    const id = await manager.start({ document: gateDoc("late") });
    await until(() => gates.has("late"));
    gates.get("late")!();
    await manager.whenDone(id);
    const seen: RunEvent["type"][] = [];
    manager.subscribe(id, (e) => seen.push(e.type));
    expect(seen).toEqual(["queued", "started", "node-start", "node-done", "node-outputs", "finished"]);
  });

  it("a run that takes longer than STUDIO_MAX_RUN_MINUTES is stopped and recorded as failed, saying why; the queue moves on", async () => {
    process.env.STUDIO_MAX_RUN_MINUTES = "0.005"; // 300 ms
    try {
      const id = await manager.start({ document: gateDoc("forever") });
      const end = await manager.whenDone(id);
      expect(end.type).toBe("failed");
      const row = await db().run.findUniqueOrThrow({ where: { id } });
      expect(row.status).toBe("failed");
      expect(row.error).toBe("the run took longer than the 0.005 minutes a run may take (STUDIO_MAX_RUN_MINUTES) and was stopped");
    } finally {
      delete process.env.STUDIO_MAX_RUN_MINUTES;
    }
    const next = await manager.start({ document: gateDoc("next") });
    await until(() => gates.has("next"));
    gates.get("next")!();
    expect((await manager.whenDone(next)).type).toBe("finished");
  });

  it("a run keeps each node's latest progress only, its message cut short (it kept all 2,000 reports of 10,000 characters)", async () => {
    const doc: Workflow = { ...emptyWorkflow("chatty"), nodes: ["a", "b"].map((id, i) => ({ id, type: "test.chatty", typeVersion: 1, params: { times: 1000 }, position: { x: i * 200, y: 0 } })), edges: [] };
    const id = await manager.start({ document: doc });
    await manager.whenDone(id);
    const seen: RunEvent[] = [];
    manager.subscribe(id, (e) => seen.push(e));
    const progress = seen.filter((e) => e.type === "progress");
    expect(progress.map((e) => [e.nodeId, e.fraction]).sort()).toEqual([["a", 1], ["b", 1]]);
    expect(Math.max(...progress.map((e) => e.message!.length))).toBeLessThanOrEqual(300);
    expect(seen.at(-1)!.type).toBe("finished");
  });
});

describe("run memory", () => {
  let manager: InstanceType<typeof RunManager>;
  beforeAll(() => {
    manager = new RunManager({ recoverInterrupted: false, catalogue });
  });
  afterAll(async () => {
    await manager.runtime.close();
    await runManager().runtime.close();
  });

  it("a run records its provider, start and peak RSS, and each executed node's peak (a 64 MB node shows)", async () => {
    const doc: Workflow = {
      ...emptyWorkflow("alloc"),
      nodes: [
        { id: "small", type: "test.alloc", typeVersion: 1, params: { mb: 1 }, position: { x: 0, y: 0 } },
        { id: "big", type: "test.alloc", typeVersion: 1, params: { mb: 64 }, position: { x: 0, y: 100 } },
      ],
      edges: [],
    };
    const id = await manager.start({ document: doc });
    const terminal = await manager.whenDone(id);
    held = undefined;
    expect(terminal.type).toBe("finished");
    const row = await db().run.findUniqueOrThrow({ where: { id }, include: { nodeRuns: true } });
    expect(row.executionProvider).toBe("cpu");
    expect(row.startRssBytes).toBeGreaterThan(0);
    expect(row.peakRssBytes).toBeGreaterThanOrEqual(row.startRssBytes!);
    expect(row.peakDeviceBytes).toBeNull(); // not CUDA: not recorded, never guessed
    const big = row.nodeRuns.find((n) => n.nodeId === "big")!;
    const small = row.nodeRuns.find((n) => n.nodeId === "small")!;
    expect(small.peakRssBytes).toBeGreaterThan(0);
    // 64 MB filled while the node ran: its peak is well above where the run started (concurrency 2:
    // "small" may run alongside, which only adds; a GC of unrelated garbage meanwhile can take a few MB off).
    expect(big.peakRssBytes! - row.startRssBytes!).toBeGreaterThanOrEqual(48e6);
    expect(row.peakRssBytes).toBeGreaterThanOrEqual(big.peakRssBytes!);
    console.log(`run: start ${(row.startRssBytes! / 1e6).toFixed(1)} MB, peak ${(row.peakRssBytes! / 1e6).toFixed(1)} MB; node big ${(big.peakRssBytes! / 1e6).toFixed(1)} MB, small ${(small.peakRssBytes! / 1e6).toFixed(1)} MB`);
    // The terminal event carries the same figures as the row.
    expect(terminal).toMatchObject({ memory: { startRssBytes: row.startRssBytes, peakRssBytes: row.peakRssBytes } });
  });

  it("run.get and run.list return the figures; an old-style row without them lists and opens fine", async () => {
    const caller = appRouter.createCaller({ origin: null, host: null, userId: "local" });
    const { runId } = await caller.run.start({
      document: {
        ...emptyWorkflow("text"),
        nodes: [
          { id: "prompt", type: "input.text", typeVersion: 1, params: { text: "hello" }, position: { x: 0, y: 0 } },
          { id: "show", type: "output.preview", typeVersion: 1, params: {}, position: { x: 300, y: 0 } },
        ],
        edges: [{ id: "e1", source: "prompt", sourceSocket: "text", target: "show", targetSocket: "value" }],
      },
    });
    expect((await runManager().whenDone(runId)).type).toBe("finished");
    await db().run.create({ data: { id: "pre-memory", document: "{}", status: "finished", executionProvider: "cpu", createdAt: new Date(Date.now() - 60_000) } });
    await db().nodeRun.create({ data: { id: "pre-memory-n", runId: "pre-memory", nodeId: "a", nodeType: "input.text", status: "done", durationMs: 1 } });

    const list = await caller.run.list({});
    const fresh = list.find((r) => r.id === runId)!;
    expect(fresh.executionProvider).toBe("cpu");
    expect(fresh.peakRssBytes).toBeGreaterThanOrEqual(fresh.startRssBytes!);
    expect(fresh.peakDeviceBytes).toBeNull();
    expect(list.find((r) => r.id === "pre-memory")).toMatchObject({ startRssBytes: null, peakRssBytes: null, peakDeviceBytes: null });

    const got = await caller.run.get({ runId });
    expect(got.peakRssBytes).toBe(fresh.peakRssBytes);
    expect(got.nodes.every((n) => typeof n.peakRssBytes === "number" && n.peakRssBytes > 0)).toBe(true);
    // What the browser receives: plain JSON (no tRPC transformer), numbers survive it.
    expect(JSON.parse(JSON.stringify(got)).peakRssBytes).toBe(got.peakRssBytes);
    const old = await caller.run.get({ runId: "pre-memory" });
    expect(old).toMatchObject({ status: "finished", startRssBytes: null, peakRssBytes: null, peakDeviceBytes: null });
    expect(old.nodes).toEqual([expect.objectContaining({ nodeId: "a", peakRssBytes: null })]);
  });

  it("cli run --out writes the figures into run.json next to executionProvider", () => {
    const tmp = mkdtempSync(path.join(os.tmpdir(), "studio-cli-mem-"));
    const file = path.join(tmp, "wf.json");
    writeFileSync(
      file,
      JSON.stringify({
        schemaVersion: 2,
        name: "CLI memory",
        nodes: [
          { id: "prompt", type: "input.text", typeVersion: 1, params: { text: "hello" }, position: { x: 0, y: 0 } },
          { id: "show", type: "output.preview", typeVersion: 1, params: {}, position: { x: 300, y: 0 } },
        ],
        edges: [{ id: "e1", source: "prompt", sourceSocket: "text", target: "show", targetSocket: "value" }],
      }),
    );
    const root = path.join(__dirname, "../..");
    const out = path.join(tmp, "out");
    const r = spawnSync(process.execPath, [...cliEntry(), "run", file, "--out", out], {
      cwd: root,
      env: { ...process.env },
      encoding: "utf8",
      timeout: 60_000,
    });
    expect(r.stderr).not.toMatch(/error/i);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/peak RSS \d+(\.\d)? MB \(\+[\d.]+ (kB|MB) during the run\)/);
    const run = JSON.parse(readFileSync(path.join(out, "run.json"), "utf8"));
    expect(Object.keys(run).slice(0, 4)).toEqual(["runId", "status", "error", "executionProvider"]); // existing keys unchanged
    expect(run).toMatchObject({ status: "finished", executionProvider: "cpu", peakDeviceBytes: null });
    expect(run.startRssBytes).toBeGreaterThan(0);
    expect(run.peakRssBytes).toBeGreaterThanOrEqual(run.startRssBytes);
    expect(run.nodes).toHaveLength(2);
    for (const n of run.nodes) expect(n.peakRssBytes).toBeGreaterThan(0);
  });
});

describe("node output previews are bounded", () => {
  it("a value claiming a report's kind (its own preview) past 64 kB, or past the run's budget, is kept as a headline", async () => {
    const { previewOutputs, MAX_PREVIEW_CHARS } = await import("@/app/server/runs");
    // what a Script may return: JSON tagged as a Routing Aggregate report, whose preview is the value itself
    const report = (pad: number) => ({ kind: "routing-aggregate-report", type: "routing-aggregate", headline: "h", file: "", csvFile: "", pad: "A".repeat(pad) });
    const json = { type: "JSON" } as const;
    const small = previewOutputs({ out: report(100) }, { out: json });
    expect(small.out).toMatchObject({ type: "routing-aggregate", pad: "A".repeat(100) });
    const big = previewOutputs({ out: report(900_000) }, { out: json });
    expect(JSON.stringify(big).length).toBeLessThan(1000);
    expect(big.out).toMatchObject({ type: "object", headline: expect.stringMatching(/^h \(preview of 880 kB not kept: over the 64 kB a preview may take\)$/) });
    // a run's previews in all: each under the cap, the budget spent, the rest are headlines
    const budget = { chars: 3 * MAX_PREVIEW_CHARS };
    const kept = Array.from({ length: 5 }, () => previewOutputs({ out: report(MAX_PREVIEW_CHARS - 200) }, { out: json }, budget).out as { type: string; headline: string });
    expect(kept.map((p) => p.type)).toEqual(["routing-aggregate", "routing-aggregate", "routing-aggregate", "object", "object"]);
    expect(kept[3]!.headline).toContain("the run's previews are over 8 MB");
  });
});
