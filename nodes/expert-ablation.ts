import { z } from "zod";
import { ablationCost, parseAblate, planAblations, runAblation, type AblationModel, type AblationTable, type AblationTarget } from "../engine/batch/ablation";
import { ablationCSV, ablationTensors } from "../engine/batch/ablation-export";
import { batchStoreDir, readRecords, resolveDatasetSource, scanDataset } from "../engine/batch/dataset";
import { batchCatalogue, DATASET_NODE_TYPE } from "../engine/batch/feeder";
import { batchPlan } from "../engine/batch/runner";
import { OutputCache } from "../engine/cache";
import { Executor } from "../engine/executor";
import { defineNode } from "../engine/node";
import { expertAblation as ablationKind, type AblationReport } from "../engine/values/expert-ablation";
import { datasetRecord } from "../engine/values/dataset-record";
import type { Workflow } from "../engine/workflow/schema";
import { expertColumns } from "../models/moe-llm/config";
import { architectureOf } from "../models/families/conventions";
import { resolveModel } from "../models/moe-llm/moe-llm-model";
import { encodeSafetensors } from "../engine/safetensors";
import { loadTokenizer } from "../models/text/tokenizer-json";
import "./params";

export const ABLATION_NODE_TYPE = "inspect.expert-ablation";
const MODEL_NODE_TYPE = "model.moe-llm";

export type { AblationReport };

/** The three files of a table (the JSON carries the workflow it came from, when given). */
export function ablationFiles(table: AblationTable, workflow?: Workflow): { json: string; csv: string; safetensors: Uint8Array } {
  const { entries, metadata } = ablationTensors(table);
  return { json: JSON.stringify({ ...table, ...(workflow ? { workflow } : {}) }), csv: ablationCSV(table), safetensors: encodeSafetensors(entries, metadata) };
}

/**
 * The scoring model node a sweep ablates (the node whose trace is collected) and what the plan needs to know of
 * its model; throws a message naming the node when it is not an MoE-LLM in a scoring mode.
 */
export async function ablationSubject(doc: Workflow, nodeId: string): Promise<{ target: AblationTarget; model: AblationModel; modelRef: string }> {
  const node = doc.nodes.find((n) => n.id === nodeId);
  if (!node) throw new Error(`there is no node "${nodeId}" to ablate`);
  if (node.type !== MODEL_NODE_TYPE) throw new Error(`"${node.label ?? nodeId}" is a ${node.type}: an expert ablation needs the trace of an MoE-LLM node`);
  const params = node.params as { mode?: string; model?: string };
  if (params.mode !== "score-answer" && params.mode !== "score-text") throw new Error(`set "${node.label ?? nodeId}"'s mode to score-answer (or score-text): an ablation measures the teacher-forced NLL, which a generating node does not compute`);
  const modelRef = params.model ?? "uni-moe-tiny/tiny";
  const m = await resolveModel(modelRef);
  return {
    target: { nodeId, interventionsParam: "interventions", topPParam: "routingTopP" },
    model: { experts: expertColumns(m.config), numLayers: m.config.num_hidden_layers, dynamicCapacity: architectureOf(m.config).routing === "uni_moe_top_p" },
    modelRef,
  };
}

/** Records estimated at most for the token count (the rest is extrapolated). */
const ESTIMATE_RECORDS = 2000;

export interface AblationEstimate {
  records: number;
  ablations: number;
  ids: string[];
  passes: number;
  /** Estimated prompt + answer text tokens per pass over the records (chat template included; media tokens not). */
  tokensPerPass: number;
  tokens: number;
}

/** The cost of a sweep before it starts: records × (ablations + baseline) × text tokens, for the editor and the CLI. */
export async function estimateAblation(o: { source: string; modelRef: string; spec: string; maxAblations?: number; maxRecords?: number; scoreText?: boolean }): Promise<AblationEstimate> {
  const m = await resolveModel(o.modelRef);
  const model = { experts: expertColumns(m.config), numLayers: m.config.num_hidden_layers, dynamicCapacity: architectureOf(m.config).routing === "uni_moe_top_p" };
  const all = planAblations(parseAblate(o.spec), model);
  const plan = o.maxAblations ? all.slice(0, o.maxAblations) : all;
  // One pass: every valid record counted (up to the limit), the first ESTIMATE_RECORDS tokenised.
  const tok = loadTokenizer(m.dir);
  const limit = o.maxRecords || Infinity;
  let records = 0;
  let seen = 0;
  let tokens = 0;
  for await (const rec of readRecords(o.source)) {
    if (records >= limit) break;
    records++;
    if (seen >= ESTIMATE_RECORDS) continue;
    const prompt = o.scoreText ? rec.text : tok.applyChatTemplate([{ role: "user", content: rec.text }], { addGenerationPrompt: true });
    tokens += tok.encode(prompt).length + (rec.answer ? tok.encode(rec.answer, { allowSpecial: false }).length : 0);
    seen++;
  }
  const tokensPerPass = seen ? Math.round((tokens / seen) * records) : 0;
  const cost = ablationCost(records, plan.length, tokensPerPass);
  return { records, ablations: plan.length, ids: plan.map((a) => a.id), passes: cost.passes, tokensPerPass, tokens: cost.tokens ?? 0 };
}

const fmt = (n: number) => n.toLocaleString("en-US");

/**
 * Expert ablation over the Dataset upstream: the baseline, then each expert banned in turn (or a chosen subset),
 * ΔNLL per task. engine/batch/ablation.ts says what is run; each pass is a resumable batch.
 */
export const expertAblation = defineNode({
  type: ABLATION_NODE_TYPE,
  typeVersion: 1,
  title: "Expert Ablation",
  category: "Inspect",
  description:
    "Bans each expert in turn (per expert across layers, per layer and expert, or a chosen subset) and measures the teacher-forced NLL per task of the Dataset upstream against the unablated run: ΔNLL heatmaps beside each expert's routing share. Connect the trace of an MoE-LLM in a scoring mode. Resumable; finished records are cached.",
  inputs: { trace: { type: "ROUTING_TRACE" }, record: { type: "JSON", optional: true, label: "record (task/label)", kind: datasetRecord } },
  outputs: { ablation: { type: "JSON", kind: ablationKind } },
  params: z.object({
    ablate: z
      .enum(["experts", "layer-experts", "subset"])
      .default("experts")
      .meta({ widget: "ablation-plan", label: "Ablate", description: "experts: each routed expert in every layer; layer-experts: each (layer, expert); subset: the list below. Dynamic-capacity models add k = 1 and no-null rows." }),
    subset: z.string().max(100_000).default("").meta({ label: "Subset (for ablate = subset)", description: "e.g. L3.E1, L5.E2, *.E3, k=1, no-null" }),
    maxAblations: z.number().int().min(0).max(10_000).default(0).meta({ label: "At most N ablations (0 = all)" }),
    maxRecords: z.number().int().min(0).max(10_000_000).default(0).meta({ label: "At most N records (0 = all)" }),
    concurrency: z.number().int().min(1).max(4).default(1).meta({ label: "Records at once" }),
  }),
  async execute({ inputs, params, ctx }) {
    const doc = ctx.workflow;
    if (!doc) throw new Error("this host did not pass the workflow to the node, so it cannot run the dataset");
    const edge = doc.edges.find((e) => e.target === ctx.nodeId && e.targetSocket === "trace");
    if (!edge) throw new Error("connect the trace of an MoE-LLM in a scoring mode");
    const collect = { nodeId: edge.source, socket: edge.sourceSocket };
    const spec = params.ablate === "subset" ? `subset:${params.subset}` : params.ablate;
    const subject = await ablationSubject(doc, collect.nodeId);
    const plan = batchPlan(doc, collect);
    const dsNode = plan.doc.nodes.find((n) => n.id === plan.datasetNodeId)!;
    if (dsNode.type !== DATASET_NODE_TYPE) throw new Error("internal: no Dataset node");
    const source = resolveDatasetSource(String((dsNode.params as { source?: unknown }).source ?? ""));
    const limits = { maxAblations: params.maxAblations || undefined, maxRecords: params.maxRecords || undefined };
    const cost = await estimateAblation({ source, modelRef: subject.modelRef, spec, ...limits, scoreText: (doc.nodes.find((n) => n.id === collect.nodeId)!.params as { mode?: string }).mode === "score-text" });
    ctx.log(`cost: ${cost.records} records × ${cost.passes} passes (baseline + ${cost.ablations} ablations) × ≈${fmt(cost.tokensPerPass)} tokens per pass = ≈${fmt(cost.tokens)} tokens`);
    const catalogue = ctx.catalogue;
    if (!catalogue) throw new Error("this host did not pass its node catalogue, so the node cannot run the dataset");
    // An in-memory cache, so the nodes before the model (encoders, Prompt Builder) run once per record, not once per pass.
    const executor = new Executor({ catalogue: batchCatalogue(catalogue), storage: ctx.storage, runtime: ctx.runtime, concurrency: 1, cache: new OutputCache({ maxBytes: 256 * 1024 * 1024 }) });
    const scan = await scanDataset(source);
    const table = await runAblation({
      doc,
      spec,
      ...subject,
      ...limits,
      catalogue,
      executor,
      storage: ctx.storage,
      source,
      scan,
      storeDir: batchStoreDir(ctx.cacheScope),
      collect,
      concurrency: params.concurrency,
      signal: ctx.signal,
      vocabulary: false,
      runId: ctx.runId,
      onProgress: (step, steps, label, p) =>
        ctx.progress(
          (step + p.done / Math.max(1, p.total)) / steps,
          `${step === 0 ? "baseline" : `ablation ${step}/${steps - 1}: ${label}`} · ${p.done}/${p.total} records (${p.cached} cached)${p.failed ? ` · ${p.failed} failed` : ""} · cost ${cost.passes} passes × ≈${fmt(cost.tokensPerPass)} tokens per pass (${cost.records} records)`,
        ),
    });
    if (table.status === "cancelled") throw ctx.signal.reason ?? new Error("cancelled");
    if (table.status === "failed" && !table.rows.some((r) => r.status === "finished")) throw new Error(table.error ?? "the ablation failed");
    const files = ablationFiles(table, doc);
    const [file, csvFile, safetensorsFile] = await Promise.all([ctx.storage.write(Buffer.from(files.json), "json"), ctx.storage.write(Buffer.from(files.csv), "csv"), ctx.storage.write(files.safetensors, "st")]);
    const failed = table.rows.reduce((a, r) => a + r.records.failed, table.baseline.records.failed);
    const report: AblationReport = {
      kind: "expert-ablation-report",
      type: "expert-ablation",
      headline: `${table.rows.length} ablations × ${table.baseline.records.total} records · baseline NLL ${table.baseline.nll["*"]?.mean.toFixed(3)}${failed ? ` · ${failed} record runs failed` : ""}${table.status === "failed" ? ` · ${table.error}` : ""}`,
      file,
      csvFile,
      safetensorsFile,
      status: table.status,
      ablations: table.rows.length,
      tasks: table.tasks,
      records: { total: table.baseline.records.total, failed },
      workflowFingerprint: table.baseline.workflowFingerprint,
      datasetFingerprint: table.datasetFingerprint,
    };
    return { ablation: report };
  },
  summarize(outputs) {
    return outputs.ablation?.headline ?? "no ablation";
  },
});
