/**
 * Batched dataset runs through the real runner, nodes and ONNX Runtime on the shipped sample (36 records, text +
 * image, uni-moe-tiny `tiny`): `batch` 8 (the MoE-LLM forwards of 8 records coalesced into padded forwards) against
 * `batch` 1 (one record per forward): the same aggregate (every count identical, float sums within 1e-6 relative),
 * every record's ledger entry the same, teacher-forced NLL per record within 1e-5, resume after a cancelled batched
 * run, and a bad record inside a batch failing alone.
 */
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { compareAggregates } from "@/engine/batch/compare";
import { batchCatalogue } from "@/engine/batch/feeder";
import { runBatch, type BatchOptions, type BatchResult } from "@/engine/batch/runner";
import type { RecordEntry } from "@/engine/batch/store";
import { Executor } from "@/engine/executor";
import { SessionPool } from "@/engine/runtime";
import { DiskStorage } from "@/engine/storage";
import type { Workflow } from "@/engine/workflow/schema";
import { catalogue } from "@/nodes";

const root = path.join(__dirname, "../../..");
const tmp = mkdtempSync(path.join(os.tmpdir(), "batched-dataset-"));
const sample = path.join(root, "app/examples/datasets/sample");
const pool = new SessionPool({ intraOpNumThreads: 1, executionProvider: "cpu" });
const storage = new DiskStorage(path.join(tmp, "files"));
afterAll(async () => {
  await pool.close();
  rmSync(tmp, { recursive: true, force: true });
});

const imageWorkflow = JSON.parse(readFileSync(path.join(sample, "workflow.json"), "utf8")) as Workflow;
const textWorkflow = JSON.parse(readFileSync(path.join(root, "app/examples/datasets/text-workflow.json"), "utf8")) as Workflow;
/** The text workflow scoring each record's answer (mode score-answer) instead of generating. */
const scoreWorkflow: Workflow = {
  ...textWorkflow,
  nodes: textWorkflow.nodes.map((n) => (n.id === "llm" ? { ...n, params: { mode: "score-answer" } } : n)),
  edges: [...textWorkflow.edges, { id: "data.answer:llm.answer", source: "data", sourceSocket: "answer", target: "llm", targetSocket: "answer" }],
};

let stores = 0;
const run = (doc: Workflow, batch: number, over: Partial<BatchOptions> = {}): Promise<BatchResult> =>
  runBatch({
    doc,
    catalogue,
    executor: new Executor({ catalogue: batchCatalogue(catalogue), storage, runtime: pool, concurrency: 1 }),
    storage,
    source: path.join(sample, "records.jsonl"),
    storeDir: path.join(tmp, `store-${stores++}`),
    vocabulary: true,
    batch,
    ...over,
  });

/** Every ledger entry of a finished batch, by record hash. */
function entries(r: BatchResult): Map<string, RecordEntry> {
  const dir = path.join(r.storeDir, "records");
  const out = new Map<string, RecordEntry>();
  for (const sub of readdirSync(dir)) for (const f of readdirSync(path.join(dir, sub))) if (f.endsWith(".json")) out.set(f.slice(0, -5), JSON.parse(readFileSync(path.join(dir, sub, f), "utf8")) as RecordEntry);
  return out;
}

function expectSameAggregate(a: BatchResult, b: BatchResult) {
  const cmp = compareAggregates(a.aggregate!.toJSON(), b.aggregate!.toJSON());
  expect(cmp.diff).toBeNull();
  expect(cmp.maxFloatRel).toBeLessThan(1e-6);
  return cmp.maxFloatRel;
}

describe("batched dataset runs == one record per forward (sample dataset, tiny)", () => {
  let one: BatchResult;

  it("text + image workflow, 4 generated tokens: the same aggregate and the same per-record entries; 8 records per forward", async () => {
    one = await run(imageWorkflow, 1);
    const eight = await run(imageWorkflow, 8);
    for (const r of [one, eight]) expect([r.status, r.ran, r.failed]).toEqual(["finished", 36, 0]);
    expect(eight.workflowFingerprint).toBe(one.workflowFingerprint); // batching is not part of what a record's result depends on
    const rel = expectSameAggregate(one, eight);
    const a = entries(one), b = entries(eight);
    expect([...b.keys()].sort()).toEqual([...a.keys()].sort());
    for (const [hash, e] of a) expect(compareAggregates(e.aggregate, b.get(hash)!.aggregate).diff, `record ${hash.slice(0, 8)}`).toBeNull();
    expect(one.batching).toBeUndefined();
    // 36 records = 4 full batches + 4; each step of a batch (prefill, 3 fed-back tokens) is one forward: text records
    // feed embeddings like the image records (BatchWindow.feedEmbeddings), so a mixed batch shares one graph's forwards
    expect(eight.batching!.largest).toBe(8);
    expect(eight.batching!.requests).toBe(36 * 4);
    expect(eight.batching!.calls).toBe(5 * 4);
    // The 12 image records' tiles (1 each) run through the vision encoder several images per session run.
    const vision = eight.batching!.others!["vision encoder"]!;
    expect(vision.requests).toBe(12);
    expect(vision.largest).toBeGreaterThan(1);
    console.log(`sample: ${eight.batching!.requests} record steps in ${eight.batching!.calls} forwards, ${vision.requests} images in ${vision.calls} vision-encoder runs; aggregate float sums within ${rel.toExponential(1)}`);
  }, 300_000);

  it("score-answer: every record's NLL within 1e-5 of its unbatched score, same token counts", async () => {
    const a = await run(scoreWorkflow, 1);
    const b = await run(scoreWorkflow, 8);
    for (const r of [a, b]) expect([r.status, r.ran, r.failed]).toEqual(["finished", 36, 0]);
    const ea = entries(a), eb = entries(b);
    let d = 0;
    for (const [hash, e] of ea) {
      const f = eb.get(hash)!;
      expect(f.score!.tokens).toBe(e.score!.tokens);
      d = Math.max(d, Math.abs(f.score!.sum - e.score!.sum));
    }
    expect(d).toBeLessThan(1e-5);
    expect(Object.keys(b.nll).sort()).toEqual(Object.keys(a.nll).sort());
    for (const [g, v] of Object.entries(a.nll)) expect(Math.abs(b.nll[g]!.sum - v.sum)).toBeLessThan(1e-5 * v.records);
    expectSameAggregate(a, b);
    expect(b.batching!.calls).toBe(5); // one prefill per batch of 8: 4 + the last 4
  }, 300_000);

  it("a cancelled batched run resumes from its ledger and ends with the unbatched aggregate", async () => {
    const storeDir = path.join(tmp, "resume");
    const controller = new AbortController();
    const first = await run(imageWorkflow, 8, { storeDir, signal: controller.signal, onProgress: (p) => p.ran >= 10 && controller.abort() });
    expect(first.status).toBe("cancelled");
    expect(first.ran).toBeGreaterThanOrEqual(10);
    expect(first.ran).toBeLessThan(36);
    const second = await run(imageWorkflow, 8, { storeDir });
    expect(second.status).toBe("finished");
    expect(second.cached).toBeGreaterThanOrEqual(first.ran);
    expect(second.ran + second.cached).toBe(36);
    expectSameAggregate(one, second);
  }, 300_000);

  it("a bad record inside a batch fails alone: its batch-mates finish and the aggregate equals the unbatched run's", async () => {
    const dir = path.join(tmp, "bad");
    cpSync(sample, dir, { recursive: true });
    writeFileSync(path.join(dir, "images", "blue-square.png"), "not a png"); // record cap-2, in the first batch
    const source = path.join(dir, "records.jsonl");
    const a = await run(imageWorkflow, 1, { source });
    const b = await run(imageWorkflow, 8, { source });
    for (const r of [a, b]) {
      expect([r.status, r.ran, r.failed]).toEqual(["finished", 35, 1]);
      expect(r.failures[0]!.line).toBe(2);
    }
    expectSameAggregate(a, b);
  }, 300_000);
});
