"use client";
import type { DatasetSummary } from "@/engine/values/dataset";

/** The Dataset node's preview: count, tasks, modalities, the first rows and the bad rows with their line. */
export function DatasetPreview({ value }: { value: Record<string, unknown> }) {
  if (!Array.isArray(value.preview)) return null;
  const summary = value as Partial<DatasetSummary>; // the stored preview of a dataset summary (engine/values/dataset.ts)
  const rows = summary.preview ?? [];
  const errors = summary.errors ?? [];
  const answers = rows.some((r) => r.answer);
  const clip = (s: string) => (s.length > 40 ? `${s.slice(0, 39)}…` : s);
  return (
    <div className="report-mini nodrag nowheel" data-testid="dataset-preview" style={{ maxHeight: 220, overflow: "auto" }}>
      <table className="balance">
        <thead>
          <tr>
            <th>#</th>
            <th>task</th>
            <th>label</th>
            <th>text</th>
            {answers && <th>answer</th>}
            <th>media</th>
          </tr>
        </thead>
        <tbody>
          {rows.map((r) => (
            <tr key={r.index} style={r.index === summary.previewRow ? { outline: "1px solid #60a5fa" } : undefined}>
              <td>{r.index}</td>
              <td>{r.task}</td>
              <td>{r.label}</td>
              <td>{clip(r.text)}</td>
              {answers && <td>{clip(r.answer ?? "")}</td>}
              <td>{Object.entries(r.media).map(([k, v]) => `${k}: ${v}`).join(", ")}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {(summary.errorCount ?? 0) > 0 && (
        <div className="node-error" data-testid="dataset-errors">
          {summary.errorCount} bad row(s) skipped: {errors.slice(0, 5).map((e) => e.message).join("; ")}
        </div>
      )}
    </div>
  );
}
