"use client";
import { useEffect, useMemo, useState } from "react";
import { computeMetrics } from "@/engine/routing/metrics";
import { syntheticTrace } from "@/engine/routing/synthetic";
import { Chart } from "@/app/inspector/Chart";
import { heatmapOption, stackedOption, TokenStrip } from "@/app/inspector/RoutingInspector";

const frame = () => new Promise<void>((r) => requestAnimationFrame(() => r()));

interface Timing {
  metricsMs: number;
  totalMs: number;
}

/**
 * Renders the routing views (heatmap, Fig. 7, Fig. 8, token strip) of a synthetic trace, twice: the first
 * render is "cold" (a fresh page: charting code not yet warm), the second draws a different trace into
 * new chart instances in the warm page, as when an inspector is opened in a running app. Each is timed from
 * computing the metrics to the charts being painted. Query: layers, experts, tokens (default 28 × 64 × 4,096),
 * strip=0 and charts=heat,fig7,fig8 to time parts.
 */
export default function Bench() {
  const q = new URLSearchParams(typeof location === "undefined" ? "" : location.search);
  const dims = { layers: Number(q.get("layers") ?? 28), routed: Number(q.get("experts") ?? 64), tokens: Number(q.get("tokens") ?? 4096) };
  const charts = q.get("charts");
  const show = (name: string) => !charts || charts.split(",").includes(name);
  const traces = useMemo(
    () => [1, 2].map((seed) => syntheticTrace({ seed, layers: dims.layers, routed: dims.routed, nulls: 1, shared: 2, tokens: dims.tokens })),
    [dims.layers, dims.routed, dims.tokens],
  );
  const [round, setRound] = useState<{ index: number; t0: number } | null>(null);
  const [timings, setTimings] = useState<Timing[]>([]);
  const views = useMemo(() => {
    if (!round) return null;
    const t = performance.now();
    const m = computeMetrics(traces[round.index]!);
    const metricsMs = performance.now() - t;
    return { m, metricsMs, heat: heatmapOption(m), fig7: stackedOption(m, "share"), fig8: stackedOption(m, "k") };
  }, [round, traces]);
  useEffect(() => {
    const id = setTimeout(() => setRound({ index: 0, t0: performance.now() }), 50);
    return () => clearTimeout(id);
  }, []);
  useEffect(() => {
    if (!views || !round) return;
    void (async () => {
      await frame();
      await frame();
      const timing = { metricsMs: views.metricsMs, totalMs: performance.now() - round.t0 };
      setTimings((ts) => [...ts, timing]);
      if (round.index === 0) setTimeout(() => setRound({ index: 1, t0: performance.now() }), 50);
    })();
  }, [views, round]);
  const cold = timings[0];
  const warm = timings[1];
  return (
    <main style={{ padding: 16 }}>
      <h1 style={{ fontSize: 16 }}>
        Render bench: {dims.layers} layers × {dims.routed} experts × {dims.tokens} tokens
      </h1>
      <p data-testid="render-result" data-cold-ms={cold?.totalMs} data-total-ms={warm?.totalMs} data-metrics-ms={warm?.metricsMs}>
        {warm && cold ? `warm: metrics ${warm.metricsMs.toFixed(1)} ms, metrics + drawing ${warm.totalMs.toFixed(1)} ms; cold (first in a fresh page): ${cold.totalMs.toFixed(1)} ms` : "running…"}
      </p>
      {views && round && (
        <div style={{ display: "grid", gap: 12 }} key={round.index}>
          {show("heat") && <Chart option={views.heat} height={700} name="bench-heatmap" testId="heatmap" />}
          {show("fig7") && <Chart option={views.fig7} height={300} name="bench-fig7" testId="fig7" />}
          {show("fig8") && <Chart option={views.fig8} height={300} name="bench-fig8" testId="fig8" />}
          {q.get("strip") !== "0" && <TokenStrip trace={traces[round.index]!} m={views.m} layer={0} />}
        </div>
      )}
    </main>
  );
}
