/**
 * Routing traces and dataset aggregates as safetensors, so Python gets arrays in one call:
 *   from safetensors.numpy import load_file; t = load_file("routing-trace.safetensors")
 *
 * Trace (N tokens, E expert columns in router order, L layers):
 *   router_logits F32 [L, N, E]   (after any intervention bias; -inf for banned experts stays -inf)
 *   mask          U8  [L, N, E]   1 where the expert was used (chosen dynamic experts and the shared ones)
 *   weights       F32 [L, N, E]   final mixing weights; each row sums to 1
 *   k             I32 [L, N]      dynamic experts chosen per token (Top-P k, null included)
 *   token_ids     I32 [N]
 *   positions     I32 [N, 3]      (t, h, w) rotary positions
 * __metadata__ (strings): format "moe-studio/routing-trace", version "1", model, convention,
 *   experts (JSON [{name, role}]), tokens (JSON [{text, modality, phase}]), workflow_fingerprint (when known).
 *
 * Aggregate (G = 1 + tasks: index 0 is every record, then the tasks in `tasks` order; D dynamic experts):
 *   selection_counts F64 [G, L, D]    tokens that selected each dynamic expert (Fig. 7 numerators)
 *   tokens           F64 [G]          tokens per group
 *   k_counts         F64 [G, L, D+2]  tokens by k = 0..D+1 (Fig. 8; D+1: Top-P never reached, Uni-MoE as released)
 * __metadata__: format "moe-studio/routing-aggregate", version "1", experts (JSON, the dynamic ones),
 *   tasks (JSON, G − 1 names), workflow_fingerprint, dataset_fingerprint.
 */
import { encodeSafetensors } from "../safetensors";
import type { RoutingTrace } from "../trace";
import type { RoutingAggregate } from "./aggregate";
import { checkShapes } from "./metrics";
import { groupsBy } from "./specialisation";

export const TRACE_FORMAT = "moe-studio/routing-trace";
export const AGGREGATE_FORMAT = "moe-studio/routing-aggregate";

function stack<T extends Float32Array | Uint8Array | Int32Array>(parts: readonly T[], make: (n: number) => T): T {
  const out = make(parts.reduce((a, p) => a + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

export function traceToSafetensors(trace: RoutingTrace, meta: { workflowFingerprint?: string } = {}): Uint8Array {
  checkShapes(trace);
  const L = trace.layers.length;
  const N = trace.tokens.length;
  const E = trace.experts.length;
  const positions = new Int32Array(N * 3);
  trace.tokens.forEach((t, i) => positions.set(t.position, i * 3));
  return encodeSafetensors(
    [
      { name: "router_logits", shape: [L, N, E], data: stack(trace.layers.map((l) => l.routerLogits), (n) => new Float32Array(n)) },
      { name: "mask", shape: [L, N, E], data: stack(trace.layers.map((l) => l.mask), (n) => new Uint8Array(n)) },
      { name: "weights", shape: [L, N, E], data: stack(trace.layers.map((l) => l.weights), (n) => new Float32Array(n)) },
      { name: "k", shape: [L, N], data: stack(trace.layers.map((l) => l.k), (n) => new Int32Array(n)) },
      { name: "token_ids", shape: [N], data: Int32Array.from(trace.tokens, (t) => t.id) },
      { name: "positions", shape: [N, 3], data: positions },
    ],
    {
      format: TRACE_FORMAT,
      version: "1",
      model: trace.model,
      convention: trace.convention,
      experts: JSON.stringify(trace.experts.map((e) => ({ name: e.name, role: e.role }))),
      tokens: JSON.stringify(trace.tokens.map((t) => ({ text: t.text, modality: t.modality, phase: t.phase }))),
      ...(meta.workflowFingerprint ? { workflow_fingerprint: meta.workflowFingerprint } : {}),
    },
  );
}

export function aggregateToSafetensors(agg: RoutingAggregate, meta: { workflowFingerprint: string; datasetFingerprint: string }): Uint8Array {
  const scopes: [string, ReturnType<RoutingAggregate["metrics"]>][] = [["*", agg.metrics()]];
  for (const [task, groups] of groupsBy(agg, "task")) scopes.push([task, agg.metrics({ group: groups })]);
  const m0 = scopes[0]![1];
  const G = scopes.length;
  const L = m0.layers.length;
  const D = m0.experts.dynamic.length;
  const selections = new Float64Array(G * L * D);
  const kCounts = new Float64Array(G * L * (D + 2));
  const tokens = new Float64Array(G);
  scopes.forEach(([, m], g) => {
    tokens[g] = m.tokens;
    m.layers.forEach((l, li) => {
      for (let d = 0; d < D; d++) selections[(g * L + li) * D + d] = l.selectionCounts[d] ?? 0;
      for (let k = 0; k <= D + 1; k++) kCounts[(g * L + li) * (D + 2) + k] = l.kCounts[k] ?? 0;
    });
  });
  return encodeSafetensors(
    [
      { name: "selection_counts", shape: [G, L, D], data: selections },
      { name: "tokens", shape: [G], data: tokens },
      { name: "k_counts", shape: [G, L, D + 2], data: kCounts },
    ],
    {
      format: AGGREGATE_FORMAT,
      version: "1",
      experts: JSON.stringify(m0.experts.dynamic.map((e) => ({ name: e.name, role: e.role }))),
      tasks: JSON.stringify(scopes.slice(1).map(([t]) => t)),
      workflow_fingerprint: meta.workflowFingerprint,
      dataset_fingerprint: meta.datasetFingerprint,
    },
  );
}
