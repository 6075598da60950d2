"use client";
import { describeRunMemory, formatBytes, RSS_NOTE, type MemoryFigures } from "@/engine/runtime/memory-format";
import { useRun } from "./run-store";

/** The shown run's memory for the editor header: "412 MB peak" (+ CUDA), details and the process-wide note on hover. */
export function RunMemoryTag() {
  const memory = useRun((s) => s.memory);
  const running = useRun((s) => s.status === "running" || s.status === "queued");
  if (!memory?.peakRssBytes) {
    if (running && memory?.startRssBytes) {
      return (
        <span className="ep-tag" title={`RSS when the run started. ${RSS_NOTE}`} data-testid="run-memory">
          RSS {formatBytes(memory.startRssBytes)} at start
        </span>
      );
    }
    return null;
  }
  return (
    <span className="ep-tag" title={`${describeRunMemory(memory)}. ${RSS_NOTE}`} data-testid="run-memory">
      {formatBytes(memory.peakRssBytes)} peak
      {memory.peakDeviceBytes !== undefined && ` · CUDA ${formatBytes(memory.peakDeviceBytes)}`}
    </span>
  );
}

function formatMs(ms: number): string {
  return ms < 1000 ? `${ms.toFixed(ms < 10 ? 1 : 0)} ms` : `${(ms / 1000).toFixed(2)} s`;
}

/** One run's memory line in the run list, or nothing for runs recorded before memory was measured. */
export function RunMemoryLine({ run }: { run: MemoryFigures }) {
  const text = describeRunMemory(run);
  if (!text) return null;
  return (
    <div className="muted" title={RSS_NOTE} data-testid="run-memory-line">
      {text}
    </div>
  );
}

/** The shown run's nodes with their time and peak RSS (nodes served from the cache did not execute: no peak). */
export function NodeMemoryTable() {
  const nodes = useRun((s) => s.nodes);
  const rows = Object.entries(nodes).filter(([, n]) => n.status !== "waiting");
  if (!rows.length) return null;
  return (
    <details className="node-memory" data-testid="node-memory">
      <summary>Nodes of this run: time and peak RSS</summary>
      <table style={{ width: "100%", borderCollapse: "collapse", fontSize: 11, marginTop: 4 }}>
        <thead>
          <tr style={{ textAlign: "left" }}>
            <th>node</th>
            <th>status</th>
            <th style={{ textAlign: "right" }}>time</th>
            <th style={{ textAlign: "right" }} title={RSS_NOTE}>
              peak RSS
            </th>
          </tr>
        </thead>
        <tbody>
          {rows.map(([id, n]) => (
            <tr key={id} data-testid={`node-memory-${id}`}>
              <td>{id}</td>
              <td>{n.status}</td>
              <td style={{ textAlign: "right" }}>{n.ms !== undefined && n.status === "done" ? formatMs(n.ms) : "—"}</td>
              <td style={{ textAlign: "right" }}>{n.peakRssBytes !== undefined ? formatBytes(n.peakRssBytes) : "—"}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </details>
  );
}
