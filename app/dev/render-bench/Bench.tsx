"use client";
import { useEffect, useMemo, useRef, useState } from "react";
import { computeMetrics, metricsFromJSON, metricsToJSON } from "@/engine/routing/metrics";
import { syntheticTrace } from "@/engine/routing/synthetic";
import { INSPECTOR_VIEWS, RoutingInspectorView } from "@/app/inspector/RoutingInspector";
import { BaselineInspectorView } from "./BaselineInspector";

const frame = () => new Promise<void>((r) => requestAnimationFrame(() => r()));

interface Timing {
  /** computeMetrics inside the inspector (the "routing-metrics" performance measures of the round, summed). */
  metricsMs: number;
  /** Opening → the heatmap (the first view) drawn to its canvas. Current inspector only. */
  firstViewMs?: number;
  /** Opening → every view drawn (each reported its paint), before the browser paints the frame. */
  drawnMs: number;
  /** Opening → every view drawn and two animation frames later (the frame is on screen). */
  totalMs: number;
  /** Other performance measures of the round (per chart paint, token-strip layout), ms. */
  parts: Record<string, number>;
}

/**
 * Opens the routing inspector on a synthetic trace held in memory (no fetch) and times it until every view
 * is drawn: heatmap, Fig. 7, Fig. 8, token strip, co-activation, transitions, balance table. Twice: the
 * first round is "cold" (a fresh page: code not yet compiled), the second opens a different trace in the
 * warm page, as when an inspector is opened in a running app. impl=baseline opens the frozen copy of the
 * inspector before the render work instead. impl=precomputed opens the current inspector with the "all
 * tokens" metrics precomputed, as the Routing Inspector node writes them (its metricsFile): they are computed
 * and serialised to JSON text before the round (the server's work, not timed); parsing that text
 * (JSON.parse + metricsFromJSON, the "metrics-parse" measure) is timed inside the round. impl=current
 * computes them in the page (counting on the main thread, entropy in a worker), as for an older report.
 * Query: layers, experts, tokens (default 28 × 64 × 4,096), impl.
 */
export default function Bench() {
  const q = new URLSearchParams(typeof location === "undefined" ? "" : location.search);
  const dims = { layers: Number(q.get("layers") ?? 28), routed: Number(q.get("experts") ?? 64), tokens: Number(q.get("tokens") ?? 4096) };
  const IMPLS = ["baseline", "current", "precomputed"] as const;
  const impl = IMPLS.find((i) => i === q.get("impl")) ?? "current";
  const pre = impl === "precomputed";
  const traces = useMemo(
    () => [1, 2].map((seed) => syntheticTrace({ seed, layers: dims.layers, routed: dims.routed, nulls: 1, shared: 2, tokens: dims.tokens })),
    [dims.layers, dims.routed, dims.tokens],
  );
  // The metrics file's text, as the server writes it (setup, before any round).
  const metricsText = useMemo(() => (pre ? traces.map((t) => JSON.stringify(metricsToJSON(computeMetrics(t)))) : null), [pre, traces]);
  const [round, setRound] = useState<{ index: number; t0: number } | null>(null);
  const [timings, setTimings] = useState<Timing[]>([]);
  const seen = useRef(new Map<string, number>());
  const onViewDrawn = useMemo(() => (name: string) => {
    if (!seen.current.has(name)) seen.current.set(name, performance.now());
  }, []);
  useEffect(() => {
    const id = setTimeout(() => open(0), 50);
    return () => clearTimeout(id);
  }, []);
  function open(index: number) {
    seen.current = new Map();
    performance.clearMeasures();
    setRound({ index, t0: performance.now() });
  }
  useEffect(() => {
    if (!round) return;
    void (async () => {
      // Effects run after the views' own layout effects and the charts' setOption: everything is drawn
      // unless a view is still pending, then wait for it.
      if (impl !== "baseline") while (INSPECTOR_VIEWS.some((v) => !seen.current.has(v))) await frame();
      const drawnAt = impl !== "baseline" ? Math.max(...seen.current.values()) : performance.now();
      await frame();
      await frame();
      const totalMs = performance.now() - round.t0;
      const parts: Record<string, number> = {};
      let metricsMs = 0;
      for (const e of performance.getEntriesByType("measure")) {
        if (e.name === "routing-metrics") metricsMs += e.duration;
        else parts[e.name] = (parts[e.name] ?? 0) + e.duration;
      }
      const heat = seen.current.get("heatmap");
      setTimings((ts) => [...ts, { metricsMs, drawnMs: drawnAt - round.t0, totalMs, parts, firstViewMs: heat === undefined ? undefined : heat - round.t0 }]);
      if (round.index === 0) {
        setRound(null); // close the inspector, then open the second trace in the warm page
        setTimeout(() => open(1), 100);
      }
    })();
  }, [round, impl]);
  const [cold, warm] = timings;
  const trace = round ? traces[round.index]! : null;
  const precomputed = useMemo(() => {
    if (!round || !metricsText) return undefined;
    performance.mark("metrics-parse-start");
    const m = metricsFromJSON(JSON.parse(metricsText[round.index]!));
    performance.measure("metrics-parse", "metrics-parse-start");
    return m;
  }, [round, metricsText]);
  return (
    <main style={{ padding: 16 }}>
      <h1 style={{ fontSize: 16 }}>
        Render bench ({impl}): {dims.layers} layers × {dims.routed} experts × {dims.tokens} tokens
      </h1>
      <p
        data-testid="render-result"
        data-impl={impl}
        data-cold-ms={cold?.totalMs}
        data-total-ms={warm?.totalMs}
        data-drawn-ms={warm?.drawnMs}
        data-first-ms={warm?.firstViewMs}
        data-metrics-ms={warm?.metricsMs}
        data-cold-metrics-ms={cold?.metricsMs}
        data-parts={warm && JSON.stringify(warm.parts)}
      >
        {warm && cold ? `warm: metrics ${warm.metricsMs.toFixed(1)} ms, all views drawn ${warm.drawnMs.toFixed(1)} ms, on screen ${warm.totalMs.toFixed(1)} ms; cold (first in a fresh page): ${cold.totalMs.toFixed(1)} ms` : "running…"}
      </p>
      {trace && round && (impl !== "baseline" ? (
        <RoutingInspectorView key={round.index} trace={trace} precomputed={precomputed} title="Routing Inspector (bench)" onClose={() => {}} onViewDrawn={onViewDrawn} />
      ) : (
        <BaselineInspectorView key={round.index} trace={trace} title="Routing Inspector (baseline)" onClose={() => {}} />
      ))}
    </main>
  );
}
