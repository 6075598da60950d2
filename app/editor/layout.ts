import dagre from "@dagrejs/dagre";
import type { XYPosition } from "@xyflow/react";
import type { FlowEdge, FlowNode } from "./convert";

/** Left-to-right layered layout (dagre), using each node's measured size. */
export function autoLayout(nodes: FlowNode[], edges: FlowEdge[]): Map<string, XYPosition> {
  const g = new dagre.graphlib.Graph();
  g.setGraph({ rankdir: "LR", nodesep: 40, ranksep: 90 });
  g.setDefaultEdgeLabel(() => ({}));
  for (const n of nodes) g.setNode(n.id, { width: n.measured?.width ?? 240, height: n.measured?.height ?? 120 });
  for (const e of edges) if (g.hasNode(e.source) && g.hasNode(e.target)) g.setEdge(e.source, e.target);
  dagre.layout(g);
  const out = new Map<string, XYPosition>();
  for (const n of nodes) {
    const p = g.node(n.id);
    const w = n.measured?.width ?? 240;
    const h = n.measured?.height ?? 120;
    out.set(n.id, { x: Math.round(p.x - w / 2), y: Math.round(p.y - h / 2) });
  }
  return out;
}
