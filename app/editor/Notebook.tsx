"use client";
import dynamic from "next/dynamic";
import { useContext, useMemo, useState } from "react";
import type { Workflow } from "@/engine/workflow/schema";
import { useCatalog } from "./catalog";
import { RunOutputs, StartRunContext } from "./NodeRunView";
import { NoteMarkdown } from "./NoteMarkdown";
import { useRun } from "./run-store";
import { staleNodes } from "./stale";
import { useEditor } from "./store";

const NoteEditor = dynamic(() => import("./NoteEditor"), { ssr: false, loading: () => <p className="muted">Loading editor…</p> });

/** Topological order of the nodes (Kahn), ties by canvas position: top to bottom, then left to right. */
function cellOrder(doc: Workflow): string[] {
  const indeg = new Map(doc.nodes.map((n) => [n.id, 0]));
  const out = new Map<string, string[]>();
  for (const e of doc.edges) {
    if (!indeg.has(e.source) || !indeg.has(e.target)) continue;
    indeg.set(e.target, indeg.get(e.target)! + 1);
    out.set(e.source, [...(out.get(e.source) ?? []), e.target]);
  }
  const pos = new Map(doc.nodes.map((n) => [n.id, n.position]));
  const byPlace = (a: string, b: string) => pos.get(a)!.x - pos.get(b)!.x || pos.get(a)!.y - pos.get(b)!.y;
  const ready = doc.nodes.filter((n) => indeg.get(n.id) === 0).map((n) => n.id).sort(byPlace);
  const order: string[] = [];
  while (ready.length) {
    const id = ready.shift()!;
    order.push(id);
    for (const t of out.get(id) ?? []) {
      indeg.set(t, indeg.get(t)! - 1);
      if (indeg.get(t) === 0) {
        ready.push(t);
        ready.sort(byPlace);
      }
    }
  }
  return order;
}

/**
 * The workflow as a notebook: one cell per node that has outputs in the shown run, in execution order,
 * with the user's markdown notes between them. Notes are part of the document (saved with it).
 */
export function Notebook({ onFocusNode }: { onFocusNode: (nodeId: string) => void }) {
  const catalog = useCatalog();
  const nodes = useEditor((s) => s.nodes);
  const edges = useEditor((s) => s.edges);
  const notes = useEditor((s) => s.meta.notes);
  const runNodes = useRun((s) => s.nodes);
  const runDocument = useRun((s) => s.runDocument);
  const startRun = useContext(StartRunContext);
  const [editing, setEditing] = useState<string | null>(null);
  const doc = useMemo(() => useEditor.getState().document(), [nodes, edges, notes]); // eslint-disable-line react-hooks/exhaustive-deps
  const order = useMemo(() => cellOrder(doc), [doc]);
  const stale = useMemo(() => staleNodes(doc, runDocument), [doc, runDocument]);

  const setNotes = (next: typeof notes) => useEditor.getState().setMeta({ notes: next });
  const addNote = (after?: string) => {
    const taken = new Set(notes.map((n) => n.id));
    let i = 1;
    while (taken.has(`note_${i}`)) i++;
    const id = `note_${i}`;
    setNotes([...notes, { id, text: "", position: { x: 0, y: 0 }, ...(after ? { after } : {}) }]);
    setEditing(id);
  };
  const noteCells = (after: string | undefined) =>
    notes
      .filter((n) => (n.after ?? undefined) === after || (after === undefined && n.after && !doc.nodes.some((x) => x.id === n.after)))
      .map((n) => (
        <div key={n.id} className="cell note-cell" data-testid="note-cell">
          {editing === n.id ? (
            <NoteEditor value={n.text} onChange={(text) => setNotes(useEditor.getState().meta.notes.map((x) => (x.id === n.id ? { ...x, text } : x)))} />
          ) : (
            <div className="note-text" onDoubleClick={() => setEditing(n.id)}>
              {n.text ? <NoteMarkdown text={n.text} /> : <span className="muted">Empty note: double-click to write.</span>}
            </div>
          )}
          <div className="cell-actions">
            <button onClick={() => setEditing(editing === n.id ? null : n.id)}>{editing === n.id ? "Done" : "Edit"}</button>
            <button onClick={() => setNotes(notes.filter((x) => x.id !== n.id))}>Delete note</button>
          </div>
        </div>
      ));

  return (
    <div className="notebook" data-testid="notebook">
      <div className="cell-actions">
        <button onClick={() => addNote(undefined)}>+ Note at the top</button>
      </div>
      {noteCells(undefined)}
      {order.map((id) => {
        const node = doc.nodes.find((n) => n.id === id)!;
        const def = catalog.get(node.type);
        const run = runNodes[id];
        return (
          <div key={id}>
            <div className={`cell ${stale.has(id) ? "stale" : ""}`} data-testid="cell" data-node={id}>
              <div className="cell-head">
                <button className="linklike" onClick={() => onFocusNode(id)} title="Show this node on the canvas">
                  {node.label ?? def?.title ?? node.type}
                </button>
                <span className="muted">{id}</span>
                {run && <span className={`run-badge st-${run.status}`}>{run.status}</span>}
                {stale.has(id) && run && <span className="run-badge st-waiting" title="Something upstream changed since this run">stale</span>}
                <span className="spacer" />
                <button onClick={() => startRun(id)}>▶ Run to here</button>
                <button onClick={() => addNote(id)}>+ Note</button>
              </div>
              {run ? <RunOutputs nodeId={id} /> : <p className="muted cell-empty">Not run yet.</p>}
            </div>
            {noteCells(id)}
          </div>
        );
      })}
    </div>
  );
}
