"use client";
import { useEffect, useMemo, useState } from "react";
import { METRIC_LABELS, SUMMARY_METRICS, type SummaryMetric } from "@/engine/batch/summary";
import type { SweepResult } from "@/engine/batch/sweep";
import { Chart } from "./Chart";
import type { EChartsOption } from "./echarts";
import { useFileUrl } from "./file-url";

const PALETTE = ["#e2e8f0", "#60a5fa", "#f472b6", "#34d399", "#fbbf24", "#a78bfa", "#fb923c", "#22d3ee"];

const label = (v: unknown) => (typeof v === "string" ? (v.length > 24 ? `${v.slice(0, 23)}…` : v || "(empty)") : JSON.stringify(v));

/** One aggregate metric against the swept value: all records, and one line per task. */
export function sweepOption(s: SweepResult, metric: SummaryMetric): EChartsOption {
  const tasks = [...new Set(s.points.flatMap((p) => Object.keys(p.summary?.byTask ?? {})))].sort();
  const x = s.points.map((p) => label(p.value));
  const line = (name: string, pick: (p: SweepResult["points"][number]) => number | undefined, i: number) => ({
    name,
    type: "line",
    symbolSize: 7,
    lineStyle: { width: i === 0 ? 3 : 1.5 },
    itemStyle: { color: PALETTE[i % PALETTE.length] },
    data: s.points.map((p) => {
      const v = pick(p);
      return v === undefined ? null : +v.toFixed(4);
    }),
  });
  return {
    title: { text: `${METRIC_LABELS[metric]} vs ${s.nodeId}.${s.param}`, subtext: `dataset ${s.datasetFingerprint.slice(0, 12)}`, textStyle: { fontSize: 12 }, subtextStyle: { fontSize: 9 } },
    tooltip: { trigger: "axis" },
    legend: { type: "scroll", top: 36 },
    grid: { left: 55, right: 20, top: 64, bottom: 40 },
    xAxis: { type: "category", data: x, name: `${s.nodeId}.${s.param}`, nameLocation: "middle", nameGap: 26 },
    yAxis: { type: "value", scale: true },
    series: [line("all records", (p) => p.summary?.all[metric], 0), ...tasks.map((t, i) => line(t === "" ? "(none)" : t, (p) => p.summary?.byTask[t]?.[metric], i + 1))],
  };
}

/** The sweep file (engine/batch/sweep.ts) as a chart with a metric picker and a table. */
export default function SweepChart({ file }: { file: string }) {
  const [state, setState] = useState<{ s?: SweepResult; error?: string }>({});
  const [metric, setMetric] = useState<SummaryMetric>("meanK");
  const fileUrl = useFileUrl();
  useEffect(() => {
    fetch(fileUrl(file))
      .then((r) => (r.ok ? (r.json() as Promise<SweepResult>) : Promise.reject(new Error(`the sweep file is missing (${r.status})`))))
      .then((s) => setState({ s }))
      .catch((err: Error) => setState({ error: err.message }));
  }, [file, fileUrl]);
  const s = state.s;
  const option = useMemo(() => s && sweepOption(s, metric), [s, metric]);
  return (
    <div className="inspector-body" style={{ gridTemplateColumns: "1fr" }} data-testid="sweep-view">
      {state.error && <div className="banner error wide">{state.error}</div>}
      {s && option && (
        <>
          <section className="wide">
            <label>
              Metric{" "}
              <select value={metric} onChange={(e) => setMetric(e.target.value as SummaryMetric)} data-testid="sweep-metric">
                {SUMMARY_METRICS.map((m) => (
                  <option key={m} value={m}>
                    {METRIC_LABELS[m]}
                  </option>
                ))}
              </select>
            </label>
            <Chart option={option} height={340} name={`sweep-${s.param}-${metric}`} testId="sweep-chart" />
          </section>
          <section className="wide">
            <table className="balance" data-testid="sweep-table">
              <thead>
                <tr>
                  <th>{s.param}</th>
                  <th>records (ran / cached / failed)</th>
                  {SUMMARY_METRICS.map((m) => (
                    <th key={m}>{METRIC_LABELS[m]}</th>
                  ))}
                </tr>
              </thead>
              <tbody>
                {s.points.map((p, i) => (
                  <tr key={i}>
                    <td>{label(p.value)}</td>
                    <td>
                      {p.records.ran} / {p.records.cached} / {p.records.failed}
                      {p.error ? ` (${p.error})` : ""}
                    </td>
                    {SUMMARY_METRICS.map((m) => (
                      <td key={m}>{p.summary ? p.summary.all[m].toFixed(3) : "—"}</td>
                    ))}
                  </tr>
                ))}
              </tbody>
            </table>
          </section>
        </>
      )}
    </div>
  );
}
