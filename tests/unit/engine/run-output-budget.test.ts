import { describe, expect, it } from "vitest";
import { z } from "zod";
import { defineNode, NodeCatalogue } from "@/engine/node";
import { Executor } from "@/engine/executor";
import { catalogue } from "@/nodes";
import { MemoryStorage, wf } from "./helpers";

// A run keeps every node's outputs until it ends. Many Text Templates over a long text, each under its own limit,
// could together hold more than the process has; the run's budget fails the node that goes over it, with a message.
const MB = 2 ** 20;

function manyTemplates(n: number) {
  const nodes: { id: string; type: string; params: Record<string, unknown> }[] = [{ id: "t", type: "input.text", params: { text: "x".repeat(100_000) } }];
  const edges: [string, string, string, string][] = [];
  for (let i = 0; i < n; i++) {
    nodes.push({ id: `tpl${i}`, type: "text.template", params: { template: `${"{a}".repeat(5)} ${i}` } });
    edges.push(["t", `tpl${i}`, "a", "text"]);
  }
  return wf(nodes, edges);
}

describe("the outputs one run may keep", () => {
  it("over the budget: the node that goes past it fails with a message naming the limit; under it, all finish", async () => {
    const doc = manyTemplates(8); // each template makes 500 k characters ≈ 1 MB (estimateBytes: 2 bytes a character)
    const limited = new Executor({ catalogue, storage: new MemoryStorage(), concurrency: 1, maxRunOutputBytes: 4 * MB });
    const r = await limited.run(doc, { runId: "budget" });
    expect(r.status).toBe("failed");
    const failed = [...r.nodes.values()].filter((n) => n.status === "error");
    expect(failed.length).toBeGreaterThan(0);
    expect(failed[0]!.error).toMatch(/the run's outputs would hold \d+ MB, over the 4 MB one run may keep \(STUDIO_RUN_OUTPUT_MB\)/);
    expect([...r.nodes.values()].filter((n) => n.status === "done").length).toBeLessThanOrEqual(4);

    const roomy = new Executor({ catalogue, storage: new MemoryStorage(), concurrency: 1, maxRunOutputBytes: 64 * MB });
    expect((await roomy.run(doc, { runId: "roomy" })).status).toBe("finished");
  });
});

describe("the files one run may write", () => {
  const writer = new NodeCatalogue([
    defineNode({
      type: "test.writer",
      typeVersion: 1,
      title: "Writer",
      category: "Utility",
      description: "Writes one file of 1 MB (an export, an image).",
      inputs: {},
      outputs: { text: { type: "TEXT" } },
      params: z.object({ seed: z.number().default(0) }),
      async execute({ params, ctx }) {
        return { text: await ctx.storage.write(new Uint8Array(MB).fill(params.seed), "bin") };
      },
    }),
  ]);
  const doc = wf(Array.from({ length: 8 }, (_, i) => ({ id: `w${i}`, type: "test.writer", params: { seed: i } })), []);

  it("over the budget: the node that would write past it fails before its file exists; under it, all finish", async () => {
    const storage = new MemoryStorage();
    const limited = new Executor({ catalogue: writer, storage, concurrency: 1, maxRunFileBytes: 4 * MB });
    const r = await limited.run(doc, { runId: "files" });
    expect(r.status).toBe("failed");
    const failed = [...r.nodes.values()].filter((n) => n.status === "error");
    expect(failed[0]!.error).toMatch(/the run's files would take 5 MB, over the 4 MB one run may write \(STUDIO_RUN_FILES_MB\)/);
    expect(storage.blobs.size).toBe(4);
    const roomy = new Executor({ catalogue: writer, storage: new MemoryStorage(), concurrency: 1, maxRunFileBytes: 64 * MB });
    expect((await roomy.run(doc, { runId: "roomy files" })).status).toBe("finished");
  });
});
