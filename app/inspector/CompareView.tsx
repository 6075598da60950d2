"use client";
import { useEffect, useMemo, useState } from "react";
import { createPortal } from "react-dom";
import type { TokenRouting, TraceComparison, TraceSide } from "@/engine/routing/compare";
import { Chart } from "./Chart";
import type { EChartsOption } from "./echarts";
import { useFileUrl } from "./file-url";
import { useEscape } from "@/app/lib/use-escape";

/** Files written before routing agreement and logits were compared lack those fields. */
type ComparisonFile = Omit<TraceComparison, "setAgreement" | "logits"> & Partial<Pick<TraceComparison, "setAgreement" | "logits">> & { labelA: string; labelB: string };

const sideText = (label: string, s: TraceSide) => `${label} (${s.tokens} tokens${s.routingPrecision ? `, ${s.routingPrecision} routing` : ""}${s.quantization ? `, ${s.quantization} weights` : ""})`;

/** How the two runs' next-token logits differ on their common tokens (text only: labels are user text). */
function LogitsSummary({ c }: { c: ComparisonFile }) {
  const l = c.logits;
  if (!l) return <p className="muted" data-testid="compare-logits">{c.logitsNote ?? "These traces were compared before logits were kept in traces."}</p>;
  return (
    <table className="balance" data-testid="compare-logits">
      <tbody>
        <tr>
          <td>tokens compared</td>
          <td>{l.rows} (the common prefix), {l.sampled} vocabulary ids each, spread evenly over the vocabulary</td>
        </tr>
        <tr>
          <td>|Δ logit| max / mean</td>
          <td>
            {l.maxAbsLogit.toPrecision(3)} / {l.meanAbsLogit.toPrecision(3)} (largest |logit| of {c.labelA}: {l.maxAbsLogitA.toPrecision(3)})
          </td>
        </tr>
        <tr>
          <td>|Δ log-probability| max / mean</td>
          <td>
            {l.maxAbsLogprob.toPrecision(3)} / {l.meanAbsLogprob.toPrecision(3)} nats
          </td>
        </tr>
        <tr>
          <td>same next-token argmax</td>
          <td>{(l.top1Agreement * 100).toFixed(1)} %</td>
        </tr>
      </tbody>
    </table>
  );
}

function deltaHeatmap(c: ComparisonFile): EChartsOption {
  const names = c.experts.dynamic.map((e) => e.name);
  // in percentage points throughout, so the colour scale reads as the cells and the title do
  const data: [number, number, number][] = [];
  let max = 1;
  c.perLayer.forEach((l, y) =>
    l.tokenShare.forEach((v, x) => {
      data.push([x, y, +(v * 100).toFixed(2)]);
      max = Math.max(max, Math.abs(v * 100));
    }),
  );
  return {
    tooltip: { formatter: (p: { value: [number, number, number] }) => `${names[p.value[0]]} at L${p.value[1]}: ${p.value[2].toFixed(1)} points (${c.labelB} − ${c.labelA})` },
    grid: { left: 50, right: 80, top: 10, bottom: 30 },
    xAxis: { type: "category", data: names },
    yAxis: { type: "category", data: c.perLayer.map((l) => `L${l.layer}`), inverse: true },
    visualMap: { min: -max, max, precision: 0, calculable: true, right: 0, top: 10, itemHeight: 120, inRange: { color: ["#2563eb", "#111827", "#f97316"] }, text: [`more in ${c.labelB}`, `more in ${c.labelA}`] },
    series: [{ type: "heatmap", data, label: { show: names.length <= 10, fontSize: 10, formatter: (p: { value: number[] }) => p.value[2]!.toFixed(0) } }],
  };
}

const routingText = (r: TokenRouting) => `k ${r.k}: ${r.experts.join(" · ") || "—"}${r.dropped.length ? ` (dropped ${r.dropped.join(" · ")})` : ""}`;

/** Tokens of one layer whose k or expert set differs between the traces, A and B side by side. */
function RoutingDiffTable({ c }: { c: ComparisonFile }) {
  const diff = c.routingDiff!;
  const [layer, setLayer] = useState(() => Math.max(0, diff.findIndex((l) => l.differs > 0)));
  const l = diff[layer]!;
  const total = diff.reduce((a, x) => a + x.differs, 0);
  const side = (label: string, p?: string) => `${label}${p ? ` (${p})` : ""}`;
  return (
    <>
      <p className="muted" data-testid="routing-diff-summary">
        {total} token-layer{total === 1 ? "" : "s"} of the {c.agreement?.commonPrefix ?? 0} common tokens × {c.layers} layers routed differently (k or experts).{" "}
        <label>
          layer{" "}
          <select value={layer} onChange={(e) => setLayer(Number(e.target.value))} aria-label="Layer of the routing differences">
            {diff.map((x) => (
              <option key={x.layer} value={x.layer}>
                L{x.layer} ({x.differs})
              </option>
            ))}
          </select>
        </label>
      </p>
      <table className="balance" data-testid="routing-diff">
        <thead>
          <tr>
            <th>token</th>
            <th>text</th>
            <th>{side(c.labelA, c.a.routingPrecision)}</th>
            <th>{side(c.labelB, c.b.routingPrecision)}</th>
          </tr>
        </thead>
        <tbody>
          {l.tokens.map((t) => (
            <tr key={t.token}>
              <td>{t.token}</td>
              <td>{t.text.replace(/\n/g, "⏎")}</td>
              <td>{routingText(t.a)}</td>
              <td>{routingText(t.b)}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {l.differs > l.tokens.length && <p className="muted">… and {l.differs - l.tokens.length} more at L{l.layer}.</p>}
    </>
  );
}

/** Two traces side by side: Δ token share per layer and expert, metric deltas, top-expert agreement, tokens routed differently. */
export default function CompareView({ file, onClose }: { file: string; onClose: () => void }) {
  useEscape(onClose);
  const [state, setState] = useState<{ c?: ComparisonFile; error?: string }>({});
  const fileUrl = useFileUrl();
  useEffect(() => {
    fetch(fileUrl(file))
      .then((r) => (r.ok ? (r.json() as Promise<ComparisonFile>) : Promise.reject(new Error(`the comparison file is missing (${r.status})`))))
      .then((c) => setState({ c }))
      .catch((err: Error) => setState({ error: err.message }));
  }, [file, fileUrl]);
  const c = state.c;
  const heat = useMemo(() => c && deltaHeatmap(c), [c]);
  const f = (v: number, d = 3) => (v > 0 ? `+${v.toFixed(d)}` : v.toFixed(d));
  return createPortal(
    <div className="inspector-backdrop" onMouseDown={(e) => e.target === e.currentTarget && onClose()}>
      <div className="inspector" role="dialog" aria-label="Compare traces">
        <header>
          <h2>Compare traces</h2>
          {c && (
            <span className="muted">
              {sideText(c.labelB, c.b)} − {sideText(c.labelA, c.a)} · {c.layers} layers
              {c.agreement && c.agreement.mean !== null ? ` · top expert unchanged for ${(c.agreement.mean * 100).toFixed(1)} % of the ${c.agreement.commonPrefix} common tokens` : ""}
              {c.setAgreement && c.setAgreement.mean !== null ? ` · same expert set for ${(c.setAgreement.mean * 100).toFixed(1)} %` : ""}
            </span>
          )}
          <span className="spacer" />
          <button onClick={onClose} aria-label="Close comparison">×</button>
        </header>
        {state.error && <div className="banner error">{state.error}</div>}
        {c && heat && (
          <div className="inspector-body">
            <section className="wide">
              <h3>Δ share of tokens per layer and expert (percentage points)</h3>
              <Chart option={heat} height={Math.max(200, 22 * c.perLayer.length + 50)} name="compare-share-delta" testId="compare-heatmap" />
            </section>
            <section className="wide">
              <h3>Metric deltas per layer</h3>
              <table className="balance" data-testid="compare-table">
                <thead>
                  <tr>
                    <th>layer</th>
                    <th>Δ mean k</th>
                    <th>Δ null %</th>
                    <th>Δ shared w %</th>
                    <th>Δ CV</th>
                    <th>Δ MaxVio</th>
                    <th>Δ Jain</th>
                    <th title="change of the mean router entropy per token, natural log">Δ entropy (nats)</th>
                    {c.agreement && <th>top expert unchanged</th>}
                    {c.setAgreement && <th>same expert set</th>}
                    {c.routingDiff && <th>k differs</th>}
                    {c.routingDiff && <th>experts differ</th>}
                  </tr>
                </thead>
                <tbody>
                  {c.perLayer.map((l, i) => (
                    <tr key={l.layer}>
                      <td>L{l.layer}</td>
                      <td>{f(l.meanK, 2)}</td>
                      <td>{f(l.nullTokenShare * 100, 1)}</td>
                      <td>{f(l.sharedWeightShare * 100, 1)}</td>
                      <td>{f(l.loadCV)}</td>
                      <td>{f(l.maxVio)}</td>
                      <td>{f(l.jain)}</td>
                      <td>{f(l.entropy)}</td>
                      {c.agreement && <td>{((c.agreement.perLayer[i] ?? 0) * 100).toFixed(1)} %</td>}
                      {c.setAgreement && <td data-testid="set-agreement">{((c.setAgreement.perLayer[i] ?? 0) * 100).toFixed(1)} %</td>}
                      {c.routingDiff && <td>{c.routingDiff[i]!.kDiffers}</td>}
                      {c.routingDiff && <td>{c.routingDiff[i]!.setDiffers}</td>}
                    </tr>
                  ))}
                </tbody>
              </table>
            </section>
            <section className="wide">
              <h3>Next-token logits on the common tokens ({c.labelB} − {c.labelA})</h3>
              <LogitsSummary c={c} />
            </section>
            {c.routingDiff && (
              <section className="wide">
                <h3>Tokens routed differently (same token, same layer)</h3>
                <RoutingDiffTable c={c} />
              </section>
            )}
          </div>
        )}
      </div>
    </div>,
    document.body,
  );
}

/** A Compare Traces output in the node (app/inspector/views.tsx "compare-report"): a button that opens the comparison. */
export function CompareReportView({ value }: { value: Record<string, unknown> }) {
  const [open, setOpen] = useState(false);
  if (typeof value.file !== "string") return null;
  return (
    <div className="report-mini nodrag">
      <button onClick={() => setOpen(true)}>Open comparison</button>
      {open && <CompareView file={value.file} onClose={() => setOpen(false)} />}
    </div>
  );
}
