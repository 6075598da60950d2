"use client";
import { useEffect, useMemo, useState } from "react";
import { createPortal } from "react-dom";
import type { RopeReportFile } from "@/nodes/rope-inspector";
import { Chart } from "./Chart";
import type { EChartsOption } from "./echarts";
import { useFileUrl } from "./file-url";
import { useEscape } from "@/app/lib/use-escape";

const AXIS_COLORS = { t: "#f472b6", h: "#60a5fa", w: "#34d399" } as const;

function useReport(file: string): { report?: RopeReportFile; error?: string } {
  const [state, setState] = useState<{ report?: RopeReportFile; error?: string }>({});
  const fileUrl = useFileUrl();
  useEffect(() => {
    let live = true;
    fetch(fileUrl(file))
      .then((r) => (r.ok ? (r.json() as Promise<RopeReportFile>) : Promise.reject(new Error(`the report file is missing (${r.status})`))))
      .then((report) => live && setState({ report }))
      .catch((err: Error) => live && setState({ error: err.message }));
    return () => {
      live = false;
    };
  }, [file, fileUrl]);
  return state;
}

/** Index of the first token of each layout segment (span starts). */
function spanStarts(r: RopeReportFile): { index: number; kind: string }[] {
  const seen = new Set<number>();
  const out: { index: number; kind: string }[] = [];
  r.tokens.forEach((t, i) => {
    const seg = t.info.segment as number;
    if (!seen.has(seg)) {
      seen.add(seg);
      out.push({ index: i, kind: t.modality });
    }
  });
  return out;
}

function positionsOption(r: RopeReportFile): EChartsOption {
  const idx = r.tokens.map((_, i) => i);
  const series: object[] = (["t", "h", "w"] as const).map((a) => ({
    name: `${a} (${r.mode})`,
    type: "line",
    step: "end",
    showSymbol: false,
    lineStyle: { color: AXIS_COLORS[a], width: 1.5 },
    itemStyle: { color: AXIS_COLORS[a] },
    data: r.tokens.map((t) => t[a]),
    ...(a === "t" ? { markLine: { symbol: "none", silent: true, lineStyle: { color: "#fbbf24", type: "dotted" }, label: { formatter: "{b}", color: "#fbbf24", fontSize: 10 }, data: spanStarts(r).filter((s) => s.kind !== "text").map((s) => ({ xAxis: s.index, name: s.kind })) } } : {}),
  }));
  if (r.compare) {
    for (const a of ["t", "h", "w"] as const) {
      series.push({ name: `${a} (${r.compareMode})`, type: "line", step: "end", showSymbol: false, lineStyle: { color: AXIS_COLORS[a], type: "dashed", width: 1, opacity: 0.7 }, itemStyle: { color: AXIS_COLORS[a] }, data: r.compare.map((c) => c[a]) });
    }
  }
  return {
    tooltip: { trigger: "axis" },
    legend: { top: 0, textStyle: { fontSize: 11 } },
    grid: { left: 45, right: 15, top: 50, bottom: 55 },
    dataZoom: [{ type: "inside" }, { type: "slider", height: 18, bottom: 8 }],
    xAxis: { type: "category", data: idx, name: "token" },
    yAxis: { type: "value", name: "position id" },
    series,
  };
}

function timeAxisOption(r: RopeReportFile): EChartsOption | null {
  const video = new Map<number, [number, number]>();
  const audio = new Map<string, [number, number]>();
  for (const t of r.tokens) {
    const seconds = t.info.seconds as number | undefined;
    if (seconds === undefined) continue;
    if (t.modality === "video") video.set(t.info.frame as number, [seconds, t.t]);
    if (t.modality === "audio") audio.set(`${t.info.chunk}:${t.info.audioSegment}`, [seconds, t.t]);
  }
  if (!video.size && !audio.size) return null;
  const pts = (m: Map<unknown, [number, number]>, lane: number) => [...m.values()].map(([s, id]) => ({ value: [s, lane, id] }));
  return {
    tooltip: { formatter: (p: { value: [number, number, number] }) => `${p.value[0].toFixed(2)} s → t = ${p.value[2]}` },
    grid: { left: 110, right: 20, top: 15, bottom: 35 },
    xAxis: { type: "value", name: "seconds", nameLocation: "middle", nameGap: 24 },
    yAxis: { type: "category", data: ["video frames", "audio segments"] },
    series: [
      { type: "scatter", symbolSize: 14, itemStyle: { color: "#f472b6" }, label: { show: true, formatter: (p: { value: number[] }) => `t=${p.value[2]}`, position: "top", fontSize: 10, color: "#e5e7eb" }, data: pts(video, 0) },
      { type: "scatter", symbolSize: 14, itemStyle: { color: "#a78bfa" }, label: { show: true, formatter: (p: { value: number[] }) => `t=${p.value[2]}`, position: "top", fontSize: 10, color: "#e5e7eb" }, data: pts(audio, 1) },
    ],
  };
}

function tileGridOption(r: RopeReportFile, axis: "h" | "w"): EChartsOption | null {
  const seg = r.tokens.find((t) => t.modality === "image")?.info.segment as number | undefined;
  if (seg === undefined) return null;
  const layout = r.layout[seg] as { rows: number; cols: number; pool: number };
  const s = layout.pool;
  const data: [number, number, number][] = [];
  let min = Infinity, max = -Infinity;
  for (const t of r.tokens) {
    if (t.info.segment !== seg) continue;
    const y = (t.info.tileRow as number) * s + (t.info.i as number);
    const x = (t.info.tileCol as number) * s + (t.info.j as number);
    data.push([x, y, t[axis]]);
    min = Math.min(min, t[axis]);
    max = Math.max(max, t[axis]);
  }
  return {
    tooltip: { formatter: (p: { value: [number, number, number] }) => `row ${p.value[1]}, col ${p.value[0]}: ${axis} = ${p.value[2]}` },
    grid: { left: 30, right: 10, top: 10, bottom: 25 },
    xAxis: { type: "category", data: Array.from({ length: layout.cols * s }, (_, i) => i) },
    yAxis: { type: "category", data: Array.from({ length: layout.rows * s }, (_, i) => i), inverse: true },
    visualMap: { min, max, show: false, inRange: { color: ["#0f172a", AXIS_COLORS[axis], "#fef3c7"] } },
    series: [{ type: "heatmap", data, label: { show: layout.cols * s <= 16, fontSize: 9, formatter: (p: { value: number[] }) => String(p.value[2]) } }],
  };
}

function frequencyOption(r: RopeReportFile): EChartsOption {
  return {
    tooltip: { formatter: (p: { dataIndex: number }) => `pair ${p.dataIndex}: axis ${r.frequencies[p.dataIndex]!.axis}, inv_freq ${r.frequencies[p.dataIndex]!.invFreq.toExponential(3)}` },
    grid: { left: 55, right: 10, top: 10, bottom: 30 },
    xAxis: { type: "category", data: r.frequencies.map((f) => f.pair), name: "pair" },
    yAxis: { type: "log", name: "inv_freq" },
    // points, not bars: on a log axis bars hang from 1, so pair 0 (inv_freq = θ⁰ = 1) had none and [4, 6, 6] read as [3, 6, 6]
    series: [{ type: "scatter", symbolSize: 9, data: r.frequencies.map((f) => ({ value: f.invFreq, itemStyle: { color: AXIS_COLORS[f.axis as "t" | "h" | "w"] } })) }],
  };
}

function PositionTable({ r }: { r: RopeReportFile }) {
  const shown = Math.min(r.tokens.length, 1500);
  return (
    <div className="rope-table-wrap">
      <table className="balance" data-testid="rope-table">
        <thead>
          <tr>
            <th>#</th>
            <th>token</th>
            <th>modality</th>
            <th>t</th>
            <th>h</th>
            <th>w</th>
            {r.compare && <th colSpan={3}>{r.compareMode} t / h / w</th>}
          </tr>
        </thead>
        <tbody>
          {r.tokens.slice(0, shown).map((t, i) => {
            const c = r.compare?.[i];
            const differs = c && (c.t !== t.t || c.h !== t.h || c.w !== t.w);
            return (
              <tr key={i} data-testid="rope-row" data-modality={t.modality}>
                <td>{i}</td>
                <td>{t.text.replace(/\n/g, "⏎")}</td>
                <td>{t.modality}</td>
                <td>{t.t}</td>
                <td>{t.h}</td>
                <td>{t.w}</td>
                {c && <td className={differs ? "differs" : ""}>{c.t}</td>}
                {c && <td className={differs ? "differs" : ""}>{c.h}</td>}
                {c && <td className={differs ? "differs" : ""}>{c.w}</td>}
              </tr>
            );
          })}
        </tbody>
      </table>
      {r.tokens.length > shown && <p className="muted">… {r.tokens.length - shown} more tokens (export the sequence for all)</p>}
    </div>
  );
}

export default function RopeInspector({ file, onClose }: { file: string; onClose: () => void }) {
  useEscape(onClose);
  const { report: r, error } = useReport(file);
  const opts = useMemo(() => r && { positions: positionsOption(r), time: timeAxisOption(r), h: tileGridOption(r, "h"), w: tileGridOption(r, "w"), freq: frequencyOption(r) }, [r]);
  return createPortal(
    <div className="inspector-backdrop" onMouseDown={(e) => e.target === e.currentTarget && onClose()}>
      <div className="inspector" role="dialog" aria-label="RoPE Inspector">
        <header>
          <h2>RoPE Inspector</h2>
          {r && (
            <span className="muted">
              {r.tokens.length} tokens · {r.mode}
              {r.compareMode ? ` vs ${r.compareMode} (dashed)` : ""} · head_dim {r.rotary.headDim}, θ {r.rotary.theta}, sections [{r.rotary.sections.join(", ")}]
            </span>
          )}
          <span className="spacer" />
          <button onClick={onClose} aria-label="Close inspector">×</button>
        </header>
        {error && <div className="banner error">{error}</div>}
        {r && opts && (
          <div className="inspector-body">
            {r.warnings.length > 0 && <div className="banner warn wide">{r.warnings.join(" · ")}</div>}
            <section className="wide">
              <h3>Position ids per token (span starts marked)</h3>
              <Chart option={opts.positions} height={280} name="rope-positions" testId="rope-positions" />
            </section>
            {opts.time && (
              <section className="wide">
                <h3>Time axis: video frames and audio segments</h3>
                <Chart option={opts.time} height={170} name="rope-time-axis" testId="rope-time" />
                {r.tokens.some((t) => t.modality === "audio") && (
                  <p className="muted">
                    Audio comes in 30-s chunks of 200 tokens (3 s per 20-token segment): a shorter clip is padded with silence to a
                    whole chunk by the Whisper encoder (128 × 3000 log-mel frames per chunk), and its padded segments get time positions too.
                  </p>
                )}
              </section>
            )}
            {opts.h && (
              <section>
                <h3>Image tokens on their tile grid, coloured by h</h3>
                <Chart option={opts.h} height={260} name="rope-grid-h" testId="rope-grid-h" />
              </section>
            )}
            {opts.w && (
              <section>
                <h3>… and by w</h3>
                <Chart option={opts.w} height={260} name="rope-grid-w" testId="rope-grid-w" />
              </section>
            )}
            <section className="wide">
              <h3>Rotary frequency split: each pair’s axis (t pink, h blue, w green) and inv_freq</h3>
              <Chart option={opts.freq} height={200} name="rope-frequencies" testId="rope-frequencies" />
            </section>
            <section className="wide">
              <h3>Per-token positions</h3>
              <PositionTable r={r} />
            </section>
          </div>
        )}
      </div>
    </div>,
    document.body,
  );
}

/** A RoPE Inspector output in the node (app/inspector/views.tsx "rope-report"): a button that opens the inspector. */
export function RopeReportView({ value }: { value: Record<string, unknown> }) {
  const [open, setOpen] = useState(false);
  if (typeof value.file !== "string") return null;
  return (
    <div className="report-mini nodrag">
      <button onClick={() => setOpen(true)}>Open RoPE inspector</button>
      {open && <RopeInspector file={value.file} onClose={() => setOpen(false)} />}
    </div>
  );
}
