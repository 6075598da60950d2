/**
 * Expert ablation maps on a seeded probe model whose routing is known by construction (tests/fixtures/probe-model.ts):
 * in every layer E1 is never chosen and E2 always. Real Dataset feeder, MoE-LLM node, ONNX Runtime sessions.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ablatedDocument, parseAblate, planAblations, runAblation, TOP_K1_P, type AblationTable } from "@/engine/batch/ablation";
import { ablationCSV } from "@/engine/batch/ablation-export";
import { batchCatalogue } from "@/engine/batch/feeder";
import { Executor } from "@/engine/executor";
import { SessionPool } from "@/engine/runtime";
import { DiskStorage } from "@/engine/storage";
import type { Workflow } from "@/engine/workflow/schema";
import { expertColumns } from "@/models/moe-llm/config";
import { SafetensorsFile } from "@/models/io/safetensors";
import { catalogue } from "@/nodes";
import { ablationFiles, ablationSubject, estimateAblation } from "@/nodes/expert-ablation";
import { writeProbeModel } from "../../fixtures/probe-model";

const root = mkdtempSync(path.join(os.tmpdir(), "ablation-"));
const saved = { models: process.env.STUDIO_MODELS_DIR };
let pool: SessionPool;
const source = path.join(root, "data.jsonl");
const TASKS = ["math", "chat"];

const node = (id: string, type: string, params: Record<string, unknown> = {}) => ({ id, type, typeVersion: 1, params, position: { x: 0, y: 0 } });
const edge = (s: string, ss: string, t: string, ts: string) => ({ id: `${s}.${ss}-${t}.${ts}`, source: s, sourceSocket: ss, target: t, targetSocket: ts });
const workflow = (llm: Record<string, unknown>): Workflow =>
  ({
    schemaVersion: 2, name: "ablation", description: "", tags: [], notes: [],
    nodes: [node("data", "input.dataset"), node("llm", "model.moe-llm", { model: "test/probe", mode: "score-answer", ...llm }), node("abl", "inspect.expert-ablation")],
    edges: [edge("data", "text", "llm", "prompt"), edge("data", "answer", "llm", "answer"), edge("llm", "trace", "abl", "trace")],
  }) as Workflow;

beforeAll(async () => {
  process.env.STUDIO_MODELS_DIR = path.join(root, "models");
  pool = new SessionPool({ intraOpNumThreads: 1, executionProvider: "cpu" });
  await writeProbeModel(path.join(root, "models", "test", "probe"), { never: 0, always: 1 });
  const rows = Array.from({ length: 6 }, (_, i) => ({ text: `Question ${i}: what is ${i} + ${i}?`, answer: `It is ${2 * i}.`, task: TASKS[i % 2], label: "" }));
  writeFileSync(source, rows.map((r) => JSON.stringify(r)).join("\n") + "\n" + JSON.stringify({ text: "no answer here", task: "chat" }) + "\n");
}, 120_000);
afterAll(async () => {
  await pool.close();
  if (saved.models === undefined) delete process.env.STUDIO_MODELS_DIR;
  else process.env.STUDIO_MODELS_DIR = saved.models;
  rmSync(root, { recursive: true, force: true });
});

async function ablate(doc: Workflow, spec: string, storeDir: string, extra: { maxAblations?: number; concurrency?: number } = {}): Promise<AblationTable> {
  const storage = new DiskStorage(path.join(root, "files"));
  const executor = new Executor({ catalogue: batchCatalogue(catalogue), storage, runtime: pool, concurrency: 1 });
  const subject = await ablationSubject(doc, "llm");
  return runAblation({ doc, spec, ...subject, ...extra, catalogue, executor, storage, source, storeDir, collect: { nodeId: "llm", socket: "trace" } });
}

describe("expert ablation plans", () => {
  const model = { experts: expertColumns({ mlp_dynamic_expert_num: 4, mlp_dynamic_null_expert_num: 1, mlp_fixed_expert_num: 2 } as never), numLayers: 3, dynamicCapacity: true };
  it("experts, layer-experts and subsets, with k=1 and no-null rows for dynamic-capacity models; bad items name the cause", () => {
    expect(planAblations(parseAblate("experts"), model).map((a) => a.id)).toEqual(["*.E1", "*.E2", "*.E3", "*.E4", "k=1", "no-null"]);
    expect(planAblations(parseAblate("layer-experts"), model)).toHaveLength(3 * 4 + 2);
    expect(planAblations(parseAblate("experts"), { ...model, dynamicCapacity: false }).map((a) => a.id)).toEqual(["*.E1", "*.E2", "*.E3", "*.E4"]);
    expect(planAblations(parseAblate("subset:L2.e3, *.E1,k=1"), model).map((a) => [a.id, a.layer, a.expert])).toEqual([["L2.E3", 2, "E3"], ["*.E1", "*", "E1"], ["k=1", null, null]]);
    expect(() => parseAblate("everything")).toThrow(/not experts, layer-experts or subset/);
    expect(() => planAblations(parseAblate("subset:L3.E1"), model)).toThrow(/layer 3 does not exist \(L0\.\.L2\)/);
    expect(() => planAblations(parseAblate("subset:L0.Shared1"), model)).toThrow(/no routed expert "Shared1"/);
    expect(() => planAblations(parseAblate("subset:*.E1,*.e1"), model)).toThrow(/listed twice/);
    expect(() => planAblations(parseAblate("subset:k=1"), { ...model, dynamicCapacity: false })).toThrow(/dynamic capacity/);
  });

  it("an ablation adds its rule to the node's own interventions; k=1 sets the routing Top-P override", () => {
    const doc = workflow({ interventions: JSON.stringify([{ layer: 0, expert: "E3", action: "bias", value: 1 }]) });
    const target = { nodeId: "llm", interventionsParam: "interventions", topPParam: "routingTopP" };
    const [ban, , , , k1, noNull] = planAblations(parseAblate("experts"), model);
    const params = (d: Workflow) => d.nodes.find((n) => n.id === "llm")!.params as { interventions: string; routingTopP?: number };
    expect(JSON.parse(params(ablatedDocument(doc, catalogue, target, ban!, model)).interventions)).toEqual([{ layer: 0, expert: "E3", action: "bias", value: 1 }, { layer: "*", expert: "E1", action: "ban" }]);
    expect(JSON.parse(params(ablatedDocument(doc, catalogue, target, noNull!, model)).interventions).at(-1)).toEqual({ layer: "*", expert: "Null1", action: "ban" });
    expect(params(ablatedDocument(doc, catalogue, target, k1!, model)).routingTopP).toBe(TOP_K1_P);
    expect(ablatedDocument(doc, catalogue, target, null, model)).toBe(doc);
  });
});

describe("expert ablation on a probe model with known routing", () => {
  let table: AblationTable;
  it("banning an expert the model never routes to gives ΔNLL = 0 exactly; banning the one it always routes to changes it", async () => {
    table = await ablate(workflow({}), "subset:*.E1,*.E2,L1.E1,L1.E2,no-null", path.join(root, "store-a"));
    expect(table.status).toBe("finished");
    expect(table.tasks).toEqual(["*", "math", "chat"]);
    // the baseline routing is what the construction says
    for (const t of table.tasks) for (const layer of table.routing[t]!) expect(layer.slice(0, 2)).toEqual([0, 1]);
    const row = (id: string) => table.rows.find((r) => r.id === id)!;
    for (const t of table.tasks) {
      expect(row("*.E1").delta[t]).toBe(0);
      expect(row("L1.E1").delta[t]).toBe(0);
      expect(row("no-null").delta[t]).toBe(0); // the null expert is never chosen either
      expect(Math.abs(row("*.E2").delta[t]!)).toBeGreaterThan(1e-3);
      expect(Math.abs(row("L1.E2").delta[t]!)).toBeGreaterThan(1e-4);
      expect(row("*.E1").share[t]).toBe(0);
      expect(row("*.E2").share[t]).toBe(1);
    }
    console.log(`probe model: baseline NLL ${table.baseline.nll["*"]!.mean.toFixed(4)}; ΔNLL ban never-routed E1 ${row("*.E1").delta["*"]}, ban always-routed E2 ${row("*.E2").delta["*"]!.toFixed(4)} (L1 only ${row("L1.E2").delta["*"]!.toFixed(4)})`);
    // 6 records with answers are scored; the one without an answer fails in every pass with the reason
    expect(table.baseline.nll["*"]).toMatchObject({ records: 6 });
    expect(table.baseline.records).toMatchObject({ total: 7, failed: 1 });
    expect(row("*.E2").records).toMatchObject({ ran: 6, failed: 1 });
  }, 240_000);

  it("a second run is served from the ledger and gives the same table; concurrency does not change it", async () => {
    const again = await ablate(workflow({}), "subset:*.E1,*.E2,L1.E1,L1.E2,no-null", path.join(root, "store-a"));
    expect(again.baseline.records).toMatchObject({ ran: 0, cached: 6 });
    expect(again.rows.every((r) => r.records.ran === 0)).toBe(true);
    const results = (t: AblationTable) => t.rows.map(({ records: _records, ...r }) => r);
    expect(results(again)).toEqual(results(table));
    const concurrent = await ablate(workflow({}), "subset:*.E1,*.E2,L1.E1,L1.E2,no-null", path.join(root, "store-b"), { concurrency: 3 });
    expect(concurrent.rows.map((r) => r.delta)).toEqual(table.rows.map((r) => r.delta));
    expect(concurrent.baseline.nll).toEqual(table.baseline.nll);
  }, 240_000);

  it("writes the table as CSV and safetensors with fingerprints; the estimate counts records × passes × tokens", async () => {
    const files = ablationFiles(table);
    const csv = files.csv.split("\n");
    expect(csv[0]).toBe(`# workflow_fingerprint=${table.baseline.workflowFingerprint}`);
    expect(csv[1]).toBe(`# dataset_fingerprint=${table.datasetFingerprint}`);
    expect(csv[3]).toBe("ablation,kind,layer,expert,task,records,tokens,mean_nll,baseline_nll,delta_nll,routing_share,status,workflow_fingerprint");
    expect(csv[4]).toMatch(/^\*\.E1,ban,\*,E1,\*,6,\d+,[\d.]+,[\d.]+,0,0,finished,[0-9a-f]{64}$/);
    expect(ablationCSV(table)).toBe(files.csv);
    const file = path.join(root, "t.safetensors");
    writeFileSync(file, files.safetensors);
    const st = SafetensorsFile.open(file);
    try {
      expect(st.header.metadata).toMatchObject({ format: "moe-studio/expert-ablation/1", workflow_fingerprint: table.baseline.workflowFingerprint, dataset_fingerprint: table.datasetFingerprint });
      expect(JSON.parse(st.header.metadata!.ablations!)).toEqual(["*.E1", "*.E2", "L1.E1", "L1.E2", "no-null"]);
      const delta = st.read("delta_nll");
      expect(delta.shape).toEqual([5, 3]);
      expect(Array.from(delta.data.subarray(0, 3))).toEqual([0, 0, 0]);
      expect(delta.data[3]).toBeCloseTo(table.rows[1]!.delta["*"]!, 6);
      const map = st.read("delta_nll_map"); // [T, L, R]: only L1 was banned per layer
      expect(map.shape).toEqual([3, 3, 4]);
      expect(map.data[(0 * 3 + 1) * 4 + 1]).toBeCloseTo(table.rows[3]!.delta["*"]!, 6);
      expect(Number.isNaN(map.data[(0 * 3 + 0) * 4 + 1]!)).toBe(true);
      expect(st.read("routing_share").shape).toEqual([3, 3, 5]);
    } finally {
      st.close();
    }
    const est = await estimateAblation({ source, modelRef: "test/probe", spec: "layer-experts", maxAblations: 5 });
    expect(est).toMatchObject({ records: 7, ablations: 5, passes: 6 });
    expect(est.tokens).toBe(est.tokensPerPass * 6);
    expect(est.tokensPerPass).toBeGreaterThan(7 * 20);
  });

  it("a generating model node is refused with the reason; limits cut the plan", async () => {
    await expect(ablationSubject(workflow({ mode: "generate" }), "llm")).rejects.toThrow(/set "llm"'s mode to score-answer/);
    const limited = await ablate(workflow({}), "experts", path.join(root, "store-a"), { maxAblations: 1 });
    expect(limited.rows.map((r) => r.id)).toEqual(["*.E1"]);
    expect(limited.rows[0]!.records.ran).toBe(0); // *.E1 was run above with the same workflow: all from the ledger
  }, 120_000);

  it("every baseline record failing is said as such (it told the user to set the scoring mode already set)", async () => {
    const saved = process.env.STUDIO_MAX_CONTEXT_TOKENS;
    process.env.STUDIO_MAX_CONTEXT_TOKENS = "4"; // every prompt is too long
    try {
      const failed = await ablate(workflow({ system: "every record fails" }), "experts", path.join(root, "store-fail"), { maxAblations: 1 });
      expect(failed.status).toBe("failed");
      expect(failed.error).toMatch(/^every baseline record failed \(e\.g\. line \d+: .*STUDIO_MAX_CONTEXT_TOKENS \(4\)/);
      expect(failed.error).not.toContain("scoring mode");
    } finally {
      if (saved === undefined) delete process.env.STUDIO_MAX_CONTEXT_TOKENS;
      else process.env.STUDIO_MAX_CONTEXT_TOKENS = saved;
    }
  }, 120_000);
});
