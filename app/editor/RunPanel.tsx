"use client";
import { trpc } from "@/app/lib/trpc";
import { NodeMemoryTable, RunMemoryLine } from "./RunMemory";
import { useRun } from "./run-store";
import { useEscape } from "@/app/lib/use-escape";

function ago(iso: string): string {
  const s = Math.round((Date.now() - new Date(iso).getTime()) / 1000);
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  return new Date(iso).toLocaleString();
}

/** Queued, running and past runs of this workflow: cancel, re-order pending runs, reopen a past run's outputs. */
export function RunPanel({ workflowId, onClose }: { workflowId: string; onClose: () => void }) {
  useEscape(onClose);
  const utils = trpc.useUtils();
  const currentRun = useRun((s) => s.runId);
  const runStatus = useRun((s) => s.status);
  const list = trpc.run.list.useQuery({ workflowId }, { refetchInterval: runStatus === "running" || runStatus === "queued" ? 1000 : 5000 });
  const cancel = trpc.run.cancel.useMutation({ onSuccess: () => utils.run.list.invalidate() });
  const move = trpc.run.move.useMutation({ onSuccess: () => utils.run.list.invalidate() });
  async function open(runId: string) {
    const run = await utils.run.get.fetch({ runId });
    useRun.getState().show(run);
  }
  return (
    <aside className="run-panel" aria-label="Runs">
      <h3>
        Runs <button onClick={onClose} aria-label="Close runs">×</button>
      </h3>
      <ul>
        {list.data?.length === 0 && <li className="muted">No runs yet. Press Run.</li>}
        {list.data?.map((r) => {
          const live = r.status === "queued" || r.status === "running";
          return (
            <li key={r.id} className={r.id === currentRun ? "current" : ""} data-testid="run-row">
              <div className="row">
                <span className={`run-status s-${r.status}`}>{r.status}</span>
                {r.queuePosition !== null && r.queuePosition >= 0 && <span className="muted">#{r.queuePosition + 1} in queue</span>}
                {r.executionProvider && <span className="ep-tag">{r.executionProvider}</span>}
                <span className="muted" style={{ marginLeft: "auto" }}>{ago(r.createdAt)}</span>
              </div>
              {r.targetNodeId && <div className="muted">run to {r.targetNodeId}</div>}
              <RunMemoryLine run={r} />
              {r.error && <div className="error-text">{r.error}</div>}
              <div className="row">
                {!live && <button onClick={() => void open(r.id)}>Show outputs</button>}
                {live && <button onClick={() => cancel.mutate({ runId: r.id })}>Cancel</button>}
                {r.status === "queued" && (
                  <>
                    <button onClick={() => move.mutate({ runId: r.id, direction: "up" })} aria-label="Move up">↑</button>
                    <button onClick={() => move.mutate({ runId: r.id, direction: "down" })} aria-label="Move down">↓</button>
                  </>
                )}
                <span className="muted" style={{ marginLeft: "auto" }}>{r.id}</span>
              </div>
              {r.id === currentRun && !live && <NodeMemoryTable />}
            </li>
          );
        })}
      </ul>
    </aside>
  );
}
