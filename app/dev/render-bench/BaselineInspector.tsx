"use client";
/**
 * A frozen copy of the routing inspector before the render work (commit 4856e04: ECharts heatmaps and
 * bars, every token a DOM span, computeMetrics twice with Math.exp), so `npm run bench -- render` measures
 * before and after side by side in one run. Not used by the app.
 */
import { useMemo, useState } from "react";
import { createPortal } from "react-dom";
import { traceToCSV } from "@/engine/routing/export";
import { computeMetricsReference, type RoutingMetrics, type TokenFilter } from "@/engine/routing/metrics";
import type { Modality, Phase, RoutingTrace } from "@/engine/trace";
import { Chart } from "@/app/inspector/Chart";
import { downloadBlob } from "@/app/lib/download";
import type { EChartsOption } from "@/app/inspector/echarts";

/** Metrics time shows as the "routing-metrics" performance measure, as in the current inspector. */
function timed<T>(f: () => T): T {
  performance.mark("routing-metrics-start");
  const out = f();
  performance.measure("routing-metrics", "routing-metrics-start");
  return out;
}

const PALETTE = ["#60a5fa", "#f472b6", "#34d399", "#fbbf24", "#a78bfa", "#fb923c", "#22d3ee", "#f87171", "#a3e635", "#e879f9"];
const NULL_COLOR = "#6b7280";

function expertColor(m: RoutingMetrics, d: number): string {
  return m.experts.dynamic[d]?.role === "null" ? NULL_COLOR : PALETTE[d % PALETTE.length]!;
}

const layerNames = (m: RoutingMetrics) => m.layers.map((l) => `L${l.layer}`);

function heatmapOption(m: RoutingMetrics): EChartsOption {
  const dyn = m.experts.dynamic.map((e) => e.name);
  const data: [number, number, number][] = [];
  const shared: [number, number, number][] = [];
  m.layers.forEach((l, y) => {
    l.tokenShare.forEach((v, x) => data.push([x, y, v]));
    shared.push([dyn.length, y, l.sharedWeightShare]);
  });
  return {
    tooltip: {
      formatter: (p: { value: [number, number, number] }) => {
        const what = p.value[0] >= dyn.length ? `shared experts: ${(p.value[2] * 100).toFixed(1)} % of the weight` : `${dyn[p.value[0]]}: ${(p.value[2] * 100).toFixed(1)} % of tokens`;
        return `${what} at L${p.value[1]}`;
      },
    },
    grid: { left: 50, right: 90, top: 10, bottom: 40 },
    xAxis: { type: "category", data: [...dyn, "Shared (w)"], splitArea: { show: true } },
    yAxis: { type: "category", data: layerNames(m), inverse: true },
    visualMap: [
      { seriesIndex: 0, min: 0, max: 1, calculable: true, orient: "vertical", right: 0, top: 10, itemHeight: 120, inRange: { color: ["#111827", "#1d4ed8", "#60a5fa", "#fde68a"] }, text: ["tokens", ""] },
      { seriesIndex: 1, min: 0, max: 1, show: false, inRange: { color: ["#111827", "#065f46", "#34d399"] } },
    ],
    series: [
      { name: "routed + null", type: "heatmap", data, emphasis: { itemStyle: { borderColor: "#fff", borderWidth: 1 } } },
      { name: "shared", type: "heatmap", data: shared },
    ],
  };
}

function stackedOption(m: RoutingMetrics, kind: "share" | "k"): EChartsOption {
  const D = m.experts.dynamic.length;
  const series =
    kind === "share"
      ? m.experts.dynamic.map((e, d) => ({ name: e.name, type: "bar", stack: "all", itemStyle: { color: expertColor(m, d) }, data: m.layers.map((l) => +(l.selectionShare[d]! * 100).toFixed(2)) }))
      : Array.from({ length: D }, (_, i) => i + 1).map((k) => ({ name: `k = ${k}`, type: "bar", stack: "all", itemStyle: { color: PALETTE[(k - 1) % PALETTE.length] }, data: m.layers.map((l) => +((l.kShare[k] ?? 0) * 100).toFixed(2)) }));
  return {
    tooltip: { trigger: "axis", valueFormatter: (v: number) => `${v} %` },
    // A scrolling legend: with 64 experts a full legend costs more to lay out than the bars.
    legend: { type: "scroll", top: 0, textStyle: { fontSize: 11 } },
    grid: { left: 45, right: 10, top: 30, bottom: 25 },
    xAxis: { type: "category", data: layerNames(m) },
    yAxis: { type: "value", max: 100, axisLabel: { formatter: "{value} %" } },
    series,
  };
}

function matrixOption(names: string[], counts: Float64Array, label: string): EChartsOption {
  const D = names.length;
  const data: [number, number, number][] = [];
  let max = 0;
  for (let a = 0; a < D; a++) for (let b = 0; b < D; b++) {
    const v = counts[a * D + b]!;
    max = Math.max(max, v);
    data.push([b, a, v]);
  }
  return {
    tooltip: { formatter: (p: { value: [number, number, number] }) => `${names[p.value[1]]} → ${names[p.value[0]]}: ${p.value[2]} ${label}` },
    grid: { left: 60, right: 20, top: 10, bottom: 30 },
    xAxis: { type: "category", data: names },
    yAxis: { type: "category", data: names, inverse: true },
    visualMap: { min: 0, max: Math.max(1, max), show: false, inRange: { color: ["#111827", "#7c3aed", "#f0abfc"] } },
    series: [{ type: "heatmap", data, label: { show: D <= 12, fontSize: 10 } }],
  };
}

function TokenStrip({ trace, m, layer }: { trace: RoutingTrace; m: RoutingMetrics; layer: number }) {
  const [hover, setHover] = useState<number | null>(null);
  const per = m.perToken!;
  const N = per.tokenIndices.length;
  const E = trace.experts.length;
  const shown = Math.min(N, 4096);
  const detail = hover === null ? null : (
    <div className="token-detail" data-testid="token-detail">
      <strong>
        “{trace.tokens[per.tokenIndices[hover]!]!.text}” · token {per.tokenIndices[hover]} · {trace.tokens[per.tokenIndices[hover]!]!.modality} · {trace.tokens[per.tokenIndices[hover]!]!.phase}
      </strong>
      <table>
        <thead>
          <tr>
            <th>layer</th>
            <th>top</th>
            <th>k</th>
            <th>weights</th>
          </tr>
        </thead>
        <tbody>
          {trace.layers.map((l, li) => {
            const row = per.tokenIndices[hover]!;
            const top = per.topExpert[li * N + hover]!;
            const ws = trace.experts.map((e, j) => ({ e, w: l.weights[row * E + j]!, on: l.mask[row * E + j] === 1 })).filter((x) => x.on);
            return (
              <tr key={li}>
                <td>L{li}</td>
                <td>{top >= 0 ? m.experts.dynamic[top]!.name : "—"}</td>
                <td>{l.k[row]}</td>
                <td>{ws.map((x) => `${x.e.name} ${x.w.toFixed(3)}`).join(" · ")}</td>
              </tr>
            );
          })}
        </tbody>
      </table>
    </div>
  );
  return (
    <div>
      <div className="token-strip" data-testid="token-strip">
        {Array.from({ length: shown }, (_, n) => {
          const top = per.topExpert[layer * N + n]!;
          const t = trace.tokens[per.tokenIndices[n]!]!;
          return (
            <span
              key={n}
              className={`tok ${t.phase === "decode" ? "decode" : ""}`}
              style={{ background: top >= 0 ? expertColor(m, top) : "#333" }}
              onMouseEnter={() => setHover(n)}
              data-testid="token"
            >
              {t.text.replace(/\n/g, "⏎") || "·"}
            </span>
          );
        })}
        {N > shown && <span className="muted"> … {N - shown} more</span>}
      </div>
      <div className="legend">
        {m.experts.dynamic.map((e, d) => (
          <span key={e.name}>
            <i style={{ background: expertColor(m, d) }} /> {e.name}
          </span>
        ))}
      </div>
      {detail ?? <p className="muted">Hover a token to see every layer’s choice, k and weights.</p>}
    </div>
  );
}

function BalanceTable({ m }: { m: RoutingMetrics }) {
  const pct = (v: number) => `${(v * 100).toFixed(1)}`;
  return (
    <table className="balance" data-testid="balance-table">
      <thead>
        <tr>
          <th>layer</th>
          {m.experts.dynamic.map((e) => (
            <th key={e.name}>{e.name} %</th>
          ))}
          <th>mean k</th>
          <th>null %</th>
          <th>shared w %</th>
          <th>CV</th>
          <th>MaxVio</th>
          <th>Jain</th>
          <th>entropy</th>
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
            <td>{pct(l.nullTokenShare)}</td>
            <td>{pct(l.sharedWeightShare)}</td>
            <td>{l.loadCV.toFixed(3)}</td>
            <td>{l.maxVio.toFixed(3)}</td>
            <td>{l.jain.toFixed(3)}</td>
            <td>{l.entropyNormalized.toFixed(3)}</td>
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

/** The inspector as it was (ECharts charts, 4,096 DOM token spans, metrics computed twice), for a trace in memory. */
export function BaselineInspectorView({ trace, title, onClose }: { trace: RoutingTrace; title: string; onClose: () => void }) {
  const error: string | undefined = undefined;
  const traceFile = "bench";
  const [facet, setFacet] = useState<Facet>("all");
  const [layer, setLayer] = useState(0);
  const all = useMemo(() => (trace ? timed(() => computeMetricsReference(trace)) : undefined), [trace]);
  const m = useMemo(() => (trace ? timed(() => computeMetricsReference(trace, { filter: filterOf(facet) })) : undefined), [trace, facet]);
  const options = useMemo(
    () =>
      m && {
        heatmap: heatmapOption(m),
        fig7: stackedOption(m, "share"),
        fig8: stackedOption(m, "k"),
        coact: matrixOption(m.experts.dynamic.map((e) => e.name), m.layers[layer]?.coactivation ?? new Float64Array(), "tokens chose both"),
        transitions: matrixOption(m.experts.dynamic.map((e) => e.name), m.transitions[Math.min(layer, m.transitions.length - 1)]?.counts ?? new Float64Array(), "tokens"),
      },
    [m, layer],
  );
  function downloadCsv() {
    if (!trace) return;
    downloadBlob("routing-trace.csv", new Blob([traceToCSV(trace)], { type: "text/csv" }));
  }
  // A portal: the node that opens it sits inside React Flow's transformed viewport.
  return createPortal(
    <div className="inspector-backdrop" onMouseDown={(e) => e.target === e.currentTarget && onClose()}>
      <div className="inspector" role="dialog" aria-label="Routing Inspector">
        <header>
          <h2>{title}</h2>
          {trace && (
            <span className="muted">
              {trace.model} · {trace.tokens.length} tokens · {trace.layers.length} layers · {trace.experts.length} experts
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
                {trace.layers.map((_, i) => (
                  <option key={i} value={i}>L{i}</option>
                ))}
              </select>
            </label>
          )}
          <a className="button-like" href={`/api/files/${encodeURIComponent(traceFile)}`} download="routing-trace.json">JSON</a>
          <button onClick={downloadCsv} disabled={!trace}>CSV</button>
          <button onClick={onClose} aria-label="Close inspector">×</button>
        </header>
        {error && <div className="banner error">{error}</div>}
        {!trace && !error && <p className="muted">Loading the trace…</p>}
        {trace && m && options && (
          <div className="inspector-body">
            <p className="muted convention">{trace.convention}</p>
            <section className="wide">
              <h3>Expert load: share of tokens per layer and expert (shared experts: weight share)</h3>
              <Chart option={options.heatmap} height={Math.max(220, 22 * m.layers.length + 60)} name="expert-load-heatmap" testId="heatmap" />
            </section>
            <section>
              <h3>Expert share per layer (Fig. 7)</h3>
              <Chart option={options.fig7} height={260} name="fig7-expert-share" testId="fig7" />
            </section>
            <section>
              <h3>Experts per token, k (Fig. 8)</h3>
              <Chart option={options.fig8} height={260} name="fig8-k" testId="fig8" />
            </section>
            <section className="wide">
              <h3>Tokens coloured by their top expert at L{layer}</h3>
              <TokenStrip trace={trace} m={m} layer={layer} />
            </section>
            <section>
              <h3>Co-activation at L{layer} (all pairs)</h3>
              <Chart option={options.coact} height={240} name={`coactivation-L${layer}`} testId="coactivation" />
            </section>
            <section>
              <h3>Top-expert transitions L{Math.min(layer, m.transitions.length - 1)} → L{Math.min(layer, m.transitions.length - 1) + 1}</h3>
              <Chart option={options.transitions} height={240} name={`transitions-L${layer}`} testId="transitions" />
            </section>
            <section className="wide">
              <h3>Balance per layer</h3>
              <BalanceTable m={m} />
            </section>
          </div>
        )}
      </div>
    </div>,
    document.body,
  );
}
