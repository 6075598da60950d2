"use client";
import dynamic from "next/dynamic";
import { useEffect, useMemo, useState } from "react";
import { createPortal } from "react-dom";
import type { AggregateExport } from "@/engine/batch/summary";
import { RoutingAggregate, type AggregateQuery } from "@/engine/routing/aggregate";
import { aggregateToSafetensors } from "@/engine/routing/safetensors-export";
import type { RoutingMetrics } from "@/engine/routing/metrics";
import { meanNll, nllAll, nllBy } from "@/engine/batch/scores";
import { groupsBy, type GroupField } from "@/engine/routing/specialisation";
import type { Modality, Phase } from "@/engine/trace";
import { StackedBars } from "./CanvasChart";
import { layerNames, stackedSeries } from "./routing-figures";
import { useFileUrl } from "./file-url";
import { VocabularyView } from "./VocabularyView";
import { useEscape } from "@/app/lib/use-escape";
import { downloadBlob, downloadUrl } from "@/app/lib/download";

const SweepChart = dynamic(() => import("./SweepChart"), { ssr: false });


/** The report the Routing Aggregate node outputs (nodes/routing-aggregate.ts), as the editor receives it. */
export interface AggregateReportValue {
  type: "routing-aggregate";
  headline: string;
  file: string;
  csvFile: string;
  sweepFile?: string;
  records?: { total: number; ran: number; cached: number; failed: number; badRows: number };
  failures?: { line: number; message: string }[];
}

export function useAggregate(file: string): { doc?: AggregateExport; agg?: RoutingAggregate; error?: string } {
  const [state, setState] = useState<{ doc?: AggregateExport; agg?: RoutingAggregate; error?: string }>({});
  const fileUrl = useFileUrl();
  useEffect(() => {
    let live = true;
    fetch(fileUrl(file))
      .then(async (r) => {
        if (!r.ok) throw new Error(`the aggregate file is missing (${r.status})`);
        const doc = (await r.json()) as AggregateExport;
        return { doc, agg: RoutingAggregate.fromJSON(doc.aggregate) };
      })
      .then((s) => live && setState(s))
      .catch((err: Error) => live && setState({ error: err.message }));
    return () => {
      live = false;
    };
  }, [file, fileUrl]);
  return state;
}

const short = (h: string) => (h ? h.slice(0, 12) : "—");

type Facet = "all" | `modality:${Modality}` | `phase:${Phase}`;

const slug = (s: string) => s.replace(/[^a-zA-Z0-9_-]+/g, "_") || "none";

/**
 * The dataset aggregate: Fig. 7 and Fig. 8 per task (or label) side by side, a balance summary per
 * group, expert vocabularies and specialisation, the sweep chart when there is one, and exports (the
 * figures carry the workflow and dataset fingerprints in their subtitle, so PNG and SVG keep them).
 */
export default function AggregateView({ report, onClose }: { report: AggregateReportValue; onClose: () => void }) {
  useEscape(onClose);
  const { doc, agg, error } = useAggregate(report.file);
  const fileUrl = useFileUrl();
  const [field, setField] = useState<GroupField>("task");
  const [facet, setFacet] = useState<Facet>("all");
  const [tab, setTab] = useState<"figures" | "vocabulary" | "sweep">(report.sweepFile ? "sweep" : "figures");
  const groups = useMemo(() => (agg ? [...groupsBy(agg, field).entries()] : []), [agg, field]);
  const facetQuery = useMemo((): AggregateQuery => {
    if (facet === "all") return {};
    const [k, v] = facet.split(":") as ["modality" | "phase", string];
    return k === "modality" ? { modality: v as Modality } : { phase: v as Phase };
  }, [facet]);
  const panels = useMemo(() => {
    if (!agg || !doc) return [];
    const sub = `workflow ${short(doc.workflowFingerprint)} · dataset ${short(doc.datasetFingerprint)}`;
    const scopes: [string, string[] | undefined][] = [["all records", undefined], ...groups.map(([name, gs]) => [name === "" ? "(none)" : name, gs] as [string, string[]])];
    return scopes
      .map(([name, gs]) => {
        const m = agg.metrics({ ...facetQuery, ...(gs ? { group: gs } : {}) });
        return { name, m, sub, layers: layerNames(m), fig7: stackedSeries(m, "share"), fig8: stackedSeries(m, "k") };
      })
      .filter((p) => p.m.tokens > 0);
  }, [agg, doc, groups, facetQuery]);
  const facets = useMemo((): Facet[] => {
    if (!agg) return ["all"];
    const c = agg.counts();
    return ["all", ...Object.keys(c.byModality).map((m) => `modality:${m}` as Facet), ...Object.keys(c.byPhase).map((p) => `phase:${p}` as Facet)];
  }, [agg]);
  const cols = Math.min(5, Math.max(1, panels.length));
  // Mean teacher-forced NLL per panel, when the traces were scored (MoE-LLM mode score-answer / score-text).
  const nllOf = useMemo(() => {
    if (!doc?.nll) return null;
    const by = nllBy(doc.nll, field);
    return (name: string) => (name === "all records" ? nllAll(doc.nll!) : by.get(name === "(none)" ? "" : name));
  }, [doc, field]);
  return createPortal(
    <div className="inspector-backdrop" onMouseDown={(e) => e.target === e.currentTarget && onClose()}>
      <div className="inspector" role="dialog" aria-label="Dataset routing aggregate" data-testid="aggregate-view">
        <header>
          <h2>Routing over the dataset</h2>
          {doc && (
            <span className="muted" data-testid="aggregate-headline">
              {doc.dataset.count} records ({doc.records.ran} ran, {doc.records.cached} cached{doc.records.failed ? `, ${doc.records.failed} failed` : ""}) · {agg?.counts().tokens ?? 0} tokens · workflow {short(doc.workflowFingerprint)} · dataset {short(doc.datasetFingerprint)}
            </span>
          )}
          <span className="spacer" />
          <button onClick={() => setTab("figures")} aria-pressed={tab === "figures"}>Fig. 7 / 8</button>
          <button onClick={() => setTab("vocabulary")} aria-pressed={tab === "vocabulary"}>Vocabulary &amp; specialisation</button>
          {report.sweepFile && (
            <button onClick={() => setTab("sweep")} aria-pressed={tab === "sweep"}>
              Sweep
            </button>
          )}
          <button onClick={() => downloadUrl("routing-aggregate.json", fileUrl(report.file))}>JSON</button>
          <button onClick={() => downloadUrl("routing-aggregate.csv", fileUrl(report.csvFile))}>CSV</button>
          <button
            disabled={!agg || !doc}
            title="selection and k counts per task and layer, for safetensors.numpy.load_file"
            onClick={() => {
              if (!agg || !doc) return;
              downloadBlob("routing-aggregate.safetensors", new Blob([aggregateToSafetensors(agg, doc) as Uint8Array<ArrayBuffer>], { type: "application/octet-stream" }));
            }}
          >
            safetensors
          </button>
          <button onClick={onClose} aria-label="Close aggregate">×</button>
        </header>
        {error && <div className="banner error">{error}</div>}
        {report.failures && report.failures.length > 0 && (
          <div className="banner warn" data-testid="aggregate-failures">
            {report.records?.failed} record(s) failed and were skipped, e.g. {report.failures.slice(0, 3).map((f) => `line ${f.line}: ${f.message}`).join("; ")}
          </div>
        )}
        {agg && doc && tab === "figures" && (
          <div className="inspector-body" style={{ gridTemplateColumns: "1fr" }}>
            <section className="wide">
              <label>
                Split by{" "}
                <select value={field} onChange={(e) => setField(e.target.value as GroupField)} data-testid="aggregate-split">
                  <option value="task">task</option>
                  <option value="label">label</option>
                </select>
              </label>{" "}
              <label>
                Tokens{" "}
                <select value={facet} onChange={(e) => setFacet(e.target.value as Facet)} data-testid="aggregate-facet">
                  {facets.map((f) => (
                    <option key={f} value={f}>
                      {f === "all" ? "all" : f.split(":")[1]}
                    </option>
                  ))}
                </select>
              </label>
            </section>
            <section className="wide">
              <h3>Fig. 7 — share of expert selections per layer, per {field}</h3>
              <div style={{ display: "grid", gridTemplateColumns: `repeat(${cols}, minmax(0, 1fr))`, gap: 8 }}>
                {panels.map((p) => (
                  <StackedBars key={p.name} categories={p.layers} series={p.fig7} yMax={100} unit="%" title={`Fig. 7 · ${p.name} (${p.m.tokens} tokens)`} subtitle={p.sub} height={290} name={`fig7-${slug(p.name)}`} testId={`agg-fig7-${slug(p.name)}`} />
                ))}
              </div>
            </section>
            <section className="wide">
              <h3>Fig. 8 — share of tokens by number of experts chosen (k), per {field}</h3>
              <div style={{ display: "grid", gridTemplateColumns: `repeat(${cols}, minmax(0, 1fr))`, gap: 8 }}>
                {panels.map((p) => (
                  <StackedBars key={p.name} categories={p.layers} series={p.fig8} yMax={100} unit="%" title={`Fig. 8 · ${p.name}`} subtitle={p.sub} height={290} name={`fig8-${slug(p.name)}`} testId={`agg-fig8-${slug(p.name)}`} />
                ))}
              </div>
            </section>
            <section className="wide">
              <h3>Balance per {field} (mean over layers)</h3>
              <table className="balance" data-testid="aggregate-balance">
                <thead>
                  <tr>
                    <th>{field}</th>
                    <th>tokens</th>
                    <th>mean k</th>
                    <th>null %</th>
                    <th>shared w %</th>
                    <th>CV</th>
                    <th>Jain</th>
                    <th title="mean router entropy per token, natural log">entropy (nats)</th>
                    {nllOf && <th>mean NLL</th>}
                    {nllOf && <th>perplexity</th>}
                  </tr>
                </thead>
                <tbody>
                  {panels.map(({ name, m }) => {
                    const mean = (f: (l: RoutingMetrics["layers"][number]) => number) => m.layers.reduce((a, l) => a + f(l), 0) / Math.max(1, m.layers.length);
                    return (
                      <tr key={name}>
                        <td>{name}</td>
                        <td>{m.tokens}</td>
                        <td>{mean((l) => l.meanK).toFixed(2)}</td>
                        <td>{(mean((l) => l.nullTokenShare) * 100).toFixed(1)}</td>
                        <td>{(mean((l) => l.sharedWeightShare) * 100).toFixed(1)}</td>
                        <td>{mean((l) => l.loadCV).toFixed(3)}</td>
                        <td>{mean((l) => l.jain).toFixed(3)}</td>
                        <td>{mean((l) => l.entropy).toFixed(3)}</td>
                        {nllOf && <td data-testid="aggregate-nll">{meanNll(nllOf(name)).toFixed(3)}</td>}
                        {nllOf && <td>{Math.exp(meanNll(nllOf(name))).toPrecision(4)}</td>}
                      </tr>
                    );
                  })}
                </tbody>
              </table>
            </section>
          </div>
        )}
        {agg && tab === "vocabulary" && <VocabularyView agg={agg} field={field} />}
        {tab === "sweep" && report.sweepFile && <SweepChart file={report.sweepFile} />}
      </div>
    </div>,
    document.body,
  );
}

/** What the Routing Aggregate node shows in the editor: its headline and a button to open the views. */
export function AggregateReportView({ value }: { value: Record<string, unknown> }) {
  const [open, setOpen] = useState(false);
  if (typeof value.file !== "string") return null;
  const report = value as unknown as AggregateReportValue; // the stored preview of a routing-aggregate report (engine/values/routing-aggregate.ts)
  return (
    <div className="report-mini nodrag" data-testid="aggregate-report">
      {report.records && (
        <span className="muted">
          {report.records.ran} ran · {report.records.cached} cached{report.records.failed ? ` · ${report.records.failed} failed` : ""}
          {report.records.badRows ? ` · ${report.records.badRows} bad row(s)` : ""}
        </span>
      )}
      <button onClick={() => setOpen(true)}>{report.sweepFile ? "Open aggregate and sweep" : "Open aggregate"}</button>
      {open && <AggregateView report={report} onClose={() => setOpen(false)} />}
    </div>
  );
}
