import { describe, expect, it } from "vitest";
import { DATASET_NODE_TYPE } from "@/engine/batch/feeder";
import { batchPlan } from "@/engine/batch/runner";
import { ancestors } from "@/engine/executor";
import { wf } from "./helpers";

/** d → x → m ← y ← d (a diamond into m), m → after, and an unrelated z; plus an edge from a node that does not exist. */
const doc = wf(
  [
    { id: "d", type: DATASET_NODE_TYPE },
    { id: "x", type: "test.add" },
    { id: "y", type: "test.add" },
    { id: "m", type: "test.add" },
    { id: "after", type: "test.add" },
    { id: "z", type: "test.source" },
  ],
  [["d", "x"], ["d", "y"], ["x", "m", "a"], ["y", "m", "b"], ["m", "after"], ["ghost", "m", "c"]],
);

describe("ancestors (the executor's run-set walk)", () => {
  it("is the target and everything upstream of it, each once, without dangling sources", () => {
    expect([...ancestors(doc, "m")].sort()).toEqual(["d", "m", "x", "y"]);
    expect([...ancestors(doc, "z")]).toEqual(["z"]);
    expect([...ancestors(doc, "after")].sort()).toEqual(["after", "d", "m", "x", "y"]);
  });

  it("is what a batch keeps of the workflow", () => {
    const plan = batchPlan(doc, { nodeId: "m", socket: "out" });
    expect(plan.doc.nodes.map((n) => n.id).sort()).toEqual([...ancestors(doc, "m")].sort());
    expect(plan.doc.edges.map((e) => `${e.source}>${e.target}`).sort()).toEqual(["d>x", "d>y", "x>m", "y>m"]);
    expect(plan.datasetNodeId).toBe("d");
  });
});
