import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import type { RunEvent } from "@/engine/events";
import { defineNode, NodeCatalogue } from "@/engine/node";
import { emptyWorkflow, type Workflow } from "@/engine/workflow/schema";
import { freshDataDir } from "./fresh-db";

// The run host against a real SQLite database (Prisma), with test-only node types.
process.env.STUDIO_DATA_DIR = freshDataDir();
const { db } = await import("@/app/server/db");
const { RunManager } = await import("@/app/server/runs");

const gates = new Map<string, () => void>();
const catalogue = new NodeCatalogue([
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
});
