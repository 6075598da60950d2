import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { freshDataDir } from "../fresh-db";

// A dataset run keeps each finished record in a per-record store that is both its resume ledger and its cache.
// Like the node cache (cacheScope), it is one owner's: another user's run of the same workflow over the same dataset
// finds nothing there, so it cannot tell (by time or by the "cached" count) that someone ran it.
process.env.STUDIO_DATA_DIR = freshDataDir();
process.env.STUDIO_AUTH = "on";
process.env.STUDIO_EP = "cpu";
const { RunManager } = await import("@/app/server/runs");

const doc = JSON.parse(readFileSync(path.join(__dirname, "../../../app/examples/datasets/text-workflow.json"), "utf8"));
doc.nodes.find((n: { id: string }) => n.id === "llm").params.maxNewTokens = 1;

describe("the dataset record store is per owner", () => {
  it("a second user's run of the same dataset workflow computes every record", { timeout: 120_000 }, async () => {
    const manager = new RunManager({ recoverInterrupted: false });
    const { db } = await import("@/app/server/db");
    const records = async (ownerId: string) => {
      const id = await manager.start({ document: doc, ownerId });
      expect((await manager.whenDone(id)).type).toBe("finished");
      const node = await db().nodeRun.findFirstOrThrow({ where: { runId: id, nodeId: "aggregate" } });
      return (JSON.parse(node.outputs!) as { aggregate: { records: { total: number; ran: number; cached: number } } }).aggregate.records;
    };
    const alice = await records("alice");
    expect(alice).toMatchObject({ total: 36, ran: 36, cached: 0 });
    const bob = await records("bob");
    expect(bob).toMatchObject({ total: 36, ran: 36, cached: 0 });
    await manager.close();
  });
});
