import { describe, expect, it } from "vitest";
import { describeDiff, diffWorkflows, edgeKey, isEmptyDiff, sameValue, type WorkflowDiff } from "@/engine/workflow/diff";
import { emptyWorkflow, type Workflow, type WorkflowEdge, type WorkflowNode } from "@/engine/workflow/schema";
import { prng } from "@/tests/reference/random";

function node(id: string, params: Record<string, unknown> = {}, x = 0, y = 0): WorkflowNode {
  return { id, type: "text.template", typeVersion: 1, params, position: { x, y } };
}

function edge(id: string, source: string, target: string, sourceSocket = "text", targetSocket = "a"): WorkflowEdge {
  return { id, source, sourceSocket, target, targetSocket };
}

function doc(over: Partial<Workflow> = {}): Workflow {
  return { ...emptyWorkflow("w"), ...over };
}

describe("diffWorkflows on hand-built documents", () => {
  const base = doc({
    nodes: [node("a", { text: "hi" }), node("b", { template: "{a}!", n: 1 }, 100, 0), node("c", {}, 200, 0)],
    edges: [edge("e1", "a", "b"), edge("e2", "b", "c")],
    notes: [{ id: "n1", text: "note", position: { x: 0, y: 0 } }],
  });

  it("finds nothing between a document and its deep copy (even with keys reordered and edge ids renamed)", () => {
    const copy = structuredClone(base);
    copy.nodes[1]!.params = { n: 1, template: "{a}!" };
    copy.edges = copy.edges.map((e, i) => ({ ...e, id: `renamed_${i}` }));
    const d = diffWorkflows(base, copy);
    expect(isEmptyDiff(d)).toBe(true);
    expect(describeDiff(d)).toEqual([]);
  });

  it("reports params, moves, labels, added/removed nodes and links, notes and metadata separately", () => {
    const next = structuredClone(base);
    next.name = "w2";
    next.nodes[1]!.params = { template: "{a}?", extra: [1, 2] }; // template changed, n removed, extra added
    next.nodes[0]!.position = { x: 5, y: 0 }; // a moved only
    next.nodes[2]!.label = "C";
    next.nodes = next.nodes.filter((n) => n.id !== "c").concat([node("d", { text: "new" })]);
    next.nodes.push({ ...node("c", {}, 200, 0), label: "C" }); // c back, labelled
    next.edges = [edge("e1", "a", "b"), edge("e9", "a", "d", "text", "x")];
    next.notes = [{ id: "n1", text: "note!", position: { x: 0, y: 0 } }, { id: "n2", text: "more", position: { x: 1, y: 1 } }];
    const d = diffWorkflows(base, next);

    expect(d.meta).toEqual([{ field: "name", before: "w", after: "w2" }]);
    expect(d.nodes.added.map((n) => n.id)).toEqual(["d"]);
    expect(d.nodes.removed).toEqual([]);
    const byId = Object.fromEntries(d.nodes.changed.map((c) => [c.id, c]));
    expect(Object.keys(byId).sort()).toEqual(["a", "b", "c"]);
    expect(byId.a!.moved).toBe(true);
    expect(byId.a!.params).toEqual([]);
    expect(byId.b!.moved).toBe(false);
    expect(byId.b!.params).toEqual([
      { key: "extra", before: undefined, after: [1, 2] },
      { key: "n", before: 1, after: undefined },
      { key: "template", before: "{a}!", after: "{a}?" },
    ]);
    expect(byId.c!.labelChanged).toBe(true);
    expect(byId.c!.moved).toBe(false);
    expect(d.edges.added.map(edgeKey)).toEqual([edgeKey(edge("x", "a", "d", "text", "x"))]);
    expect(d.edges.removed.map((e) => e.id)).toEqual(["e2"]);
    expect(d.notes.added.map((n) => n.id)).toEqual(["n2"]);
    expect(d.notes.changed).toMatchObject([{ id: "n1", fields: ["text"] }]);
    expect(describeDiff(d)).toContain('~ node b: template "{a}!" → "{a}?"');
    expect(describeDiff(d)).toContain("~ node a: moved");
  });

  it("a move along one axis is a move; the same position is not", () => {
    const a = doc({ nodes: [node("x", {}, 10, 20)] });
    expect(diffWorkflows(a, doc({ nodes: [node("x", {}, 10, 21)] })).nodes.changed[0]?.moved).toBe(true);
    expect(diffWorkflows(a, doc({ nodes: [node("x", {}, 11, 20)] })).nodes.changed[0]?.moved).toBe(true);
    expect(diffWorkflows(a, doc({ nodes: [node("x", {}, 10, 20)] })).nodes.changed).toEqual([]);
  });

  it("counts duplicated links as often as they occur", () => {
    const a = doc({ nodes: [node("x"), node("y")], edges: [edge("1", "x", "y"), edge("2", "x", "y")] });
    const b = doc({ nodes: [node("x"), node("y")], edges: [edge("1", "x", "y")] });
    expect(diffWorkflows(a, b).edges.removed.map((e) => e.id)).toEqual(["2"]);
    expect(diffWorkflows(b, a).edges.added.map((e) => e.id)).toEqual(["2"]);
  });

  it("compares values deeply", () => {
    expect(sameValue({ a: [1, { b: 2 }] }, { a: [1, { b: 2 }] })).toBe(true);
    expect(sameValue({ a: [1, { b: 2 }] }, { a: [1, { b: 3 }] })).toBe(false);
    expect(sameValue([1, 2], { 0: 1, 1: 2 })).toBe(false);
    expect(sameValue({ a: undefined }, {})).toBe(true);
    expect(sameValue(null, {})).toBe(false);
  });
});

/** What a sequence of edits must show up as in the diff, kept as sorted string lists. */
interface Expected {
  nodesAdded: Set<string>;
  nodesRemoved: Set<string>;
  params: Map<string, Set<string>>;
  moved: Set<string>;
  labelled: Set<string>;
  edgesAdded: Set<string>;
  edgesRemoved: Set<string>;
  notesAdded: Set<string>;
  notesRemoved: Set<string>;
  notesChanged: Set<string>;
  meta: Set<string>;
}

function randomDoc(r: () => number): Workflow {
  const nodes: WorkflowNode[] = [];
  const count = 4 + Math.floor(r() * 10);
  for (let i = 0; i < count; i++) {
    nodes.push(node(`n${i}`, { a: Math.round(r() * 100), b: `s${i}`, c: { deep: [r() > 0.5, i] } }, Math.round(r() * 1000), Math.round(r() * 1000)));
  }
  const edges: WorkflowEdge[] = [];
  for (let i = 0; i < count * 1.5; i++) {
    const s = nodes[Math.floor(r() * count)]!.id;
    const t = nodes[Math.floor(r() * count)]!.id;
    edges.push(edge(`e${i}`, s, t, `out${i}`, `in${i}`)); // distinct sockets: every original link is unique
  }
  const notes = Array.from({ length: Math.floor(r() * 4) }, (_, i) => ({ id: `note${i}`, text: `t${i}`, position: { x: i, y: i } }));
  return doc({ name: "random", nodes, edges, notes });
}

/**
 * Applies `steps` random edits to a copy of `base`. Each edit touches something no earlier edit made
 * unrecognisable (no param change on a node that is later removed, no removal of a node a new link
 * uses), so the expected diff is exactly the union of the edits.
 */
function randomEdits(base: Workflow, r: () => number, steps: number): { next: Workflow; expected: Expected } {
  const next = structuredClone(base);
  const exp: Expected = {
    nodesAdded: new Set(), nodesRemoved: new Set(), params: new Map(), moved: new Set(), labelled: new Set(),
    edgesAdded: new Set(), edgesRemoved: new Set(), notesAdded: new Set(), notesRemoved: new Set(), notesChanged: new Set(), meta: new Set(),
  };
  const originalIds = new Set(base.nodes.map((n) => n.id));
  const originalEdgeKeys = new Set(base.edges.map(edgeKey));
  const originalNotes = new Set((base.notes ?? []).map((n) => n.id));
  const changedNodes = new Set<string>(); // original nodes with an edit: never removed afterwards
  const pinned = new Set<string>(); // endpoints of new links: never removed
  let counter = 0;
  const pick = <T,>(xs: T[]): T | undefined => (xs.length ? xs[Math.floor(r() * xs.length)] : undefined);
  const editable = () => next.nodes.filter((n) => originalIds.has(n.id));
  const markParam = (id: string, key: string) => {
    changedNodes.add(id);
    exp.params.set(id, (exp.params.get(id) ?? new Set()).add(key));
  };

  const ops: (() => boolean)[] = [
    () => {
      const id = `added${counter++}`;
      next.nodes.push(node(id, { a: counter }, r() * 500, r() * 500));
      exp.nodesAdded.add(id);
      return true;
    },
    () => {
      const victim = pick(next.nodes.filter((n) => originalIds.has(n.id) && !changedNodes.has(n.id) && !pinned.has(n.id)));
      if (!victim) return false;
      next.nodes = next.nodes.filter((n) => n !== victim);
      for (const e of next.edges.filter((e) => e.source === victim.id || e.target === victim.id)) exp.edgesRemoved.add(edgeKey(e));
      next.edges = next.edges.filter((e) => e.source !== victim.id && e.target !== victim.id);
      exp.nodesRemoved.add(victim.id);
      return true;
    },
    () => {
      const n = pick(editable());
      const key = pick(["a", "b", "c"]);
      if (!n || !key) return false;
      n.params = { ...n.params, [key]: `changed${counter++}` }; // a value the original never had
      markParam(n.id, key);
      return true;
    },
    () => {
      const n = pick(editable().filter((x) => "b" in x.params && (base.nodes.find((o) => o.id === x.id)!.params.b !== undefined)));
      if (!n) return false;
      const { b: _dropped, ...rest } = n.params;
      n.params = rest;
      markParam(n.id, "b");
      return true;
    },
    () => {
      const n = pick(editable());
      if (!n) return false;
      n.params = { ...n.params, [`fresh${counter}`]: counter++ };
      markParam(n.id, `fresh${counter - 1}`);
      return true;
    },
    () => {
      const n = pick(editable());
      if (!n) return false;
      const axis = Math.floor(r() * 3); // x only, y only, or both
      n.position = { x: axis === 1 ? n.position.x : n.position.x + 1 + r() * 50, y: axis === 0 ? n.position.y : n.position.y - 1 - r() * 50 };
      changedNodes.add(n.id);
      exp.moved.add(n.id);
      return true;
    },
    () => {
      const n = pick(editable());
      if (!n) return false;
      n.label = `label${counter++}`;
      changedNodes.add(n.id);
      exp.labelled.add(n.id);
      return true;
    },
    () => {
      const s = pick(next.nodes);
      const t = pick(next.nodes);
      if (!s || !t) return false;
      const e = edge(`new${counter}`, s.id, t.id, `o${counter}`, `i${counter++}`);
      next.edges.push(e);
      pinned.add(s.id).add(t.id);
      exp.edgesAdded.add(edgeKey(e));
      return true;
    },
    () => {
      const e = pick(next.edges.filter((x) => originalEdgeKeys.has(edgeKey(x))));
      if (!e) return false;
      next.edges = next.edges.filter((x) => x !== e);
      exp.edgesRemoved.add(edgeKey(e));
      return true;
    },
    () => {
      const id = `newnote${counter++}`;
      next.notes = [...(next.notes ?? []), { id, text: "x", position: { x: 0, y: 0 } }];
      exp.notesAdded.add(id);
      return true;
    },
    () => {
      const n = pick((next.notes ?? []).filter((x) => originalNotes.has(x.id) && !exp.notesChanged.has(x.id)));
      if (!n) return false;
      next.notes = next.notes!.filter((x) => x !== n);
      exp.notesRemoved.add(n.id);
      return true;
    },
    () => {
      const n = pick((next.notes ?? []).filter((x) => originalNotes.has(x.id)));
      if (!n) return false;
      n.text = `edited${counter++}`;
      exp.notesChanged.add(n.id);
      return true;
    },
    () => {
      const field = pick(["name", "description", "tags"] as const)!;
      if (field === "tags") next.tags = [...next.tags, `tag${counter++}`];
      else next[field] = `${field}${counter++}`;
      exp.meta.add(field);
      return true;
    },
  ];
  let applied = 0;
  for (let guard = 0; applied < steps && guard < steps * 20; guard++) if (pick(ops)!()) applied++;
  return { next, expected: exp };
}

const sorted = (xs: Iterable<string>) => [...xs].sort();

function observed(d: WorkflowDiff) {
  return {
    nodesAdded: sorted(d.nodes.added.map((n) => n.id)),
    nodesRemoved: sorted(d.nodes.removed.map((n) => n.id)),
    params: Object.fromEntries(d.nodes.changed.filter((c) => c.params.length).map((c) => [c.id, sorted(c.params.map((p) => p.key))])),
    moved: sorted(d.nodes.changed.filter((c) => c.moved).map((c) => c.id)),
    labelled: sorted(d.nodes.changed.filter((c) => c.labelChanged).map((c) => c.id)),
    edgesAdded: sorted(d.edges.added.map(edgeKey)),
    edgesRemoved: sorted(d.edges.removed.map(edgeKey)),
    notesAdded: sorted(d.notes.added.map((n) => n.id)),
    notesRemoved: sorted(d.notes.removed.map((n) => n.id)),
    notesChanged: sorted(d.notes.changed.map((n) => n.id)),
    meta: sorted(d.meta.map((m) => m.field)),
  };
}

function wanted(e: Expected) {
  return {
    nodesAdded: sorted(e.nodesAdded),
    nodesRemoved: sorted(e.nodesRemoved),
    params: Object.fromEntries([...e.params].map(([id, keys]) => [id, sorted(keys)])),
    moved: sorted(e.moved),
    labelled: sorted(e.labelled),
    edgesAdded: sorted(e.edgesAdded),
    edgesRemoved: sorted(e.edgesRemoved),
    notesAdded: sorted(e.notesAdded),
    notesRemoved: sorted(e.notesRemoved),
    notesChanged: sorted(e.notesChanged),
    meta: sorted(e.meta),
  };
}

describe("diffWorkflows on seeded random edits", () => {
  it("reports exactly the applied edits, in both directions, for 300 seeds", () => {
    let totalChanges = 0;
    for (let seed = 1; seed <= 300; seed++) {
      const r = prng(seed);
      const base = randomDoc(r);
      const { next, expected } = randomEdits(base, r, 1 + Math.floor(r() * 12));
      const forward = diffWorkflows(base, next);
      expect(observed(forward), `seed ${seed}`).toEqual(wanted(expected));
      // Backwards, additions become removals and vice versa.
      const backward = observed(diffWorkflows(next, base));
      expect(backward.nodesAdded, `seed ${seed}`).toEqual(sorted(expected.nodesRemoved));
      expect(backward.nodesRemoved, `seed ${seed}`).toEqual(sorted(expected.nodesAdded));
      expect(backward.edgesAdded, `seed ${seed}`).toEqual(sorted(expected.edgesRemoved));
      expect(backward.edgesRemoved, `seed ${seed}`).toEqual(sorted(expected.edgesAdded));
      expect(backward.params, `seed ${seed}`).toEqual(observed(forward).params);
      expect(isEmptyDiff(diffWorkflows(next, structuredClone(next)))).toBe(true);
      totalChanges += describeDiff(forward).length;
    }
    expect(totalChanges).toBeGreaterThan(600); // the edits really produced changes to find
  });
});
