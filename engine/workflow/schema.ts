import { z } from "zod";

/** The workflow document: ONE format that the editor saves and the engine and CLI run. */
export const CURRENT_SCHEMA_VERSION = 2 as const;

const id = z.string().min(1).max(128).regex(/^[A-Za-z0-9_.:-]+$/, "ids may use letters, digits and _ . : -");
const socketName = z.string().min(1).max(64);

export const zPosition = z.object({ x: z.number().finite(), y: z.number().finite() });

export const zWorkflowNode = z.object({
  id,
  type: z.string().min(1).max(128),
  typeVersion: z.number().int().min(1),
  params: z.record(z.string(), z.unknown()).default({}),
  position: zPosition,
  label: z.string().max(200).optional(),
});

export const zWorkflowEdge = z.object({
  id,
  source: id,
  sourceSocket: socketName,
  target: id,
  targetSocket: socketName,
});

export const zWorkflowNote = z.object({
  id,
  text: z.string().max(20_000),
  position: zPosition,
  width: z.number().positive().optional(),
  height: z.number().positive().optional(),
  /** In the notebook view, the note follows this node's cell (absent: at the top). */
  after: id.optional(),
});

export const zWorkflow = z.object({
  schemaVersion: z.literal(CURRENT_SCHEMA_VERSION),
  name: z.string().min(1).max(200),
  description: z.string().max(20_000).default(""),
  tags: z.array(z.string().min(1).max(50)).max(50).default([]),
  nodes: z.array(zWorkflowNode).max(5000),
  edges: z.array(zWorkflowEdge).max(20_000),
  notes: z.array(zWorkflowNote).max(1000).optional(),
});

export type Workflow = z.infer<typeof zWorkflow>;
export type WorkflowNode = z.infer<typeof zWorkflowNode>;
export type WorkflowEdge = z.infer<typeof zWorkflowEdge>;
export type WorkflowNote = z.infer<typeof zWorkflowNote>;

/**
 * The document as nodes see it, and embed it in the files they write (engine/provenance.ts): what it computes and
 * where its nodes sit, without its words (name, description, tags, notes, node labels). Those may be unsaved edits,
 * and a share link serves the files of a run of a version that computes the same.
 */
export function documentForFiles(doc: Workflow): Workflow {
  return {
    schemaVersion: doc.schemaVersion,
    name: "MoE Studio workflow",
    description: "",
    tags: [],
    nodes: doc.nodes.map(({ label: _, ...node }) => node),
    edges: doc.edges,
    notes: [],
  };
}

export function emptyWorkflow(name = "Untitled workflow"): Workflow {
  return { schemaVersion: CURRENT_SCHEMA_VERSION, name, description: "", tags: [], nodes: [], edges: [], notes: [] };
}
