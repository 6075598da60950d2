import dagre from "@dagrejs/dagre";
import type { XYPosition } from "@xyflow/react";
import type { FlowEdge, FlowNode } from "./convert";

const GAP = 40;
/** Unlinked nodes wrap at this width when no linked part sets a wider one. */
const MIN_ROW_WIDTH = 1200;

const size = (n: FlowNode) => ({ width: n.measured?.width ?? 240, height: n.measured?.height ?? 120 });

/**
 * Left-to-right layered layout (dagre) of the linked nodes, using each node's measured size; nodes without links
 * go in rows below them (dagre alone would stack them all in its first column).
 */
export function autoLayout(nodes: FlowNode[], edges: FlowEdge[]): Map<string, XYPosition> {
  const ids = new Set(nodes.map((n) => n.id));
  const linkedEdges = edges.filter((e) => ids.has(e.source) && ids.has(e.target) && e.source !== e.target);
  const linkedIds = new Set(linkedEdges.flatMap((e) => [e.source, e.target]));
  const linked = nodes.filter((n) => linkedIds.has(n.id));
  const out = new Map<string, XYPosition>();

  let right = 0;
  let bottom = 0;
  if (linked.length) {
    const g = new dagre.graphlib.Graph();
    g.setGraph({ rankdir: "LR", nodesep: GAP, ranksep: 90 });
    g.setDefaultEdgeLabel(() => ({}));
    for (const n of linked) g.setNode(n.id, size(n));
    for (const e of linkedEdges) g.setEdge(e.source, e.target);
    dagre.layout(g);
    for (const n of linked) {
      const p = g.node(n.id);
      const { width, height } = size(n);
      const at = { x: Math.round(p.x - width / 2), y: Math.round(p.y - height / 2) };
      out.set(n.id, at);
      right = Math.max(right, at.x + width);
      bottom = Math.max(bottom, at.y + height + 2 * GAP);
    }
  }

  const rowWidth = Math.max(right, MIN_ROW_WIDTH);
  let x = 0;
  let y = bottom;
  let rowHeight = 0;
  for (const n of nodes) {
    if (linkedIds.has(n.id)) continue;
    const { width, height } = size(n);
    if (x > 0 && x + width > rowWidth) {
      x = 0;
      y += rowHeight + GAP;
      rowHeight = 0;
    }
    out.set(n.id, { x, y });
    x += width + GAP;
    rowHeight = Math.max(rowHeight, height);
  }
  return out;
}
