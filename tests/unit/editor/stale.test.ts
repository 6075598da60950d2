import { describe, expect, it } from "vitest";
import { toFlow } from "@/app/editor/convert";
import { staleNodes, staleOnCanvas } from "@/app/editor/stale";
import { emptyWorkflow, type Workflow } from "@/engine/workflow/schema";

const node = (id: string, params: Record<string, unknown> = {}, y = 0) => ({ id, type: "text.template", typeVersion: 1, params, position: { x: 0, y } });
const edge = (source: string, target: string) => ({ id: `${source}-${target}`, source, sourceSocket: "text", target, targetSocket: "a" });
const doc = (nodes: Workflow["nodes"], edges: Workflow["edges"]): Workflow => ({ ...emptyWorkflow("w"), nodes, edges });

// a → b → c, and d on its own
const ran = doc([node("a", { t: 1 }), node("b"), node("c"), node("d")], [edge("a", "b"), edge("b", "c")]);

describe("stale nodes: outputs of the shown run that the document no longer computes", () => {
  it("a changed param makes its node and everything downstream stale, nothing else", () => {
    const now = doc([node("a", { t: 2 }), node("b"), node("c"), node("d")], ran.edges);
    expect([...staleNodes(now, ran)].sort()).toEqual(["a", "b", "c"]);
    const mid = doc([node("a", { t: 1 }), node("b", { t: 9 }), node("c"), node("d")], ran.edges);
    expect([...staleNodes(mid, ran)].sort()).toEqual(["b", "c"]);
  });

  it("moving, relabelling or no shown run: nothing is stale; a new input or a removed one is", () => {
    const moved = doc([node("a", { t: 1 }, 500), { ...node("b"), label: "renamed" }, node("c"), node("d")], ran.edges);
    expect(staleNodes(moved, ran).size).toBe(0);
    expect(staleNodes(ran, null).size).toBe(0);
    expect([...staleNodes(doc(ran.nodes, [...ran.edges, edge("d", "c")]), ran)]).toEqual(["c"]);
    expect([...staleNodes(doc(ran.nodes, [edge("a", "b")]), ran)]).toEqual(["c"]);
  });

  it("the canvas gives the same answer, and recomputes when a node's data changes but not when a node is dragged", () => {
    const flow = toFlow(ran);
    expect(staleOnCanvas(flow.nodes, flow.edges, ran).size).toBe(0);
    const dragged = flow.nodes.map((n) => (n.id === "b" ? { ...n, position: { x: 40, y: 40 } } : n));
    const first = staleOnCanvas(dragged, flow.edges, ran);
    expect(staleOnCanvas(dragged, flow.edges, ran)).toBe(first);
    const edited = dragged.map((n) => (n.id === "a" ? { ...n, data: { ...n.data, params: { t: 3 } } } : n));
    expect([...staleOnCanvas(edited, flow.edges, ran)].sort()).toEqual(["a", "b", "c"]);
    const now = doc([node("a", { t: 3 }), node("b"), node("c"), node("d")], ran.edges);
    expect([...staleOnCanvas(edited, flow.edges, ran)].sort()).toEqual([...staleNodes(now, ran)].sort());
  });
});
