/**
 * Auto-layout: linked nodes left to right in dagre's layers, unlinked ones in rows below them (not one tall column),
 * and no two nodes overlapping, on seeded random graphs with random node sizes.
 */
import { describe, expect, it } from "vitest";
import { autoLayout } from "@/app/editor/layout";
import type { FlowEdge, FlowNode } from "@/app/editor/convert";

function rng(seed: number) {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
}

const node = (id: string, width = 240, height = 120): FlowNode => ({ id, type: "pipeline", position: { x: 0, y: 0 }, data: {} as FlowNode["data"], measured: { width, height } });
const edge = (source: string, target: string): FlowEdge => ({ id: `${source}-${target}`, source, target });

function overlaps(nodes: FlowNode[], at: Map<string, { x: number; y: number }>): string[] {
  const found: string[] = [];
  for (let i = 0; i < nodes.length; i++)
    for (let j = i + 1; j < nodes.length; j++) {
      const a = nodes[i]!, b = nodes[j]!;
      const pa = at.get(a.id)!, pb = at.get(b.id)!;
      const wa = a.measured!.width!, ha = a.measured!.height!, wb = b.measured!.width!, hb = b.measured!.height!;
      if (pa.x < pb.x + wb && pb.x < pa.x + wa && pa.y < pb.y + hb && pb.y < pa.y + ha) found.push(`${a.id}/${b.id}`);
    }
  return found;
}

describe("autoLayout", () => {
  it("lays a chain out left to right", () => {
    const nodes = ["a", "b", "c"].map((id) => node(id));
    const at = autoLayout(nodes, [edge("a", "b"), edge("b", "c")]);
    expect(at.get("a")!.x).toBeLessThan(at.get("b")!.x);
    expect(at.get("b")!.x).toBeLessThan(at.get("c")!.x);
  });

  it("puts nodes without links in rows, not one column", () => {
    const nodes = Array.from({ length: 9 }, (_, i) => node(`n${i}`));
    const at = autoLayout(nodes, []);
    const xs = new Set([...at.values()].map((p) => p.x));
    const ys = new Set([...at.values()].map((p) => p.y));
    expect(xs.size).toBeGreaterThan(1);
    expect(ys.size).toBeLessThan(9);
    expect(Math.max(...[...at.values()].map((p) => p.x + 240))).toBeLessThanOrEqual(1200);
    expect(overlaps(nodes, at)).toEqual([]);
  });

  it("puts the unlinked nodes below the linked part", () => {
    const nodes = [node("a"), node("b", 300, 400), node("lone1"), node("lone2")];
    const at = autoLayout(nodes, [edge("a", "b")]);
    const linkedBottom = Math.max(at.get("a")!.y + 120, at.get("b")!.y + 400);
    expect(at.get("lone1")!.y).toBeGreaterThanOrEqual(linkedBottom);
    expect(at.get("lone2")!.y).toBeGreaterThanOrEqual(linkedBottom);
    expect(overlaps(nodes, at)).toEqual([]);
  });

  it("never overlaps two nodes (seeded random graphs and sizes)", () => {
    for (let seed = 1; seed <= 40; seed++) {
      const r = rng(seed);
      const n = 2 + Math.floor(r() * 25);
      const nodes = Array.from({ length: n }, (_, i) => node(`n${i}`, 160 + Math.floor(r() * 300), 60 + Math.floor(r() * 500)));
      const edges: FlowEdge[] = [];
      for (let i = 1; i < n; i++) if (r() < 0.5) edges.push(edge(`n${Math.floor(r() * i)}`, `n${i}`));
      const at = autoLayout(nodes, edges);
      expect(at.size, `seed ${seed}`).toBe(n);
      expect(overlaps(nodes, at), `seed ${seed}`).toEqual([]);
    }
  });
});
