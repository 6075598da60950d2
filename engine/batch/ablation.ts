/**
 * Expert ablation maps: what each expert is *for*. The dataset runs through the same scoring workflow (a model
 * node in a teacher-forced scoring mode) once unablated — the baseline — and once per ablation; each run records
 * the mean NLL per task, and ΔNLL = mean NLL ablated − mean NLL baseline. Teacher forcing fixes the scored
 * tokens, so both means are over the same tokens.
 *
 * Ablations (applied through the model node's intervention params, added to the rules it already has):
 *   L3.E1    ban routed expert E1 in layer 3 (the existing ban rule: it leaves the routing softmax, is never chosen)
 *   *.E1     ban E1 in every layer
 *   k=1      routing Top-P override → 1e-6: every token takes exactly its top dynamic expert (dynamic-capacity models)
 *   no-null  ban every null expert in every layer: the null expert's share goes back to the real experts
 *            (dynamic-capacity models with a null expert)
 * Spec: "experts" (each routed expert in every layer, + k=1 and no-null), "layer-experts" (each (layer, routed
 * expert), + the same two rows), "subset:L3.E1,L5.E2,*.E3,k=1,no-null" (exactly those).
 *
 * Each ablation is a batch of its own (runner.ts): its own workflow fingerprint, resume ledger and per-record
 * cache, so the baseline runs once, a killed sweep resumes where it stopped, and the table is the same.
 */
import type { NodeCatalogue } from "../node";
import type { RoutingAggregate } from "../routing/aggregate";
import { groupsBy } from "../routing/specialisation";
import type { ExpertInfo } from "../trace";
import type { Workflow } from "../workflow/schema";
import { runBatch, type BatchOptions, type BatchProgress, type BatchResult } from "./runner";
import { meanNll, nllAll, nllBy, type NllSum } from "./scores";
import { applySweepValue } from "./sweep";

export type AblationKind = "ban" | "top-k1" | "no-null";

export interface Ablation {
  /** "L3.E1", "*.E1", "k=1", "no-null". */
  id: string;
  label: string;
  kind: AblationKind;
  /** The layer banned in (0-based), "*" for every layer, null for the routing-wide rows. */
  layer: number | "*" | null;
  /** The routed expert banned (its trace name), null for the routing-wide rows. */
  expert: string | null;
}

export type AblateMode = "experts" | "layer-experts" | "subset";
export interface AblateSpec {
  mode: AblateMode;
  /** For "subset": the ablation ids as written. */
  items: string[];
}

/** The rows after the expert rows of "experts" and "layer-experts". */
const GLOBAL_IDS = ["k=1", "no-null"] as const;

/** Parses "experts" | "layer-experts" | "subset:L3.E1,L5.E2,*.E3,k=1,no-null". */
export function parseAblate(spec: string): AblateSpec {
  const s = spec.trim();
  if (s === "experts" || s === "layer-experts") return { mode: s, items: [] };
  if (s.startsWith("subset:")) {
    const items = s.slice(7).split(",").map((x) => x.trim()).filter(Boolean);
    if (!items.length) throw new Error(`ablate "${spec}": the subset is empty (e.g. subset:L3.E1,L5.E2)`);
    if (items.length > 10_000) throw new Error(`ablate "${spec}": ${items.length} items; at most 10,000`);
    return { mode: "subset", items };
  }
  throw new Error(`ablate "${spec}" is not experts, layer-experts or subset:L3.E1,L5.E2,… (L<layer>.<expert>, *.<expert> for every layer, k=1, no-null)`);
}

/** What the plan needs to know about the model: its router columns, layers, and whether it routes by dynamic capacity (Top-P, null experts). */
export interface AblationModel {
  experts: readonly ExpertInfo[];
  numLayers: number;
  dynamicCapacity: boolean;
}

/** The ablations of a spec for a model, in table order; throws naming an item that does not fit the model. */
export function planAblations(spec: AblateSpec, model: AblationModel): Ablation[] {
  const routed = model.experts.filter((e) => e.role === "routed").map((e) => e.name);
  const hasNull = model.experts.some((e) => e.role === "null");
  const globals = (): Ablation[] => {
    if (!model.dynamicCapacity) return [];
    const rows = [globalRow("k=1")];
    if (hasNull) rows.push(globalRow("no-null"));
    return rows;
  };
  if (spec.mode === "experts") return [...routed.map((e) => banRow("*", e)), ...globals()];
  if (spec.mode === "layer-experts") {
    const rows: Ablation[] = [];
    for (let l = 0; l < model.numLayers; l++) for (const e of routed) rows.push(banRow(l, e));
    return [...rows, ...globals()];
  }
  const seen = new Set<string>();
  return spec.items.map((item) => {
    let row: Ablation;
    if ((GLOBAL_IDS as readonly string[]).includes(item)) {
      if (!model.dynamicCapacity) throw new Error(`ablate ${item}: the model does not route by dynamic capacity (Top-P with null experts)`);
      if (item === "no-null" && !hasNull) throw new Error("ablate no-null: the model has no null expert");
      row = globalRow(item as (typeof GLOBAL_IDS)[number]);
    } else {
      const m = /^(?:L(\d+)|(\*))\.(.+)$/i.exec(item);
      if (!m) throw new Error(`ablate "${item}" is not L<layer>.<expert>, *.<expert>, k=1 or no-null`);
      const layer = m[2] ? "*" : Number(m[1]);
      if (layer !== "*" && layer >= model.numLayers) throw new Error(`ablate ${item}: layer ${layer} does not exist (L0..L${model.numLayers - 1})`);
      const expert = routed.find((e) => e.toLowerCase() === m[3]!.toLowerCase());
      if (!expert) throw new Error(`ablate ${item}: no routed expert "${m[3]}" (routed experts: ${routed.join(", ")})`);
      row = banRow(layer, expert);
    }
    if (seen.has(row.id)) throw new Error(`ablate: ${row.id} is listed twice`);
    seen.add(row.id);
    return row;
  });
}

function banRow(layer: number | "*", expert: string): Ablation {
  return { id: `${layer === "*" ? "*" : `L${layer}`}.${expert}`, label: layer === "*" ? `ban ${expert} in every layer` : `ban ${expert} in layer ${layer}`, kind: "ban", layer, expert };
}

function globalRow(id: (typeof GLOBAL_IDS)[number]): Ablation {
  return id === "k=1"
    ? { id, label: "k = 1: only the top dynamic expert (Top-P override)", kind: "top-k1", layer: null, expert: null }
    : { id, label: "no null expert (its share goes to the real experts)", kind: "no-null", layer: null, expert: null };
}

/** The routing Top-P that makes k = 1 for every token: the first sorted probability already reaches it. */
export const TOP_K1_P = 1e-6;

/** Where an ablation is applied: the model node and its intervention params (a JSON rule list and a Top-P override). */
export interface AblationTarget {
  nodeId: string;
  interventionsParam: string;
  topPParam: string;
}

/** The workflow with one ablation applied (validated by the node's param schema); null = the baseline. */
export function ablatedDocument(doc: Workflow, catalogue: NodeCatalogue, target: AblationTarget, ablation: Ablation | null, model: AblationModel): Workflow {
  if (!ablation) return doc;
  const node = doc.nodes.find((n) => n.id === target.nodeId);
  if (!node) throw new Error(`ablation: there is no node "${target.nodeId}"`);
  if (ablation.kind === "top-k1") return applySweepValue(doc, catalogue, { nodeId: target.nodeId, param: target.topPParam, values: [] }, TOP_K1_P);
  const raw = node.params[target.interventionsParam];
  let rules: unknown[];
  try {
    rules = typeof raw === "string" ? (raw.trim() ? (JSON.parse(raw) as unknown[]) : []) : Array.isArray(raw) ? raw : [];
  } catch (err) {
    throw new Error(`ablation: "${target.nodeId}".${target.interventionsParam} is not a JSON rule list (${(err as Error).message})`);
  }
  if (!Array.isArray(rules)) throw new Error(`ablation: "${target.nodeId}".${target.interventionsParam} is not a JSON rule list`);
  const added =
    ablation.kind === "ban"
      ? [{ layer: ablation.layer, expert: ablation.expert, action: "ban" }]
      : model.experts.filter((e) => e.role === "null").map((e) => ({ layer: "*", expert: e.name, action: "ban" }));
  return applySweepValue(doc, catalogue, { nodeId: target.nodeId, param: target.interventionsParam, values: [] }, JSON.stringify([...rules, ...added]));
}

/** One run's NLL per task ("*" = all records). */
export type TaskNll = Record<string, { mean: number; tokens: number; records: number }>;

export interface AblationRow extends Ablation {
  status: BatchResult["status"] | "not run";
  error?: string;
  workflowFingerprint: string;
  records: { ran: number; cached: number; failed: number; total: number };
  nll: TaskNll;
  /** Per task: mean NLL ablated − baseline (NaN where either has no scored token). */
  delta: Record<string, number>;
  /** Per task: the baseline's routing share of the ablated expert (its layer, or the mean over layers; the null experts' for no-null; null for k=1). */
  share: Record<string, number | null>;
}

export interface AblationTable {
  kind: "expert-ablation";
  version: 1;
  spec: string;
  status: "finished" | "failed" | "cancelled";
  error?: string;
  datasetFingerprint: string;
  /** "*" (all records) first, then the tasks in order. */
  tasks: string[];
  experts: ExpertInfo[];
  numLayers: number;
  baseline: { workflowFingerprint: string; records: AblationRow["records"]; nll: TaskNll; tokensPerPass: number };
  /**
   * The baseline's routing per task: [layer][dynamic expert] share of tokens that selected it (all tokens of the
   * records), dynamic experts in `dynamicExperts` order.
   */
  routing: Record<string, number[][]>;
  dynamicExperts: string[];
  rows: AblationRow[];
}

function taskNll(batch: BatchResult): TaskNll {
  const out: TaskNll = {};
  const put = (task: string, s: NllSum) => (out[task] = { mean: meanNll(s), tokens: s.tokens, records: s.records });
  put("*", nllAll(batch.nll));
  for (const [task, s] of nllBy(batch.nll, "task")) put(task, s);
  return out;
}

function routingShares(agg: RoutingAggregate | null): Record<string, number[][]> {
  if (!agg) return {};
  const shares = (m: ReturnType<RoutingAggregate["metrics"]>) => m.layers.map((l) => Array.from(l.tokenShare));
  const out: Record<string, number[][]> = { "*": shares(agg.metrics()) };
  for (const [task, groups] of groupsBy(agg, "task")) out[task] = shares(agg.metrics({ group: groups }));
  return out;
}

function shareOf(a: Ablation, routing: number[][] | undefined, dynamic: string[], experts: readonly ExpertInfo[]): number | null {
  if (!routing || a.kind === "top-k1") return null;
  const cols = a.kind === "no-null" ? experts.filter((e) => e.role === "null").map((e) => dynamic.indexOf(e.name)) : [dynamic.indexOf(a.expert!)];
  if (cols.some((c) => c < 0)) return null;
  const layers = typeof a.layer === "number" ? [a.layer] : routing.map((_, l) => l);
  let s = 0;
  for (const l of layers) for (const c of cols) s += routing[l]?.[c] ?? 0;
  return s / Math.max(1, layers.length);
}

const counts = (b: BatchResult) => ({ ran: b.ran, cached: b.cached, failed: b.failed, total: b.total });

/** A row of the table from its batch (or none yet), against the baseline. */
function tableRow(a: Ablation, batch: BatchResult | null, base: TaskNll, tasks: string[], routing: Record<string, number[][]>, dynamic: string[], experts: readonly ExpertInfo[]): AblationRow {
  const nll = batch ? taskNll(batch) : {};
  const delta: Record<string, number> = {};
  const share: Record<string, number | null> = {};
  for (const t of tasks) {
    delta[t] = (nll[t]?.mean ?? NaN) - (base[t]?.mean ?? NaN);
    share[t] = shareOf(a, routing[t], dynamic, experts);
  }
  return {
    ...a,
    status: batch ? batch.status : "not run",
    ...(batch?.error ? { error: batch.error } : {}),
    workflowFingerprint: batch?.workflowFingerprint ?? "",
    records: batch ? counts(batch) : { ran: 0, cached: 0, failed: 0, total: 0 },
    nll,
    delta,
    share,
  };
}

export interface AblationOptions extends Omit<BatchOptions, "onProgress" | "doc"> {
  doc: Workflow;
  spec: string;
  target: AblationTarget;
  model: AblationModel;
  /** Run only the first N ablations of the plan (the baseline always runs). */
  maxAblations?: number;
  /**
   * Records per forward (runner.ts `batch`); default 1 here, so a resumed ablation gives the uninterrupted table
   * byte for byte (batched, a record's NLL depends on its batch-mates in the last float32 bits: ~1e-8 here).
   */
  batch?: number;
  /** step 0 = the baseline, then 1..ablations. */
  onProgress?: (step: number, steps: number, label: string, p: BatchProgress) => void;
  /** Called after each step with the table so far (rows not run yet have status "not run"). */
  onStep?: (table: AblationTable) => void | Promise<void>;
}

/** Baseline, then each ablation, each a resumable batch; the table of ΔNLL per task. */
export async function runAblation(opts: AblationOptions): Promise<AblationTable> {
  const all = planAblations(parseAblate(opts.spec), opts.model);
  const plan = opts.maxAblations === undefined ? all : all.slice(0, Math.max(0, Math.floor(opts.maxAblations)));
  if (!plan.length) throw new Error(`ablate "${opts.spec}" gives no ablation for this model`);
  const docs = plan.map((a) => ablatedDocument(opts.doc, opts.catalogue, opts.target, a, opts.model)); // all checked before anything runs
  const steps = plan.length + 1;
  const run = (doc: Workflow, step: number, label: string) =>
    runBatch({ ...opts, batch: opts.batch ?? 1, doc, runId: `${opts.runId ?? "ablation"}-${step}`, onProgress: (p) => opts.onProgress?.(step, steps, label, p) });

  const base = await run(opts.doc, 0, "baseline");
  const dynamic = base.aggregate ? base.aggregate.dynamicExperts().map((e) => e.name) : opts.model.experts.filter((e) => e.role !== "shared").map((e) => e.name);
  const routing = routingShares(base.aggregate);
  const baseNll = taskNll(base);
  const tasks = ["*", ...Object.keys(baseNll).filter((t) => t !== "*")];
  const batches: (BatchResult | null)[] = plan.map(() => null);
  const table = (): AblationTable => {
    const failed = [base, ...batches].find((b) => b?.status === "failed");
    const cancelled = [base, ...batches].some((b) => b?.status === "cancelled");
    return {
      kind: "expert-ablation",
      version: 1,
      spec: opts.spec,
      status: cancelled ? "cancelled" : failed ? "failed" : "finished",
      ...(failed?.error ? { error: failed.error } : {}),
      datasetFingerprint: base.scan.fingerprint,
      tasks,
      experts: opts.model.experts.map((e) => ({ name: e.name, role: e.role })),
      numLayers: opts.model.numLayers,
      baseline: { workflowFingerprint: base.workflowFingerprint, records: counts(base), nll: baseNll, tokensPerPass: base.aggregate?.counts().tokens ?? 0 },
      routing,
      dynamicExperts: dynamic,
      rows: plan.map((a, i) => tableRow(a, batches[i] ?? null, baseNll, tasks, routing, dynamic, opts.model.experts)),
    };
  };
  if (base.status !== "finished") return table();
  if (nllAll(base.nll).tokens === 0) {
    const first = base.failures[0] ? `line ${base.failures[0].line}: ${base.failures[0].message}` : "";
    // two causes: every record failed, or the model node does not score
    const why = base.ran + base.cached === 0 && first ? `every baseline record failed (e.g. ${first})` : `no record was scored: set "${opts.target.nodeId}" to a scoring mode (score-answer or score-text)${first ? `; e.g. ${first}` : ""}`;
    return { ...table(), status: "failed", error: why };
  }
  await opts.onStep?.(table());
  for (let i = 0; i < plan.length; i++) {
    batches[i] = await run(docs[i]!, i + 1, plan[i]!.label);
    await opts.onStep?.(table());
    if (batches[i]!.status === "cancelled") break;
  }
  return table();
}

/** Forward passes an ablation sweep costs: records × (ablations + the baseline), and tokens when known per pass. */
export function ablationCost(records: number, ablations: number, tokensPerPass?: number): { passes: number; records: number; ablations: number; tokens: number | null } {
  const passes = ablations + 1;
  return { passes, records, ablations, tokens: tokensPerPass === undefined ? null : tokensPerPass * passes };
}
