import { appendFileSync, mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import sharp from "sharp";
import { beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { batchCatalogue } from "../../../engine/batch/feeder";
import { runBatch, type BatchOptions } from "../../../engine/batch/runner";
import { applySweepValue, parseSweep, runSweep } from "../../../engine/batch/sweep";
import { Executor } from "../../../engine/executor";
import { hashValue } from "../../../engine/hash";
import { defineNode, NodeCatalogue } from "../../../engine/node";
import { recordGroup, RoutingAggregate } from "../../../engine/routing/aggregate";
import { syntheticTrace } from "../../../engine/routing/synthetic";
import { DiskStorage } from "../../../engine/storage";
import { emptyWorkflow, type Workflow } from "../../../engine/workflow/schema";
import { datasetNode } from "../../../nodes/dataset";

// A fake model: a seeded synthetic trace from (text, image file, P), so the batch logic is tested without ONNX.
const executions = { encode: 0, model: 0 };
function fakeTrace(text: string, image: string | null, P: number) {
  const seed = parseInt(hashValue([text, image]).slice(0, 8), 16);
  return syntheticTrace({ seed, layers: 3, tokens: 3 + (text.length % 17), routed: 4, nulls: 1, shared: 1, P, modalities: image ? ["image", "text"] : ["text"] });
}
const encode = defineNode({
  type: "test.encode", typeVersion: 1, title: "Encode", category: "Encoders", description: "image → features",
  inputs: { image: { type: "IMAGE" } }, outputs: { features: { type: "JSON" } }, params: z.object({}),
  async execute({ inputs }) {
    executions.encode++;
    return { features: { file: (inputs.image as { file: string }).file } };
  },
});
const model = defineNode({
  type: "test.model", typeVersion: 1, title: "Model", category: "Models", description: "fake MoE",
  inputs: { text: { type: "TEXT" }, features: { type: "JSON", optional: true } }, outputs: { trace: { type: "ROUTING_TRACE" } },
  params: z.object({ P: z.number().min(0.1).max(1).default(0.7) }),
  async execute({ inputs, params }) {
    executions.model++;
    const text = inputs.text as string;
    if (text.includes("FAIL")) throw new Error("the model refuses this record");
    if (params.P === 0.15) throw new Error("the model refuses P 0.15");
    return { trace: fakeTrace(text, (inputs.features as { file: string } | undefined)?.file ?? null, params.P) };
  },
});
const aggNode = defineNode({
  type: "inspect.routing-aggregate", typeVersion: 1, title: "Agg", category: "Inspect", description: "collector",
  inputs: { trace: { type: "ROUTING_TRACE" } }, outputs: { aggregate: { type: "JSON" } }, params: z.object({}),
  async execute() {
    throw new Error("never run in a batch");
  },
});
const catalogue = new NodeCatalogue([datasetNode as never, encode, model, aggNode]);
// The same fake model, scoring: the trace's last token carries an NLL of text.length / 10.
const scoredModel = defineNode({
  ...model,
  async execute(args) {
    const out = (await model.execute(args)) as { trace: ReturnType<typeof fakeTrace> };
    const tokens = out.trace.tokens.map((t, i, all) => (i === all.length - 1 ? { ...t, nll: (args.inputs.text as string).length / 10 } : t));
    return { trace: { ...out.trace, tokens } };
  },
});
const scoredCatalogue = new NodeCatalogue([datasetNode as never, encode, scoredModel, aggNode]);

const node = (id: string, type: string, params: Record<string, unknown> = {}) => ({ id, type, typeVersion: 1, params, position: { x: 0, y: 0 } });
const edge = (s: string, ss: string, t: string, ts: string) => ({ id: `${s}.${ss}-${t}.${ts}`, source: s, sourceSocket: ss, target: t, targetSocket: ts });
const doc: Workflow = {
  schemaVersion: 2, name: "fake", description: "", tags: [], notes: [],
  nodes: [node("data", "input.dataset"), node("enc", "test.encode"), node("llm", "test.model"), node("agg", "inspect.routing-aggregate")],
  edges: [edge("data", "text", "llm", "text"), edge("data", "image", "enc", "image"), edge("enc", "features", "llm", "features"), edge("llm", "trace", "agg", "trace")],
} as Workflow;

const dir = mkdtempSync(path.join(os.tmpdir(), "batch-runner-"));
const storage = new DiskStorage(path.join(dir, "files"));
const TASKS = ["a", "b", "c"];
const lines = (from: number, to: number, extra: (i: number) => Record<string, unknown> = () => ({})) =>
  Array.from({ length: to - from }, (_, k) => {
    const i = from + k;
    return JSON.stringify({ text: `record number ${i} ${"x".repeat(i % 7)}`, task: TASKS[i % 3], label: i % 2 ? "odd" : "even", ...(i % 4 === 0 ? { image: `img/${i % 3}.png` } : {}), ...extra(i) });
  }).join("\n") + "\n";

let file: string;
beforeAll(async () => {
  mkdirSync(path.join(dir, "img"));
  for (let c = 0; c < 3; c++) writeFileSync(path.join(dir, "img", `${c}.png`), await sharp({ create: { width: 4 + c, height: 4, channels: 3, background: "#123456" } }).png().toBuffer());
  file = path.join(dir, "data.jsonl");
  writeFileSync(file, lines(0, 30));
});

const opts = (over: Partial<BatchOptions> = {}): BatchOptions => ({
  doc,
  catalogue,
  executor: new Executor({ catalogue: batchCatalogue(catalogue), storage, concurrency: 1 }),
  storage,
  source: file,
  storeDir: path.join(dir, `store-${Math.random().toString(36).slice(2)}`),
  vocabulary: true,
  ...over,
});

/** Batch options for runSweep (whose onProgress also gets the value index). */
const sweepOpts = (over: Partial<BatchOptions> = {}) => {
  const { onProgress: _ignored, ...rest } = opts(over);
  return rest;
};

/** The aggregate computed directly from the traces the fake model gives, in record order. */
async function direct(n: number, P = 0.7) {
  const storageIds = await Promise.all([0, 1, 2].map(async (c) => (await import("node:fs/promises")).readFile(path.join(dir, "img", `${c}.png`)).then((b) => storage.write(b, "png"))));
  let agg: RoutingAggregate | undefined;
  for (let i = 0; i < n; i++) {
    const text = `record number ${i} ${"x".repeat(i % 7)}`;
    const trace = fakeTrace(text, i % 4 === 0 ? storageIds[i % 3]! : null, P);
    agg ??= new RoutingAggregate(trace.experts, 3, undefined, { vocabulary: true });
    agg.add(trace, { group: recordGroup(TASKS[i % 3], i % 2 ? "odd" : "even") });
  }
  return agg!;
}

describe("runBatch", () => {
  it("runs every record, prunes the image branch for text records, and equals the direct aggregate of the traces", async () => {
    executions.encode = executions.model = 0;
    const progress: number[] = [];
    const r = await runBatch(opts({ onProgress: (p) => progress.push(p.done) }));
    expect(r.status).toBe("finished");
    expect([r.ran, r.cached, r.failed, r.total]).toEqual([30, 0, 0, 30]);
    expect(executions).toEqual({ encode: 8, model: 30 }); // records 0, 4, …, 28 have an image
    expect(progress).toEqual(Array.from({ length: 30 }, (_, i) => i + 1));
    const want = await direct(30);
    expect(r.aggregate!.metrics().layers.map((l) => [l.selectionCounts, l.kCounts])).toEqual(want.metrics().layers.map((l) => [l.selectionCounts, l.kCounts]));
    expect(r.aggregate!.counts()).toEqual(want.counts());
    expect(r.aggregate!.vocabulary!.toJSON()).toEqual(want.vocabulary!.toJSON());
    expect(r.aggregate!.metrics().layers[0]!.entropy).toBeCloseTo(want.metrics().layers[0]!.entropy, 12);
  });

  it("sums the teacher-forced NLL of scored traces per record group, the same from the ledger as from the runs; maxRecords limits the batch", async () => {
    const storeDir = path.join(dir, "nll-store");
    const first = await runBatch(opts({ storeDir, catalogue: scoredCatalogue, executor: new Executor({ catalogue: batchCatalogue(scoredCatalogue), storage, concurrency: 1 }) }));
    const want: Record<string, { sum: number; tokens: number; records: number }> = {};
    for (let i = 0; i < 30; i++) {
      const text = `record number ${i} ${"x".repeat(i % 7)}`;
      const g = (want[recordGroup(TASKS[i % 3], i % 2 ? "odd" : "even")] ??= { sum: 0, tokens: 0, records: 0 });
      g.sum += text.length / 10;
      g.tokens += 1;
      g.records++;
    }
    expect(Object.keys(first.nll).sort()).toEqual(Object.keys(want).sort());
    for (const [k, v] of Object.entries(want)) {
      expect(first.nll[k]!.tokens).toBe(v.tokens);
      expect(first.nll[k]!.records).toBe(v.records);
      expect(first.nll[k]!.sum).toBeCloseTo(v.sum, 12);
    }
    const again = await runBatch(opts({ storeDir, catalogue: scoredCatalogue, executor: new Executor({ catalogue: batchCatalogue(scoredCatalogue), storage, concurrency: 1 }) }));
    expect(again.cached).toBe(30);
    expect(again.nll).toEqual(first.nll);
    expect((await runBatch(opts())).nll).toEqual({}); // traces without NLL
    const limited = await runBatch(opts({ maxRecords: 7 }));
    expect([limited.total, limited.ran + limited.cached]).toEqual([7, 7]);
  });

  it("resumes after a cancel from the last finished record; the result equals an uninterrupted run bit for bit", async () => {
    const storeDir = path.join(dir, "resume-store");
    const controller = new AbortController();
    executions.model = 0;
    // one record at a time, so the cancel lands after exactly 12 (batched cancels: tests/unit/batch/batched.test.ts)
    const first = await runBatch(opts({ storeDir, batch: 1, signal: controller.signal, onProgress: (p) => p.ran === 12 && controller.abort() }));
    expect(first.status).toBe("cancelled");
    expect(first.ran).toBe(12);
    executions.model = 0;
    const second = await runBatch(opts({ storeDir }));
    expect(second.status).toBe("finished");
    expect([second.ran, second.cached]).toEqual([18, 12]);
    expect(executions.model).toBe(18);
    const clean = await runBatch(opts());
    expect(JSON.stringify(second.aggregate!.toJSON())).toBe(JSON.stringify(clean.aggregate!.toJSON()));
  });

  it("added records run alone, and the incremental result equals a full recomputation", async () => {
    const storeDir = path.join(dir, "grow-store");
    const grow = path.join(dir, "grow.jsonl");
    writeFileSync(grow, lines(0, 20));
    await runBatch(opts({ storeDir, source: grow }));
    appendFileSync(grow, lines(20, 30));
    executions.model = 0;
    const more = await runBatch(opts({ storeDir, source: grow }));
    expect([more.ran, more.cached, executions.model]).toEqual([10, 20, 10]);
    const full = await runBatch(opts({ source: grow }));
    expect(full.ran).toBe(30);
    expect(JSON.stringify(more.aggregate!.toJSON())).toBe(JSON.stringify(full.aggregate!.toJSON()));
  });

  it("concurrency does not change the result (records merge in order)", async () => {
    const one = await runBatch(opts({ concurrency: 1 }));
    const three = await runBatch(opts({ concurrency: 3 }));
    expect(JSON.stringify(three.aggregate!.toJSON())).toBe(JSON.stringify(one.aggregate!.toJSON()));
  });

  it("a failing record is reported and skipped; stopOnError stops the batch", async () => {
    const bad = path.join(dir, "bad.jsonl");
    writeFileSync(bad, lines(0, 10, (i) => (i === 3 ? { text: "please FAIL" } : {})) + "{broken\n");
    const r = await runBatch(opts({ source: bad }));
    expect(r.status).toBe("finished");
    expect([r.ran, r.failed, r.scan.errorCount]).toEqual([9, 1, 1]);
    expect(r.failures[0]).toMatchObject({ line: 4 });
    expect(r.failures[0]!.message).toMatch(/"llm".*refuses this record/);
    const stop = await runBatch(opts({ source: bad, stopOnError: true }));
    expect(stop.status).toBe("failed");
    expect(stop.error).toMatch(/bad row/);
    const bad2 = path.join(dir, "bad2.jsonl");
    writeFileSync(bad2, lines(0, 10, (i) => (i === 3 ? { text: "please FAIL" } : {})));
    const stop2 = await runBatch(opts({ source: bad2, stopOnError: true }));
    expect(stop2.status).toBe("failed");
    expect(stop2.error).toMatch(/line 4.*refuses/);
    expect(stop2.ran).toBeLessThan(10);
  });

  it("a workflow without a Dataset node upstream of the trace is refused with a clear message", async () => {
    const noData = { ...doc, nodes: doc.nodes.filter((n) => n.id !== "data"), edges: doc.edges.filter((e) => e.source !== "data") };
    await expect(runBatch(opts({ doc: noData }))).rejects.toThrow(/no Dataset node feeds "llm"/);
  });
});

describe("sweeps", () => {
  it("parses value lists (numbers, text, JSON lists) and refuses bad specs", () => {
    expect(parseSweep("llm.routingTopP=0.5,0.7, 0.9")).toEqual({ nodeId: "llm", param: "routingTopP", values: [0.5, 0.7, 0.9] });
    expect(parseSweep("llm.model=uni-moe-tiny/tiny,uni-moe-tiny/small").values).toEqual(["uni-moe-tiny/tiny", "uni-moe-tiny/small"]);
    expect(parseSweep('llm.interventions=["", "[{\\"layer\\":\\"*\\",\\"expert\\":\\"E1\\",\\"action\\":\\"ban\\"}]"]').values).toHaveLength(2);
    expect(() => parseSweep("llm=1,2")).toThrow(/nodeId.param/);
    expect(() => parseSweep("llm.p=1,,2")).toThrow(/empty value/);
    // a value twice would be the same batch twice, and its aggregate-<i> files would overwrite (1 and 1.0 are one value)
    expect(() => parseSweep("llm.P=0.3,0.5,0.30")).toThrow('sweep "llm.P=0.3,0.5,0.30" lists 0.3 twice');
    expect(() => parseSweep("llm.p=1,1.0")).toThrow(/lists 1 twice/);
  });

  it("a value none of whose records gives a trace is a failed point, with the first record's error; the sweep is failed", async () => {
    const r = await runSweep({ ...sweepOpts({ storeDir: path.join(dir, "sweep-fail-store") }), sweep: parseSweep("llm.P=0.3,0.15") });
    expect(r.points.map((p) => p.status)).toEqual(["finished", "failed"]);
    expect(r.points[1]!.error).toMatch(/^no record produced a trace \(line \d+: .*the model refuses P 0.15/);
    expect(r.points[1]!.summary).toBeNull();
    expect(r.status).toBe("failed");
  });

  it("refuses to sweep a file param (the host checks the file ids of the document it is given, not a sweep's)", async () => {
    const { catalogue: real } = await import("../../../nodes");
    const withImage: Workflow = { ...emptyWorkflow("img"), nodes: [{ id: "img", type: "input.image", typeVersion: 1, params: { file: "" }, position: { x: 0, y: 0 } }], edges: [] };
    const victim = `${"a".repeat(64)}.png`;
    expect(() => applySweepValue(withImage, real, parseSweep(`img.file=["${victim}"]`), victim)).toThrow("sweep: img.file is a file; sweeping files is not supported");
  });

  it("one batch per value, each its own cache, summaries that follow the swept param", async () => {
    const storeDir = path.join(dir, "sweep-store");
    const sweep = parseSweep("llm.P=0.3,0.6,0.95");
    const r = await runSweep({ ...sweepOpts({ storeDir }), sweep });
    expect(r.status).toBe("finished");
    expect(r.points.map((p) => p.records.ran)).toEqual([30, 30, 30]);
    const k = r.points.map((p) => p.summary!.all.meanK);
    expect(k[0]).toBeLessThan(k[1]!);
    expect(k[1]).toBeLessThan(k[2]!);
    const want = (await direct(30, 0.6)).metrics().layers.reduce((a, l) => a + l.meanK, 0) / 3;
    expect(k[1]).toBeCloseTo(want, 12);
    expect(Object.keys(r.points[0]!.summary!.byTask)).toEqual(["a", "b", "c"]);
    const again = await runSweep({ ...sweepOpts({ storeDir }), sweep });
    expect(again.points.map((p) => [p.records.ran, p.records.cached])).toEqual([[0, 30], [0, 30], [0, 30]]);
    await expect(runSweep({ ...sweepOpts(), sweep: parseSweep("llm.nope=1,2") })).rejects.toThrow(/has no param "nope"/);
    await expect(runSweep({ ...sweepOpts(), sweep: parseSweep("llm.P=0.5,7") })).rejects.toThrow(/7 is not a valid llm.P/);
  });
});
