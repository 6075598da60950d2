"use client";
import dynamic from "next/dynamic";
import { createContext, memo, useContext, useEffect, useState } from "react";
import { AudioView } from "@/app/inspector/AudioView";
import { useFileUrl } from "@/app/inspector/file-url";
import { useRun, type NodeRunView } from "./run-store";

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
  const startRun = useContext(StartRunContext);
  return (
    <>
      {run && (
        <span className={`run-badge st-${run.status}`} data-testid={`status-${nodeId}`} data-status={run.status}>
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

const RoutingInspector = dynamic(() => import("@/app/inspector/RoutingInspector"), { ssr: false });
const RoutingMini = dynamic(() => import("@/app/inspector/RoutingInspector").then((m) => m.RoutingMini), { ssr: false });

const CompareView = dynamic(() => import("@/app/inspector/CompareView"), { ssr: false });

function CompareReportView({ file }: { file: string }) {
  const [open, setOpen] = useState(false);
  return (
    <div className="report-mini nodrag">
      <button onClick={() => setOpen(true)}>Open comparison</button>
      {open && <CompareView file={file} onClose={() => setOpen(false)} />}
    </div>
  );
}

const RopeInspector = dynamic(() => import("@/app/inspector/RopeInspector"), { ssr: false });

const AggregateReportView = dynamic(() => import("@/app/inspector/AggregateView").then((m) => m.AggregateReportView), { ssr: false });
const AblationReportView = dynamic(() => import("@/app/inspector/AblationView").then((m) => m.AblationReportView), { ssr: false });
const DatasetPreview = dynamic(() => import("@/app/inspector/DatasetPreview").then((m) => m.DatasetPreview), { ssr: false });

function RopeReportView({ file }: { file: string }) {
  const [open, setOpen] = useState(false);
  return (
    <div className="report-mini nodrag">
      <button onClick={() => setOpen(true)}>Open RoPE inspector</button>
      {open && <RopeInspector file={file} onClose={() => setOpen(false)} />}
    </div>
  );
}

function RoutingReportView({ traceFile, metricsFile }: { traceFile: string; metricsFile?: string }) {
  const [open, setOpen] = useState(false);
  return (
    <div className="report-mini nodrag">
      <RoutingMini traceFile={traceFile} metricsFile={metricsFile} />
      <button onClick={() => setOpen(true)}>Open inspector</button>
      {open && <RoutingInspector traceFile={traceFile} metricsFile={metricsFile} title="Routing Inspector" onClose={() => setOpen(false)} />}
    </div>
  );
}

/**
 * One output socket's preview as the run stored it (app/server/runs.ts previewOutputs): media, text and the
 * report views. Nothing here changes the workflow or starts a run, so the shared page (/s/<token>) shows it
 * too, with its token-carrying file addresses (FileUrlContext).
 */
export function OutputValue({ socket, value }: { socket: string; value: Record<string, unknown> }) {
  const fileUrl = useFileUrl();
  const type = String(value.type ?? "");
  const file = typeof value.file === "string" ? value.file : undefined;
  return (
    <div className="out-preview">
      <div className="muted">
        {socket}: {String(value.headline ?? type)}
      </div>
      {file && type === "image" && <img className="thumb" src={fileUrl(file)} alt={`${socket} output`} />}
      {file && type === "audio" && <AudioView file={file} />}
      {file && type === "video" && <video controls src={fileUrl(file)} className="thumb" />}
      {type === "text" && typeof value.text === "string" && <pre className="out-text nowheel">{value.text}</pre>}
      {type === "routing-report" && typeof value.traceFile === "string" && <RoutingReportView traceFile={value.traceFile} metricsFile={typeof value.metricsFile === "string" ? value.metricsFile : undefined} />}
      {type === "rope-report" && typeof value.file === "string" && <RopeReportView file={value.file} />}
      {type === "compare-report" && typeof value.file === "string" && <CompareReportView file={value.file} />}
      {type === "routing-aggregate" && typeof value.file === "string" && <AggregateReportView report={value as never} />}
      {type === "dataset" && Array.isArray(value.preview) && <DatasetPreview summary={value as never} />}
      {type === "expert-ablation" && typeof value.file === "string" && <AblationReportView report={value as never} />}
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
