/**
 * The inspector's canvas drawings (what the heatmap, Fig. 7/8 and matrices paint, and what hovering shows)
 * and the token strip's line breaking, checked with a recording painter on a seeded trace.
 */
import { describe, expect, it } from "vitest";
import { colorOf, drawingToSvg, heatGridDrawing, stackedBarDrawing, type Painter } from "../../../app/inspector/CanvasChart";
import { breakLines, heatmapDrawing, stackedSeries } from "../../../app/inspector/RoutingInspector";
import { computeMetrics } from "../../../engine/routing/metrics";
import { syntheticTrace } from "../../../engine/routing/synthetic";
import { RoutingAggregate } from "../../../engine/routing/aggregate";

interface Rect { x: number; y: number; w: number; h: number; fill: string }

function record(): Painter & { rects: Rect[]; texts: string[] } {
  const rects: Rect[] = [];
  const texts: string[] = [];
  return {
    rects,
    texts,
    rect: (x, y, w, h, fill) => rects.push({ x, y, w, h, fill }),
    text: (_x, _y, s) => texts.push(s),
    line: () => {},
    gradient: () => {},
  };
}

const trace = syntheticTrace({ seed: 3, layers: 6, routed: 8, nulls: 1, shared: 2, tokens: 300 });
const m = computeMetrics(trace);

describe("expert-load heatmap drawing", () => {
  it("paints one cell per layer × (dynamic experts + shared lane), coloured by the value", () => {
    const p = record();
    heatmapDrawing(m).paint(p, 800, 300);
    const D = m.experts.dynamic.length;
    expect(p.rects).toHaveLength(m.layers.length * (D + 1));
    const load = colorOf({ min: 0, max: 1, stops: ["#111827", "#1d4ed8", "#60a5fa", "#fde68a"] });
    const shared = colorOf({ min: 0, max: 1, stops: ["#111827", "#065f46", "#34d399"] });
    // Cells are painted column by column: column c, row r is rect c · L + r.
    const L = m.layers.length;
    for (let r = 0; r < L; r++) {
      for (let c = 0; c < D; c++) expect(p.rects[c * L + r]!.fill).toBe(load(m.layers[r]!.tokenShare[c]!));
      expect(p.rects[D * L + r]!.fill).toBe(shared(m.layers[r]!.sharedWeightShare));
    }
    expect(p.texts).toContain("L0");
    expect(p.texts).toContain("tokens");
  });

  it("hovering a cell names the expert, the layer and the share", () => {
    const d = heatmapDrawing(m);
    // 800 × 300 with margins left 50, right 90, top 10, bottom 40: 660 / 10 columns, 250 / 6 rows.
    const cw = 660 / 10;
    const ch = 250 / 6;
    expect(d.hit(50 + 2.5 * cw, 10 + 1.5 * ch, 800, 300)).toBe(`E3: ${(m.layers[1]!.tokenShare[2]! * 100).toFixed(1)} % of tokens at L1`);
    expect(d.hit(50 + 9.5 * cw, 10 + 4.5 * ch, 800, 300)).toBe(`shared experts: ${(m.layers[4]!.sharedWeightShare * 100).toFixed(1)} % of the weight at L4`);
    expect(d.hit(10, 10, 800, 300)).toBeNull();
  });

  it("exports the same picture as SVG", () => {
    const svg = drawingToSvg(heatmapDrawing(m), 800, 300);
    expect(svg.startsWith("<svg")).toBe(true);
    expect(svg.match(/<rect /g)!.length).toBe(1 + m.layers.length * (m.experts.dynamic.length + 1) + 1); // background + cells + colour bar
    expect(svg).toContain(">Shared (w)<");
  });
});

describe("Fig. 7 / Fig. 8 stacked bars", () => {
  it("each layer's Fig. 7 bar stacks to 100 % of the plot height; hidden series are left out", () => {
    const series = stackedSeries(m, "share");
    const p = record();
    stackedBarDrawing({ categories: m.layers.map((l) => `L${l.layer}`), series, yMax: 100, unit: "%" }).paint(p, 600, 235);
    const plotH = 235 - 10 - 25;
    const byX = new Map<number, number>();
    for (const r of p.rects) byX.set(r.x, (byX.get(r.x) ?? 0) + r.h);
    expect(byX.size).toBe(m.layers.length);
    for (const h of byX.values()) expect(h).toBeCloseTo(plotH, 0); // rounding of the % to 2 decimals
    const hidden = record();
    stackedBarDrawing({ categories: m.layers.map((l) => `L${l.layer}`), series, hidden: new Set(["E1"]), yMax: 100, unit: "%" }).paint(hidden, 600, 235);
    expect(hidden.rects.length).toBe(p.rects.length - m.layers.filter((l) => l.selectionShare[0]! > 0).length);
  });

  it("Fig. 8 series are k = 1..D with the layer's k shares; the tooltip lists the non-zero ones", () => {
    const series = stackedSeries(m, "k");
    expect(series.map((s) => s.name)).toEqual(Array.from({ length: m.experts.dynamic.length }, (_, i) => `k = ${i + 1}`));
    const d = stackedBarDrawing({ categories: m.layers.map((l) => `L${l.layer}`), series, yMax: 100, unit: "%" });
    const band = (600 - 45 - 10) / m.layers.length;
    const tip = d.hit(45 + 2.5 * band, 100, 600, 235)!;
    expect(tip.split("\n")[0]).toBe("L2");
    const ks = m.layers[2]!.kShare.map((v, k) => [k, v] as const).filter(([k, v]) => k > 0 && +(v * 100).toFixed(2) > 0);
    expect(tip.split("\n").length).toBe(1 + Math.min(16, ks.length) + (ks.length > 16 ? 1 : 0));
    expect(tip).toContain(`k = ${ks[0]![0]}: ${+(ks[0]![1] * 100).toFixed(2)} %`);
  });
});

describe("one Fig. 7 / Fig. 8 for the inspector and the aggregate view", () => {
  it("an aggregate of one trace gives the inspector's series; a titled chart paints its title and fingerprints", () => {
    const agg = new RoutingAggregate(trace.experts, trace.layers.length).add(trace);
    for (const kind of ["share", "k"] as const) expect(stackedSeries(agg.metrics(), kind)).toEqual(stackedSeries(m, kind));
    const p = record();
    stackedBarDrawing({ categories: m.layers.map((l) => `L${l.layer}`), series: stackedSeries(m, "share"), yMax: 100, unit: "%", title: "Fig. 7 · all records", subtitle: "workflow abc · dataset def" }).paint(p, 600, 265);
    expect(p.texts).toEqual(expect.arrayContaining(["Fig. 7 · all records", "workflow abc · dataset def"]));
    expect(Math.min(...p.rects.map((r) => r.y))).toBeGreaterThanOrEqual(40); // bars start below the title
  });
});

describe("matrix drawing with cell labels", () => {
  it("labels every cell of a small matrix", () => {
    const names = ["a", "b", "c"];
    const p = record();
    heatGridDrawing({ rows: names, cols: names, values: [1, 2, 3, 4, 5, 6, 7, 8, 9], scaleOf: () => ({ min: 0, max: 9, stops: ["#000000", "#ffffff"] }), tooltip: () => "", cellLabel: String }).paint(p, 300, 200);
    for (let v = 1; v <= 9; v++) expect(p.texts).toContain(String(v));
    expect(p.rects.map((r) => r.fill)).toContain("rgb(255,255,255)");
  });
});

describe("token strip line breaking", () => {
  it("fills lines greedily with a 2 px gap and starts a new line when the next token does not fit", () => {
    expect(Array.from(breakLines([40, 40, 40, 40], 100))).toEqual([0, 2]);
    expect(Array.from(breakLines([40, 40, 16], 100))).toEqual([0]); // 40 + 2 + 40 + 2 + 16 = 100
    expect(Array.from(breakLines([40, 40, 17], 100))).toEqual([0, 2]);
    expect(Array.from(breakLines([150, 10], 100))).toEqual([0, 1]); // a token wider than the line gets its own
    expect(Array.from(breakLines([], 100))).toEqual([]);
  });
});
