import type { NodeChange } from "@xyflow/react";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { toDocument, type FlowNode } from "../../../app/editor/convert";
import { isDirty, useCanvasHints, useEditor } from "../../../app/editor/store";
import type { Workflow } from "../../../engine/workflow/schema";

function doc(): Workflow {
  return {
    schemaVersion: 2,
    name: "store test",
    description: "",
    tags: ["a"],
    nodes: [
      { id: "t", type: "input.text", typeVersion: 1, params: { text: "hi" }, position: { x: 0, y: 0 } },
      { id: "u", type: "text.template", typeVersion: 1, params: { template: "{a}" }, position: { x: 300, y: 0 } },
      { id: "p", type: "output.preview", typeVersion: 1, params: {}, position: { x: 600, y: 0 }, label: "out" },
    ],
    edges: [{ id: "e1", source: "t", sourceSocket: "text", target: "u", targetSocket: "a" }],
    notes: [],
  };
}

const s = () => useEditor.getState();
/** The old definition: the document serialised, compared with the saved one serialised. */
let savedJson = "";
const serialisedDirty = () => JSON.stringify(toDocument(s().nodes, s().edges, s().meta)) !== savedJson;
const move = (id: string, x: number, y: number, dragging = true): NodeChange<FlowNode>[] => [{ type: "position", id, position: { x, y }, dragging }];

beforeEach(() => {
  s().load("w1", 1, doc());
  savedJson = JSON.stringify(s().document());
});
afterEach(() => vi.restoreAllMocks());

describe("editor store: unsaved changes and the structural revision", () => {
  it("a drag is an unsaved change that bumps no structural revision and serialises nothing", () => {
    const rev = s().structRev;
    s().checkpoint(); // as onNodeDragStart does
    const stringify = vi.spyOn(JSON, "stringify");
    for (let i = 1; i <= 30; i++) {
      s().onNodesChange(move("u", 300 + i, i));
      expect(isDirty(s())).toBe(true);
    }
    s().onNodesChange(move("u", 330, 30, false));
    expect(stringify).not.toHaveBeenCalled();
    stringify.mockRestore();
    expect(s().structRev).toBe(rev);
    expect(serialisedDirty()).toBe(true);
    // Back where it was saved: clean again, as the serialised comparison says.
    s().onNodesChange(move("u", 300, 0, false));
    expect(isDirty(s())).toBe(false);
    expect(serialisedDirty()).toBe(false);
    s().onNodesChange(move("u", 5, 5, false));
    s().undo();
    expect(s().nodes.find((n) => n.id === "u")!.position).toEqual({ x: 300, y: 0 });
    expect(isDirty(s())).toBe(false);
  });

  it("selection and measured sizes change neither the revision nor the unsaved state", () => {
    const rev = s().structRev;
    s().onNodesChange([{ type: "select", id: "t", selected: true }, { type: "dimensions", id: "u", dimensions: { width: 240, height: 120 }, setAttributes: true }]);
    s().onEdgesChange([{ type: "select", id: "e1", selected: true }]);
    s().selectOnly("p");
    expect(s().nodes.find((n) => n.id === "p")!.selected).toBe(true);
    expect(s().structRev).toBe(rev);
    expect(isDirty(s())).toBe(false);
  });

  it("document edits bump the revision; editing back to the saved value is clean", () => {
    let rev = s().structRev;
    const bumped = () => {
      const r = s().structRev;
      expect(r).toBeGreaterThan(rev);
      rev = r;
    };
    s().setParam("t", "text", "changed");
    bumped();
    expect(isDirty(s())).toBe(true);
    s().setParam("t", "text", "hi"); // a new params object with the saved content
    bumped();
    expect(isDirty(s())).toBe(false);
    s().setLabel("p", undefined);
    bumped();
    expect(isDirty(s())).toBe(true);
    s().setLabel("p", "out");
    expect(isDirty(s())).toBe(false);
    s().connect({ source: "u", sourceHandle: "text", target: "p", targetHandle: "value" });
    bumped();
    expect(isDirty(s())).toBe(true);
    s().onEdgesChange([{ type: "remove", id: s().edges.at(-1)!.id }]);
    bumped();
    expect(isDirty(s())).toBe(false);
    s().setMeta({ name: "renamed" });
    bumped();
    expect(isDirty(s())).toBe(true);
    s().markSaved(2);
    expect(isDirty(s())).toBe(false);
    s().onNodesChange([{ type: "remove", id: "p" }]);
    bumped();
    expect(isDirty(s())).toBe(true);
    s().undo();
    bumped();
    s().redo();
    bumped();
    // Auto-layout moves nodes only: no check needed.
    s().setPositions(new Map([["t", { x: 9, y: 9 }]]));
    expect(s().structRev).toBe(rev);
    expect(isDirty(s())).toBe(true);
  });

  it("agrees with the serialised comparison over a seeded random sequence of edits", () => {
    let seed = 12345;
    const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    const pick = <T>(xs: T[]) => xs[Math.floor(rand() * xs.length)]!;
    let disagreements = 0;
    for (let step = 0; step < 2000; step++) {
      const ids = s().nodes.map((n) => n.id);
      const op = Math.floor(rand() * 11);
      if (op === 0 && ids.length) s().onNodesChange(move(pick(ids), Math.floor(rand() * 3) * 300, 0));
      else if (op === 1 && ids.length) s().onNodesChange([{ type: "select", id: pick(ids), selected: rand() < 0.5 }]);
      else if (op === 2 && ids.includes("t")) s().setParam("t", "text", pick(["hi", "ho"]));
      else if (op === 3) s().setMeta({ name: pick(["store test", "other"]) });
      else if (op === 4) s().undo();
      else if (op === 5) s().redo();
      else if (op === 6 && ids.length > 1) s().onNodesChange([{ type: "remove", id: pick(ids) }]);
      else if (op === 7) s().addNode("input.text", 1, { text: "hi" }, { x: 0, y: 0 });
      else if (op === 8 && s().edges.length) s().onEdgesChange([{ type: "remove", id: pick(s().edges).id }]);
      else if (op === 9 && rand() < 0.2) {
        s().markSaved(s().baseVersion + 1);
        savedJson = JSON.stringify(s().document());
      } else if (op === 10 && ids.length) s().setLabel(pick(ids), pick([undefined, "out"]));
      if (isDirty(s()) !== serialisedDirty()) disagreements++;
    }
    expect(disagreements).toBe(0);
  });
});

describe("editor store: canvas hints (a store of their own, untouched by drags)", () => {
  it("problems give each node its worst severity; loading clears them", () => {
    s().setProblems([
      { severity: "warning", message: "w", nodeId: "t" },
      { severity: "error", message: "e", nodeId: "t" },
      { severity: "warning", message: "w", nodeId: "u" },
      { severity: "error", message: "whole graph" },
    ] as Parameters<ReturnType<typeof s>["setProblems"]>[0]);
    expect(useCanvasHints.getState().severity.get("t")).toBe("has-error");
    expect(useCanvasHints.getState().severity.get("u")).toBe("has-warning");
    expect(useCanvasHints.getState().severity.has("p")).toBe(false);
    s().load("w1", 1, doc());
    expect(useCanvasHints.getState().severity.size).toBe(0);
  });

  it("the link being dragged carries its node's type; a drag frame does not touch the hints", () => {
    s().setConnecting({ nodeId: "u", socket: "text", handleType: "source" });
    expect(useCanvasHints.getState().connecting).toEqual({ nodeId: "u", socket: "text", handleType: "source", nodeType: "text.template" });
    const hints = useCanvasHints.getState();
    s().onNodesChange(move("t", 50, 50));
    expect(useCanvasHints.getState()).toBe(hints);
    s().setConnecting(null);
    expect(useCanvasHints.getState().connecting).toBeNull();
  });
});
