import type { Edge, Node } from "@xyflow/react";
import type { Workflow, WorkflowNote } from "@/engine/workflow/schema";

export interface PipelineNodeData extends Record<string, unknown> {
  nodeType: string;
  typeVersion: number;
  params: Record<string, unknown>;
  label?: string;
}

export type FlowNode = Node<PipelineNodeData, "pipeline">;
export type FlowEdge = Edge;

export interface DocMeta {
  name: string;
  description: string;
  tags: string[];
  notes: WorkflowNote[];
}

export function toFlow(doc: Workflow): { nodes: FlowNode[]; edges: FlowEdge[]; meta: DocMeta } {
  return {
    meta: { name: doc.name, description: doc.description, tags: doc.tags, notes: doc.notes ?? [] },
    nodes: doc.nodes.map((n) => ({
      id: n.id,
      type: "pipeline",
      position: { ...n.position },
      data: { nodeType: n.type, typeVersion: n.typeVersion, params: n.params, ...(n.label !== undefined ? { label: n.label } : {}) },
    })),
    edges: doc.edges.map((e) => ({ id: e.id, source: e.source, sourceHandle: e.sourceSocket, target: e.target, targetHandle: e.targetSocket })),
  };
}

/** The document exactly as it is saved, exported and run: UI-only state (selection, sizes) is left out. */
export function toDocument(nodes: FlowNode[], edges: FlowEdge[], meta: DocMeta): Workflow {
  return {
    schemaVersion: 2,
    name: meta.name,
    description: meta.description,
    tags: meta.tags,
    nodes: nodes.map((n) => ({
      id: n.id,
      type: n.data.nodeType,
      typeVersion: n.data.typeVersion,
      params: n.data.params,
      position: { x: n.position.x, y: n.position.y },
      ...(n.data.label !== undefined ? { label: n.data.label } : {}),
    })),
    edges: edges.map((e) => ({ id: e.id, source: e.source, sourceSocket: e.sourceHandle ?? "", target: e.target, targetSocket: e.targetHandle ?? "" })),
    notes: meta.notes,
  };
}
