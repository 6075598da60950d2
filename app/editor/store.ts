"use client";
import { applyEdgeChanges, applyNodeChanges, type EdgeChange, type NodeChange, type XYPosition } from "@xyflow/react";
import { create } from "zustand";
import type { Workflow } from "@/engine/workflow/schema";
import type { Problem } from "@/engine/workflow/validate";
import { toDocument, toFlow, type DocMeta, type FlowEdge, type FlowNode } from "./convert";

interface Snapshot {
  nodes: FlowNode[];
  edges: FlowEdge[];
  meta: DocMeta;
}

export interface Connecting {
  nodeId: string;
  socket: string;
  handleType: "source" | "target";
}

export interface Fragment {
  kind: "moe-studio-fragment";
  nodes: FlowNode[];
  edges: FlowEdge[];
}

const HISTORY_LIMIT = 200;
const CLIPBOARD_KEY = "moe-studio:clipboard";

export interface EditorState {
  workflowId: string | null;
  baseVersion: number;
  /** The document as last loaded or saved, by reference: `isDirty` compares against it without serialising. */
  saved: Snapshot;
  /**
   * Bumped by every change to what the document says apart from node positions (nodes, links, params, labels,
   * metadata, notes): the server's check (problems) follows it. A move cannot create a problem, so a drag does
   * not bump it; selection, sizes and the link being dragged do not either.
   */
  structRev: number;
  nodes: FlowNode[];
  edges: FlowEdge[];
  meta: DocMeta;
  past: Snapshot[];
  future: Snapshot[];
  /** Coalesces a burst of edits to one param into one undo step. */
  lastEditKey: string | null;
  problems: Problem[];
  /** A read-only picture the canvas shows instead of the document (the History panel's diff); null = edit the document. */
  diffView: { nodes: FlowNode[]; edges: FlowEdge[] } | null;

  load(workflowId: string, version: number, doc: Workflow): void;
  markSaved(version: number): void;
  document(): Workflow;
  checkpoint(editKey?: string): void;
  undo(): void;
  redo(): void;
  onNodesChange(changes: NodeChange<FlowNode>[]): void;
  onEdgesChange(changes: EdgeChange[]): void;
  connect(c: { source: string; sourceHandle: string; target: string; targetHandle: string }): void;
  addNode(type: string, typeVersion: number, params: Record<string, unknown>, position: XYPosition): string;
  setParam(nodeId: string, key: string, value: unknown): void;
  setLabel(nodeId: string, label: string | undefined): void;
  setMeta(meta: Partial<DocMeta>): void;
  setPositions(positions: Map<string, XYPosition>): void;
  replaceDocument(doc: Workflow): void;
  duplicateSelected(): void;
  selectionFragment(): Fragment | null;
  copySelected(): Fragment | null;
  paste(fragment?: Fragment | null): void;
  setConnecting(c: Connecting | null): void;
  setProblems(p: Problem[]): void;
  selectOnly(nodeId: string): void;
  setDiffView(view: { nodes: FlowNode[]; edges: FlowEdge[] } | null): void;
}

function uniqueId(prefix: string, taken: Set<string>): string {
  for (let i = 1; ; i++) {
    const id = `${prefix}_${i}`;
    if (!taken.has(id)) return id;
  }
}

function prefixOf(type: string): string {
  return type.split(".").pop()!.replace(/[^a-z0-9]/gi, "_");
}

export type Severity = "has-error" | "has-warning";

/**
 * What the canvas's nodes draw besides their own data: the outline of a node with problems, and which
 * handles can take the link being dragged. A store of its own: each node keeps a few selectors on it
 * (one per handle and one for the outline, ~1,200 in a 300-node graph), and a drag frame, a change of
 * `useEditor`, runs none of them.
 */
export interface CanvasHints {
  /** The link being dragged, with the type of the node it starts from. */
  connecting: (Connecting & { nodeType?: string }) | null;
  severity: ReadonlyMap<string, Severity>;
}

export const useCanvasHints = create<CanvasHints>()(() => ({ connecting: null, severity: new Map() }));
const setHints = (patch: Partial<CanvasHints>) => useCanvasHints.setState(patch);

function severityByNode(problems: Problem[]): Map<string, Severity> {
  const out = new Map<string, Severity>();
  for (const p of problems) if (p.nodeId && out.get(p.nodeId) !== "has-error") out.set(p.nodeId, p.severity === "error" ? "has-error" : "has-warning");
  return out;
}

/** Node changes that leave the structure as it is: selection and measured sizes (not in the document), and moves (in the document: an unsaved change, but no problem can come of one). */
const NON_STRUCTURAL_NODE_CHANGES = new Set<NodeChange["type"]>(["select", "dimensions", "position"]);

export const useEditor = create<EditorState>()((set, get) => ({
  workflowId: null,
  baseVersion: 0,
  saved: { nodes: [], edges: [], meta: { name: "", description: "", tags: [], notes: [] } },
  structRev: 0,
  nodes: [],
  edges: [],
  meta: { name: "", description: "", tags: [], notes: [] },
  past: [],
  future: [],
  lastEditKey: null,
  problems: [],
  diffView: null,

  load(workflowId, version, doc) {
    const flow = toFlow(doc);
    set({ workflowId, baseVersion: version, ...flow, saved: flow, structRev: get().structRev + 1, past: [], future: [], lastEditKey: null, problems: [] });
    setHints({ connecting: null, severity: severityByNode([]) });
  },
  markSaved(version) {
    const { nodes, edges, meta } = get();
    set({ baseVersion: version, saved: { nodes, edges, meta } });
  },
  document() {
    const { nodes, edges, meta } = get();
    return toDocument(nodes, edges, meta);
  },

  checkpoint(editKey) {
    const s = get();
    if (editKey && editKey === s.lastEditKey) return;
    const past = [...s.past, { nodes: s.nodes, edges: s.edges, meta: s.meta }];
    if (past.length > HISTORY_LIMIT) past.shift();
    set({ past, future: [], lastEditKey: editKey ?? null });
  },
  undo() {
    const s = get();
    const prev = s.past[s.past.length - 1];
    if (!prev) return;
    set({ ...prev, past: s.past.slice(0, -1), future: [{ nodes: s.nodes, edges: s.edges, meta: s.meta }, ...s.future], lastEditKey: null, structRev: s.structRev + 1 });
  },
  redo() {
    const s = get();
    const next = s.future[0];
    if (!next) return;
    set({ ...next, future: s.future.slice(1), past: [...s.past, { nodes: s.nodes, edges: s.edges, meta: s.meta }], lastEditKey: null, structRev: s.structRev + 1 });
  },

  onNodesChange(changes) {
    // Removals are checkpointed in onBeforeDelete (once for nodes and their edges); moves at drag start.
    const nodes = applyNodeChanges(changes, get().nodes);
    set(changes.some((c) => !NON_STRUCTURAL_NODE_CHANGES.has(c.type)) ? { nodes, structRev: get().structRev + 1 } : { nodes });
  },
  onEdgesChange(changes) {
    const edges = applyEdgeChanges(changes, get().edges);
    set(changes.some((c) => c.type !== "select") ? { edges, structRev: get().structRev + 1 } : { edges });
  },
  connect(c) {
    get().checkpoint();
    const taken = new Set(get().edges.map((e) => e.id));
    // Connecting to an occupied input replaces its old link.
    const edges = get().edges.filter((e) => !(e.target === c.target && e.targetHandle === c.targetHandle));
    set({ edges: [...edges, { id: uniqueId("e", taken), ...c }], structRev: get().structRev + 1 });
  },
  addNode(type, typeVersion, params, position) {
    get().checkpoint();
    const id = uniqueId(prefixOf(type), new Set(get().nodes.map((n) => n.id)));
    const node: FlowNode = { id, type: "pipeline", position, selected: true, data: { nodeType: type, typeVersion, params } };
    set({ nodes: [...get().nodes.map((n) => (n.selected ? { ...n, selected: false } : n)), node], structRev: get().structRev + 1 });
    return id;
  },
  setParam(nodeId, key, value) {
    get().checkpoint(`param:${nodeId}:${key}`);
    set({ nodes: get().nodes.map((n) => (n.id === nodeId ? { ...n, data: { ...n.data, params: { ...n.data.params, [key]: value } } } : n)), structRev: get().structRev + 1 });
  },
  setLabel(nodeId, label) {
    get().checkpoint(`label:${nodeId}`);
    set({
      nodes: get().nodes.map((n) => {
        if (n.id !== nodeId) return n;
        const data = { ...n.data };
        if (label) data.label = label;
        else delete data.label;
        return { ...n, data };
      }),
      structRev: get().structRev + 1,
    });
  },
  setMeta(meta) {
    get().checkpoint(`meta:${Object.keys(meta).join(",")}`);
    set({ meta: { ...get().meta, ...meta }, structRev: get().structRev + 1 });
  },
  setPositions(positions) {
    // Positions only: no structRev (nothing for the server's check to find).
    get().checkpoint();
    set({ nodes: get().nodes.map((n) => (positions.has(n.id) ? { ...n, position: positions.get(n.id)! } : n)) });
  },
  replaceDocument(doc) {
    get().checkpoint();
    set({ ...toFlow(doc), lastEditKey: null, structRev: get().structRev + 1 });
  },

  selectionFragment() {
    const { nodes, edges } = get();
    const picked = nodes.filter((n) => n.selected);
    if (!picked.length) return null;
    const ids = new Set(picked.map((n) => n.id));
    const fragment: Fragment = {
      kind: "moe-studio-fragment",
      nodes: picked.map((n) => ({ id: n.id, type: n.type, position: n.position, data: n.data })),
      edges: edges.filter((e) => ids.has(e.source) && ids.has(e.target)).map((e) => ({ id: e.id, source: e.source, sourceHandle: e.sourceHandle, target: e.target, targetHandle: e.targetHandle })),
    };
    return fragment;
  },
  copySelected() {
    const fragment = get().selectionFragment();
    if (!fragment) return null;
    try {
      localStorage.setItem(CLIPBOARD_KEY, JSON.stringify(fragment)); // survives navigation: paste into another workflow
    } catch {
      // storage full or disabled: copy still works within this page via the return value
    }
    return fragment;
  },
  paste(fragment) {
    let frag = fragment ?? null;
    if (!frag) {
      try {
        frag = JSON.parse(localStorage.getItem(CLIPBOARD_KEY) ?? "null") as Fragment | null;
      } catch {
        frag = null;
      }
    }
    if (!frag || frag.kind !== "moe-studio-fragment" || !frag.nodes.length) return;
    get().checkpoint();
    const takenNodes = new Set(get().nodes.map((n) => n.id));
    const takenEdges = new Set(get().edges.map((e) => e.id));
    const renamed = new Map<string, string>();
    const nodes: FlowNode[] = frag.nodes.map((n) => {
      const id = uniqueId(prefixOf(n.data.nodeType), takenNodes);
      takenNodes.add(id);
      renamed.set(n.id, id);
      return { id, type: "pipeline", position: { x: n.position.x + 40, y: n.position.y + 40 }, selected: true, data: structuredClone(n.data) };
    });
    const edges: FlowEdge[] = frag.edges.map((e) => {
      const id = uniqueId("e", takenEdges);
      takenEdges.add(id);
      return { id, source: renamed.get(e.source)!, sourceHandle: e.sourceHandle, target: renamed.get(e.target)!, targetHandle: e.targetHandle };
    });
    set({ nodes: [...get().nodes.map((n) => (n.selected ? { ...n, selected: false } : n)), ...nodes], edges: [...get().edges, ...edges], structRev: get().structRev + 1 });
  },
  duplicateSelected() {
    const fragment = get().selectionFragment();
    if (fragment) get().paste(fragment);
  },

  setConnecting(connecting) {
    const nodeType = connecting ? get().nodes.find((n) => n.id === connecting.nodeId)?.data.nodeType : undefined;
    setHints({ connecting: connecting && { ...connecting, nodeType } });
  },
  setProblems(problems) {
    set({ problems });
    setHints({ severity: severityByNode(problems) });
  },
  selectOnly(nodeId) {
    set({ nodes: get().nodes.map((n) => ({ ...n, selected: n.id === nodeId })) });
  },
  setDiffView(diffView) {
    set({ diffView });
  },
}));

const json = (v: unknown) => JSON.stringify(v);

/** Do two node lists make the same document (as `toDocument` writes it)? Unchanged nodes are the same objects. */
function sameNodes(a: FlowNode[], b: FlowNode[]): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!;
    const y = b[i]!;
    if (x === y) continue;
    if (x.id !== y.id || x.position.x !== y.position.x || x.position.y !== y.position.y) return false;
    if (x.data === y.data) continue;
    if (x.data.nodeType !== y.data.nodeType || x.data.typeVersion !== y.data.typeVersion || x.data.label !== y.data.label) return false;
    if (x.data.params !== y.data.params && json(x.data.params) !== json(y.data.params)) return false; // one node's params, only after an edit
  }
  return true;
}

function sameEdges(a: FlowEdge[], b: FlowEdge[]): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!;
    const y = b[i]!;
    if (x === y) continue;
    if (x.id !== y.id || x.source !== y.source || x.target !== y.target || (x.sourceHandle ?? "") !== (y.sourceHandle ?? "") || (x.targetHandle ?? "") !== (y.targetHandle ?? "")) return false;
  }
  return true;
}

function sameMeta(a: DocMeta, b: DocMeta): boolean {
  return a === b || (a.name === b.name && a.description === b.description && json(a.tags) === json(b.tags) && json(a.notes) === json(b.notes));
}

/**
 * Unsaved changes: the document differs from the one last loaded or saved (undoing back to it is clean again).
 * Compared field by field against the saved snapshot, never by serialising the document: the objects an edit
 * did not touch are the same objects, so a drag frame costs a few comparisons.
 */
export function isDirty(s: Pick<EditorState, "saved" | "nodes" | "edges" | "meta">): boolean {
  return !(sameNodes(s.nodes, s.saved.nodes) && sameEdges(s.edges, s.saved.edges) && sameMeta(s.meta, s.saved.meta));
}
