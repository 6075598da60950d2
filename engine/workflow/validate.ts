import type { NodeCatalogue } from "../node";
import { socketsCompatible } from "../sockets";
import type { Workflow, WorkflowEdge } from "./schema";

export type ProblemCode =
  | "unknown-node-type"
  | "newer-node-version"
  | "invalid-params"
  | "duplicate-node-id"
  | "duplicate-edge-id"
  | "dangling-edge"
  | "unknown-socket"
  | "incompatible-sockets"
  | "input-already-connected"
  | "missing-required-input"
  | "conflicting-inputs"
  | "cycle"
  | "node-warning";

export interface Problem {
  severity: "error" | "warning";
  code: ProblemCode;
  message: string;
  nodeId?: string;
  edgeId?: string;
  socket?: string;
}

const nodesById = new WeakMap<Workflow, Map<string, Workflow["nodes"][number]>>();

function nodeName(doc: Workflow, id: string): string {
  let byId = nodesById.get(doc);
  if (!byId) nodesById.set(doc, (byId = new Map(doc.nodes.map((n) => [n.id, n]))));
  const n = byId.get(id);
  return n ? `"${n.label ?? n.id}" (${n.type})` : `"${id}"`;
}

/** How many nodes a cycle's message names (every node of the cycle gets the message, so it stays short). */
const CYCLE_NAMES = 4;

/**
 * Checks a (schema-valid) document against the node catalogue. Unknown node types are warnings so the
 * document still opens; everything that would stop a run is an error naming the nodes and sockets.
 */
export function validateWorkflow(doc: Workflow, catalogue: NodeCatalogue): Problem[] {
  const problems: Problem[] = [];
  const seenNodes = new Set<string>();
  for (const node of doc.nodes) {
    if (seenNodes.has(node.id)) {
      problems.push({ severity: "error", code: "duplicate-node-id", nodeId: node.id, message: `two nodes share the id "${node.id}"` });
    }
    seenNodes.add(node.id);
    const def = catalogue.get(node.type);
    if (!def) {
      problems.push({
        severity: "warning",
        code: "unknown-node-type",
        nodeId: node.id,
        message: `node "${node.id}" has unknown type "${node.type}"; it is kept but cannot run`,
      });
      continue;
    }
    if (node.typeVersion > def.typeVersion) {
      problems.push({
        severity: "warning",
        code: "newer-node-version",
        nodeId: node.id,
        message: `node ${nodeName(doc, node.id)} was saved by a newer version (${node.typeVersion} > ${def.typeVersion})`,
      });
    }
    const parsed = def.params.safeParse(node.params);
    if (parsed.success) {
      for (const warning of def.warnings?.(parsed.data) ?? []) {
        problems.push({ severity: "warning", code: "node-warning", nodeId: node.id, message: `node ${nodeName(doc, node.id)}: ${warning}` });
      }
    } else {
      for (const issue of parsed.error.issues) {
        problems.push({
          severity: "error",
          code: "invalid-params",
          nodeId: node.id,
          message: `node ${nodeName(doc, node.id)}: param "${issue.path.join(".")}" ${issue.message}`,
        });
      }
    }
  }

  const byId = new Map(doc.nodes.map((n) => [n.id, n]));
  const seenEdges = new Set<string>();
  const connectedInputs = new Map<string, string>();
  const goodEdges: WorkflowEdge[] = [];
  for (const edge of doc.edges) {
    if (seenEdges.has(edge.id)) {
      problems.push({ severity: "error", code: "duplicate-edge-id", edgeId: edge.id, message: `two edges share the id "${edge.id}"` });
    }
    seenEdges.add(edge.id);
    const source = byId.get(edge.source);
    const target = byId.get(edge.target);
    if (!source || !target) {
      const missing = !source ? edge.source : edge.target;
      problems.push({
        severity: "error",
        code: "dangling-edge",
        edgeId: edge.id,
        nodeId: source ? edge.source : edge.target,
        message: `edge "${edge.id}" points to node "${missing}", which does not exist`,
      });
      continue;
    }
    const sourceDef = catalogue.get(source.type);
    const targetDef = catalogue.get(target.type);
    if (!sourceDef || !targetDef) {
      goodEdges.push(edge); // unknown types are already warned about; keep the edge for cycle checks
      continue;
    }
    // Own properties only: a socket named "__proto__" or "toString" does not exist.
    const out = Object.hasOwn(sourceDef.outputs, edge.sourceSocket) ? sourceDef.outputs[edge.sourceSocket] : undefined;
    const inp = Object.hasOwn(targetDef.inputs, edge.targetSocket) ? targetDef.inputs[edge.targetSocket] : undefined;
    if (!out || !inp) {
      const [nodeId, socket] = !out ? [source.id, edge.sourceSocket] : [target.id, edge.targetSocket];
      problems.push({
        severity: "error",
        code: "unknown-socket",
        edgeId: edge.id,
        nodeId,
        socket,
        message: `node ${nodeName(doc, nodeId)} has no ${!out ? "output" : "input"} "${socket}"`,
      });
      continue;
    }
    if (!socketsCompatible(out.type, inp.type)) {
      problems.push({
        severity: "error",
        code: "incompatible-sockets",
        edgeId: edge.id,
        nodeId: target.id,
        socket: edge.targetSocket,
        message: `cannot connect ${nodeName(doc, source.id)}.${edge.sourceSocket} (${out.type}) to ${nodeName(doc, target.id)}.${edge.targetSocket} (${inp.type})`,
      });
      continue;
    }
    const inputKey = `${edge.target}\u0000${edge.targetSocket}`;
    if (connectedInputs.has(inputKey)) {
      problems.push({
        severity: "error",
        code: "input-already-connected",
        edgeId: edge.id,
        nodeId: target.id,
        socket: edge.targetSocket,
        message: `input ${nodeName(doc, target.id)}.${edge.targetSocket} has more than one incoming edge`,
      });
      continue;
    }
    connectedInputs.set(inputKey, edge.id);
    goodEdges.push(edge);
  }

  for (const node of doc.nodes) {
    const def = catalogue.get(node.type);
    if (!def) continue;
    for (const [socket, spec] of Object.entries(def.inputs)) {
      if (!spec.optional && !connectedInputs.has(`${node.id}\u0000${socket}`)) {
        problems.push({
          severity: "error",
          code: "missing-required-input",
          nodeId: node.id,
          socket,
          message: `node ${nodeName(doc, node.id)} needs its input "${socket}" (${spec.type}) connected`,
        });
      }
    }
    if (def.connectOneOf) {
      const { inputs, exclusive } = def.connectOneOf;
      const connected = inputs.filter((socket) => connectedInputs.has(`${node.id}\u0000${socket}`));
      const choice = inputs.map((socket) => `"${socket}"`).join(" or ");
      if (connected.length === 0) {
        problems.push({ severity: "error", code: "missing-required-input", nodeId: node.id, message: `node ${nodeName(doc, node.id)} needs its input ${choice} connected` });
      } else if (exclusive && connected.length > 1) {
        problems.push({ severity: "error", code: "conflicting-inputs", nodeId: node.id, message: `node ${nodeName(doc, node.id)} takes only one of its inputs ${choice}: disconnect one` });
      }
    }
  }

  for (const cycle of findCycles(doc.nodes.map((n) => n.id), goodEdges)) {
    const names = cycle.slice(0, CYCLE_NAMES).map((id) => nodeName(doc, id)).join(" → ");
    const message = cycle.length > CYCLE_NAMES ? `cycle through ${cycle.length} nodes: ${names} → …` : `cycle: ${names} → ${nodeName(doc, cycle[0]!)}`;
    for (const nodeId of cycle) problems.push({ severity: "error", code: "cycle", nodeId, message });
  }
  return problems;
}

/** Strongly connected components with more than one node (or a self-loop), via Tarjan's algorithm. */
export function findCycles(nodeIds: string[], edges: Pick<WorkflowEdge, "source" | "target">[]): string[][] {
  const adj = new Map<string, string[]>(nodeIds.map((id) => [id, []]));
  const selfLoops = new Set<string>();
  for (const e of edges) {
    if (!adj.has(e.source) || !adj.has(e.target)) continue;
    adj.get(e.source)!.push(e.target);
    if (e.source === e.target) selfLoops.add(e.source);
  }
  let counter = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const onStack = new Set<string>();
  const stack: string[] = [];
  const cycles: string[][] = [];

  // Iterative to survive large graphs without blowing the call stack.
  for (const root of nodeIds) {
    if (index.has(root)) continue;
    const work: { id: string; next: number }[] = [{ id: root, next: 0 }];
    index.set(root, counter);
    low.set(root, counter++);
    stack.push(root);
    onStack.add(root);
    while (work.length) {
      const frame = work[work.length - 1]!;
      const succ = adj.get(frame.id)!;
      if (frame.next < succ.length) {
        const w = succ[frame.next++]!;
        if (!index.has(w)) {
          index.set(w, counter);
          low.set(w, counter++);
          stack.push(w);
          onStack.add(w);
          work.push({ id: w, next: 0 });
        } else if (onStack.has(w)) {
          low.set(frame.id, Math.min(low.get(frame.id)!, index.get(w)!));
        }
        continue;
      }
      work.pop();
      if (work.length) {
        const parent = work[work.length - 1]!.id;
        low.set(parent, Math.min(low.get(parent)!, low.get(frame.id)!));
      }
      if (low.get(frame.id) === index.get(frame.id)) {
        const component: string[] = [];
        let w: string;
        do {
          w = stack.pop()!;
          onStack.delete(w);
          component.push(w);
        } while (w !== frame.id);
        if (component.length > 1 || selfLoops.has(frame.id)) cycles.push(component.reverse());
      }
    }
  }
  return cycles;
}

export function hasErrors(problems: Problem[]): boolean {
  return problems.some((p) => p.severity === "error");
}
