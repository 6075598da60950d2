/**
 * Sweeps: the same dataset through the same workflow for each value of one node param (a checkpoint
 * list, a routing Top-P list, an intervention list), each value a batch of its own (own fingerprint,
 * so its records cache and resume independently), summarised per value for plotting.
 */
import type { NodeCatalogue } from "../node";
import type { Workflow } from "../workflow/schema";
import { runBatch, type BatchOptions, type BatchProgress, type BatchResult } from "./runner";
import { summarizeAggregate, type MetricsSummary } from "./summary";

export interface SweepSpec {
  nodeId: string;
  param: string;
  values: unknown[];
}

/** Parses `nodeId.param=v1,v2,...`; each value is JSON when it parses (numbers, strings in quotes), else text. A value holding commas can be given as a JSON list: `node.param=[v1, v2]`. */
export function parseSweep(spec: string): SweepSpec {
  const m = /^([^.=\s]+)\.([^=\s]+)=(.+)$/s.exec(spec.trim());
  if (!m) throw new Error(`sweep "${spec}" is not nodeId.param=v1,v2,...`);
  const [, nodeId, param, list] = m as unknown as [string, string, string, string];
  let values: unknown[];
  const trimmed = list.trim();
  if (trimmed.startsWith("[")) {
    try {
      const parsed = JSON.parse(trimmed) as unknown;
      if (!Array.isArray(parsed)) throw new Error("not a list");
      values = parsed;
    } catch (err) {
      throw new Error(`sweep "${spec}": the value list is not a JSON list (${(err as Error).message})`);
    }
  } else {
    values = trimmed.split(",").map((s) => {
      const t = s.trim();
      try {
        return JSON.parse(t) as unknown;
      } catch {
        return t;
      }
    });
  }
  if (values.length === 0 || (!trimmed.startsWith("[") && values.some((v) => v === ""))) throw new Error(`sweep "${spec}" has an empty value (a JSON list can hold "")`);
  if (values.length > 100) throw new Error(`sweep "${spec}" has ${values.length} values; at most 100`);
  // a value twice would be one batch twice, and its files (aggregate-<i>) numbered by value would overwrite
  const seen = new Set<string>();
  for (const v of values) {
    const key = JSON.stringify(v);
    if (seen.has(key)) throw new Error(`sweep "${spec}" lists ${key} twice`);
    seen.add(key);
  }
  return { nodeId, param, values };
}

/** The document with the swept param set; throws when the node or param does not exist or the value is invalid. */
export function applySweepValue(doc: Workflow, catalogue: NodeCatalogue, spec: SweepSpec, value: unknown): Workflow {
  const node = doc.nodes.find((n) => n.id === spec.nodeId);
  if (!node) throw new Error(`sweep: there is no node "${spec.nodeId}" (nodes: ${doc.nodes.map((n) => n.id).join(", ")})`);
  const def = catalogue.get(node.type);
  if (!def) throw new Error(`sweep: node "${spec.nodeId}" has unknown type "${node.type}"`);
  if (!(spec.param in def.params.shape)) throw new Error(`sweep: node "${spec.nodeId}" (${node.type}) has no param "${spec.param}" (params: ${Object.keys(def.params.shape).join(", ")})`);
  // a run may read only the files its owner may; the host checks the file params of the document it is given, so a
  // sweep must not bring file ids of its own
  const meta = (def.params.shape[spec.param] as { meta?: () => { widget?: unknown } | undefined }).meta?.();
  if (meta?.widget === "file") throw new Error(`sweep: ${spec.nodeId}.${spec.param} is a file; sweeping files is not supported (run a dataset of them instead)`);
  const params = { ...node.params, [spec.param]: value };
  const ok = def.params.safeParse(params);
  if (!ok.success) throw new Error(`sweep: ${JSON.stringify(value)} is not a valid ${spec.nodeId}.${spec.param}: ${ok.error.issues[0]?.message}`);
  return { ...doc, nodes: doc.nodes.map((n) => (n.id === spec.nodeId ? { ...n, params } : n)) };
}

/**
 * Each value's params through the node's own check (NodeDefinition.checkParams), before anything runs: a value the node
 * would refuse (e.g. a routing Top-P on a model whose router has no Top-P) refuses the whole sweep with its reason,
 * instead of running N batches that fail, or N identical ones.
 */
export async function checkSweptParams(docs: Workflow[], catalogue: NodeCatalogue, spec: SweepSpec): Promise<void> {
  for (const [i, doc] of docs.entries()) {
    const node = doc.nodes.find((n) => n.id === spec.nodeId)!;
    const def = catalogue.get(node.type)!;
    if (!def.checkParams) return;
    try {
      await def.checkParams(def.params.parse(node.params));
    } catch (err) {
      throw new Error(`sweep of ${spec.nodeId}.${spec.param} refused at ${JSON.stringify(spec.values[i])}: ${(err as Error).message}`);
    }
  }
}

export interface SweepPoint {
  value: unknown;
  status: BatchResult["status"];
  error?: string;
  records: { ran: number; cached: number; failed: number; total: number };
  workflowFingerprint: string;
  summary: { all: MetricsSummary; byTask: Record<string, MetricsSummary> } | null;
}

export interface SweepResult {
  kind: "routing-sweep";
  nodeId: string;
  param: string;
  datasetFingerprint: string;
  points: SweepPoint[];
  status: "finished" | "failed" | "cancelled";
}

export async function runSweep(
  opts: Omit<BatchOptions, "onProgress"> & { sweep: SweepSpec; onProgress?: (valueIndex: number, p: BatchProgress) => void; onPoint?: (point: SweepPoint, batch: BatchResult) => void | Promise<void> },
): Promise<SweepResult> {
  const docs = opts.sweep.values.map((v) => applySweepValue(opts.doc, opts.catalogue, opts.sweep, v)); // all checked before any runs
  await checkSweptParams(docs, opts.catalogue, opts.sweep);
  const out: SweepResult = { kind: "routing-sweep", nodeId: opts.sweep.nodeId, param: opts.sweep.param, datasetFingerprint: "", points: [], status: "finished" };
  for (let i = 0; i < docs.length; i++) {
    const batch = await runBatch({ ...opts, doc: docs[i]!, onProgress: (p) => opts.onProgress?.(i, p), runId: `${opts.runId ?? "sweep"}-${i}` });
    out.datasetFingerprint = batch.scan.fingerprint;
    // a point none of whose records gave a trace has nothing to show: failed, as a plain dataset run is
    const empty = batch.status === "finished" && !batch.aggregate;
    const first = batch.failures[0];
    const error = batch.error ?? (empty ? `no record produced a trace${first ? ` (line ${first.line}: ${first.message})` : ""}` : undefined);
    const point: SweepPoint = {
      value: opts.sweep.values[i],
      status: empty ? "failed" : batch.status,
      ...(error ? { error } : {}),
      records: { ran: batch.ran, cached: batch.cached, failed: batch.failed, total: batch.total },
      workflowFingerprint: batch.workflowFingerprint,
      summary: batch.aggregate ? summarizeAggregate(batch.aggregate) : null,
    };
    out.points.push(point);
    await opts.onPoint?.(point, batch);
    if (batch.status === "cancelled") {
      out.status = "cancelled";
      break;
    }
    if (point.status === "failed") out.status = "failed";
  }
  return out;
}
