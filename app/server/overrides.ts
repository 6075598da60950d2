/**
 * Param overrides for a run (`cli run --set node.param=value`, the HTTP API's `params` and `dataset`):
 * applied to a copy of the document, each checked against the node's params so a typo is an error
 * naming the node and the params it has.
 */
import { z } from "zod";
import { DATASET_NODE_TYPE } from "@/engine/batch/feeder";
import type { Workflow } from "@/engine/workflow/schema";
import { catalogue } from "@/nodes";

export interface ParamOverride {
  nodeId: string;
  param: string;
  value: unknown;
  /** The value as typed, when it read as JSON: a text param takes it as written ("42", "true"). */
  text?: string;
}

export class OverrideError extends Error {}

/** `node.param=value`: the value is JSON when it parses (numbers, booleans, arrays), otherwise text. */
export function parseSet(s: string): ParamOverride {
  const m = /^([^.=]+)\.([^=]+)=(.*)$/s.exec(s);
  if (!m) throw new OverrideError(`--set "${s}" is not nodeId.param=value`);
  try {
    return { nodeId: m[1]!, param: m[2]!, value: JSON.parse(m[3]!), text: m[3]! };
  } catch {
    return { nodeId: m[1]!, param: m[2]!, value: m[3]! }; // plain text
  }
}

export function applyOverrides(doc: Workflow, overrides: readonly ParamOverride[]): Workflow {
  const out = structuredClone(doc);
  for (const { nodeId, param, value, text } of overrides) {
    const node = out.nodes.find((n) => n.id === nodeId);
    if (!node) throw new OverrideError(`there is no node "${nodeId}" (nodes: ${out.nodes.map((n) => n.id).join(", ")})`);
    const def = catalogue.get(node.type);
    if (def && !(param in def.params.shape)) throw new OverrideError(`node "${nodeId}" (${node.type}) has no param "${param}" (params: ${Object.keys(def.params.shape).join(", ")})`);
    const schema = def?.params.shape[param];
    const asText = text !== undefined && schema !== undefined && !z.safeParse(schema, value).success && z.safeParse(schema, text).success;
    node.params = { ...node.params, [param]: asText ? text : value };
  }
  return out;
}

/** Points the workflow's one Dataset node at `source` (a path inside <data dir>/datasets, or examples/…). */
export function withDataset(doc: Workflow, source: string): Workflow {
  const nodes = doc.nodes.filter((n) => n.type === DATASET_NODE_TYPE);
  if (nodes.length !== 1) throw new OverrideError(`a dataset needs a workflow with exactly one Dataset node (this one has ${nodes.length})`);
  return applyOverrides(doc, [{ nodeId: nodes[0]!.id, param: "source", value: source }]);
}
