"use client";
import { useEffect, useMemo, useState } from "react";
import { createPortal } from "react-dom";
import type { AblationRow, AblationTable } from "@/engine/batch/ablation";
import { CanvasChart, heatGridDrawing, type ColorScale } from "./CanvasChart";
import { Chart } from "./Chart";
import type { EChartsOption } from "./echarts";
import { useFileUrl } from "./file-url";
import { downloadUrl } from "@/app/lib/download";

/** The report the Expert Ablation node outputs (nodes/expert-ablation.ts), as the editor receives it. */
export interface AblationReportValue {
  type: "expert-ablation";
  headline: string;
  file: string;
  csvFile: string;
  safetensorsFile: string;
  status?: string;
}

const ALL = "*";
const taskName = (t: string) => (t === ALL ? "all records" : t === "" ? "(no task)" : t);
const slug = (s: string) => s.replace(/[^a-zA-Z0-9_-]+/g, "_") || "none";

/**
 * The ΔNLL of the expert bans of one task as a grid: a row per layer banned in (when the table has per-layer
 * bans), then "all layers" (when it has every-layer bans); a column per routed expert; NaN where not run.
 */
export function ablationGrid(t: AblationTable, task: string): { rows: string[]; cols: string[]; values: Float64Array; cells: (AblationRow | null)[] } {
  const cols = t.experts.filter((e) => e.role === "routed").map((e) => e.name);
  const bans = t.rows.filter((r) => r.kind === "ban");
  const layers = [...new Set(bans.map((r) => r.layer).filter((l): l is number => typeof l === "number"))].sort((a, b) => a - b);
  const rowKeys: (number | "*")[] = [];
  if (layers.length) for (let l = 0; l < t.numLayers; l++) rowKeys.push(l);
  if (bans.some((r) => r.layer === "*")) rowKeys.push("*");
  const values = new Float64Array(rowKeys.length * cols.length).fill(NaN);
  const cells: (AblationRow | null)[] = new Array(values.length).fill(null);
  for (const r of bans) {
    const i = rowKeys.indexOf(r.layer as number | "*") * cols.length + cols.indexOf(r.expert!);
    values[i] = r.delta[task] ?? NaN;
    cells[i] = r;
  }
  return { rows: rowKeys.map((k) => (k === "*" ? "all layers" : `L${k}`)), cols, values, cells };
}

/** One symmetric scale for every task's map (blue: the model got better without the expert, red: worse). */
export function deltaScale(t: AblationTable): ColorScale {
  let m = 0;
  for (const r of t.rows) for (const v of Object.values(r.delta)) if (Number.isFinite(v)) m = Math.max(m, Math.abs(v));
  const max = Number((m || 1e-6).toPrecision(2));
  return { min: -max, max, stops: ["#2563eb", "#1e293b", "#111827", "#7f1d1d", "#f87171"] };
}

export type SortKey = "delta" | "share" | "id";

/** The ablations of a task, most important first (largest ΔNLL), or by routing share or name. */
export function rankAblations(t: AblationTable, task: string, key: SortKey = "delta"): AblationRow[] {
  const num = (v: number | null | undefined) => (v === null || v === undefined || Number.isNaN(v) ? -Infinity : v);
  const rows = [...t.rows];
  if (key === "id") return rows.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  return rows.sort((a, b) => (key === "delta" ? num(b.delta[task]) - num(a.delta[task]) : num(b.share[task]) - num(a.share[task])));
}

/** Importance against routing share: one point per expert ablation with a share. */
function shareVsImportance(t: AblationTable, task: string): EChartsOption {
  const pts = t.rows.filter((r) => r.share[task] !== null && Number.isFinite(r.delta[task]));
  return {
    title: { text: `${taskName(task)}: ΔNLL vs routing share`, subtext: `workflow ${t.baseline.workflowFingerprint.slice(0, 12)} · dataset ${t.datasetFingerprint.slice(0, 12)}`, textStyle: { fontSize: 12 }, subtextStyle: { fontSize: 9 } },
    tooltip: { formatter: (p: { data: [number, number, string] }) => `${p.data[2]}: share ${p.data[0].toFixed(1)} %, ΔNLL ${p.data[1] >= 0 ? "+" : ""}${p.data[1].toFixed(4)}` },
    grid: { left: 60, right: 20, top: 56, bottom: 40 },
    xAxis: { type: "value", name: "routing share (% of tokens)", nameLocation: "middle", nameGap: 26, min: 0 },
    yAxis: { type: "value", name: "ΔNLL (nats)", scale: true },
    series: [{ type: "scatter", symbolSize: 10, data: pts.map((r) => [+(r.share[task]! * 100).toFixed(2), r.delta[task]!, r.id]), label: { show: pts.length <= 40, formatter: (p: { data: [number, number, string] }) => p.data[2], position: "right", fontSize: 10 } }],
  };
}

const sign = (v: number) => (Number.isNaN(v) ? "—" : `${v >= 0 ? "+" : ""}${v.toFixed(4)}`);
const pct = (v: number | null | undefined) => (v === null || v === undefined || Number.isNaN(v) ? "—" : `${(v * 100).toFixed(1)} %`);

/** The ablation table: ΔNLL maps per task on one scale, the most important experts of a task, importance beside routing share. */
export default function AblationView({ report, onClose }: { report: AblationReportValue; onClose: () => void }) {
  const fileUrl = useFileUrl();
  const [state, setState] = useState<{ table?: AblationTable; error?: string }>({});
  const [task, setTask] = useState(ALL);
  const [sort, setSort] = useState<SortKey>("delta");
  useEffect(() => {
    let live = true;
    fetch(fileUrl(report.file))
      .then(async (r) => {
        if (!r.ok) throw new Error(`the ablation file is missing (${r.status})`);
        return (await r.json()) as AblationTable;
      })
      .then((table) => live && setState({ table }))
      .catch((err: Error) => live && setState({ error: err.message }));
    return () => {
      live = false;
    };
  }, [report.file, fileUrl]);
  const t = state.table;
  const scale = useMemo(() => (t ? deltaScale(t) : undefined), [t]);
  const maps = useMemo(() => {
    if (!t || !scale) return [];
    return t.tasks.map((task) => {
      const g = ablationGrid(t, task);
      const drawing = heatGridDrawing({
        rows: g.rows,
        cols: g.cols,
        values: g.values,
        scaleOf: () => scale,
        tooltip: (r, c, v) => `${taskName(task)} · ${g.cells[r * g.cols.length + c]?.label ?? `${g.cols[c]} at ${g.rows[r]}: not run`}: ΔNLL ${sign(v)} · routing share ${pct(g.cells[r * g.cols.length + c]?.share[task])}`,
        cellLabel: (v) => (Number.isNaN(v) ? "" : (Math.abs(v) < 0.0005 ? 0 : v).toFixed(3)), // no "-0.000"
        margin: { left: 70, right: 10, top: 8, bottom: 24 },
      });
      return { task, g, drawing, globals: t.rows.filter((r) => r.kind !== "ban") };
    });
  }, [t, scale]);
  const ranked = useMemo(() => (t ? rankAblations(t, task, sort) : []), [t, task, sort]);
  const scatter = useMemo(() => (t ? shareVsImportance(t, task) : undefined), [t, task]);
  const cols = Math.min(5, Math.max(1, maps.length));
  const gridHeight = maps[0] ? Math.max(120, 22 * maps[0].g.rows.length + 40) : 0;
  return createPortal(
    <div className="inspector-backdrop" onMouseDown={(e) => e.target === e.currentTarget && onClose()}>
      <div className="inspector" role="dialog" aria-label="Expert ablation" data-testid="ablation-view">
        <header>
          <h2>Expert ablation</h2>
          {t && (
            <span className="muted" data-testid="ablation-headline">
              {t.spec} · {t.rows.length} ablations × {t.baseline.records.total} records · baseline NLL {t.baseline.nll[ALL]?.mean.toFixed(4)} over {t.baseline.nll[ALL]?.tokens} tokens · workflow {t.baseline.workflowFingerprint.slice(0, 12)} · dataset {t.datasetFingerprint.slice(0, 12)}
              {t.status !== "finished" ? ` · ${t.status}${t.error ? `: ${t.error}` : ""}` : ""}
            </span>
          )}
          <span className="spacer" />
          <button onClick={() => downloadUrl("expert-ablation.json", fileUrl(report.file))}>JSON</button>
          <button onClick={() => downloadUrl("expert-ablation.csv", fileUrl(report.csvFile))}>CSV</button>
          <button onClick={() => downloadUrl("expert-ablation.safetensors", fileUrl(report.safetensorsFile))}>safetensors</button>
          <button onClick={onClose} aria-label="Close ablation">×</button>
        </header>
        {state.error && <div className="banner error">{state.error}</div>}
        {!t && !state.error && <p className="muted">Loading the ablation table…</p>}
        {t && scale && (
          <div className="inspector-body" style={{ gridTemplateColumns: "1fr" }}>
            <section className="wide">
              <h3>
                ΔNLL when the expert is banned (nats; one scale for every task: {scale.min} … +{scale.max}; red = the answer got less likely, blue = more)
              </h3>
              <div style={{ display: "grid", gridTemplateColumns: `repeat(${cols}, minmax(0, 1fr))`, gap: 8 }}>
                {maps.map((m) => (
                  <div key={m.task}>
                    <div className="muted">{taskName(m.task)} (baseline NLL {t.baseline.nll[m.task]?.mean.toFixed(3)})</div>
                    {m.g.rows.length > 0 && <CanvasChart drawing={m.drawing} height={gridHeight} name={`ablation-${slug(taskName(m.task))}`} testId={`ablation-map-${slug(taskName(m.task))}`} />}
                    {m.globals.length > 0 && (
                      <table className="balance">
                        <tbody>
                          {m.globals.map((r) => (
                            <tr key={r.id}>
                              <td title={r.label}>{r.id}</td>
                              <td>{sign(r.delta[m.task] ?? NaN)}</td>
                            </tr>
                          ))}
                        </tbody>
                      </table>
                    )}
                  </div>
                ))}
              </div>
            </section>
            <section className="wide">
              <h3>
                Most important experts for{" "}
                <select value={task} onChange={(e) => setTask(e.target.value)} aria-label="Task" data-testid="ablation-task">
                  {t.tasks.map((x) => (
                    <option key={x} value={x}>{taskName(x)}</option>
                  ))}
                </select>{" "}
                — importance (ΔNLL) beside routing share (share of the task&apos;s tokens that chose the expert in the baseline)
              </h3>
              <div style={{ display: "grid", gridTemplateColumns: "minmax(0, 3fr) minmax(0, 2fr)", gap: 10 }}>
                <table className="balance" data-testid="ablation-ranking">
                  <thead>
                    <tr>
                      <th><button onClick={() => setSort("id")} aria-pressed={sort === "id"}>ablation</button></th>
                      <th><button onClick={() => setSort("delta")} aria-pressed={sort === "delta"}>ΔNLL</button></th>
                      <th>importance</th>
                      <th><button onClick={() => setSort("share")} aria-pressed={sort === "share"}>routing share</button></th>
                      <th>share</th>
                      <th>mean NLL</th>
                      <th>tokens</th>
                    </tr>
                  </thead>
                  <tbody>
                    {ranked.map((r) => {
                      const d = r.delta[task] ?? NaN;
                      const s = r.share[task];
                      return (
                        <tr key={r.id} data-testid={`ablation-row-${slug(r.id)}`} title={r.label}>
                          <td>{r.id}</td>
                          <td data-testid="delta">{sign(d)}</td>
                          <td><i className="bar" style={{ display: "inline-block", height: 8, width: `${Number.isFinite(d) ? Math.min(100, (Math.abs(d) / scale.max) * 100) : 0}%`, background: d >= 0 ? "#f87171" : "#60a5fa" }} /></td>
                          <td data-testid="share">{pct(s)}</td>
                          <td><i className="bar" style={{ display: "inline-block", height: 8, width: `${s === null || s === undefined ? 0 : Math.min(100, s * 100)}%`, background: "#a3a3a3" }} /></td>
                          <td>{r.nll[task]?.mean.toFixed(4) ?? "—"}</td>
                          <td>{r.nll[task]?.tokens ?? "—"}</td>
                        </tr>
                      );
                    })}
                  </tbody>
                </table>
                {scatter && <Chart option={scatter} height={320} name={`ablation-share-${slug(task)}`} testId="ablation-scatter" />}
              </div>
            </section>
          </div>
        )}
      </div>
    </div>,
    document.body,
  );
}

/** What the Expert Ablation node shows in the editor: its headline and a button to open the maps. */
export function AblationReportView({ value }: { value: Record<string, unknown> }) {
  const [open, setOpen] = useState(false);
  if (typeof value.file !== "string") return null;
  const report = value as unknown as AblationReportValue; // the stored preview of an expert-ablation report (engine/values/expert-ablation.ts)
  return (
    <div className="report-mini nodrag" data-testid="ablation-report">
      <button onClick={() => setOpen(true)}>Open ablation maps</button>
      {open && <AblationView report={report} onClose={() => setOpen(false)} />}
    </div>
  );
}
