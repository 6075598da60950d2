import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RoutingAggregate } from "../../../engine/routing/aggregate";
import { syntheticTrace } from "../../../engine/routing/synthetic";
import type { Workflow } from "../../../engine/workflow/schema";
import { datasetNode, type DatasetSummary } from "../../../nodes/dataset";
import { routingAggregate, type AggregateReport } from "../../../nodes/routing-aggregate";
import { makeCtx } from "../nodes/ctx";

const userRoot = mkdtempSync(path.join(os.tmpdir(), "dataset-node-"));
const saved = process.env.STUDIO_DATASETS_DIR;
beforeAll(async () => {
  process.env.STUDIO_DATASETS_DIR = userRoot;
  mkdirSync(path.join(userRoot, "set", "img"), { recursive: true });
  writeFileSync(path.join(userRoot, "set", "img", "a.png"), await sharp({ create: { width: 6, height: 5, channels: 3, background: "#00ff00" } }).png().toBuffer());
  writeFileSync(path.join(userRoot, "set", "d.jsonl"), ['{"text": "first", "task": "t1"}', "oops", '{"text": "second", "image": "img/a.png", "task": "t2", "label": "L"}'].join("\n") + "\n");
});
afterAll(() => {
  if (saved === undefined) delete process.env.STUDIO_DATASETS_DIR;
  else process.env.STUDIO_DATASETS_DIR = saved;
});

const wf = (edges: { source: string; sourceSocket: string }[]): Workflow =>
  ({ schemaVersion: 2, name: "w", nodes: [], edges: edges.map((e, i) => ({ id: `e${i}`, target: "x", targetSocket: "y", ...e })), notes: [] }) as unknown as Workflow;

describe("Dataset node", () => {
  it("emits the chosen record, and a summary with the count, bad rows and preview", async () => {
    const { ctx, dispose } = await makeCtx();
    try {
      const out = await datasetNode.execute({ inputs: {}, params: { source: "set/d.jsonl", previewRow: 1 }, ctx: { ...ctx, workflow: wf([{ source: "n1", sourceSocket: "image" }]) } });
      expect(out.text).toBe("second");
      expect(out.image).toMatchObject({ kind: "image", width: 6, height: 5 });
      expect(out.record).toMatchObject({ kind: "dataset-record", index: 2, task: "t2", label: "L" });
      const d = out.dataset as DatasetSummary;
      expect([d.type, d.count, d.errorCount, d.previewRow]).toEqual(["dataset", 2, 1, 1]);
      expect(d.errors[0]!.message).toMatch(/line 2: not JSON/);
      expect(d.headline).toBe("2 records, 1 bad row(s) skipped, 2 task(s) (text + image)");
      expect(datasetNode.summarize!(out)).toMatch(/2 records, 1 bad row\(s\) skipped, 2 task\(s\); showing record 1/);
    } finally {
      await dispose();
    }
  });

  it("says which media a record lacks when the workflow uses them, and refuses rows past the end and paths outside the root", async () => {
    const { ctx, dispose } = await makeCtx();
    try {
      const withImage = { ...ctx, workflow: wf([{ source: "n1", sourceSocket: "image" }]) };
      await expect(datasetNode.execute({ inputs: {}, params: { source: "set/d.jsonl", previewRow: 0 }, ctx: withImage })).rejects.toThrow(/record 0 \(1\) has no image, which this workflow uses/);
      await expect(datasetNode.execute({ inputs: {}, params: { source: "set/d.jsonl", previewRow: 5 }, ctx })).rejects.toThrow(/has 2 valid record/);
      await expect(datasetNode.execute({ inputs: {}, params: { source: "../elsewhere.jsonl", previewRow: 0 }, ctx })).rejects.toThrow(/outside/);
      const plain = await datasetNode.execute({ inputs: {}, params: { source: "set/d.jsonl", previewRow: 0 }, ctx });
      expect(plain.text).toBe("first");
      expect(plain.image).toBeUndefined();
    } finally {
      await dispose();
    }
  });
});

describe("Routing Aggregate node, one record", () => {
  it("aggregates the trace on its input under the record's task and writes the export with JSON and CSV", async () => {
    const { ctx, storage, dispose } = await makeCtx();
    try {
      const trace = syntheticTrace({ seed: 5, layers: 2, tokens: 20, routed: 4, nulls: 1, shared: 1 });
      const out = await routingAggregate.execute({ inputs: { trace, record: { task: "t1", label: "x" } }, params: { scope: "this record", concurrency: 1, stopOnError: false, sweep: "" }, ctx });
      const r = out.aggregate as AggregateReport;
      expect([r.type, r.tasks, r.records.ran]).toEqual(["routing-aggregate", ["t1"], 1]);
      const doc = JSON.parse((await storage.read(r.file)).toString("utf8"));
      const agg = RoutingAggregate.fromJSON(doc.aggregate);
      expect(agg.counts().tokens).toBe(20);
      expect(agg.metrics().layers[1]!.selectionCounts).toEqual(new RoutingAggregate(trace.experts, 2).add(trace).metrics().layers[1]!.selectionCounts);
      expect((await storage.read(r.csvFile)).toString("utf8")).toMatch(/^# workflow_fingerprint=/);
      await expect(routingAggregate.execute({ inputs: { trace: { kind: "nope" } }, params: { scope: "this record", concurrency: 1, stopOnError: false, sweep: "" }, ctx })).rejects.toThrow(/not a routing trace/);
      await expect(routingAggregate.execute({ inputs: { trace }, params: { scope: "dataset", concurrency: 1, stopOnError: false, sweep: "" }, ctx })).rejects.toThrow(/did not pass the workflow/);
    } finally {
      await dispose();
    }
  });
});
