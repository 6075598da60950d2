import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BullRunQueue, BullRunWorker } from "@/engine/queue/bullmq";
import { MemoryRunQueue } from "@/engine/queue/memory";
import type { QueuedRun, RunQueue } from "@/engine/queue/types";
import { POSTGRES_SCHEMA, postgresSchema, SQLITE_SCHEMA } from "@/prisma/postgres/generate";
import { freshPostgres, ioredisInstalled, TEST_PG, TEST_REDIS, until } from "./services";

const run = (runId: string, priority = 0): QueuedRun => ({ runId, priority, models: [] });

/** The queue contract, the same for every backend: priority order, move, cancel of pending runs. */
async function checkOrdering(queue: RunQueue) {
  const ids = async () => (await queue.pending()).map((r) => r.runId);
  for (const r of [run("a"), run("b"), run("c"), run("urgent", 5), run("d")]) await queue.enqueue(r);
  expect(await ids()).toEqual(["urgent", "a", "b", "c", "d"]);
  expect(await queue.move("c", "up")).toBe(0);
  expect(await ids()).toEqual(["urgent", "a", "c", "b", "d"]);
  expect(await queue.move("a", "up")).toBe(5); // passing a higher-priority run takes its priority
  expect(await ids()).toEqual(["a", "urgent", "c", "b", "d"]);
  expect(await queue.move("a", "up")).toBeUndefined(); // already first
  expect(await queue.move("d", "down")).toBeUndefined(); // already last
  expect(await queue.move("urgent", "down")).toBe(0);
  expect(await ids()).toEqual(["a", "c", "urgent", "b", "d"]);
  expect(await queue.cancelPending("b")).toBe(true);
  expect(await queue.cancelPending("b")).toBe(false);
  expect(await queue.cancelPending("nope")).toBe(false);
  await queue.enqueue(run("late", 1));
  expect(await ids()).toEqual(["a", "late", "c", "urgent", "d"]);
  expect((await queue.pending()).map((r) => r.priority)).toEqual([5, 1, 0, 0, 0]);
}

describe("run queue contract", () => {
  it("in-process queue", async () => {
    const executed: string[] = [];
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    // One slot, held by a first run, so the rest stay pending while the test orders them.
    const queue = new MemoryRunQueue(async (r) => {
      executed.push(r.runId);
      await gate;
    }, 1);
    await queue.enqueue(run("first"));
    await new Promise((r) => setTimeout(r, 0));
    await checkOrdering(queue);
    release();
    await new Promise((r) => setTimeout(r, 10));
    expect(executed).toEqual(["first", "a", "late", "c", "urgent", "d"]);
    await queue.close();
  });

  describe.skipIf(!TEST_PG)("BullMQ on PostgreSQL", () => {
    let drop: () => Promise<void>;
    let queue: BullRunQueue;
    beforeAll(async () => {
      const pg = await freshPostgres("queue");
      drop = pg.drop;
      queue = new BullRunQueue({ url: pg.url, name: "contract" }); // no worker: runs stay pending
      await queue.ready();
    });
    afterAll(async () => {
      await queue?.close();
      await drop?.();
    });
    it("orders, moves and cancels like the in-process queue; one job per run id", async () => {
      await checkOrdering(queue);
      await queue.enqueue(run("a")); // already queued: BullMQ keeps the one job with that id
      expect((await queue.pending()).filter((r) => r.runId === "a")).toHaveLength(1);
    });
  });

  describe.skipIf(!TEST_PG)("warm-model preference (BullMQ on PostgreSQL, two workers in this process)", () => {
    it("a run goes to the worker that already ran its model, whichever worker fetched it", async () => {
      const pg = await freshPostgres("warm");
      const ran: Record<string, string[]> = { warm: [], cold: [] };
      const make = (name: "warm" | "cold") =>
        new BullRunWorker({
          url: pg.url,
          name: "warm",
          concurrency: 1,
          lockMs: 10_000,
          warmHandoffMs: 400,
          executionProvider: "cpu",
          execute: async (r) => {
            ran[name]!.push(r.runId);
          },
        });
      const queue = new BullRunQueue({ url: pg.url, name: "warm" });
      const warm = make("warm");
      let cold: BullRunWorker | undefined;
      try {
        await queue.ready();
        await warm.ready();
        await queue.enqueue({ runId: "seed", priority: 0, models: ["m1"] }); // only "warm" exists: it runs m1
        await until(() => ran.warm!.includes("seed"), 20_000, "the seed run");
        cold = make("cold");
        await cold.ready();
        await new Promise((r) => setTimeout(r, 500)); // both announced on the relay
        for (let i = 0; i < 6; i++) {
          await queue.enqueue({ runId: `m1-${i}`, priority: 0, models: ["m1"] });
          await until(() => [...ran.warm!, ...ran.cold!].includes(`m1-${i}`), 20_000, `run m1-${i}`);
          // Best effort by design: a worker must have heard that the warm one is idle again.
          await new Promise((r) => setTimeout(r, 300));
        }
        await queue.enqueue({ runId: "other", priority: 0, models: [] }); // no model: no preference
        await until(() => [...ran.warm!, ...ran.cold!].includes("other"), 20_000, "run other");
        console.log(`warm preference: warm worker ran ${ran.warm!.join(", ")}; cold worker ran ${ran.cold!.join(", ") || "nothing"}`);
        for (let i = 0; i < 6; i++) expect(ran.warm).toContain(`m1-${i}`);
        // Every run executed exactly once.
        const all = [...ran.warm!, ...ran.cold!].sort();
        expect(all).toEqual([...new Set(all)]);
      } finally {
        await cold?.close();
        await warm.close();
        await queue.close();
        await pg.drop();
      }
    }, 90_000);
  });

  describe.skipIf(!TEST_REDIS)("BullMQ on Redis", () => {
    it("orders, moves and cancels like the in-process queue", async (ctx) => {
      if (!ioredisInstalled()) {
        console.warn("BullMQ on Redis skipped: the ioredis package is not installed (BullMQ 6 needs it for redis://)");
        ctx.skip();
      }
      const queue = new BullRunQueue({ url: TEST_REDIS!, name: `contract-${Date.now()}` });
      try {
        await queue.ready();
        await checkOrdering(queue);
      } finally {
        await queue.queue.obliterate({ force: true }).catch(() => undefined);
        await queue.close();
      }
    });
  });
});

describe("PostgreSQL schema", () => {
  it("prisma/postgres/schema.prisma is generated from schema.prisma and up to date", () => {
    expect(readFileSync(POSTGRES_SCHEMA, "utf8")).toBe(postgresSchema(readFileSync(SQLITE_SCHEMA, "utf8")));
    const pg = readFileSync(POSTGRES_SCHEMA, "utf8");
    expect(pg).toMatch(/provider = "postgresql"/);
    // Same models, field for field.
    const models = (s: string) => s.replace(/^\/\/ GENERATED.*\n/, "").replace(/provider = "(sqlite|postgresql)"/, "");
    expect(models(pg)).toBe(models(readFileSync(SQLITE_SCHEMA, "utf8")));
  });
});
