import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TERMINAL_EVENTS, type RunEvent } from "@/engine/events";
import { describeRunMemory } from "@/engine/runtime/memory-format";
import { emptyWorkflow, type Workflow } from "@/engine/workflow/schema";
import { freshPostgres, ioredisInstalled, logged, skipMessage, spawnWorker, tempDir, TEST_REDIS, until, type WorkerProcess } from "./services";

// The distributed mode end to end: this process is the web side (RunManager on BullMQ), two
// `npm run worker` processes execute, PostgreSQL holds the runs, the queue is BullMQ on Redis (on PostgreSQL
// where no Redis could be started), artifacts in a shared dir.
const QUEUE_ON_REDIS = !!TEST_REDIS && ioredisInstalled();
const skip = skipMessage();
if (skip) console.warn(skip);

/** A seeded, greedy generation on the reference model: deterministic, a few seconds of work. */
function generation(prompt: string, maxNewTokens: number): Workflow {
  return {
    ...emptyWorkflow(`gen ${prompt}`),
    nodes: [
      { id: "text", type: "input.text", typeVersion: 1, params: { text: prompt }, position: { x: 0, y: 0 } },
      { id: "llm", type: "model.moe-llm", typeVersion: 1, params: { model: "uni-moe-tiny/tiny", maxNewTokens, temperature: 0, seed: 7 }, position: { x: 200, y: 0 } },
    ],
    edges: [{ id: "e1", source: "text", sourceSocket: "text", target: "llm", targetSocket: "prompt" }],
  };
}

/** The order rules of engine/events.ts, checked on one run's event list. */
function expectWellOrdered(events: RunEvent[]) {
  expect(events[0]!.type).toBe("queued");
  expect(events.filter((e) => TERMINAL_EVENTS.has(e.type))).toHaveLength(1);
  expect(TERMINAL_EVENTS.has(events.at(-1)!.type)).toBe(true);
  const seen = new Map<string, string[]>();
  for (const e of events) if ("nodeId" in e) seen.set(e.nodeId, [...(seen.get(e.nodeId) ?? []), e.type]);
  for (const [, types] of seen) {
    const compact = types.filter((t) => t !== "progress");
    expect([["node-start", "node-done", "node-outputs"], ["node-cached", "node-outputs"]], JSON.stringify(events.map((e) => [e.type, "nodeId" in e ? e.nodeId : ""]))).toContainEqual(compact);
  }
  for (let i = 1; i < events.length; i++) expect(events[i]!.at).toBeGreaterThanOrEqual(events[i - 1]!.at);
}

describe.skipIf(!!skip)(`distributed runs: BullMQ on ${QUEUE_ON_REDIS ? "Redis" : "PostgreSQL"}, data in PostgreSQL, two worker processes`, () => {
  let dropDb: () => Promise<void>;
  let workers: WorkerProcess[] = [];
  let workerEnv: Record<string, string>;
  let data: string;
  let mod: typeof import("@/app/server/runs");
  let dbMod: typeof import("@/app/server/db");
  let manager: InstanceType<typeof import("@/app/server/runs").RunManager>;

  beforeAll(async () => {
    const pg = await freshPostgres("scale");
    dropDb = pg.drop;
    const { migratePostgres } = await import("@/prisma/postgres/migrate");
    await migratePostgres(pg.url, () => {});
    data = tempDir("studio-scale-");
    if (QUEUE_ON_REDIS) {
      // a fresh queue: jobs of an earlier local run of this suite must not be picked up
      const { default: IORedis } = await import("ioredis");
      const redis = new IORedis(TEST_REDIS!);
      await redis.flushdb();
      redis.disconnect();
    }
    workerEnv = {
      DATABASE_URL: pg.url,
      STUDIO_QUEUE: QUEUE_ON_REDIS ? TEST_REDIS! : pg.url,
      STUDIO_ARTIFACTS: path.join(data, "shared-artifacts"),
      STUDIO_MODELS_DIR: path.join(data, "models"),
      STUDIO_WORKER_CONCURRENCY: "1",
      STUDIO_WORKER_LOCK_MS: "15000",
      STUDIO_WORKER_STALLED_CHECK_MS: "1000",
      STUDIO_WORKER_HANDOFF_MS: "0",
      STUDIO_THREADS: "1",
    };
    Object.assign(process.env, workerEnv, { STUDIO_DATA_DIR: path.join(data, "web") });
    mod = await import("@/app/server/runs");
    dbMod = await import("@/app/server/db");
    // Build the reference model once, before two workers would race to build it.
    const { resolveModel } = await import("@/models/moe-llm/moe-llm-model");
    await resolveModel("uni-moe-tiny/tiny");
    workers = [0, 1].map((i) => spawnWorker({ ...workerEnv, STUDIO_DATA_DIR: path.join(data, `worker${i}`) }, `w${i}`));
    await Promise.all(workers.map((w) => w.ready));
    manager = new mod.RunManager({ recoverInterrupted: true });
    await manager.ready;
    // Warm-up, one run per worker: loading the model session blocks a busy 2-core machine for seconds,
    // and the tests below should time the queue, not that.
    const warm = await Promise.all(["warm a", "warm b"].map((p) => manager.start({ document: generation(p, 2) })));
    await Promise.all(warm.map((id) => manager.whenDone(id)));
  }, 150_000);

  afterAll(async () => {
    for (const w of workers) if (w.child.exitCode === null) w.child.kill("SIGKILL");
    await manager?.close();
    await dbMod?.db().$disconnect();
    await dropDb?.();
  }, 60_000);

  const workerOf = (runId: string) => workers.findIndex((w) => logged(w, "run finished", runId));

  it("two workers execute concurrently; events arrive in order; results equal the embedded mode's bit for bit", async () => {
    const docs = [generation("first prompt", 24), generation("second prompt", 24)];
    const ids = await Promise.all(docs.map((document) => manager.start({ document })));
    const events = ids.map(() => [] as RunEvent[]);
    ids.forEach((id, i) => manager.subscribe(id, (e) => events[i]!.push(e)));
    const terminals = await Promise.all(ids.map((id) => manager.whenDone(id)));
    expect(terminals.map((t) => (t.type === "failed" ? `${t.message}\n${workers.map((w) => w.log.join("\n")).join("\n---\n")}` : t.type))).toEqual(["finished", "finished"]);
    for (const list of events) expectWellOrdered(list);

    // Each worker ran one, and their runs overlapped in time.
    expect(new Set(ids.map(workerOf))).toEqual(new Set([0, 1]));
    const rows = await dbMod.db().run.findMany({ where: { id: { in: ids } }, include: { nodeRuns: true } });
    const [a, b] = ids.map((id) => rows.find((r) => r.id === id)!);
    expect(a!.startedAt! < b!.finishedAt! && b!.startedAt! < a!.finishedAt!).toBe(true);
    for (const r of rows) {
      expect(r.status).toBe("finished");
      expect(r.nodeRuns.map((n) => [n.nodeId, n.status]).sort()).toEqual([["llm", "done"], ["text", "done"]]);
    }

    // Memory is measured by the worker that executed the run, in its own process: the row, the terminal
    // event relayed to this process and the worker's own log line carry the same figures.
    for (const [i, id] of ids.entries()) {
      const r = rows.find((x) => x.id === id)!;
      expect(r.executionProvider).toBe("cpu");
      expect(r.startRssBytes).toBeGreaterThan(0);
      expect(r.peakRssBytes).toBeGreaterThanOrEqual(r.startRssBytes!);
      expect(r.peakDeviceBytes).toBeNull();
      for (const n of r.nodeRuns) expect(n.peakRssBytes).toBeGreaterThan(0);
      expect(terminals[i]).toMatchObject({ memory: { startRssBytes: r.startRssBytes, peakRssBytes: r.peakRssBytes } });
      expect(logged(workers[workerOf(id)]!, "run finished", id, { startRssBytes: r.startRssBytes, peakRssBytes: r.peakRssBytes })).toBe(true);
      console.log(`worker ${workerOf(id)} ran ${id}: ${describeRunMemory(r)}; nodes ${r.nodeRuns.map((n) => `${n.nodeId} ${(n.peakRssBytes! / 1e6).toFixed(0)} MB`).join(", ")}`);
    }

    // The same documents in the embedded mode (this process, in-memory queue, its own caches).
    const embedded = new mod.RunManager({ recoverInterrupted: false, queueUrl: "memory" });
    try {
      for (const [i, document] of docs.entries()) {
        const id = await embedded.start({ document });
        expect((await embedded.whenDone(id)).type).toBe("finished");
        const local = await dbMod.db().nodeRun.findMany({ where: { runId: id }, orderBy: { nodeId: "asc" } });
        const remote = await dbMod.db().nodeRun.findMany({ where: { runId: ids[i]! }, orderBy: { nodeId: "asc" } });
        expect(local.map((n) => n.outputs)).toEqual(remote.map((n) => n.outputs));
        // (summaries carry timings, e.g. tok/s, so they are not compared)
        const outputsOf = (list: RunEvent[]) => list.filter((e) => e.type === "node-outputs");
        const localEvents: RunEvent[] = [];
        embedded.subscribe(id, (e) => localEvents.push(e));
        expect(JSON.stringify(outputsOf(localEvents).map((e) => ({ ...e, at: 0, runId: "" })))).toBe(JSON.stringify(outputsOf(events[i]!).map((e) => ({ ...e, at: 0, runId: "" }))));
      }
    } finally {
      await embedded.close();
    }
  }, 120_000);

  it("cancels a pending run (removed from the queue) and running ones (on their workers)", async () => {
    const ids = await Promise.all(["x", "y", "z"].map((p) => manager.start({ document: generation(`cancel ${p}`, 400) })));
    const running = await until(async () => {
      const q = await manager.queue();
      const r = q.filter((e) => e.status === "running").map((e) => e.id);
      return r.length === 2 && q.some((e) => e.status === "queued" && ids.includes(e.id)) ? r : undefined;
    }, 60_000, "two runs running and one pending");
    const pending = ids.find((id) => !running.includes(id))!;
    expect(await manager.cancel(pending)).toBe(true);
    expect((await manager.whenDone(pending)).type).toBe("cancelled");
    const t0 = Date.now();
    for (const id of running) expect(await manager.cancel(id)).toBe(true);
    const terminals = await Promise.all(running.map((id) => manager.whenDone(id)));
    expect(terminals.map((t) => t.type)).toEqual(["cancelled", "cancelled"]);
    expect(Date.now() - t0).toBeLessThan(10_000);
    const rows = await dbMod.db().run.findMany({ where: { id: { in: ids } } });
    expect(rows.map((r) => r.status)).toEqual(["cancelled", "cancelled", "cancelled"]);
  }, 90_000);

  it("another web process (or one restarted) follows runs it did not queue", async () => {
    const ended = await manager.start({ document: generation("ended before", 4) });
    await manager.whenDone(ended);
    const live = await manager.start({ document: generation("still running", 48) });
    await until(() => (manager.queue().then((q) => q.some((e) => e.id === live && e.status === "running"))), 30_000, "the run to start");
    const other = new mod.RunManager({ recoverInterrupted: true });
    try {
      await other.ready;
      const seen: RunEvent["type"][] = [];
      other.subscribe(live, (e) => seen.push(e.type));
      expect((await other.whenDone(live)).type).toBe("finished");
      expect(seen).toContain("node-outputs"); // live events from the worker, not only the ending
      expect((await other.whenDone(ended)).type).toBe("finished"); // from the database
      expect((await other.whenDone("no-such-run")).type).toBe("failed");
      // recoverInterrupted on a distributed web process leaves the workers' runs alone.
      expect((await dbMod.db().run.findUniqueOrThrow({ where: { id: live } })).status).toBe("finished");
    } finally {
      await other.close();
    }
  }, 90_000);

  it("a worker killed mid-run: the run is retried once on the other worker and finishes; nothing is lost", async () => {
    const id = await manager.start({ document: generation("a long answer", 400) });
    const events: RunEvent[] = [];
    manager.subscribe(id, (e) => events.push(e));
    const victim = await until(() => {
      const i = workers.findIndex((w) => logged(w, "run taken", id, { attempt: 1 }));
      return i >= 0 && events.some((e) => e.type === "progress" && e.nodeId === "llm") ? i + 1 : undefined;
    }, 30_000, "the run to be generating on a worker");
    const killed = workers[victim - 1]!;
    const survivor = workers[2 - victim]!;
    const t0 = Date.now();
    killed.child.kill("SIGKILL");
    const terminal = await manager.whenDone(id);
    const ms = Date.now() - t0;
    console.log(`worker killed mid-run: ${terminal.type} after ${ms} ms (lock 15 s, stalled check 1 s)`);
    expect(terminal.type).toBe("finished");
    expect(ms).toBeLessThan(60_000);
    expect(logged(survivor, "run taken", id, { attempt: 2 }), [...killed.log, "---", ...survivor.log].join("\n")).toBe(true);
    const row = await dbMod.db().run.findUniqueOrThrow({ where: { id }, include: { nodeRuns: true } });
    expect(row.status).toBe("finished");
    expect(row.nodeRuns.map((n) => [n.nodeId, n.status]).sort()).toEqual([["llm", "done"], ["text", "done"]]);
    // The memory recorded is the surviving worker's (attempt 2), not a mix with the lost attempt.
    expect(logged(survivor, "run finished", id, { startRssBytes: row.startRssBytes, peakRssBytes: row.peakRssBytes })).toBe(true);
    expect(events.filter((e) => e.type === "started")).toHaveLength(2); // one per attempt
    expect(events.filter((e) => TERMINAL_EVENTS.has(e.type))).toHaveLength(1);
  }, 90_000);

  it("a run whose worker dies twice is marked failed with the reason, never left running", async () => {
    // Replace the worker killed above, so two are alive again.
    const dead = workers.findIndex((w) => w.child.exitCode !== null || w.child.signalCode !== null);
    if (dead >= 0) {
      workers[dead] = spawnWorker({ ...workerEnv, STUDIO_DATA_DIR: path.join(data, `worker${dead}b`) }, `w${dead}b`);
      await workers[dead]!.ready;
    }
    const id = await manager.start({ document: generation("an answer that never ends", 400) });
    const t0 = Date.now();
    const runningOn = (attempt: number) => () => {
      const w = workers.find((x) => x.child.exitCode === null && x.child.signalCode === null && logged(x, "run taken", id, { attempt }));
      return w;
    };
    (await until(runningOn(1), 30_000, "attempt 1")).child.kill("SIGKILL");
    (await until(runningOn(2), 60_000, "attempt 2 on the other worker")).child.kill("SIGKILL");
    // A fresh worker's stalled-job check finds the run stalled a second time and BullMQ fails it.
    workers.push(spawnWorker({ ...workerEnv, STUDIO_DATA_DIR: path.join(data, "worker-last") }, "w-last"));
    const terminal = await manager.whenDone(id);
    console.log(`worker lost twice: ${terminal.type} after ${Date.now() - t0} ms: ${terminal.type === "failed" ? terminal.message : ""}`);
    expect(terminal.type).toBe("failed");
    expect(terminal.type === "failed" && terminal.message).toMatch(/worker lost/);
    const row = await dbMod.db().run.findUniqueOrThrow({ where: { id }, include: { nodeRuns: true } });
    expect(row.status).toBe("failed");
    expect(row.error).toMatch(/worker lost/);
    expect(row.nodeRuns.filter((n) => n.status === "running")).toEqual([]);
  }, 150_000);
});
