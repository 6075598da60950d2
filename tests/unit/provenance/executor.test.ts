import { z } from "zod";
import { describe, expect, it } from "vitest";
import { Executor } from "@/engine/executor";
import { defineNode, NodeCatalogue, type AnyNodeDefinition } from "@/engine/node";
import { MemoryStorage, wf } from "../engine/helpers";

const whichWorkflow = defineNode({
  type: "test.workflow-name",
  typeVersion: 1,
  title: "Which workflow",
  category: "Utility",
  description: "Returns ctx.workflow?.name.",
  inputs: {},
  outputs: { name: { type: "TEXT" } },
  params: z.object({}),
  async execute({ ctx }) {
    return { name: ctx.workflow?.name ?? null, nodes: ctx.workflow?.nodes.length };
  },
});

describe("Executor → RunContext.workflow", () => {
  it("passes the run's document to every node", async () => {
    const executor = new Executor({ catalogue: new NodeCatalogue([whichWorkflow as unknown as AnyNodeDefinition]), storage: new MemoryStorage() });
    const doc = { ...wf([{ id: "a", type: "test.workflow-name" }, { id: "b", type: "test.workflow-name" }], []), name: "Provenance run ✓" };
    const r = await executor.run(doc, { runId: "r1" });
    expect(r.status).toBe("finished");
    expect(r.outputs.get("a")).toEqual({ name: "Provenance run ✓", nodes: 2 });
    expect(r.outputs.get("b")).toEqual({ name: "Provenance run ✓", nodes: 2 });
    // a targeted run still sees the whole document
    const t = await executor.run({ ...doc, name: "other" }, { runId: "r2", targetNodeId: "b" });
    expect(t.outputs.get("b")).toEqual({ name: "other", nodes: 2 });
  });
});
