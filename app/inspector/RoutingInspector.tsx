"use client";
import { useEffect, useLayoutEffect, useMemo, useRef, useState } from "react";
import { createPortal } from "react-dom";
import { activeParameters } from "@/engine/routing/active";
import { dropCounts, droppedExperts, type LayerDrops } from "@/engine/routing/drops";
import { traceFromJSON, traceToCSV, traceToJSONString } from "@/engine/routing/export";
import { traceToSafetensors } from "@/engine/routing/safetensors-export";
import { computeMetrics, metricsFromJSON, selectTokens, withEntropy, type RoutingMetrics, type TokenFilter } from "@/engine/routing/metrics";
import type { Modality, Phase, RoutingTrace } from "@/engine/trace";
import { entropySumsInWorker } from "./entropy-worker";
import { CanvasChart, colorOf, heatGridDrawing, StackedBars, type ChartDrawing, type ColorScale } from "./CanvasChart";
import { expertColor, layerNames, PALETTE, stackedSeries } from "./routing-figures";

export { stackedSeries };
import { useFileUrl } from "./file-url";
import { useEscape } from "@/app/lib/use-escape";
import { downloadBlob } from "@/app/lib/download";
import { LensView } from "./LensView";


/** Fetches and parses a trace file ("" = none yet: nothing is fetched). */
export function useTrace(traceFile: string): { trace?: RoutingTrace; error?: string } {
  const [state, setState] = useState<{ trace?: RoutingTrace; error?: string }>({});
  const fileUrl = useFileUrl();
  useEffect(() => {
    if (!traceFile) return;
    let live = true;
    fetch(fileUrl(traceFile))
      .then(async (r) => {
        if (!r.ok) throw new Error(`the trace file is missing (${r.status})`);
        return traceFromJSON(await r.json(), { semantics: false });
      })
      .then((trace) => live && setState({ trace }))
      .catch((err: Error) => live && setState({ error: err.message }));
    return () => {
      live = false;
    };
  }, [traceFile, fileUrl]);
  return state;
}

/**
 * The precomputed "all tokens" metrics of a report (its metricsFile), fetched alongside the trace. `done`
 * once settled: `metrics` undefined when there is no file or it could not be read (the inspector then
 * computes the metrics itself).
 */
export function usePrecomputedMetrics(metricsFile?: string): { done: boolean; metrics?: RoutingMetrics } {
  const [state, setState] = useState<{ file?: string; metrics?: RoutingMetrics } | null>(null);
  const fileUrl = useFileUrl();
  useEffect(() => {
    if (!metricsFile) return;
    let live = true;
    fetch(fileUrl(metricsFile))
      .then(async (r) => {
        if (!r.ok) throw new Error(`the metrics file is missing (${r.status})`);
        return metricsFromJSON(await r.json());
      })
      .then((metrics) => live && setState({ file: metricsFile, metrics }))
      .catch(() => live && setState({ file: metricsFile }));
    return () => {
      live = false;
    };
  }, [metricsFile, fileUrl]);
  if (!metricsFile) return { done: true };
  return state?.file === metricsFile ? { done: true, metrics: state.metrics } : { done: false };
}

/**
 * Top expert (dynamic index, -1 = none) of each token of `rows` at one layer: the selected dynamic expert
 * with the largest weight, ties to the lowest column, the first selected one if every weight is NaN — the
 * rule of computeMetrics' perToken.topExpert, for metrics that come without per-token data.
 */
export function topExpertsAt(trace: RoutingTrace, dynCols: ArrayLike<number>, rows: ArrayLike<number>, layer: number): Int32Array {
  const { mask, weights: w } = trace.layers[layer]!;
  const E = trace.experts.length;
  const D = dynCols.length;
  const out = new Int32Array(rows.length);
  for (let i = 0; i < rows.length; i++) {
    const base = rows[i]! * E;
    let best = -1;
    let first = -1;
    let bw = -Infinity;
    for (let d = 0; d < D; d++) {
      const c = base + dynCols[d]!;
      if (mask[c] !== 0) {
        if (first < 0) first = d;
        if (w[c]! > bw) {
          bw = w[c]!;
          best = d;
        }
      }
    }
    out[i] = best >= 0 ? best : first;
  }
  return out;
}

/** Rows of the token set and a per-layer top-expert lookup: from m.perToken, or computed per layer on demand. */
function tokenTops(trace: RoutingTrace, m: RoutingMetrics): { rows: Int32Array; topAt: (layer: number) => Int32Array } {
  const per = m.perToken;
  if (per) {
    const N = per.tokenIndices.length;
    return { rows: per.tokenIndices, topAt: (l) => per.topExpert.subarray(l * N, (l + 1) * N) };
  }
  const rows = selectTokens(trace);
  if (rows.length !== m.tokens) throw new Error("per-token tops: the metrics are not of every token of the trace");
  const dynCols = Int32Array.from(m.experts.dynamic, (e) => e.column);
  const cache = new Map<number, Int32Array>();
  return {
    rows,
    topAt: (l) => {
      let t = cache.get(l);
      if (!t) cache.set(l, (t = topExpertsAt(trace, dynCols, rows, l)));
      return t;
    },
  };
}


const LOAD_SCALE: ColorScale = { min: 0, max: 1, stops: ["#111827", "#1d4ed8", "#60a5fa", "#fde68a"] };
const SHARED_SCALE: ColorScale = { min: 0, max: 1, stops: ["#111827", "#065f46", "#34d399"] };
const DROP_SCALE: ColorScale = { min: 0, max: 1, stops: ["#111827", "#7f1d1d", "#f87171"] };

const denseCount = (trace: RoutingTrace) => trace.layerInfo?.filter((l) => l.kind === "dense").length ?? 0;

/** Every decoder layer with its routing rule; dense layers (no router) are rows of their own, never a gap. */
function LayerRules({ info }: { info: NonNullable<RoutingTrace["layerInfo"]> }) {
  // consecutive layers with the same rule share a row
  const runs: { from: number; to: number; kind: string; rule: string }[] = [];
  for (const l of info) {
    const last = runs.at(-1);
    if (last && last.rule === l.rule && last.kind === l.kind && last.to === l.layer - 1) last.to = l.layer;
    else runs.push({ from: l.layer, to: l.layer, kind: l.kind, rule: l.rule });
  }
  return (
    <table className="layer-rules" data-testid="layer-rules">
      <tbody>
        {runs.map((r) => (
          <tr key={r.from} className={r.kind} data-kind={r.kind}>
            <td>{r.from === r.to ? `L${r.from}` : `L${r.from}–L${r.to}`}</td>
            <td>{r.kind === "dense" ? "dense (no routing)" : "MoE"}</td>
            <td>{r.rule}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

/**
 * The expert-load heatmap on a canvas: dynamic experts (token share), a shared-experts lane (weight share) and, for a
 * trace with capacity drops, a "Dropped" lane (share of tokens that lost an expert over capacity at that layer); with
 * the trace's `layerInfo`, one row per decoder layer, a dense layer's row empty (no routing) and labelled so.
 */
export function heatmapDrawing(m: RoutingMetrics, { colorBar = true, compact = false, layerInfo }: { colorBar?: boolean; compact?: boolean; layerInfo?: RoutingTrace["layerInfo"] } = {}, drops?: LayerDrops[] | null): ChartDrawing {
  const dyn = m.experts.dynamic.map((e) => e.name);
  const lanes = drops ? 2 : 1;
  const C = dyn.length + lanes;
  const indexOf = new Map(m.layers.map((l, j) => [l.layer, j]));
  const rows = layerInfo ? layerInfo.map((i) => i.layer) : m.layers.map((l) => l.layer);
  const values = new Float64Array(rows.length * C).fill(NaN);
  rows.forEach((layer, y) => {
    const j = indexOf.get(layer);
    if (j === undefined) return;
    const l = m.layers[j]!;
    for (let x = 0; x < dyn.length; x++) values[y * C + x] = l.tokenShare[x]!;
    values[y * C + dyn.length] = l.sharedWeightShare;
    if (drops) values[y * C + dyn.length + 1] = m.tokens > 0 ? drops[j]!.tokens / m.tokens : 0;
  });
  const tip = (y: number, x: number, v: number) => {
    if (x < dyn.length) return `${dyn[x]}: ${(v * 100).toFixed(1)} % of tokens`;
    if (x === dyn.length) return `shared experts: ${(v * 100).toFixed(1)} % of the weight`;
    const d = drops![indexOf.get(rows[y]!)!]!;
    return `dropped over capacity: ${d.assignments} assignment${d.assignments === 1 ? "" : "s"}, ${d.tokens} token${d.tokens === 1 ? "" : "s"} (${(v * 100).toFixed(1)} %)`;
  };
  return heatGridDrawing({
    rows: rows.map((layer) => (indexOf.has(layer) ? `L${layer}` : `L${layer} dense`)),
    cols: [...dyn, "Shared (w)", ...(drops ? ["Dropped"] : [])],
    values,
    scaleOf: (c) => (c < dyn.length ? LOAD_SCALE : c === dyn.length ? SHARED_SCALE : DROP_SCALE),
    tooltip: (y, x, v) => (indexOf.has(rows[y]!) ? `${tip(y, x, v)} at L${rows[y]}` : `L${rows[y]}: dense MLP layer, no routing`),
    colorBar: colorBar ? { scale: LOAD_SCALE, label: "tokens" } : undefined,
    margin: compact ? { left: 32, right: 6, top: 4, bottom: 18 } : { left: 50, right: 90, top: 10, bottom: 40 },
    lanes,
  });
}

function matrixDrawing(names: string[], counts: Float64Array, label: string): ChartDrawing {
  let max = 0;
  for (let i = 0; i < counts.length; i++) max = Math.max(max, counts[i]!);
  const scale: ColorScale = { min: 0, max: Math.max(1, max), stops: ["#111827", "#7c3aed", "#f0abfc"] };
  const D = names.length;
  return heatGridDrawing({
    rows: names,
    cols: names,
    values: counts.length === D * D ? counts : new Float64Array(D * D),
    scaleOf: () => scale,
    tooltip: (a, b, v) => `${names[a]} → ${names[b]}: ${v} ${label}`,
    cellLabel: D <= 12 ? (v) => String(v) : undefined,
    margin: { left: 60, right: 20, top: 10, bottom: 30 },
  });
}

/** Runs `f` between performance marks (`performance.getEntriesByName(name)` gives the durations). */
function measured<T>(name: string, f: () => T): T {
  performance.mark(`${name}-start`);
  const out = f();
  performance.measure(name, `${name}-start`);
  return out;
}

const billions = (n: number) => (n >= 1e9 ? `${(n / 1e9).toFixed(2)} B` : n >= 1e6 ? `${(n / 1e6).toFixed(2)} M` : `${Math.round(n)}`);

const STRIP_ROW = 19; // a token is 15 px of text + 2 px padding, plus the 2 px gap
const STRIP_OVERSCAN = 3; // rows drawn above and below the visible ones
const tokenLabel = (text: string) => text.replace(/\n/g, "⏎") || "·";

/** Greedy line breaks of tokens of the given widths into lines of `width` px (gap 2 px): start index of each line. */
export function breakLines(widths: ArrayLike<number>, width: number, gap = 2): Int32Array {
  const starts: number[] = [];
  let x = Infinity;
  for (let i = 0; i < widths.length; i++) {
    const w = widths[i]!;
    if (x + gap + w > width && x > 0) {
      starts.push(i);
      x = w;
    } else x += gap + w;
  }
  return Int32Array.from(starts);
}

/**
 * Tokens coloured by their top expert at `layer`, with every layer's choice, k and weights on hover.
 * Virtualised: token widths are measured on a canvas and broken into lines, and only the lines in the
 * strip's scroll window (plus a few) are in the DOM, so a 4,096-token trace costs ~30 rows, not 4,096 spans.
 */
export function TokenStrip({ trace, m, layer, onDrawn, width, font, colorBy = "expert" }: { trace: RoutingTrace; m: RoutingMetrics; layer: number; onDrawn?: (name: string) => void; width?: number; font?: string; colorBy?: "expert" | "nll" }) {
  const [hover, setHover] = useState<number | null>(null);
  const box = useRef<HTMLDivElement>(null);
  // `width` and `font` (the strip's inner width and font, measured by the inspector once) let the first
  // render break the lines without reading layout; the strip's height is its max-height until observed.
  const [view, setView] = useState({ width: width ?? 0, font: font ?? "", top: 0, height: 200 });
  const viewRef = useRef(view);
  viewRef.current = view;
  const tops = useMemo(() => tokenTops(trace, m), [trace, m]);
  const per = { tokenIndices: tops.rows };
  const N = per.tokenIndices.length;
  const E = trace.experts.length;
  const hasDrops = trace.layers.some((l) => l.dropped);
  useLayoutEffect(() => {
    const el = box.current!;
    if (!viewRef.current.width) setView((v) => ({ ...v, width: el.clientWidth, font: getComputedStyle(el).font, height: el.clientHeight || 200 }));
    // Later resizes; the first report (on observe) changes nothing when the size is the one drawn at.
    const ro = new ResizeObserver((entries) => {
      const r = entries[entries.length - 1]!.contentRect;
      const w = Math.round(r.width);
      const h = Math.round(r.height) || 200;
      const v = viewRef.current;
      // 0 wide: not laid out (skipped by content-visibility until scrolled near): keep the lines.
      if (w && (w !== v.width || h !== v.height)) setView((v) => ({ ...v, width: w, height: h, font: v.font || getComputedStyle(el).font }));
    });
    ro.observe(el);
    return () => ro.disconnect();
  }, []);
  const labels = useMemo(() => Array.from(tops.rows, (r) => tokenLabel(trace.tokens[r]!.text)), [trace, tops]);
  const nll = useMemo(() => nllColors(trace), [trace]);
  const starts = useMemo(() => {
    if (!view.width) return null;
    performance.mark("token-strip-layout-start");
    const ctx = document.createElement("canvas").getContext("2d")!;
    ctx.font = view.font;
    // The strip's font is monospace: an ASCII token is the sum of its characters' widths (each measured
    // once); anything else (wide or combined characters) is measured whole.
    const ascii = new Float64Array(128).fill(-1);
    const whole = new Map<string, number>();
    const textWidth = (t: string) => {
      let w = 0;
      for (let j = 0; j < t.length; j++) {
        const c = t.charCodeAt(j);
        if (c >= 128) {
          let v = whole.get(t);
          if (v === undefined) whole.set(t, (v = ctx.measureText(t).width));
          return v;
        }
        if (ascii[c]! < 0) ascii[c] = ctx.measureText(t[j]!).width;
        w += ascii[c]!;
      }
      return w;
    };
    const widths = new Float64Array(labels.length);
    labels.forEach((t, i) => (widths[i] = Math.ceil(textWidth(t)) + 7)); // + padding 2 × 3 px, + 1 for rounding
    const out = breakLines(widths, view.width - 4);
    performance.measure("token-strip-layout", "token-strip-layout-start");
    return out;
  }, [labels, view.width, view.font]);
  const lines = starts ? starts.length : 0;
  const first = Math.max(0, Math.floor(view.top / STRIP_ROW) - STRIP_OVERSCAN);
  const last = Math.min(lines, Math.ceil((view.top + view.height) / STRIP_ROW) + STRIP_OVERSCAN);
  const drawnRef = useRef(onDrawn);
  drawnRef.current = onDrawn;
  useLayoutEffect(() => {
    if (starts) drawnRef.current?.("token-strip");
  }, [starts, layer]);
  const detail = hover === null ? null : (
    <div className="token-detail" data-testid="token-detail">
      <strong>
        “{trace.tokens[per.tokenIndices[hover]!]!.text}” · token {per.tokenIndices[hover]} · {trace.tokens[per.tokenIndices[hover]!]!.modality} · {trace.tokens[per.tokenIndices[hover]!]!.phase}
        {trace.tokens[per.tokenIndices[hover]!]!.nll !== undefined && ` · NLL ${trace.tokens[per.tokenIndices[hover]!]!.nll!.toFixed(3)} nats`}
      </strong>
      <table>
        <thead>
          <tr>
            <th>layer</th>
            <th>top</th>
            <th>k</th>
            <th>weights</th>
            {hasDrops && <th>dropped</th>}
          </tr>
        </thead>
        <tbody>
          {trace.layers.map((l, li) => {
            const row = per.tokenIndices[hover]!;
            const top = tops.topAt(li)[hover]!;
            const ws = trace.experts.map((e, j) => ({ e, w: l.weights[row * E + j]!, on: l.mask[row * E + j] === 1 })).filter((x) => x.on);
            return (
              <tr key={li}>
                <td>L{l.layer ?? li}</td>
                <td>{top >= 0 ? m.experts.dynamic[top]!.name : "—"}</td>
                <td>{l.k[row]}</td>
                <td>{ws.map((x) => `${x.e.name} ${x.w.toFixed(3)}`).join(" · ")}</td>
                {hasDrops && <td data-testid="token-dropped">{droppedExperts(trace, li, row).join(" · ")}</td>}
              </tr>
            );
          })}
        </tbody>
      </table>
    </div>
  );
  const rows = [];
  const topsHere = tops.topAt(layer);
  for (let line = first; line < last && starts; line++) {
    const end = line + 1 < lines ? starts[line + 1]! : N;
    const spans = [];
    for (let n = starts[line]!; n < end; n++) {
      const top = topsHere[n]!;
      const t = trace.tokens[per.tokenIndices[n]!]!;
      spans.push(
        <span key={n} className={`tok ${t.phase === "decode" ? "decode" : ""}`} style={{ background: colorBy === "nll" ? nll.color(t.nll) : top >= 0 ? expertColor(m, top) : "#333", lineHeight: "15px" }} onMouseEnter={() => setHover(n)} data-testid="token">
          {labels[n]}
        </span>,
      );
    }
    rows.push(
      <div key={line} style={{ position: "absolute", top: line * STRIP_ROW + 2, left: 2, right: 2, display: "flex", gap: 2, whiteSpace: "nowrap" }}>
        {spans}
      </div>,
    );
  }
  return (
    <div>
      <div ref={box} className="token-strip" data-testid="token-strip" data-lines={lines} style={{ display: "block", position: "relative", scrollbarGutter: "stable" }} onScroll={(e) => setView((v) => ({ ...v, top: e.currentTarget.scrollTop }))}>
        <div style={{ height: lines * STRIP_ROW + 4 }} />
        {rows}
      </div>
      {colorBy === "nll" ? (
        <div className="legend" data-testid="nll-legend">
          <span><i style={{ background: nll.color(0) }} /> NLL 0</span>
          <span><i style={{ background: nll.color(nll.max / 2) }} /> {(nll.max / 2).toFixed(2)}</span>
          <span><i style={{ background: nll.color(nll.max) }} /> {nll.max.toFixed(2)} nats</span>
          <span><i style={{ background: nll.color(undefined) }} /> not scored</span>
        </div>
      ) : (
        <div className="legend">
          {m.experts.dynamic.map((e, d) => (
            <span key={e.name}>
              <i style={{ background: expertColor(m, d) }} /> {e.name}
            </span>
          ))}
        </div>
      )}
      {detail ?? <p className="muted">Hover a token to see every layer’s choice, k and weights ({N} tokens; scroll the strip for more).</p>}
    </div>
  );
}

/** Token colours by teacher-forced NLL: 0 green → the trace's largest NLL red; tokens without one grey. */
function nllColors(trace: RoutingTrace): { max: number; color: (v: number | undefined) => string } {
  let max = 0;
  for (const t of trace.tokens) if (t.nll !== undefined) max = Math.max(max, t.nll);
  const scale = colorOf({ min: 0, max: max || 1, stops: ["#15803d", "#ca8a04", "#b91c1c"] });
  return { max, color: (v) => (v === undefined ? "#3a3d4a" : scale(v)) };
}

function BalanceTable({ m, drops, onDrawn }: { m: RoutingMetrics; drops?: LayerDrops[] | null; onDrawn?: (name: string) => void }) {
  const pct = (v: number) => `${(v * 100).toFixed(1)}`;
  const drawnRef = useRef(onDrawn);
  drawnRef.current = onDrawn;
  // Drawn once the entropy column is filled (it comes from a worker; NaN until then).
  const complete = m.layers.every((l) => !Number.isNaN(l.entropy));
  useLayoutEffect(() => {
    if (complete) drawnRef.current?.("balance-table");
  }, [m, complete]);
  return (
    <table className="balance" data-testid="balance-table">
      <thead>
        <tr>
          <th>layer</th>
          {m.experts.dynamic.map((e) => (
            <th key={e.name}>{e.name} %</th>
          ))}
          <th>mean k</th>
          <th>k distribution</th>
          <th>null %</th>
          <th>shared w %</th>
          <th>CV</th>
          <th>MaxVio</th>
          <th>Jain</th>
          <th title="router entropy divided by ln D (D = the dynamic experts): 0 = always the same expert, 1 = uniform">entropy / ln D</th>
          {drops && <th title="assignments dropped over capacity (tokens that lost an expert)">dropped</th>}
        </tr>
      </thead>
      <tbody>
        {m.layers.map((l) => (
          <tr key={l.layer}>
            <td>L{l.layer}</td>
            {l.tokenShare.map((v, d) => (
              <td key={d} data-testid={`share-L${l.layer}-${m.experts.dynamic[d]!.name}`}>
                {pct(v)}
              </td>
            ))}
            <td>{l.meanK.toFixed(2)}</td>
            <td data-testid={`kdist-L${l.layer}`}>
              {l.kShare
                .map((v, k) => ({ v, k }))
                .filter((x) => x.v > 0)
                .map((x) => `k=${x.k}: ${pct(x.v)}%`)
                .join(" · ")}
            </td>
            <td>{pct(l.nullTokenShare)}</td>
            <td>{pct(l.sharedWeightShare)}</td>
            <td>{l.loadCV.toFixed(3)}</td>
            <td>{l.maxVio.toFixed(3)}</td>
            <td>{l.jain.toFixed(3)}</td>
            <td>{Number.isNaN(l.entropyNormalized) ? "…" : l.entropyNormalized.toFixed(3)}</td>
            {drops && (
              <td data-testid={`dropped-L${l.layer}`}>
                {drops[l.layer]!.assignments} ({drops[l.layer]!.tokens})
              </td>
            )}
          </tr>
        ))}
      </tbody>
    </table>
  );
}

type Facet = "all" | `modality:${Modality}` | `phase:${Phase}`;

function filterOf(f: Facet): TokenFilter | undefined {
  if (f === "all") return undefined;
  const [key, value] = f.split(":") as ["modality" | "phase", string];
  return key === "modality" ? { modality: value as Modality } : { phase: value as Phase };
}

/** The views drawn by the inspector; each reports through `onViewDrawn` once it is on screen. */
export const INSPECTOR_VIEWS = ["heatmap", "fig7", "fig8", "token-strip", "coactivation", "transitions", "balance-table"] as const;

/**
 * The inspector dialog for a trace in memory: heatmap, Fig. 7 and Fig. 8 bars, token strip, co-activation,
 * transitions, balance table, exports. `onViewDrawn(name)` is called as each view is drawn (the render benchmark).
 * `precomputed`: the "all tokens" metrics of `trace` with entropy (from the Routing Inspector node's
 * metricsFile); used as they are for "all tokens", so only the other token sets are computed here.
 */
export function RoutingInspectorView({ trace, traceFile, precomputed, title, error, onClose, onViewDrawn }: { trace?: RoutingTrace; traceFile?: string; precomputed?: RoutingMetrics; title: string; error?: string; onClose: () => void; onViewDrawn?: (name: string) => void }) {
  useEscape(onClose);
  const [facet, setFacet] = useState<Facet>("all");
  const [layer, setLayer] = useState(0);
  const scored = useMemo(() => !!trace?.tokens.some((t) => t.nll !== undefined), [trace]);
  const [colorBy, setColorBy] = useState<"expert" | "nll">("expert");
  const fileUrl = useFileUrl();
  // The router entropy (over half the metrics time) is computed in a Web Worker, started here before the
  // counting pass so the two run in parallel; the balance table shows it when it arrives.
  // With precomputed metrics, "all tokens" needs neither.
  const usePre = !!precomputed && !!trace;
  const entropyJob = useMemo(() => (trace && !(usePre && facet === "all") ? { facet, sums: entropySumsInWorker(trace, selectTokens(trace, filterOf(facet))) } : undefined), [trace, facet, usePre]);
  const all = useMemo(() => (trace ? (usePre ? precomputed : measured("routing-metrics", () => computeMetrics(trace, { entropy: false }))) : undefined), [trace, usePre, precomputed]);
  // "all tokens" is the unfiltered set: the same metrics, computed once.
  const m = useMemo(() => (trace && facet !== "all" ? measured("routing-metrics", () => computeMetrics(trace, { filter: filterOf(facet), entropy: false })) : all), [trace, facet, all]);
  const [entropy, setEntropy] = useState<{ job: unknown; sums: Float64Array } | null>(null);
  useEffect(() => {
    let live = true;
    entropyJob?.sums.then((sums) => live && setEntropy({ job: entropyJob, sums }));
    return () => {
      live = false;
    };
  }, [entropyJob]);
  const balance = useMemo(() => (m && entropy && entropy.job === entropyJob ? withEntropy(m, entropy.sums) : m), [m, entropy, entropyJob]);
  const names = useMemo(() => m?.experts.dynamic.map((e) => e.name) ?? [], [m]);
  const rows = useMemo(() => (trace && m ? (m.perToken?.tokenIndices ?? selectTokens(trace, filterOf(facet))) : null), [trace, m, facet]);
  // capacity drops of the tokens shown (null when the trace records none), and the parameters they ran
  const drops = useMemo(() => (trace && rows ? dropCounts(trace, rows) : null), [trace, rows]);
  const active = useMemo(() => (trace && rows ? activeParameters(trace, rows) : null), [trace, rows]);
  const dropTotal = drops?.reduce((a, d) => a + d.assignments, 0) ?? 0;
  const charts = useMemo(() => m && { heatmap: heatmapDrawing(m, { layerInfo: trace?.layerInfo }, drops), fig7: stackedSeries(m, "share"), fig8: stackedSeries(m, "k"), layers: layerNames(m) }, [m, trace, drops]);
  const pair = m ? Math.min(layer, m.transitions.length - 1) : 0;
  const coact = useMemo(() => m && matrixDrawing(names, m.layers[layer]?.coactivation ?? new Float64Array(), "tokens chose both"), [m, names, layer]);
  const transitions = useMemo(() => m && matrixDrawing(names, m.transitions[pair]?.counts ?? new Float64Array(), "tokens"), [m, names, pair]);
  // Sizes, measured once: the views first mount as empty boxes of their final heights (a cheap layout), the
  // inspector reads the width of a wide and a half column and the strip's font in one go, and the views
  // then draw at those sizes without reading layout themselves (each reading it forced a layout of the
  // whole dialog, and their resize observers then re-rendered). Later resizes: each view's own observer.
  const ready = !!(trace && m && charts && coact && transitions);
  const wideProbe = useRef<HTMLDivElement>(null);
  const halfProbe = useRef<HTMLDivElement>(null);
  const stripProbe = useRef<HTMLDivElement>(null);
  const bodyRef = useRef<HTMLDivElement>(null);
  const [sizes, setSizes] = useState<{ wide: number; half: number; strip: number; font: string } | null>(null);
  useLayoutEffect(() => {
    const body = bodyRef.current;
    if (!ready || sizes || !body || !wideProbe.current || !halfProbe.current || !stripProbe.current) return;
    setSizes({ wide: wideProbe.current.clientWidth, half: halfProbe.current.clientWidth, strip: stripProbe.current.clientWidth, font: getComputedStyle(stripProbe.current).font });
  }, [ready, sizes]);
  const heatHeight = m ? Math.max(220, 22 * (trace?.layerInfo?.length ?? m.layers.length) + 60) : 0;
  const box = (height: number, ref?: React.RefObject<HTMLDivElement | null>) => <div ref={ref} style={{ height }} />;
  // A portal: the node that opens it sits inside React Flow's transformed viewport.
  return createPortal(
    <div className="inspector-backdrop" onMouseDown={(e) => e.target === e.currentTarget && onClose()}>
      <div className="inspector" role="dialog" aria-label="Routing Inspector">
        <header>
          <h2>{title}</h2>
          {trace && (
            <span className="muted">
              {trace.model} · {trace.tokens.length} tokens · {trace.layers.length} layers{denseCount(trace) ? ` with a router (+ ${denseCount(trace)} dense)` : ""} · {trace.experts.length} experts
              {trace.routingPrecision === "bf16" && " · routing in bf16 (as released)"}
              {active && (
                <span data-testid="active-parameters" title={`mean k ${active.meanK.toFixed(2)}, ${active.routedPerLayer.toFixed(2)} routed experts per layer run on average`}>
                  {" "}
                  · ≈{billions(active.expected)} of {billions(active.total)} parameters active per token
                </span>
              )}
              {drops && (
                <span data-testid="dropped-count">
                  {" "}
                  · {dropTotal} assignment{dropTotal === 1 ? "" : "s"} dropped over capacity{facet === "all" ? "" : " (these tokens)"}
                </span>
              )}
            </span>
          )}
          <span className="spacer" />
          {all && (
            <select value={facet} onChange={(e) => setFacet(e.target.value as Facet)} aria-label="Tokens">
              <option value="all">all tokens</option>
              {Object.keys(all.byModality).map((k) => (
                <option key={k} value={`modality:${k}`}>{k} tokens ({all.byModality[k]})</option>
              ))}
              {Object.keys(all.byPhase).map((k) => (
                <option key={k} value={`phase:${k}`}>{k} ({all.byPhase[k]})</option>
              ))}
            </select>
          )}
          {trace && (
            <label>
              layer{" "}
              <select value={layer} onChange={(e) => setLayer(Number(e.target.value))} aria-label="Layer">
                {trace.layers.map((l, i) => (
                  <option key={i} value={i}>L{l.layer ?? i}</option>
                ))}
              </select>
            </label>
          )}
          {traceFile ? (
            <a className="button-like" href={fileUrl(traceFile)} download="routing-trace.json">JSON</a>
          ) : (
            <button onClick={() => trace && downloadBlob("routing-trace.json", new Blob([traceToJSONString(trace)], { type: "application/json" }))} disabled={!trace}>JSON</button>
          )}
          <button onClick={() => trace && downloadBlob("routing-trace.csv", new Blob([traceToCSV(trace)], { type: "text/csv" }))} disabled={!trace}>CSV</button>
          <button onClick={() => trace && downloadBlob("routing-trace.safetensors", new Blob([traceToSafetensors(trace) as Uint8Array<ArrayBuffer>], { type: "application/octet-stream" }))} disabled={!trace} title="router_logits, mask, weights, k per layer, for safetensors.numpy.load_file">
            safetensors
          </button>
          <button onClick={onClose} aria-label="Close inspector">×</button>
        </header>
        {error && <div className="banner error">{error}</div>}
        {!trace && !error && <p className="muted">Loading the trace…</p>}
        {trace && m && charts && coact && transitions && (
          // The empty boxes have the views' heights, so the dialog overflows (or not) as it will with the views.
          // The strip's scrollbar gutter is stable: its empty box measures the width the filled strip has.
          <div ref={bodyRef} className="inspector-body">
            <p className="muted convention">{trace.convention}</p>
            {trace.layerInfo && <LayerRules info={trace.layerInfo} />}
            <section className="wide">
              <h3>Expert load: share of tokens per layer and expert (shared experts: weight share{drops ? "; dropped: share of tokens that lost an expert over capacity" : ""})</h3>
              {sizes ? <CanvasChart drawing={charts.heatmap} height={heatHeight} width={sizes.wide} name="expert-load-heatmap" testId="heatmap" onDrawn={onViewDrawn} /> : box(heatHeight, wideProbe)}
            </section>
            <section>
              <h3>Expert share per layer (Fig. 7)</h3>
              {sizes ? <StackedBars categories={charts.layers} series={charts.fig7} yMax={100} unit="%" height={260} width={sizes.half} name="fig7-expert-share" testId="fig7" onDrawn={onViewDrawn} /> : box(330, halfProbe)}
            </section>
            <section>
              <h3>Experts per token, k (Fig. 8)</h3>
              {sizes ? <StackedBars categories={charts.layers} series={charts.fig8} yMax={100} unit="%" height={260} width={sizes.half} name="fig8-k" testId="fig8" onDrawn={onViewDrawn} /> : box(330)}
            </section>
            <section className="wide">
              <h3>
                {colorBy === "nll" ? "Tokens coloured by their teacher-forced NLL" : `Tokens coloured by their top expert at L${trace.layers[layer]?.layer ?? layer}`}
                {scored && (
                  <>
                    {" "}
                    <select value={colorBy} onChange={(e) => setColorBy(e.target.value as "expert" | "nll")} aria-label="Colour tokens by">
                      <option value="expert">colour by top expert</option>
                      <option value="nll">colour by NLL</option>
                    </select>
                  </>
                )}
              </h3>
              {sizes ? <TokenStrip trace={trace} m={m} layer={layer} onDrawn={onViewDrawn} width={sizes.strip} font={sizes.font} colorBy={colorBy} /> : <div ref={stripProbe} className="token-strip" style={{ display: "block", height: 200, scrollbarGutter: "stable" }} />}
            </section>
            {trace.lens && (
              <section className="wide">
                <h3>Logit lens: what each layer would predict next (residual stream → final norm → LM head)</h3>
                <LensView trace={trace} />
              </section>
            )}
            <section>
              <h3>Co-activation at L{layer} (all pairs)</h3>
              {sizes ? <CanvasChart drawing={coact} height={240} width={sizes.half} name={`coactivation-L${layer}`} testId="coactivation" onDrawn={onViewDrawn} /> : box(262)}
            </section>
            <section>
              <h3>Top-expert transitions L{pair} → L{pair + 1}</h3>
              {sizes ? <CanvasChart drawing={transitions} height={240} width={sizes.half} name={`transitions-L${layer}`} testId="transitions" onDrawn={onViewDrawn} /> : box(262)}
            </section>
            <section className="wide">
              <h3>Balance per layer</h3>
              {sizes ? <BalanceTable m={balance ?? m} drops={drops} onDrawn={onViewDrawn} /> : box(22 * (m.layers.length + 1))}
            </section>
          </div>
        )}
      </div>
    </div>,
    document.body,
  );
}

/** The full inspector for one trace file: heatmap, Fig. 7 and Fig. 8 bars, token strip, co-activation, transitions, balance table. */
export default function RoutingInspector({ traceFile, metricsFile, title, onClose }: { traceFile: string; metricsFile?: string; title: string; onClose: () => void }) {
  // Both files are fetched in parallel; the views wait for the metrics (or their absence) so that they
  // are not computed here in the meantime.
  const { trace, error } = useTrace(traceFile);
  const pre = usePrecomputedMetrics(metricsFile);
  return <RoutingInspectorView trace={pre.done ? trace : undefined} traceFile={traceFile} precomputed={pre.metrics} title={title} error={error} onClose={onClose} />;
}

/** The expert-load heatmap in small, for the node on the canvas. */
export function RoutingMini({ traceFile, metricsFile }: { traceFile: string; metricsFile?: string }) {
  // With precomputed metrics the heatmap needs no trace: it is not fetched.
  const pre = usePrecomputedMetrics(metricsFile);
  const { trace, error } = useTrace(pre.done && !pre.metrics ? traceFile : "");
  const m = useMemo(() => pre.metrics ?? (trace ? computeMetrics(trace, { entropy: false }) : undefined), [pre.metrics, trace]);
  const drawing = useMemo(() => (m ? heatmapDrawing(m, { colorBar: false, compact: true }) : undefined), [m]);
  if (error) return <div className="error-text">{error}</div>;
  if (!drawing) return null;
  return <CanvasChart drawing={drawing} height={Math.min(200, 14 * m!.layers.length + 30)} name="expert-load-mini" testId="heatmap-mini" />;
}

/** A Routing Inspector output in the node (app/inspector/views.tsx "routing-report"): the mini heatmap and a button that opens the inspector. */
export function RoutingReportView({ value }: { value: Record<string, unknown> }) {
  const [open, setOpen] = useState(false);
  if (typeof value.traceFile !== "string") return null;
  const metricsFile = typeof value.metricsFile === "string" ? value.metricsFile : undefined;
  return (
    <div className="report-mini nodrag">
      <RoutingMini traceFile={value.traceFile} metricsFile={metricsFile} />
      <button onClick={() => setOpen(true)}>Open inspector</button>
      {open && <RoutingInspector traceFile={value.traceFile} metricsFile={metricsFile} title="Routing Inspector" onClose={() => setOpen(false)} />}
    </div>
  );
}
