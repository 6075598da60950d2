import { defaultParams, type NodeCatalogue } from "../node";
import { parseAndMigrate } from "./migrate";
import type { Workflow } from "./schema";
import { validateWorkflow, type Problem } from "./validate";

/**
 * Loads a document for the editor or a run: migrate the document, upgrade each known node's params
 * to its current typeVersion (filling new defaults), then validate. Throws only when the document
 * cannot be read at all; everything else comes back as problems.
 */
export function loadWorkflow(input: unknown, catalogue: NodeCatalogue): { workflow: Workflow; problems: Problem[] } {
  const doc = parseAndMigrate(input);
  const upgraded: Workflow = {
    ...doc,
    nodes: doc.nodes.map((node) => {
      const def = catalogue.get(node.type);
      if (!def || node.typeVersion > def.typeVersion) return node;
      let params = node.params;
      if (node.typeVersion < def.typeVersion && def.migrateParams) params = def.migrateParams(params, node.typeVersion);
      return { ...node, typeVersion: def.typeVersion, params: { ...defaultParams(def), ...params } };
    }),
  };
  return { workflow: upgraded, problems: validateWorkflow(upgraded, catalogue) };
}
