"use client";
import { createContext, memo, useContext, useEffect, useState } from "react";
import { useFileUrl } from "@/app/inspector/file-url";
import { VIEWS } from "@/app/inspector/views";
import { useRun, type NodeRunView } from "./run-store";
import { staleOnCanvas } from "./stale";
import { useEditor } from "./store";

/** Starts a run of the open document; with a node id, only that node and its ancestors. */
export const StartRunContext = createContext<(targetNodeId?: string) => void>(() => {});

const LABEL: Record<NodeRunView["status"], string> = {
  waiting: "waiting",
  running: "running",
  done: "done",
  cached: "cached",
  error: "error",
  skipped: "skipped",
  cancelled: "cancelled",
  interrupted: "interrupted",
};

function Elapsed({ since }: { since: number }) {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    const t = setInterval(() => setNow(Date.now()), 100);
    return () => clearInterval(t);
  }, []);
  return <>{((now - since) / 1000).toFixed(1)} s</>;
}

function formatMs(ms: number): string {
  return ms < 1000 ? `${ms.toFixed(ms < 10 ? 1 : 0)} ms` : `${(ms / 1000).toFixed(2)} s`;
}

export const RunBadge = memo(function RunBadge({ nodeId }: { nodeId: string }) {
  const run = useRun((s) => s.nodes[nodeId]);
  const ran = useRun((s) => s.runDocument);
  // its params or inputs (or something upstream) changed since the run shown: its outputs are not what it would give now
  const stale = useEditor((s) => (run?.status === "done" || run?.status === "cached") && staleOnCanvas(s.nodes, s.edges, ran).has(nodeId));
  const startRun = useContext(StartRunContext);
  return (
    <>
      {run && (
        <span
          className={`run-badge st-${stale ? "stale" : run.status}`}
          data-testid={`status-${nodeId}`}
          data-status={run.status}
          {...(stale ? { "data-stale": "true", title: "Changed since this run, here or upstream: its outputs are from before. Run again to update." } : {})}
        >
          {stale ? "stale · " : ""}
          {LABEL[run.status]}
          {run.status === "running" && run.startedAt ? <> · <Elapsed since={run.startedAt} /></> : null}
          {run.status === "done" && run.ms !== undefined ? ` · ${formatMs(run.ms)}` : null}
        </span>
      )}
      <button className="run-to nodrag" title="Run to here: this node and what it needs" onClick={() => startRun(nodeId)} aria-label={`Run to ${nodeId}`}>
        ▶
      </button>
    </>
  );
});

/**
 * One output socket's preview as the run stored it (app/server/runs.ts previewOutputs): its headline, and the view
 * of its `type` from the one map in app/inspector/views.tsx. Nothing here changes the workflow or starts a run, so
 * the shared page (/s/<token>) shows it too, with its token-carrying file addresses (FileUrlContext).
 */
export function OutputValue({ socket, value }: { socket: string; value: Record<string, unknown> }) {
  const type = String(value.type ?? "");
  const View = Object.prototype.hasOwnProperty.call(VIEWS, type) ? VIEWS[type] : undefined;
  return (
    <div className="out-preview">
      <div className="muted">
        {socket}: {String(value.headline ?? type)}
      </div>
      {View && <View socket={socket} value={value} />}
    </div>
  );
}

export const RunOutputs = memo(function RunOutputs({ nodeId }: { nodeId: string }) {
  const run = useRun((s) => s.nodes[nodeId]);
  const fileUrl = useFileUrl();
  if (!run) return null;
  return (
    <>
      {run.status === "running" && (
        <>
          <div className="progress" title={run.message}>
            <div style={{ width: `${Math.round((run.fraction ?? 0) * 100)}%` }} />
          </div>
          {run.message && <pre className="out-text stream nowheel" data-testid={`stream-${nodeId}`}>{run.message}</pre>}
          {run.preview && <img className="thumb" src={fileUrl(run.preview)} alt="refining" data-testid={`preview-${nodeId}`} />}
        </>
      )}
      {run.error && <div className="node-error" data-testid={`error-${nodeId}`}>{run.error}</div>}
      {run.outputs && Object.keys(run.outputs).length > 0 && (
        <div className="pnode-outputs" data-testid={`outputs-${nodeId}`}>
          {Object.entries(run.outputs).map(([socket, value]) => (
            <OutputValue key={socket} socket={socket} value={value as Record<string, unknown>} />
          ))}
        </div>
      )}
    </>
  );
});
