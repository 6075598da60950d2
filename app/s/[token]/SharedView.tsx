"use client";
import { applyNodeChanges, Background, Controls, Handle, MiniMap, Position, ReactFlow, type Edge, type Node, type NodeChange, type NodeProps } from "@xyflow/react";
import { useRouter, useSearchParams } from "next/navigation";
import { memo, useCallback, useEffect, useMemo, useRef, useState } from "react";
import { OutputValue } from "@/app/editor/NodeRunView";
import { NoteMarkdown } from "@/app/editor/NoteMarkdown";
import { FileUrlContext, sharedFileUrl } from "@/app/inspector/file-url";
import type { NodeTypeInfo } from "@/app/server/catalog";
import type { SharedNodeOutputs } from "@/app/server/shares";
import type { Workflow } from "@/engine/workflow/schema";
import { trpc } from "@/app/lib/trpc";
import "../history-share.css";

interface SharedNodeData extends Record<string, unknown> {
  nodeType: string;
  label?: string;
  params: Record<string, unknown>;
  info?: NodeTypeInfo;
  /** Socket names used by links, for node types this server does not know. */
  linkedInputs: string[];
  linkedOutputs: string[];
  run?: SharedNodeOutputs;
  /** Socket type → colour, as in the editor. */
  colors: Record<string, string>;
}

type SharedFlowNode = Node<SharedNodeData, "shared">;

function shortValue(v: unknown): string {
  const s = typeof v === "string" ? v : JSON.stringify(v);
  if (s === undefined) return "";
  return s.length > 80 ? `${s.slice(0, 77)}…` : s;
}

function NodeOutputs({ nodeId, run }: { nodeId: string; run: SharedNodeOutputs }) {
  if (!run.outputs || Object.keys(run.outputs).length === 0) return null;
  return (
    <div className="pnode-outputs nowheel" data-testid={`shared-outputs-${nodeId}`}>
      {Object.entries(run.outputs).map(([socket, value]) => (
        <OutputValue key={socket} socket={socket} value={value as Record<string, unknown>} />
      ))}
    </div>
  );
}

const SharedNode = memo(function SharedNode({ id, data }: NodeProps<SharedFlowNode>) {
  const inputs = data.info ? Object.keys(data.info.inputs) : data.linkedInputs;
  const outputs = data.info ? Object.keys(data.info.outputs) : data.linkedOutputs;
  const params = Object.entries(data.params);
  return (
    <div className={`snode ${data.info ? "" : "has-warning"}`} data-testid={`shared-node-${id}`}>
      <div className="pnode-head">
        <span className="ptitle">{data.label ?? data.info?.title ?? data.nodeType}</span>
        <span className="ptype">{id}</span>
        {data.run && <span className={`run-badge st-${data.run.status}`}>{data.run.status}</span>}
      </div>
      {!data.info && <div className="pnode-unknown">Unknown node type “{data.nodeType}”.</div>}
      <div className="pnode-sockets">
        <div>
          {inputs.map((s) => (
            <div key={s} className="pnode-socket">
              <Handle id={s} type="target" position={Position.Left} className="socket" isConnectable={false} style={{ background: data.colors[data.info?.inputs[s]?.type ?? ""] }} />
              {data.info?.inputs[s]?.label ?? s}
            </div>
          ))}
        </div>
        <div>
          {outputs.map((s) => (
            <div key={s} className="pnode-socket out">
              {data.info?.outputs[s]?.label ?? s}
              <Handle id={s} type="source" position={Position.Right} className="socket" isConnectable={false} style={{ background: data.colors[data.info?.outputs[s]?.type ?? ""] }} />
            </div>
          ))}
        </div>
      </div>
      {params.length > 0 && (
        <div className="snode-params">
          {params.map(([k, v]) => (
            <div key={k}>
              <span className="k">{k}:</span> <span className="v">{shortValue(v)}</span>
            </div>
          ))}
        </div>
      )}
      {data.run && <NodeOutputs nodeId={id} run={data.run} />}
    </div>
  );
});

const nodeTypes = { shared: SharedNode };
/** sessionStorage: the share token whose Fork sent this tab to log in (the fork finishes when it comes back). */
const FORK_AFTER_LOGIN = "studio.forkAfterLogin";

function toSharedFlow(doc: Workflow, catalog: Map<string, NodeTypeInfo>, colors: Record<string, string>, runs: SharedNodeOutputs[]): { nodes: Node[]; edges: Edge[] } {
  const byNode = new Map(runs.map((r) => [r.nodeId, r]));
  const nodes: SharedFlowNode[] = doc.nodes.map((n) => ({
    id: n.id,
    type: "shared",
    position: { ...n.position },
    draggable: false,
    selectable: false,
    connectable: false,
    // React Flow turns pointer events off on a node that can be neither selected nor dragged; the output
    // views on it (inspector buttons, audio players) need them.
    style: { pointerEvents: "all" },
    data: {
      nodeType: n.type,
      ...(n.label !== undefined ? { label: n.label } : {}),
      params: n.params,
      info: catalog.get(n.type),
      linkedInputs: [...new Set(doc.edges.filter((e) => e.target === n.id).map((e) => e.targetSocket))],
      linkedOutputs: [...new Set(doc.edges.filter((e) => e.source === n.id).map((e) => e.sourceSocket))],
      run: byNode.get(n.id),
      colors,
    },
  }));
  const edges: Edge[] = doc.edges.map((e) => ({ id: e.id, source: e.source, sourceHandle: e.sourceSocket, target: e.target, targetHandle: e.targetSocket, selectable: false }));
  return { nodes, edges };
}

/**
 * The read-only canvas. The nodes are kept in state so that React Flow's measured sizes reach them (the
 * mini-map draws only measured nodes); they start over when the flow does (e.g. once the catalog loads).
 */
function SharedCanvas({ nodes: flowNodes, edges }: { nodes: Node[]; edges: Edge[] }) {
  const [nodes, setNodes] = useState(flowNodes);
  useEffect(() => setNodes(flowNodes), [flowNodes]);
  const onNodesChange = useCallback((changes: NodeChange[]) => setNodes((ns) => applyNodeChanges(changes, ns)), []);
  return (
    <ReactFlow
      nodes={nodes}
      edges={edges}
      onNodesChange={onNodesChange}
      nodeTypes={nodeTypes}
      nodesDraggable={false}
      nodesConnectable={false}
      elementsSelectable={false}
      deleteKeyCode={null}
      fitView
      fitViewOptions={{ maxZoom: 1 }}
      minZoom={0.1}
      proOptions={{ hideAttribution: true }}
      colorMode="dark"
    >
      <Background gap={20} />
      <MiniMap pannable zoomable nodeStrokeWidth={3} />
      <Controls showInteractive={false} />
    </ReactFlow>
  );
}

function NotShared() {
  return (
    <main className="not-shared" data-testid="not-shared">
      <h1>Link not found or no longer shared</h1>
      <p className="muted">The link may be mistyped, revoked by its owner, or expired.</p>
      <a href="/">Go to MoE Studio</a>
    </main>
  );
}

export default function SharedView({ token }: { token: string }) {
  const router = useRouter();
  const search = useSearchParams();
  const shared = trpc.share.resolve.useQuery({ token }, { staleTime: Infinity, retry: false });
  const catalogQuery = trpc.catalog.useQuery(undefined, { staleTime: Infinity, retry: false });
  const fork = trpc.share.fork.useMutation();
  const [error, setError] = useState<string | null>(null);
  const autoForked = useRef(false);

  const catalog = useMemo(() => new Map((catalogQuery.data?.nodes ?? []).map((n) => [n.type, n])), [catalogQuery.data]);
  const colors = useMemo(
    () => Object.fromEntries(Object.entries(catalogQuery.data?.sockets ?? {}).map(([type, spec]) => [type, spec.color])),
    [catalogQuery.data],
  );
  const flow = useMemo(
    () => (shared.data?.document ? toSharedFlow(shared.data.document, catalog, colors, shared.data.lastRun?.nodes ?? []) : null),
    [shared.data, catalog, colors],
  );
  // Every output view fetches the run's files with the token, so /api/files can check them against the link.
  const fileUrl = useMemo(() => sharedFileUrl(token), [token]);

  const doFork = useCallback(
    async (auto: boolean) => {
      setError(null);
      try {
        const { id } = await fork.mutateAsync({ token });
        router.push(`/w/${id}`);
      } catch (err) {
        const e = err as { message: string; data?: { code?: string } };
        if (e.data?.code === "UNAUTHORIZED") {
          // Log in (or sign up) first; the login page sends the viewer back here to finish the fork.
          if (!auto) {
            sessionStorage.setItem(FORK_AFTER_LOGIN, token);
            window.location.href = `/login?next=${encodeURIComponent(`/s/${token}?fork=1`)}`;
          }
          else setError("Log in to fork this workflow.");
        } else setError(`Could not fork: ${e.message}`);
      }
    },
    [fork, router, token],
  );

  useEffect(() => {
    if (search.get("fork") === "1" && shared.data?.document && !autoForked.current) {
      autoForked.current = true;
      // only the fork this tab asked for before logging in: a link with ?fork=1 alone must not copy anything
      if (sessionStorage.getItem(FORK_AFTER_LOGIN) !== token) return;
      sessionStorage.removeItem(FORK_AFTER_LOGIN);
      void doFork(true);
    }
  }, [search, shared.data, doFork, token]);

  if (shared.error) {
    if (shared.error.data?.code === "NOT_FOUND") return <NotShared />;
    return (
      <main className="page">
        <div className="banner error">{shared.error.message}</div>
      </main>
    );
  }
  if (!shared.data) return <p className="muted" style={{ padding: 20 }}>Loading the shared workflow…</p>;
  const d = shared.data;

  return (
    <FileUrlContext.Provider value={fileUrl}>
      <div className="shared-page">
        <header className="shared-header">
          <h1 data-testid="shared-name">{d.name}</h1>
          <span className="muted">
            v{d.version}
            {d.pinned ? " (pinned)" : ""} · read-only
          </span>
          {d.expiresAt && <span className="muted">· link expires {new Date(d.expiresAt).toLocaleString()}</span>}
          <span className="spacer" />
          {error && (
            <span className="error-text" role="alert">
              {error}
            </span>
          )}
          <button className="primary" onClick={() => void doFork(false)} disabled={!d.document || fork.isPending} title="Copy this workflow into your own workspace">
            {fork.isPending ? "Forking…" : "Fork"}
          </button>
        </header>
        <div className="shared-body">
          <div className="shared-canvas">
            {flow ? (
              <SharedCanvas nodes={flow.nodes} edges={flow.edges} />
            ) : (
              <div className="banner error" style={{ margin: 16 }}>
                This shared workflow cannot be read: {d.readError}
              </div>
            )}
          </div>
          <aside className="shared-side">
            {d.description && (
              <section>
                <h2>Description</h2>
                <div className="shared-note">{d.description}</div>
              </section>
            )}
            <section>
              <h2>Notes</h2>
              {d.notes.length === 0 ? (
                <p className="muted">No notes.</p>
              ) : (
                d.notes.map((n) => (
                  <div key={n.id} className="shared-note note-text" data-testid="shared-note">
                    <NoteMarkdown text={n.text} />
                  </div>
                ))
              )}
            </section>
            <section>
              <h2>Last run</h2>
              {d.lastRun ? (
                <p data-testid="shared-last-run">
                  Finished {d.lastRun.finishedAt ? new Date(d.lastRun.finishedAt).toLocaleString() : ""}
                  {d.lastRun.workflowVersion && d.lastRun.workflowVersion !== d.version ? ` (it ran version ${d.lastRun.workflowVersion})` : ""}; outputs are shown on the nodes.
                </p>
              ) : (
                <p className="muted">No finished run of this version yet: its outputs appear here once its owner runs it.</p>
              )}
            </section>
            {d.problems.length > 0 && (
              <section>
                <h2>Problems</h2>
                {d.problems.map((p, i) => (
                  <div key={i} className="problem" data-testid="shared-problem">
                    <span className={`sev-${p.severity}`}>{p.severity}</span> <span>{p.message}</span>
                  </div>
                ))}
              </section>
            )}
          </aside>
        </div>
      </div>
    </FileUrlContext.Provider>
  );
}
