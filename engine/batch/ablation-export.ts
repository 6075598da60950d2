/**
 * The ablation table's files, written through these functions only (one place for the CSV and tensor layouts):
 *
 * CSV (long format, one row per ablation × task; "*" = all records), fingerprints in leading # lines:
 *   ablation,kind,layer,expert,task,records,tokens,mean_nll,baseline_nll,delta_nll,routing_share,status,workflow_fingerprint
 * Tensors (float32, safetensors via models/io/safetensors.ts; NaN where a value does not exist), A ablations in
 * table order, T tasks in `tasks` order ("*" first), L layers, R routed experts, D dynamic experts:
 *   delta_nll [A,T]  mean_nll [A,T]  tokens [A,T]  baseline_nll [T]  routing_share [T,L,D]
 *   delta_nll_map [T,L,R]         the per-(layer, expert) bans (present when the table has any)
 *   delta_nll_all_layers [T,R]    the every-layer bans (present when the table has any)
 * Metadata (strings): format, spec, ablations/tasks/routed_experts/dynamic_experts (JSON lists), the fingerprints.
 */
import { toCSV, type CsvCell } from "../csv";
import type { AblationTable } from "./ablation";

export interface TensorEntry {
  name: string;
  shape: number[];
  data: Float32Array;
}

const num = (v: number | null | undefined): CsvCell => (v === null || v === undefined || Number.isNaN(v) ? null : v);

export function ablationCSV(t: AblationTable): string {
  const header = ["ablation", "kind", "layer", "expert", "task", "records", "tokens", "mean_nll", "baseline_nll", "delta_nll", "routing_share", "status", "workflow_fingerprint"];
  const rows: CsvCell[][] = [];
  for (const r of t.rows)
    for (const task of t.tasks) {
      const n = r.nll[task];
      rows.push([r.id, r.kind, r.layer === null ? null : r.layer === "*" ? "*" : r.layer, r.expert ?? null, task, num(n?.records), num(n?.tokens), num(n?.mean), num(t.baseline.nll[task]?.mean), num(r.delta[task]), num(r.share[task]), r.status, r.workflowFingerprint]);
    }
  return toCSV([header, ...rows], { comments: [`workflow_fingerprint=${t.baseline.workflowFingerprint}`, `dataset_fingerprint=${t.datasetFingerprint}`, `spec=${t.spec}`] });
}

export function ablationTensors(t: AblationTable): { entries: TensorEntry[]; metadata: Record<string, string> } {
  const A = t.rows.length, T = t.tasks.length, L = t.numLayers;
  const routed = t.experts.filter((e) => e.role === "routed").map((e) => e.name);
  const R = routed.length, D = t.dynamicExperts.length;
  const grid = (f: (a: number, task: string) => number | undefined) => Float32Array.from({ length: A * T }, (_, i) => f(Math.floor(i / T), t.tasks[i % T]!) ?? NaN);
  const entries: TensorEntry[] = [
    { name: "delta_nll", shape: [A, T], data: grid((a, task) => t.rows[a]!.delta[task]) },
    { name: "mean_nll", shape: [A, T], data: grid((a, task) => t.rows[a]!.nll[task]?.mean) },
    { name: "tokens", shape: [A, T], data: grid((a, task) => t.rows[a]!.nll[task]?.tokens) },
    { name: "baseline_nll", shape: [T], data: Float32Array.from(t.tasks, (task) => t.baseline.nll[task]?.mean ?? NaN) },
    { name: "routing_share", shape: [T, L, D], data: Float32Array.from({ length: T * L * D }, (_, i) => t.routing[t.tasks[Math.floor(i / (L * D))]!]?.[Math.floor(i / D) % L]?.[i % D] ?? NaN) },
  ];
  const bans = t.rows.filter((r) => r.kind === "ban");
  if (bans.some((r) => typeof r.layer === "number")) {
    const data = new Float32Array(T * L * R).fill(NaN);
    for (const r of bans) if (typeof r.layer === "number") t.tasks.forEach((task, ti) => (data[(ti * L + (r.layer as number)) * R + routed.indexOf(r.expert!)] = r.delta[task] ?? NaN));
    entries.push({ name: "delta_nll_map", shape: [T, L, R], data });
  }
  if (bans.some((r) => r.layer === "*")) {
    const data = new Float32Array(T * R).fill(NaN);
    for (const r of bans) if (r.layer === "*") t.tasks.forEach((task, ti) => (data[ti * R + routed.indexOf(r.expert!)] = r.delta[task] ?? NaN));
    entries.push({ name: "delta_nll_all_layers", shape: [T, R], data });
  }
  const metadata = {
    format: "moe-studio/expert-ablation/1",
    spec: t.spec,
    ablations: JSON.stringify(t.rows.map((r) => r.id)),
    tasks: JSON.stringify(t.tasks),
    routed_experts: JSON.stringify(routed),
    dynamic_experts: JSON.stringify(t.dynamicExperts),
    workflow_fingerprint: t.baseline.workflowFingerprint,
    dataset_fingerprint: t.datasetFingerprint,
  };
  return { entries, metadata };
}
