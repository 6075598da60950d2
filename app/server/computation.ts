/**
 * What a workflow computes, apart from how it looks: node types, versions, params and links (not positions, names or
 * notes). A run is of a saved version when it computed that version (routers/run.ts); a share link shows runs of
 * versions that compute what the shown one does (access.ts).
 */
import { hashValue } from "@/engine/hash";
import { loadWorkflow } from "@/engine/workflow/load";
import type { Workflow } from "@/engine/workflow/schema";
import { catalogue } from "@/nodes";

/** What identifies a workflow's computation: node types, versions, params and links (not positions or names). */
export function documentFingerprint(doc: Workflow): string {
  return hashValue({ nodes: doc.nodes.map((n) => ({ id: n.id, type: n.type, typeVersion: n.typeVersion, params: n.params })), edges: doc.edges.map((e) => [e.source, e.sourceSocket, e.target, e.targetSocket]) });
}

/**
 * The computation of a stored document as the editor opens it (migrated, params upgraded: a version saved before an
 * upgrade is still itself); null for a document that no longer reads.
 */
export function storedComputation(text: string): string | null {
  try {
    return documentFingerprint(loadWorkflow(text, catalogue).workflow);
  } catch {
    return null;
  }
}
