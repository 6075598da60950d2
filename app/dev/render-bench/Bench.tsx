"use client";
import { useEffect, useMemo, useState } from "react";
import { computeMetrics } from "@/engine/routing/metrics";
import { syntheticTrace } from "@/engine/routing/synthetic";
import { Chart } from "@/app/inspector/Chart";
import { heatmapOption, stackedOption, TokenStrip } from "@/app/inspector/RoutingInspector";

const frame = () => new Promise<void>((r) => requestAnimationFrame(() => r()));

/**
 * Generates a trace (layers × routed experts × tokens from the query string; default 28 × 64 × 4,096),
 * then measures metrics + drawing the heatmap, Fig. 7, Fig. 8 and the token strip until painted.
 */
export default function Bench() {
  const q = new URLSearchParams(typeof location === "undefined" ? "" : location.search);
  const dims = { layers: Number(q.get("layers") ?? 28), routed: Number(q.get("experts") ?? 64), tokens: Number(q.get("tokens") ?? 4096) };
  const trace = useMemo(() => syntheticTrace({ seed: 1, layers: dims.layers, routed: dims.routed, nulls: 1, shared: 2, tokens: dims.tokens }), [dims.layers, dims.routed, dims.tokens]);
  const [run, setRun] = useState<{ t0: number } | null>(null);
  const [result, setResult] = useState<{ metricsMs: number; totalMs: number } | null>(null);
  const views = useMemo(() => {
    if (!run) return null;
    const t = performance.now();
    const m = computeMetrics(trace);
    const metricsMs = performance.now() - t;
    return { m, metricsMs, heat: heatmapOption(m), fig7: stackedOption(m, "share"), fig8: stackedOption(m, "k") };
  }, [run, trace]);
  useEffect(() => {
    // Start after the trace exists, so only metrics + rendering are timed.
    const id = setTimeout(() => setRun({ t0: performance.now() }), 50);
    return () => clearTimeout(id);
  }, []);
  useEffect(() => {
    if (!views || !run) return;
    void (async () => {
      await frame();
      await frame();
      setResult({ metricsMs: views.metricsMs, totalMs: performance.now() - run.t0 });
    })();
  }, [views, run]);
  return (
    <main style={{ padding: 16 }}>
      <h1 style={{ fontSize: 16 }}>
        Render bench: {dims.layers} layers × {dims.routed} experts × {dims.tokens} tokens
      </h1>
      <p data-testid="render-result" data-total-ms={result?.totalMs} data-metrics-ms={result?.metricsMs}>
        {result ? `metrics ${result.metricsMs.toFixed(1)} ms; metrics + drawing ${result.totalMs.toFixed(1)} ms` : "running…"}
      </p>
      {views && (
        <div style={{ display: "grid", gap: 12 }}>
          <Chart option={views.heat} height={700} name="bench-heatmap" testId="heatmap" />
          <Chart option={views.fig7} height={300} name="bench-fig7" testId="fig7" />
          <Chart option={views.fig8} height={300} name="bench-fig8" testId="fig8" />
          {q.get("strip") !== "0" && <TokenStrip trace={trace} m={views.m} layer={0} />}
        </div>
      )}
    </main>
  );
}
