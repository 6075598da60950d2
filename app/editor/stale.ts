import type { Workflow } from "@/engine/workflow/schema";
import type { FlowEdge, FlowNode } from "./convert";

interface NodeShape {
  id: string;
  type: string;
  typeVersion: number;
  params: unknown;
}

/** Nodes whose params or inputs changed since the shown run, and everything downstream of them. */
function staleOf(now: NodeShape[], nowEdges: Workflow["edges"], ran: Workflow): Set<string> {
  const inputs = (edges: Workflow["edges"]) => {
    const by = new Map<string, string[]>();
    for (const e of edges) (by.get(e.target) ?? by.set(e.target, []).get(e.target)!).push(`${e.source}.${e.sourceSocket}>${e.targetSocket}`);
    return by;
  };
  const sig = (n: NodeShape | undefined, ins: Map<string, string[]>) => (n ? JSON.stringify([n.type, n.typeVersion, n.params, (ins.get(n.id) ?? []).sort()]) : "");
  const nowIns = inputs(nowEdges), ranIns = inputs(ran.edges);
  const ranNodes = new Map(ran.nodes.map((n) => [n.id, n]));
  const stale = new Set<string>();
  for (const n of now) if (sig(n, nowIns) !== sig(ranNodes.get(n.id), ranIns)) stale.add(n.id);
  let grew = true;
  while (grew) {
    grew = false;
    for (const e of nowEdges) if (stale.has(e.source) && !stale.has(e.target)) stale.add(e.target), (grew = true);
  }
  return stale;
}

/** Nodes of `now` whose params or inputs changed since the shown run (`ran`), and everything downstream of them. */
export function staleNodes(now: Workflow, ran: Workflow | null): Set<string> {
  return ran ? staleOf(now.nodes, now.edges, ran) : new Set();
}

let memo: { nodes: FlowNode[]; data: unknown[]; edges: FlowEdge[]; ran: Workflow | null; stale: Set<string> } | undefined;

/**
 * The same for the canvas, computed once per change of a node's data, the edges or the shown run (not per node, and
 * not when a node is only dragged: its `data` object stays the same).
 */
export function staleOnCanvas(nodes: FlowNode[], edges: FlowEdge[], ran: Workflow | null): Set<string> {
  if (memo && memo.edges === edges && memo.ran === ran) {
    if (memo.nodes === nodes) return memo.stale; // every badge asks after each change: one of them compares
    if (memo.data.length === nodes.length && nodes.every((n, i) => memo!.data[i] === n.data)) {
      memo.nodes = nodes;
      return memo.stale;
    }
  }
  const shapes = nodes.map((n) => ({ id: n.id, type: n.data.nodeType, typeVersion: n.data.typeVersion, params: n.data.params }));
  const docEdges = edges.map((e) => ({ id: e.id, source: e.source, sourceSocket: e.sourceHandle ?? "", target: e.target, targetSocket: e.targetHandle ?? "" }));
  const stale = ran ? staleOf(shapes, docEdges, ran) : new Set<string>();
  memo = { nodes, data: nodes.map((n) => n.data), edges, ran, stale };
  return stale;
}
