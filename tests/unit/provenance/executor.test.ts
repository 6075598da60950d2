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
  description: "Returns what it sees of ctx.workflow.",
  inputs: {},
  outputs: { name: { type: "TEXT" } },
  params: z.object({}),
  async execute({ ctx }) {
    const w = ctx.workflow;
    return { name: w?.name ?? null, nodes: w?.nodes.length, words: [w?.description, ...(w?.notes ?? []).map((n) => n.text), ...(w?.nodes ?? []).map((n) => n.label)].filter(Boolean), params: w?.nodes.map((n) => n.params) };
  },
});

describe("Executor → RunContext.workflow", () => {
  it("passes the run's document to every node, without its words (name, description, notes, labels: files embed it)", async () => {
    const executor = new Executor({ catalogue: new NodeCatalogue([whichWorkflow as unknown as AnyNodeDefinition]), storage: new MemoryStorage() });
    const base = wf([{ id: "a", type: "test.workflow-name", label: "private label", params: { k: 1 } }, { id: "b", type: "test.workflow-name" }], []);
    const doc = { ...base, name: "Provenance run ✓", description: "private description", notes: [{ id: "n", text: "private note", position: { x: 0, y: 0 } }] };
    const r = await executor.run(doc, { runId: "r1" });
    expect(r.status).toBe("finished");
    const seen = { name: "MoE Studio workflow", nodes: 2, words: [], params: [{ k: 1 }, {}] };
    expect(r.outputs.get("a")).toEqual(seen);
    expect(r.outputs.get("b")).toEqual(seen);
    // a targeted run still sees the whole document
    const t = await executor.run({ ...doc, name: "other" }, { runId: "r2", targetNodeId: "b" });
    expect(t.outputs.get("b")).toEqual(seen);
  });
});
