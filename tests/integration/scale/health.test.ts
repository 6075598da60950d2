import { describe, expect, it } from "vitest";
import { BullRunWorker, RelayEventBus } from "@/engine/queue/bullmq";
import { freshDataDir } from "../fresh-db";
import { ioredisInstalled, TEST_REDIS, until } from "./services";

// What /api/health reports in queue mode: the datastore answering, and the workers heard from.
process.env.STUDIO_DATA_DIR = freshDataDir();
const { RunManager } = await import("@/app/server/runs");

describe.skipIf(!TEST_REDIS || !ioredisInstalled())("queue health (BullMQ on Redis)", () => {
  it("lists a live worker from its announcements, drops it when it leaves; the datastore answers a ping", async () => {
    const name = `health-${Date.now().toString(36)}`;
    const bus = new RelayEventBus({ url: TEST_REDIS!, name });
    await bus.ready();
    await bus.ping();
    const worker = new BullRunWorker({ url: TEST_REDIS!, name, concurrency: 2, lockMs: 2000, executionProvider: "cpu", execute: async () => {} });
    await worker.ready();
    const seen = await until(() => bus.liveWorkers().find((w) => w.id === worker.id), 5000, "the worker's announcement");
    expect(seen).toMatchObject({ concurrency: 2, running: 0, executionProvider: "cpu" });
    await worker.close();
    await until(() => !bus.liveWorkers().some((w) => w.id === worker.id) || undefined, 5000, "the worker's leaving");
    await bus.close();
  });

  it("a queue whose Redis does not answer is reported not ok, with the reason, within seconds", async () => {
    const manager = new RunManager({ recoverInterrupted: false, queueUrl: "redis://127.0.0.1:1" });
    const t0 = Date.now();
    const h = await manager.queueHealth();
    expect(h).toMatchObject({ mode: "distributed", ok: false, backend: "redis", workers: [] });
    expect(Date.now() - t0).toBeLessThan(10_000);
  });
});
