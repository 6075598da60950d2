"use client";
/**
 * Charts of the routing inspector drawn straight to a canvas (heatmaps and stacked bars). An ECharts chart
 * costs 40–120 ms to lay out at 28 layers × 65 experts; these draw the same picture in a few ms. One paint
 * function per chart writes to a Painter, so the canvas, the PNG export and the SVG export are the same
 * drawing.
 */
import { memo, useEffect, useLayoutEffect, useMemo, useRef, useState } from "react";
import { escapeHtml } from "@/app/lib/escape-html";
import { downloadBlob, downloadUrl } from "@/app/lib/download";

export interface TextStyle {
  align?: "left" | "center" | "right";
  baseline?: "top" | "middle" | "bottom";
  color?: string;
  size?: number;
}

export interface Painter {
  rect(x: number, y: number, w: number, h: number, fill: string): void;
  text(x: number, y: number, s: string, style?: TextStyle): void;
  line(x1: number, y1: number, x2: number, y2: number, stroke: string): void;
  /** A rectangle filled with a vertical gradient, first stop at the bottom. */
  gradient(x: number, y: number, w: number, h: number, stops: readonly string[]): void;
}

export interface ChartDrawing {
  paint(p: Painter, width: number, height: number): void;
  /** Tooltip text at (x, y) (CSS pixels in the chart), or null. */
  hit(x: number, y: number, width: number, height: number): string | null;
}

const FONT = "sans-serif";
export const AXIS_COLOR = "#b9b8ce";
const GRID_COLOR = "#3a3d4a";
const EXPORT_BACKGROUND = "#171a23";

class CanvasPainter implements Painter {
  constructor(private ctx: CanvasRenderingContext2D) {}
  rect(x: number, y: number, w: number, h: number, fill: string) {
    this.ctx.fillStyle = fill;
    this.ctx.fillRect(x, y, w, h);
  }
  text(x: number, y: number, s: string, o: TextStyle = {}) {
    const c = this.ctx;
    c.font = `${o.size ?? 11}px ${FONT}`;
    c.textAlign = o.align ?? "left";
    c.textBaseline = o.baseline ?? "alphabetic";
    c.fillStyle = o.color ?? AXIS_COLOR;
    c.fillText(s, x, y);
  }
  line(x1: number, y1: number, x2: number, y2: number, stroke: string) {
    const c = this.ctx;
    c.strokeStyle = stroke;
    c.lineWidth = 1;
    c.beginPath();
    c.moveTo(x1, y1);
    c.lineTo(x2, y2);
    c.stroke();
  }
  gradient(x: number, y: number, w: number, h: number, stops: readonly string[]) {
    const g = this.ctx.createLinearGradient(0, y + h, 0, y);
    stops.forEach((s, i) => g.addColorStop(i / Math.max(1, stops.length - 1), s));
    this.ctx.fillStyle = g;
    this.ctx.fillRect(x, y, w, h);
  }
}

const r2 = (v: number) => Math.round(v * 100) / 100;

class SvgPainter implements Painter {
  parts: string[] = [];
  private gradients = 0;
  rect(x: number, y: number, w: number, h: number, fill: string) {
    this.parts.push(`<rect x="${r2(x)}" y="${r2(y)}" width="${r2(w)}" height="${r2(h)}" fill="${fill}"/>`);
  }
  text(x: number, y: number, s: string, o: TextStyle = {}) {
    const anchor = { left: "start", center: "middle", right: "end" }[o.align ?? "left"];
    const baseline = { top: "hanging", middle: "central", bottom: "text-after-edge" }[o.baseline ?? "bottom"] ?? "auto";
    this.parts.push(`<text x="${r2(x)}" y="${r2(y)}" font-family="${FONT}" font-size="${o.size ?? 11}" fill="${o.color ?? AXIS_COLOR}" text-anchor="${anchor}" dominant-baseline="${o.baseline ? baseline : "auto"}">${escapeHtml(s)}</text>`);
  }
  line(x1: number, y1: number, x2: number, y2: number, stroke: string) {
    this.parts.push(`<line x1="${r2(x1)}" y1="${r2(y1)}" x2="${r2(x2)}" y2="${r2(y2)}" stroke="${stroke}" stroke-width="1"/>`);
  }
  gradient(x: number, y: number, w: number, h: number, stops: readonly string[]) {
    const id = `g${this.gradients++}`;
    const s = stops.map((c, i) => `<stop offset="${i / Math.max(1, stops.length - 1)}" stop-color="${c}"/>`).join("");
    this.parts.push(`<defs><linearGradient id="${id}" x1="0" y1="1" x2="0" y2="0">${s}</linearGradient></defs><rect x="${r2(x)}" y="${r2(y)}" width="${r2(w)}" height="${r2(h)}" fill="url(#${id})"/>`);
  }
}

export function drawingToSvg(d: ChartDrawing, width: number, height: number): string {
  const p = new SvgPainter();
  d.paint(p, width, height);
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}"><rect width="100%" height="100%" fill="${EXPORT_BACKGROUND}"/>${p.parts.join("")}</svg>`;
}

function paintCanvas(canvas: HTMLCanvasElement, d: ChartDrawing, width: number, height: number, ratio: number, background?: string) {
  canvas.width = Math.round(width * ratio);
  canvas.height = Math.round(height * ratio);
  const ctx = canvas.getContext("2d")!;
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  if (background) {
    ctx.fillStyle = background;
    ctx.fillRect(0, 0, width, height);
  } else ctx.clearRect(0, 0, width, height);
  d.paint(new CanvasPainter(ctx), width, height);
}

/**
 * One canvas chart with a hover tooltip and PNG / SVG export. `onDrawn(testId)` fires after each paint.
 * `width`: the chart's width in CSS px when the parent already knows it (the inspector measures its columns
 * once): the first paint then reads no layout. Without it the chart measures its box. Either way a
 * ResizeObserver follows later resizes; its first report (it always reports on observe) is compared with the
 * width already drawn, so an unchanged width costs no second render.
 */
export const CanvasChart = memo(function CanvasChart({ drawing, height, name, testId, onDrawn, width: knownWidth }: { drawing: ChartDrawing; height: number; name: string; testId: string; onDrawn?: (name: string) => void; width?: number }) {
  const box = useRef<HTMLDivElement>(null);
  const canvas = useRef<HTMLCanvasElement>(null);
  const [width, setWidth] = useState(knownWidth ?? 0);
  const widthRef = useRef(width);
  widthRef.current = width;
  const [tip, setTip] = useState<{ x: number; y: number; text: string } | null>(null);
  useLayoutEffect(() => {
    const el = box.current!;
    if (!widthRef.current) setWidth((widthRef.current = el.clientWidth));
    const ro = new ResizeObserver((entries) => {
      // The observer's own size (no layout read); clientWidth is that width rounded.
      const w = Math.round(entries[entries.length - 1]!.contentRect.width);
      // 0: not laid out (a section the browser skips until it is scrolled near): keep the width drawn at.
      if (w && w !== widthRef.current) setWidth((widthRef.current = w));
    });
    ro.observe(el);
    return () => ro.disconnect();
  }, []);
  const drawnRef = useRef(onDrawn);
  drawnRef.current = onDrawn;
  useLayoutEffect(() => {
    if (!width || !canvas.current) return;
    performance.mark(`chart-${testId}-start`);
    paintCanvas(canvas.current, drawing, width, height, window.devicePixelRatio || 1);
    performance.measure(`chart-${testId}`, `chart-${testId}-start`);
    drawnRef.current?.(testId);
  }, [drawing, width, height, testId]);
  useEffect(() => setTip(null), [drawing]);
  function onMove(e: React.MouseEvent) {
    const r = box.current!.getBoundingClientRect();
    const x = e.clientX - r.left;
    const y = e.clientY - r.top;
    const text = drawing.hit(x, y, width, height);
    setTip(text ? { x, y, text } : null);
  }
  function exportPng() {
    const c = document.createElement("canvas");
    paintCanvas(c, drawing, width, height, 2, EXPORT_BACKGROUND);
    downloadUrl(`${name}.png`, c.toDataURL("image/png"));
  }
  function exportSvg() {
    downloadBlob(`${name}.svg`, new Blob([drawingToSvg(drawing, width, height)], { type: "image/svg+xml" }));
  }
  return (
    <figure className="chart">
      <div ref={box} style={{ height, position: "relative" }} data-testid={testId} onMouseMove={onMove} onMouseLeave={() => setTip(null)}>
        <canvas ref={canvas} style={{ width: "100%", height, display: "block" }} />
        {tip && (
          <div className="chart-tip" data-testid={`${testId}-tip`} style={{ position: "absolute", left: Math.min(tip.x + 12, Math.max(0, width - 260)), top: tip.y + 12, pointerEvents: "none", background: "rgba(20,22,30,0.95)", border: "1px solid #3a3d4a", borderRadius: 4, padding: "4px 6px", fontSize: 12, whiteSpace: "pre", zIndex: 2, maxWidth: 260, overflow: "hidden" }}>
            {tip.text}
          </div>
        )}
      </div>
      <figcaption>
        <button onClick={exportPng}>PNG</button>
        <button onClick={exportSvg}>SVG</button>
      </figcaption>
    </figure>
  );
});

// ---- colour scales ----

export interface ColorScale {
  min: number;
  max: number;
  /** Colours from min to max, "#rrggbb". */
  stops: readonly string[];
}

const hexRgb = (h: string) => [parseInt(h.slice(1, 3), 16), parseInt(h.slice(3, 5), 16), parseInt(h.slice(5, 7), 16)] as const;

/** Colour of a missing value (NaN): a cell that has no number, e.g. an ablation not run. */
export const MISSING_COLOR = "#2a2d38";

/** A function value → "rgb(...)" interpolating the stops linearly (256 levels); NaN → MISSING_COLOR. */
export function colorOf(scale: ColorScale): (v: number) => string {
  const rgb = scale.stops.map(hexRgb);
  const lut: string[] = [];
  for (let i = 0; i < 256; i++) {
    const t = (i / 255) * (rgb.length - 1);
    const a = Math.min(Math.floor(t), rgb.length - 2);
    const f = t - a;
    const c = [0, 1, 2].map((j) => Math.round(rgb[a]![j]! + (rgb[a + 1]![j]! - rgb[a]![j]!) * f));
    lut.push(`rgb(${c[0]},${c[1]},${c[2]})`);
  }
  const span = scale.max - scale.min || 1;
  return (v) => (Number.isNaN(v) ? MISSING_COLOR : (lut[Math.max(0, Math.min(255, Math.round(((v - scale.min) / span) * 255)))] ?? lut[0]!));
}

// ---- heatmap ----

export interface HeatGridSpec {
  rows: readonly string[];
  cols: readonly string[];
  /** Row-major [rows × cols]. */
  values: ArrayLike<number>;
  /** The colour scale of a column (e.g. a separate one for a "shared" lane). */
  scaleOf: (col: number) => ColorScale;
  tooltip: (row: number, col: number, v: number) => string;
  /** Text in each cell (small matrices), or none. */
  cellLabel?: (v: number) => string;
  /** A colour bar on the right for this scale. */
  colorBar?: { scale: ColorScale; label: string };
  margin?: { left: number; right: number; top: number; bottom: number };
  /** The last `lanes` columns (e.g. "Shared (w)", "Dropped") are always labelled; default 1. */
  lanes?: number;
}

const NO_VALUE = "#262833";

export function heatGridDrawing(spec: HeatGridSpec): ChartDrawing {
  const { rows, cols, values } = spec;
  const m = spec.margin ?? { left: 50, right: spec.colorBar ? 90 : 20, top: 10, bottom: 30 };
  const colors = new Map<ColorScale, (v: number) => string>();
  const colorAt = (c: number) => {
    const s = spec.scaleOf(c);
    let f = colors.get(s);
    if (!f) colors.set(s, (f = colorOf(s)));
    return f;
  };
  const geometry = (width: number, height: number) => {
    const w = Math.max(1, width - m.left - m.right);
    const h = Math.max(1, height - m.top - m.bottom);
    return { cw: w / Math.max(1, cols.length), ch: h / Math.max(1, rows.length) };
  };
  return {
    paint(p, width, height) {
      const { cw, ch } = geometry(width, height);
      const gap = cw > 4 && ch > 4 ? 1 : 0;
      for (let c = 0; c < cols.length; c++) {
        const color = colorAt(c);
        const x = m.left + c * cw;
        // NaN: a cell with no value (e.g. a dense layer's row: no routing), drawn as the empty background
        for (let r = 0; r < rows.length; r++) {
          const v = values[r * cols.length + c]!;
          p.rect(x, m.top + r * ch, cw - gap, ch - gap, Number.isNaN(v) ? NO_VALUE : color(v));
        }
      }
      if (spec.cellLabel && cw >= 18 && ch >= 12)
        for (let r = 0; r < rows.length; r++)
          for (let c = 0; c < cols.length; c++) p.text(m.left + (c + 0.5) * cw, m.top + (r + 0.5) * ch, spec.cellLabel(values[r * cols.length + c]!), { align: "center", baseline: "middle", size: 10, color: "#f9fafb" });
      // Axis labels, thinned so they do not overlap.
      const rowStep = Math.max(1, Math.ceil(13 / ch));
      for (let r = 0; r < rows.length; r += rowStep) p.text(m.left - 6, m.top + (r + 0.5) * ch, rows[r]!, { align: "right", baseline: "middle" });
      const longest = cols.reduce((a, s) => Math.max(a, s.length), 0);
      const colStep = Math.max(1, Math.ceil((longest * 6.5 + 6) / cw));
      // Every colStep-th column, and always the last `lanes` (a lane such as "Shared (w)" must stay named).
      const lanes = Math.min(spec.lanes ?? 1, cols.length);
      const first = cols.length - lanes;
      const labelled: number[] = [];
      for (let c = 0; c < first; c += colStep) labelled.push(c);
      while (labelled.length && first - labelled.at(-1)! < colStep) labelled.pop();
      for (let c = first; c < cols.length; c++) labelled.push(c);
      for (const c of labelled) p.text(m.left + (c + 0.5) * cw, height - m.bottom + 6, cols[c]!, { align: "center", baseline: "top" });
      if (spec.colorBar) {
        const { scale, label } = spec.colorBar;
        const x = width - m.right + 30;
        const barH = Math.min(120, height - m.top - m.bottom - 30);
        p.text(x + 10, m.top + 10, label, { align: "center", baseline: "middle" });
        p.text(x + 10, m.top + 24, String(scale.max), { align: "center", baseline: "middle" });
        p.gradient(x, m.top + 34, 20, barH, scale.stops);
        p.text(x + 10, m.top + 44 + barH, String(scale.min), { align: "center", baseline: "middle" });
      }
    },
    hit(x, y, width, height) {
      const { cw, ch } = geometry(width, height);
      const c = Math.floor((x - m.left) / cw);
      const r = Math.floor((y - m.top) / ch);
      if (x < m.left || y < m.top || c >= cols.length || r >= rows.length) return null;
      return spec.tooltip(r, c, values[r * cols.length + c]!);
    },
  };
}

// ---- stacked bars ----

export interface BarSeries {
  name: string;
  color: string;
  /** One value per category. */
  values: readonly number[];
}

export interface StackedBarSpec {
  categories: readonly string[];
  series: readonly BarSeries[];
  /** Series left out (legend toggles). */
  hidden?: ReadonlySet<string>;
  yMax: number;
  unit: string;
  /** Drawn above the bars, so PNG/SVG exports carry them (the aggregate view puts its fingerprints here). */
  title?: string;
  subtitle?: string;
}

const STACK_MARGIN = { left: 45, right: 10, top: 10, bottom: 25 };

export function stackedBarDrawing(spec: StackedBarSpec): ChartDrawing {
  const m = spec.title || spec.subtitle ? { ...STACK_MARGIN, top: STACK_MARGIN.top + 30 } : STACK_MARGIN;
  const shown = spec.series.filter((s) => !spec.hidden?.has(s.name));
  const band = (width: number) => Math.max(1, width - m.left - m.right) / Math.max(1, spec.categories.length);
  return {
    paint(p, width, height) {
      if (spec.title) p.text(4, 2, spec.title, { baseline: "top", size: 12 });
      if (spec.subtitle) p.text(4, 20, spec.subtitle, { baseline: "top", size: 9 });
      const h = Math.max(1, height - m.top - m.bottom);
      const bw = band(width);
      const y0 = m.top + h;
      for (let t = 0; t <= 5; t++) {
        const v = (spec.yMax * t) / 5;
        const y = y0 - (h * t) / 5;
        p.line(m.left, Math.round(y) + 0.5, width - m.right, Math.round(y) + 0.5, GRID_COLOR);
        p.text(m.left - 6, y, `${+v.toFixed(1)} ${spec.unit}`, { align: "right", baseline: "middle" });
      }
      const barW = Math.max(1, bw * 0.6);
      spec.categories.forEach((cat, i) => {
        const x = m.left + i * bw + (bw - barW) / 2;
        let acc = 0;
        for (const s of shown) {
          const v = s.values[i]!;
          if (!(v > 0)) continue;
          const top = y0 - (h * Math.min(spec.yMax, acc + v)) / spec.yMax;
          const bottom = y0 - (h * Math.min(spec.yMax, acc)) / spec.yMax;
          p.rect(x, top, barW, bottom - top, s.color);
          acc += v;
        }
      });
      const step = Math.max(1, Math.ceil(28 / bw));
      for (let i = 0; i < spec.categories.length; i += step) p.text(m.left + (i + 0.5) * bw, y0 + 6, spec.categories[i]!, { align: "center", baseline: "top" });
    },
    hit(x, y, width, height) {
      const i = Math.floor((x - m.left) / band(width));
      if (x < m.left || i >= spec.categories.length || y < m.top || y > height - m.bottom) return null;
      const lines = shown.filter((s) => s.values[i]! > 0).map((s) => `${s.name}: ${s.values[i]} ${spec.unit}`);
      const max = 16;
      return [spec.categories[i]!, ...lines.slice(0, max), ...(lines.length > max ? [`… ${lines.length - max} more`] : [])].join("\n");
    },
  };
}

/** Stacked bars with a legend whose entries switch a series off and on. */
export function StackedBars({ categories, series, yMax, unit, title, subtitle, height, name, testId, onDrawn, width }: Omit<StackedBarSpec, "hidden"> & { height: number; name: string; testId: string; onDrawn?: (name: string) => void; width?: number }) {
  const [hidden, setHidden] = useState<ReadonlySet<string>>(new Set());
  const drawing = useMemo(() => stackedBarDrawing({ categories, series, hidden, yMax, unit, title, subtitle }), [categories, series, hidden, yMax, unit, title, subtitle]);
  const toggle = (n: string) =>
    setHidden((h) => {
      const next = new Set(h);
      if (!next.delete(n)) next.add(n);
      return next;
    });
  return (
    <div>
      <div className="legend" style={{ maxHeight: 40, overflow: "auto", margin: "0 0 4px" }} data-testid={`${testId}-legend`}>
        {series.map((s) => (
          <span key={s.name} onClick={() => toggle(s.name)} style={{ cursor: "pointer", opacity: hidden.has(s.name) ? 0.35 : 1 }} title="show / hide">
            <i style={{ background: s.color }} /> {s.name}
          </span>
        ))}
      </div>
      <CanvasChart drawing={drawing} height={height} name={name} testId={testId} onDrawn={onDrawn} width={width} />
    </div>
  );
}
