import type { NodeSignature } from "../node";
import { socketsCompatible } from "../sockets";
import type { Workflow } from "./schema";

export interface Connection {
  source: string;
  sourceSocket: string;
  target: string;
  targetSocket: string;
}

export type ConnectionCheck = { ok: true } | { ok: false; reason: string };

/**
 * May this link be added to the document? A pure function shared by the editor (while dragging)
 * and by the server's checks. Rejections are ordered from the cheapest to the most expensive.
 */
export function checkConnection(
  doc: Pick<Workflow, "nodes" | "edges">,
  catalogue: { get(type: string): NodeSignature | undefined },
  c: Connection,
  options: { replaceExistingInput?: boolean } = {},
): ConnectionCheck {
  if (c.source === c.target) return { ok: false, reason: "a node cannot connect to itself" };
  const source = doc.nodes.find((n) => n.id === c.source);
  const target = doc.nodes.find((n) => n.id === c.target);
  if (!source || !target) return { ok: false, reason: "node not found" };
  const sourceDef = catalogue.get(source.type);
  const targetDef = catalogue.get(target.type);
  if (!sourceDef) return { ok: false, reason: `unknown node type "${source.type}"` };
  if (!targetDef) return { ok: false, reason: `unknown node type "${target.type}"` };
  // Own properties only: a socket named "__proto__" or "toString" does not exist.
  const out = Object.hasOwn(sourceDef.outputs, c.sourceSocket) ? sourceDef.outputs[c.sourceSocket] : undefined;
  const inp = Object.hasOwn(targetDef.inputs, c.targetSocket) ? targetDef.inputs[c.targetSocket] : undefined;
  if (!out) return { ok: false, reason: `${sourceDef.title} has no output "${c.sourceSocket}"` };
  if (!inp) return { ok: false, reason: `${targetDef.title} has no input "${c.targetSocket}"` };
  if (!socketsCompatible(out.type, inp.type)) {
    return { ok: false, reason: `${out.type} cannot connect to ${inp.type}` };
  }
  const duplicate = doc.edges.some(
    (e) => e.source === c.source && e.sourceSocket === c.sourceSocket && e.target === c.target && e.targetSocket === c.targetSocket,
  );
  if (duplicate) return { ok: false, reason: "these sockets are already connected" };
  if (!options.replaceExistingInput && doc.edges.some((e) => e.target === c.target && e.targetSocket === c.targetSocket)) {
    return { ok: false, reason: `input "${c.targetSocket}" is already connected` };
  }
  if (reaches(doc.edges, c.target, c.source)) return { ok: false, reason: "this link would make a cycle" };
  return { ok: true };
}

function reaches(edges: Pick<Workflow, "edges">["edges"], from: string, to: string): boolean {
  const out = new Map<string, string[]>();
  for (const e of edges) {
    if (!out.has(e.source)) out.set(e.source, []);
    out.get(e.source)!.push(e.target);
  }
  const seen = new Set<string>([from]);
  const queue = [from];
  while (queue.length) {
    const id = queue.pop()!;
    if (id === to) return true;
    for (const next of out.get(id) ?? []) {
      if (!seen.has(next)) {
        seen.add(next);
        queue.push(next);
      }
    }
  }
  return false;
}
