"use client";
import type { Edge, Node, NodeProps } from "@xyflow/react";
import { memo, useEffect, useMemo, useState } from "react";
import { edgeKey } from "@/engine/workflow/diff";
import type { Workflow, WorkflowEdge } from "@/engine/workflow/schema";
import { trpc } from "@/app/lib/trpc";
import "@/app/s/history-share.css";
import { toFlow, type FlowEdge, type FlowNode, type PipelineNodeData } from "./convert";
import { PipelineNode } from "./PipelineNode";
import { isDirty, useEditor } from "./store";
import { useEscape } from "@/app/lib/use-escape";

type DiffMark = "added" | "removed" | "changed" | "same";

interface DiffNodeData extends PipelineNodeData {
  diff: DiffMark;
  changedParams: string[];
  moved: boolean;
}

type DiffFlowNode = Node<DiffNodeData, "diff">;

const MARK_LABEL: Record<DiffMark, string> = { added: "added", removed: "removed", changed: "changed", same: "" };

/**
 * A node of the diff picture: the usual node, framed by what happened to it (green added, ghosted red
 * removed, amber changed with the changed params named). Its fields are disabled: the picture is read-only.
 */
export const DiffNode = memo(function DiffNode(props: NodeProps<DiffFlowNode>) {
  const { diff, changedParams, moved } = props.data;
  const detail = [changedParams.length ? changedParams.join(", ") : "", moved ? "moved" : ""].filter(Boolean).join(" · ");
  return (
    <div className={`diff-node diff-${diff}`} data-testid={`diff-${props.id}`} data-diff={diff}>
      {diff !== "same" && (
        <div className="diff-tag" data-testid={`diff-tag-${props.id}`}>
          {MARK_LABEL[diff]}
          {detail && `: ${detail}`}
        </div>
      )}
      <fieldset disabled className="diff-fields">
        <PipelineNode {...(props as unknown as NodeProps<FlowNode>)} />
      </fieldset>
    </div>
  );
});

const ADDED_EDGE = { stroke: "#3fb950", strokeWidth: 2.5 };
const REMOVED_EDGE = { stroke: "#f85149", strokeWidth: 2, strokeDasharray: "6 4", opacity: 0.7 };

/** The parts of a WorkflowDiff (engine/workflow/diff.ts) that the picture needs. */
interface DiffMarks {
  nodes: {
    added: { id: string }[];
    removed: { id: string }[];
    changed: { id: string; params: { key: string }[]; moved: boolean; labelChanged: boolean; typeChanged: boolean; typeVersionChanged: boolean }[];
  };
  edges: { added: WorkflowEdge[]; removed: WorkflowEdge[] };
}

/**
 * The `to` document drawn with the changes from `from` marked, plus ghosts of what was removed.
 * (Typed as the canvas's node list; the "diff" node type renders them.)
 */
export function diffFlow(from: Workflow, to: Workflow, diff: DiffMarks): { nodes: FlowNode[]; edges: FlowEdge[] } {
  const changed = new Map(diff.nodes.changed.map((c) => [c.id, c]));
  const added = new Set(diff.nodes.added.map((n) => n.id));
  const removed = new Set(diff.nodes.removed.map((n) => n.id));
  const mark = (n: FlowNode, m: DiffMark): DiffFlowNode => {
    const c = changed.get(n.id);
    return {
      ...n,
      type: "diff",
      draggable: false,
      selectable: false,
      connectable: false,
      deletable: false,
      data: { ...n.data, diff: m, changedParams: c ? [...c.params.map((p) => p.key), ...(c.labelChanged ? ["label"] : []), ...(c.typeChanged || c.typeVersionChanged ? ["type"] : [])] : [], moved: !!c?.moved },
    };
  };
  const toFlowDoc = toFlow(to);
  const fromFlowDoc = toFlow(from);
  const nodes: Node[] = [
    ...toFlowDoc.nodes.map((n) => {
      const c = changed.get(n.id);
      const m: DiffMark = added.has(n.id) ? "added" : c && (c.params.length || c.labelChanged || c.typeChanged || c.typeVersionChanged || c.moved) ? "changed" : "same";
      return mark(n, m);
    }),
    ...fromFlowDoc.nodes.filter((n) => removed.has(n.id)).map((n) => ({ ...mark(n, "removed"), zIndex: -1 })),
  ];
  const addedEdges = new Set(diff.edges.added.map(edgeKey));
  const edges: Edge[] = [
    ...toFlowDoc.edges.map((e, i) => {
      const isNew = addedEdges.has(edgeKey(to.edges[i]!));
      return { ...e, selectable: false, deletable: false, ...(isNew ? { style: ADDED_EDGE, className: "diff-edge-added" } : {}) };
    }),
    ...diff.edges.removed.map((e) => ({
      id: `removed:${e.id}`,
      source: e.source,
      sourceHandle: e.sourceSocket,
      target: e.target,
      targetHandle: e.targetSocket,
      selectable: false,
      deletable: false,
      style: REMOVED_EDGE,
      className: "diff-edge-removed",
    })),
  ];
  return { nodes: nodes as unknown as FlowNode[], edges };
}

function lineClass(line: string): string {
  return line.startsWith("+") ? "diff-line added" : line.startsWith("-") ? "diff-line removed" : "diff-line changed";
}

/** Versions of the open workflow; pick two to see what changed (as a list and on the canvas); restore any. */
export function HistoryPanel({ workflowId, onClose, onRestored }: { workflowId: string; onClose: () => void; onRestored: (version: number, from: number) => void }) {
  useEscape(onClose);
  const history = trpc.history.list.useQuery({ workflowId }, { staleTime: 0 });
  const restore = trpc.history.restore.useMutation();
  const baseVersion = useEditor((s) => s.baseVersion);
  const [picked, setPicked] = useState<number[]>([]);
  const [onCanvas, setOnCanvas] = useState(true);
  const [error, setError] = useState<string | null>(null);

  const versions = history.data?.versions;
  // Refetch when the editor saves or restores (the base version moves).
  const { refetch } = history;
  useEffect(() => void refetch(), [baseVersion, refetch]);
  // By default, compare the two newest versions.
  useEffect(() => {
    if (versions && picked.length === 0 && versions.length >= 2) setPicked([versions[1]!.version, versions[0]!.version]);
  }, [versions]); // eslint-disable-line react-hooks/exhaustive-deps

  const [from, to] = useMemo(() => [...picked].sort((a, b) => a - b), [picked]);
  const diff = trpc.history.diff.useQuery({ workflowId, from: from ?? 1, to: to ?? 1 }, { enabled: from !== undefined && to !== undefined, staleTime: Infinity });

  useEffect(() => {
    const d = diff.data;
    useEditor.getState().setDiffView(onCanvas && d && picked.length === 2 ? diffFlow(d.from.document, d.to.document, d.diff) : null);
  }, [diff.data, onCanvas, picked.length]);
  useEffect(() => () => useEditor.getState().setDiffView(null), []);

  const toggle = (v: number) => setPicked((p) => (p.includes(v) ? p.filter((x) => x !== v) : [...p, v].slice(-2)));

  const doRestore = async (v: number) => {
    if (isDirty(useEditor.getState()) && !confirm(`Restore version ${v}? Your unsaved changes in the editor will be replaced.`)) return;
    setError(null);
    try {
      const { version } = await restore.mutateAsync({ workflowId, version: v });
      await history.refetch();
      onRestored(version, v);
    } catch (err) {
      setError((err as Error).message);
    }
  };

  return (
    <aside className="run-panel history-panel" aria-label="History">
      <h3>
        History
        <button onClick={onClose} aria-label="Close history">×</button>
      </h3>
      {history.error && <div className="banner error">{history.error.message}</div>}
      {error && <div className="banner error">{error}</div>}
      <p className="muted hint" data-testid="history-hint">
        {from !== undefined && to !== undefined
          ? `Comparing the ticked versions v${from} and v${to} (the two newest when the panel opens). Untick one to edit your workflow again.`
          : "Tick two versions to compare them."}
      </p>
      <ul className="history-list">
        {versions?.map((v) => (
          <li key={v.version} className={v.version === baseVersion ? "current" : ""} data-testid={`version-${v.version}`}>
            <div className="row">
              <input type="checkbox" checked={picked.includes(v.version)} onChange={() => toggle(v.version)} aria-label={`Compare version ${v.version}`} />
              <strong>v{v.version}</strong>
              <span className="muted">{new Date(v.createdAt).toLocaleString()}</span>
              <span className="spacer" />
              {v.version !== history.data?.latestVersion && (
                <button onClick={() => void doRestore(v.version)} disabled={restore.isPending} aria-label={`Restore version ${v.version}`}>
                  Restore
                </button>
              )}
            </div>
            <div className="version-message">{v.message || <span className="muted">(no message)</span>}</div>
            <div className="muted">by {v.authorName}</div>
          </li>
        ))}
      </ul>
      {from !== undefined && to !== undefined && (
        <section className="diff-section" aria-label="Changes">
          <div className="row">
            <strong>
              v{from} → v{to}
            </strong>
            <span className="spacer" />
            <label className="muted">
              <input type="checkbox" checked={onCanvas} onChange={(e) => setOnCanvas(e.target.checked)} /> on the canvas
            </label>
          </div>
          {onCanvas && (
            <div className="diff-legend muted">
              <span className="k added">added</span> <span className="k removed">removed</span> <span className="k changed">changed</span> · the canvas is read-only while it shows
              the changes
            </div>
          )}
          {diff.error && <div className="banner error">{diff.error.message}</div>}
          {diff.data && diff.data.lines.length === 0 && <p className="muted">No differences.</p>}
          <ul className="diff-lines" data-testid="diff-lines">
            {diff.data?.lines.map((line, i) => (
              <li key={i} className={lineClass(line)}>
                {line}
              </li>
            ))}
          </ul>
        </section>
      )}
    </aside>
  );
}
