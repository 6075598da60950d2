import type { Workflow, WorkflowEdge, WorkflowNode, WorkflowNote } from "./schema";

/** One top-level param whose value differs; `undefined` on a side means the key is absent there. */
export interface ParamChange {
  key: string;
  before: unknown;
  after: unknown;
}

/** A node present in both documents (same id) that differs. Moves are reported apart from param changes. */
export interface NodeChange {
  id: string;
  before: WorkflowNode;
  after: WorkflowNode;
  params: ParamChange[];
  moved: boolean;
  labelChanged: boolean;
  typeChanged: boolean;
  typeVersionChanged: boolean;
}

export interface NoteChange {
  id: string;
  before: WorkflowNote;
  after: WorkflowNote;
  /** Which note fields differ (text, position, width, height, after). */
  fields: string[];
}

export type MetaField = "name" | "description" | "tags";

export interface MetaChange {
  field: MetaField;
  before: unknown;
  after: unknown;
}

export interface WorkflowDiff {
  nodes: { added: WorkflowNode[]; removed: WorkflowNode[]; changed: NodeChange[] };
  /** Edges are compared by what they connect (source socket → target socket); their ids are incidental. */
  edges: { added: WorkflowEdge[]; removed: WorkflowEdge[] };
  notes: { added: WorkflowNote[]; removed: WorkflowNote[]; changed: NoteChange[] };
  meta: MetaChange[];
}

/** Deep equality of JSON-like values (object key order does not matter). */
export function sameValue(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a === "number" && typeof b === "number") return Number.isNaN(a) && Number.isNaN(b);
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a)) {
    const bb = b as unknown[];
    return a.length === bb.length && a.every((v, i) => sameValue(v, bb[i]));
  }
  const ao = a as Record<string, unknown>;
  const bo = b as Record<string, unknown>;
  // Absent and undefined are the same thing in a JSON document.
  const keys = new Set([...Object.keys(ao), ...Object.keys(bo)]);
  for (const k of keys) if (!sameValue(ao[k], bo[k])) return false;
  return true;
}

/** The identity of an edge: what it connects. */
export function edgeKey(e: Pick<WorkflowEdge, "source" | "sourceSocket" | "target" | "targetSocket">): string {
  return JSON.stringify([e.source, e.sourceSocket, e.target, e.targetSocket]);
}

function paramChanges(before: Record<string, unknown>, after: Record<string, unknown>): ParamChange[] {
  const keys = [...new Set([...Object.keys(before), ...Object.keys(after)])].sort();
  return keys.filter((key) => !sameValue(before[key], after[key])).map((key) => ({ key, before: before[key], after: after[key] }));
}

function diffNodes(a: WorkflowNode[], b: WorkflowNode[]): WorkflowDiff["nodes"] {
  const before = new Map(a.map((n) => [n.id, n]));
  const after = new Map(b.map((n) => [n.id, n]));
  const added = b.filter((n) => !before.has(n.id));
  const removed = a.filter((n) => !after.has(n.id));
  const changed: NodeChange[] = [];
  for (const next of b) {
    const prev = before.get(next.id);
    if (!prev) continue;
    const change: NodeChange = {
      id: next.id,
      before: prev,
      after: next,
      params: paramChanges(prev.params, next.params),
      moved: prev.position.x !== next.position.x || prev.position.y !== next.position.y,
      labelChanged: (prev.label ?? undefined) !== (next.label ?? undefined),
      typeChanged: prev.type !== next.type,
      typeVersionChanged: prev.typeVersion !== next.typeVersion,
    };
    if (change.params.length || change.moved || change.labelChanged || change.typeChanged || change.typeVersionChanged) changed.push(change);
  }
  return { added, removed, changed };
}

/** Multiset difference by edge key, so a duplicated link counts as often as it occurs. */
function diffEdges(a: WorkflowEdge[], b: WorkflowEdge[]): WorkflowDiff["edges"] {
  const unmatched = new Map<string, WorkflowEdge[]>();
  for (const e of a) {
    const list = unmatched.get(edgeKey(e)) ?? [];
    list.push(e);
    unmatched.set(edgeKey(e), list);
  }
  const added: WorkflowEdge[] = [];
  for (const e of b) {
    const list = unmatched.get(edgeKey(e));
    if (list?.length) list.shift();
    else added.push(e);
  }
  const removed = [...unmatched.values()].flat();
  return { added, removed };
}

const NOTE_FIELDS = ["text", "position", "width", "height", "after"] as const;

function diffNotes(a: WorkflowNote[], b: WorkflowNote[]): WorkflowDiff["notes"] {
  const before = new Map(a.map((n) => [n.id, n]));
  const after = new Map(b.map((n) => [n.id, n]));
  const changed: NoteChange[] = [];
  for (const next of b) {
    const prev = before.get(next.id);
    if (!prev) continue;
    const fields = NOTE_FIELDS.filter((f) => !sameValue(prev[f], next[f]));
    if (fields.length) changed.push({ id: next.id, before: prev, after: next, fields });
  }
  return { added: b.filter((n) => !before.has(n.id)), removed: a.filter((n) => !after.has(n.id)), changed };
}

/** What changed from document `a` to document `b` (both already parsed/migrated to the current schema). */
export function diffWorkflows(a: Workflow, b: Workflow): WorkflowDiff {
  const meta: MetaChange[] = [];
  for (const field of ["name", "description", "tags"] as const) {
    if (!sameValue(a[field], b[field])) meta.push({ field, before: a[field], after: b[field] });
  }
  return {
    nodes: diffNodes(a.nodes, b.nodes),
    edges: diffEdges(a.edges, b.edges),
    notes: diffNotes(a.notes ?? [], b.notes ?? []),
    meta,
  };
}

export function isEmptyDiff(d: WorkflowDiff): boolean {
  return (
    !d.nodes.added.length &&
    !d.nodes.removed.length &&
    !d.nodes.changed.length &&
    !d.edges.added.length &&
    !d.edges.removed.length &&
    !d.notes.added.length &&
    !d.notes.removed.length &&
    !d.notes.changed.length &&
    !d.meta.length
  );
}

/** One line per change, for lists and logs ("+ node text_1 (input.text)", "~ node t: param template"). */
export function describeDiff(d: WorkflowDiff): string[] {
  const short = (v: unknown) => {
    const s = v === undefined ? "(absent)" : JSON.stringify(v);
    return s.length > 60 ? `${s.slice(0, 57)}…` : s;
  };
  const lines: string[] = [];
  for (const m of d.meta) lines.push(`~ ${m.field}: ${short(m.before)} → ${short(m.after)}`);
  for (const n of d.nodes.added) lines.push(`+ node ${n.id} (${n.type})`);
  for (const n of d.nodes.removed) lines.push(`- node ${n.id} (${n.type})`);
  for (const c of d.nodes.changed) {
    for (const p of c.params) lines.push(`~ node ${c.id}: ${p.key} ${short(p.before)} → ${short(p.after)}`);
    if (c.typeChanged) lines.push(`~ node ${c.id}: type ${c.before.type} → ${c.after.type}`);
    if (c.typeVersionChanged) lines.push(`~ node ${c.id}: typeVersion ${c.before.typeVersion} → ${c.after.typeVersion}`);
    if (c.labelChanged) lines.push(`~ node ${c.id}: label ${short(c.before.label)} → ${short(c.after.label)}`);
    if (c.moved) lines.push(`~ node ${c.id}: moved`);
  }
  for (const e of d.edges.added) lines.push(`+ link ${e.source}.${e.sourceSocket} → ${e.target}.${e.targetSocket}`);
  for (const e of d.edges.removed) lines.push(`- link ${e.source}.${e.sourceSocket} → ${e.target}.${e.targetSocket}`);
  for (const n of d.notes.added) lines.push(`+ note ${n.id}`);
  for (const n of d.notes.removed) lines.push(`- note ${n.id}`);
  for (const n of d.notes.changed) lines.push(`~ note ${n.id}: ${n.fields.join(", ")}`);
  return lines;
}
