/**
 * Engine benchmarks (`npm run bench`): executor overhead per node, cache-hit re-run vs full run, and
 * engine overhead around one ONNX Runtime run. Medians; ratios are measured side by side in one process.
 * Then the MoE layer/decoder (tests/bench/moe.ts), the reference models (tests/bench/llm.ts), the
 * generation heads (tests/bench/heads.ts: TTS real-time factor, DiT seconds per step) and the routing
 * metrics (engine/routing/bench.ts). `npm run bench -- engine moe llm lens heads metrics render editor` picks parts (lens: tests/bench/lens.ts) (render: tests/bench/render.ts, editor pan and node drag: tests/bench/editor.ts). Only when named: `gpu` (tests/bench/gpu.ts) and `quant` (tests/bench/quant.ts: the int8/int4 OLMoE-1B-7B-shaped bench, ~14 GB on disk, tens of minutes). Writes data/bench/bench.json; the same JSON is the last stdout line.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { onnx } from "onnx-proto";
import * as ort from "onnxruntime-node";
import { z } from "zod";
import { OutputCache } from "../../engine/cache";
import { Executor } from "../../engine/executor";
import { checkOutput, defineNode, NodeCatalogue, type Storage } from "../../engine/node";
import { syntheticTrace } from "../../engine/routing/synthetic";
import { SessionPool } from "../../engine/runtime";
import { CURRENT_SCHEMA_VERSION, type Workflow } from "../../engine/workflow/schema";
import { benchMetrics } from "../../engine/routing/bench";
import { benchDataset, benchDatasetRss } from "./dataset";
import { benchGpu } from "./gpu";
import { benchHeads } from "./heads";
import { benchLens } from "./lens";
import { benchFused, benchLlm, benchRoutingPrecision, benchSmallTwin } from "./llm";
import { benchRender } from "./render";
import { benchEditor, editorReport } from "./editor";
import { benchMoe } from "./moe";
import { benchQueue } from "./queue";
import { benchQuant } from "./quant";
import { median } from "./stats";

const nullStorage: Storage = {
  pathOf: (id) => id,
  read: async (id) => { throw new Error(`no storage in the benchmark (${id})`); },
  write: async () => { throw new Error("no storage in the benchmark"); },
  exists: async () => false,
};

function busy(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end) { /* spin */ }
}

const sourceSpec = {
  type: "bench.source", typeVersion: 1, title: "Source", category: "Utility", description: "a number",
  inputs: {}, outputs: { out: { type: "NUMBER" } },
  params: z.object({ value: z.number().default(0), workMs: z.number().default(0) }),
  async execute({ params }: { params: { value: number; workMs: number } }) {
    if (params.workMs) busy(params.workMs);
    return { out: params.value };
  },
};
const addSpec = {
  type: "bench.add", typeVersion: 1, title: "Add", category: "Utility", description: "a + b + k",
  inputs: { a: { type: "NUMBER" }, b: { type: "NUMBER", optional: true } }, outputs: { out: { type: "NUMBER" } },
  params: z.object({ k: z.number().default(0), workMs: z.number().default(0) }),
  async execute({ inputs, params }: { inputs: Record<string, unknown>; params: { k: number; workMs: number } }) {
    if (params.workMs) busy(params.workMs);
    return { out: (inputs.a as number) + ((inputs.b as number | undefined) ?? 0) + params.k };
  },
};
const sourceNode = defineNode(sourceSpec as never);
const addNode = defineNode(addSpec as never);
/** The same two nodes as they were before values were checked: not wrapped by defineNode (no input check). */
const uncheckedCatalogue = new NodeCatalogue([sourceSpec, addSpec] as never[]);

let ortInput: ort.Tensor;
const ortNode = defineNode({
  type: "bench.ort", typeVersion: 1, title: "ORT", category: "Models", description: "one session run",
  nondeterministic: true, // executes on every run
  inputs: {}, outputs: { y: { type: "JSON" } }, // an ort.Tensor: no socket kind is a tensor
  params: z.object({ model: z.string().default("") }),
  async execute({ params, ctx }) {
    return ctx.runtime!.withSession(params.model, undefined, async ({ session }) => ({ y: (await session.run({ x: ortInput })).y! }));
  },
});
const catalogue = new NodeCatalogue([sourceNode, addNode, ortNode] as never[]);

/** 20 layers × 10 nodes: each node reads two nodes of the layer above. */
function layered(workMs: number, layers = 20, width = 10): Workflow {
  const nodes: Workflow["nodes"] = [];
  const edges: Workflow["edges"] = [];
  for (let l = 0; l < layers; l++)
    for (let i = 0; i < width; i++) {
      const id = `n${l}_${i}`;
      nodes.push({ id, type: l === 0 ? "bench.source" : "bench.add", typeVersion: 1, params: l === 0 ? { value: i, workMs } : { k: l, workMs }, position: { x: l * 200, y: i * 100 } });
      if (l > 0) {
        edges.push({ id: `e${l}_${i}a`, source: `n${l - 1}_${i}`, sourceSocket: "out", target: id, targetSocket: "a" });
        edges.push({ id: `e${l}_${i}b`, source: `n${l - 1}_${(i + 1) % width}`, sourceSocket: "out", target: id, targetSocket: "b" });
      }
    }
  return { schemaVersion: CURRENT_SCHEMA_VERSION, name: "bench", description: "", tags: [], nodes, edges, notes: [] };
}

async function timeRun(ex: Executor, doc: Workflow, runId: string): Promise<number> {
  const t = performance.now();
  const r = await ex.run(doc, { runId, onEvent: () => {} });
  const ms = performance.now() - t;
  if (r.status !== "finished") throw new Error(`bench run ${runId} ${r.status}: ${r.error}`);
  return ms;
}

async function executorOverhead() {
  const doc = layered(0);
  const n = doc.nodes.length;
  const cache = new OutputCache({ maxBytes: 64 << 20 });
  const cached = new Executor({ catalogue, storage: nullStorage, cache, concurrency: 2 });
  const uncached = new Executor({ catalogue, storage: nullStorage, concurrency: 2 });
  // before/after of the value checks (inputs in defineNode, outputs in the executor), side by side
  const unchecked = new Executor({ catalogue: uncheckedCatalogue, storage: nullStorage, concurrency: 2, checkOutputs: false });
  for (let k = 0; k < 30; k++) { cache.clear(); await timeRun(cached, doc, "warm"); await timeRun(cached, doc, "warm"); await timeRun(uncached, doc, "warm"); await timeRun(unchecked, doc, "warm"); }
  const cold: number[] = [], hit: number[] = [], none: number[] = [], noCheck: number[] = [];
  for (let k = 0; k < 100; k++) {
    cache.clear();
    cold.push(await timeRun(cached, doc, `cold${k}`));
    hit.push(await timeRun(cached, doc, `hit${k}`));
    none.push(await timeRun(uncached, doc, `none${k}`));
    noCheck.push(await timeRun(unchecked, doc, `nocheck${k}`));
  }
  return {
    nodes: n,
    coldUsPerNode: (median(cold) * 1000) / n,
    cacheHitUsPerNode: (median(hit) * 1000) / n,
    noCacheUsPerNode: (median(none) * 1000) / n,
    noCacheUncheckedUsPerNode: (median(noCheck) * 1000) / n,
    checkUs: valueCheckCost(),
  };
}

/** What the output check costs on real-sized values: a 512-token × 24-layer routing trace and an LLM output with 67 hidden states (µs per check, median). */
function valueCheckCost() {
  const trace = syntheticTrace({ seed: 1, layers: 24, tokens: 512, routed: 8, nulls: 1, shared: 1, P: 0.7, modalities: ["text"] });
  const llm = { kind: "llm-output", model: "m", text: "x".repeat(2000), promptIds: new Array(512).fill(1), ids: new Array(256).fill(2), stopReason: "eos", specialHidden: [], tailHidden: Array.from({ length: 67 }, () => new Float32Array(1024)), prefillMs: 1, decodeMs: 1 };
  const time = (spec: { type: "ROUTING_TRACE" | "LLM_OUTPUT" }, v: unknown) => {
    const runs: number[] = [];
    for (let k = 0; k < 2000; k++) {
      const t = performance.now();
      checkOutput("x", spec, v);
      runs.push(performance.now() - t);
    }
    return median(runs.slice(200)) * 1000;
  };
  return { routingTraceUs: time({ type: "ROUTING_TRACE" }, trace), llmOutputUs: time({ type: "LLM_OUTPUT" }, llm) };
}

async function rerunRatio() {
  const workMs = 1;
  const doc = layered(workMs);
  const cache = new OutputCache({ maxBytes: 64 << 20 });
  const ex = new Executor({ catalogue, storage: nullStorage, cache, concurrency: 2 });
  const full: number[] = [], rerun: number[] = [];
  for (let k = 0; k < 7; k++) {
    cache.clear();
    full.push(await timeRun(ex, doc, `full${k}`));
    rerun.push(await timeRun(ex, doc, `rerun${k}`));
  }
  return { nodes: doc.nodes.length, workMsPerNode: workMs, fullMs: median(full), rerunMs: median(rerun), ratio: median(rerun) / median(full) };
}

/** Two dense layers: y = Relu(Relu(x·W1 + b1)·W2 + b2), x: [T, D], W: [D, D]. */
function mlpModel(T: number, D: number): Uint8Array {
  const F = onnx.TensorProto.DataType.FLOAT;
  let seed = 7;
  const rand = (n: number) => Array.from({ length: n }, () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32 - 0.5) * 0.1);
  const vi = (name: string) => ({ name, type: { tensorType: { elemType: F, shape: { dim: [{ dimValue: T }, { dimValue: D }] } } } });
  return onnx.ModelProto.encode({
    irVersion: 8,
    opsetImport: [{ domain: "", version: 17 }],
    graph: {
      name: "bench-mlp",
      node: [
        { opType: "MatMul", input: ["x", "W1"], output: ["h1"] },
        { opType: "Add", input: ["h1", "b1"], output: ["h2"] },
        { opType: "Relu", input: ["h2"], output: ["h3"] },
        { opType: "MatMul", input: ["h3", "W2"], output: ["h4"] },
        { opType: "Add", input: ["h4", "b2"], output: ["h5"] },
        { opType: "Relu", input: ["h5"], output: ["y"] },
      ],
      initializer: [
        { name: "W1", dataType: F, dims: [D, D], floatData: rand(D * D) },
        { name: "b1", dataType: F, dims: [D], floatData: rand(D) },
        { name: "W2", dataType: F, dims: [D, D], floatData: rand(D * D) },
        { name: "b2", dataType: F, dims: [D], floatData: rand(D) },
      ],
      input: [vi("x")],
      output: [vi("y")],
    },
  }).finish();
}

async function ortOverhead() {
  const T = 256, D = 1024; // ~1 GFLOP: a run of the order of a tiny-model prefill
  const model = mlpModel(T, D);
  const file = path.join(os.tmpdir(), `studio-bench-mlp-${process.pid}.onnx`);
  writeFileSync(file, model);
  const pool = new SessionPool({ executionProvider: process.env.STUDIO_EP ?? "cpu" });
  const ex = new Executor({ catalogue, storage: nullStorage, cache: new OutputCache({ maxBytes: 1 << 26 }), runtime: pool });
  ortInput = new ort.Tensor("float32", Float32Array.from({ length: T * D }, (_, k) => Math.sin(k)), [T, D]);
  const doc: Workflow = {
    schemaVersion: CURRENT_SCHEMA_VERSION, name: "ort", description: "", tags: [], edges: [], notes: [],
    nodes: [{ id: "ort", type: "bench.ort", typeVersion: 1, params: { model: file }, position: { x: 0, y: 0 } }],
  };
  const { session, executionProvider } = await pool.getSession(file);
  for (let k = 0; k < 20; k++) { await session.run({ x: ortInput }); await timeRun(ex, doc, "warm"); }
  const direct: number[] = [], engine: number[] = [], diff: number[] = [];
  for (let k = 0; k < 200; k++) {
    let t = performance.now();
    await session.run({ x: ortInput });
    const a = performance.now() - t;
    t = performance.now();
    await timeRun(ex, doc, `ort${k}`);
    const b = performance.now() - t;
    direct.push(a); engine.push(b); diff.push(b - a);
  }
  await pool.close();
  return {
    executionProvider,
    model: `2×(MatMul ${T}×${D}·${D}×${D} + Add + Relu)`,
    mflop: (2 * 2 * T * D * D) / 1e6,
    directMs: median(direct),
    engineMs: median(engine),
    /** Difference of the medians; the paired median below is noisier on a shared machine. */
    overheadUs: (median(engine) - median(direct)) * 1000,
    pairedDiffMedianUs: median(diff) * 1000,
    overheadRatio: median(engine) / median(direct) - 1,
    sessionLoads: pool.stats().loads,
  };
}

/** What `npm run bench -- <part> …` may name (gpu and quant run only when named). */
const BENCH_PARTS = ["engine", "moe", "llm", "lens", "heads", "metrics", "render", "editor", "dataset", "dataset-rss", "gpu", "quant", "queue"] as const;

async function main() {
  const only = process.argv.slice(2);
  // a misspelt part ran nothing and overwrote bench.json with an empty result
  const unknown = only.filter((a) => !BENCH_PARTS.includes(a as (typeof BENCH_PARTS)[number]));
  if (unknown.length) {
    console.error(`error: unknown bench part ${unknown.map((a) => `"${a}"`).join(", ")} (parts: ${BENCH_PARTS.join(" ")})`);
    process.exit(2);
  }
  const want = (part: string) => only.length === 0 || only.includes(part);
  const json: Record<string, unknown> = { at: new Date().toISOString(), node: process.version, cpus: os.cpus().length };
  if (want("engine")) json.engine = await engineBench();
  if (want("moe")) {
    console.log("\nMoE layer and decoder (benchMoe)");
    json.moe = await benchMoe({ log: (s) => console.log(`  ${s}`) });
  }
  if (want("llm")) {
    console.log("\nuni-moe-tiny reference models (seeded, untrained): prefill 512 tokens, KV-cache decode");
    const rows = await benchLlm(["tiny", "small"], (s) => console.log(s));
    for (const r of rows) {
      console.log(`  ${r.model.padEnd(6)} prefill ${r.prefillTokens}: ${r.prefillMs.toFixed(1)} ms (${r.prefillTokPerS.toFixed(0)} tok/s)   decode: ${r.decodeMsPerToken.toFixed(2)} ms/token (${r.decodeTokPerS.toFixed(0)} tok/s)`);
    }
    console.log("  targets for tiny: prefill ≤ 75 ms, decode ≤ 2.5 ms/token");
    json.llm = rows;
    json.llmRoutingPrecision = await benchRoutingPrecision((s) => console.log(s));
    console.log("\nfused decoder graph vs the unfused reference (tiny, same checkpoint, interleaved); batched prefill");
    json.llmFused = await benchFused((s) => console.log(s));
    json.llmSmallTwin = await benchSmallTwin((s) => console.log(s));
  }
  if (want("lens")) {
    console.log("\nlogit lens on uni-moe-tiny/tiny: off (graph option unset / false) vs on (separate head vs in-graph), side by side");
    json.lens = await benchLens((s) => console.log(`  ${s}`));
  }
  if (want("heads")) {
    console.log("\ngeneration heads (seeded, untrained reference models, greedy TTS, CFG DiT)");
    const h = await benchHeads({ log: (s) => console.log(`  ${s}`) });
    console.log(`  TTS ${h.tts.model} (${h.executionProvider}): RTF ${h.tts.realTimeFactor.toFixed(3)} (${(h.tts.synthesisMs / 1000).toFixed(2)} s for ${h.tts.audioSeconds.toFixed(2)} s of audio, ${h.tts.codecTokens} codec tokens, median of ${h.tts.runs})`);
    console.log(`  DiT ${h.dit.model} (${h.executionProvider}): ${h.dit.secondsPerStep.toFixed(4)} s/step (${h.dit.steps} steps, CFG ${h.dit.guidance}, median step of ${h.dit.runs} runs; VAE decode ${h.dit.vaeDecodeMs.toFixed(1)} ms)`);
    json.heads = h;
  }
  if (want("metrics")) {
    console.log("\nrouting metrics (computeMetrics on a synthetic trace)");
    const size = { layers: 28, routed: 64, tokens: 4096 };
    const ms = benchMetrics(size);
    console.log(`  computeMetrics ${size.layers} layers × ${size.routed} routed experts (+1 null, +2 shared) × ${size.tokens} tokens: ${ms.toFixed(1)} ms (median of 7)`);
    json.metrics = { ...size, nulls: 1, shared: 2, ms };
  }
  if (want("render")) {
    const r = await benchRender();
    if ("skipped" in r) console.log(`\nrender: skipped (${r.skipped})`);
    else {
      console.log(`\nrouting inspector in Chromium, 28 layers × 64 experts × 4,096 tokens, opening → all views on screen (median of ${r.current.rounds.length}; target < 200 ms):`);
      for (const [name, x] of [["before (baseline)", r.baseline], ["now", r.current]] as const) {
        const first = x.medianFirstViewMs === undefined ? "" : `, first view drawn ${x.medianFirstViewMs.toFixed(0)} ms`;
        console.log(`  ${name.padEnd(17)} warm ${x.medianTotalMs.toFixed(0)} ms (all drawn ${x.medianDrawnMs.toFixed(0)} ms${first}, metrics ${x.medianMetricsMs.toFixed(0)} ms), cold ${x.medianColdMs.toFixed(0)} ms`);
      }
      console.log(`  parts now: ${Object.entries(r.current.medianParts).map(([k, v]) => `${k} ${v.toFixed(1)} ms`).join(", ")}`);
    }
    json.render = r;
  }
  if (want("editor")) {
    const e = await benchEditor();
    if ("skipped" in e) console.log(`\neditor: skipped (${e.skipped})`);
    else {
      console.log(`\n${editorReport(e).join("\n")}`);
    }
    json.editor = e;
  }
  if (want("dataset")) {
    console.log("\ndataset batches (engine/batch)");
    json.dataset = await benchDataset((s) => console.log(`  ${s}`));
  }
  if (only.includes("dataset-rss")) {
    console.log("\ndataset batch memory and resume (opt-in: several minutes)");
    json.datasetRss = await benchDatasetRss((s) => console.log(`  ${s}`));
  }
  if (only.includes("gpu")) {
    console.log("\nGPU providers (opt-in: npm run bench -- gpu): uni-moe-tiny/tiny and the DiT on WebGPU / CUDA beside CPU");
    json.gpu = await benchGpu((s) => console.log(`  ${s}`));
  }
  // only when named: it writes a 13.8 GB checkpoint and two imports (tests/bench/quant.ts)
  if (only.includes("quant")) json.quant = await benchQuant();
  if (want("queue")) {
    console.log("\ndistributed queue: 200 runs through 2 worker processes (loopback)");
    const q = await benchQueue({ log: (s) => console.log(`  ${s}`) });
    if ("skipped" in q) console.log(`  skipped (${q.skipped})`);
    json.queue = q;
  }
  const out = path.join(process.cwd(), "data", "bench");
  mkdirSync(out, { recursive: true });
  writeFileSync(path.join(out, "bench.json"), JSON.stringify(json, null, 2));
  console.log(JSON.stringify(json));
}

async function engineBench() {
  const overhead = await executorOverhead();
  const rerun = await rerunRatio();
  const ortRun = await ortOverhead();
  const f = (x: number, d = 2) => x.toFixed(d);
  const rows: [string, string, string][] = [
    [`executor, cold run (${overhead.nodes} trivial nodes)`, `${f(overhead.coldUsPerNode)} µs/node`, "< 50 µs/node"],
    [`executor, cache-hit run (${overhead.nodes} nodes)`, `${f(overhead.cacheHitUsPerNode)} µs/node`, "< 50 µs/node"],
    [`executor, no cache (${overhead.nodes} nodes)`, `${f(overhead.noCacheUsPerNode)} µs/node`, "—"],
    [`executor, no cache, values unchecked (before; same run)`, `${f(overhead.noCacheUncheckedUsPerNode)} µs/node`, "—"],
    [`output check: routing trace 512 tok × 24 layers / LLM output`, `${f(overhead.checkUs.routingTraceUs, 2)} / ${f(overhead.checkUs.llmOutputUs, 2)} µs`, "—"],
    [`unchanged re-run / full run (${rerun.nodes} × ${rerun.workMsPerNode} ms)`, `${f(rerun.rerunMs)} / ${f(rerun.fullMs, 1)} ms = ${f(rerun.ratio * 100)} %`, "< 2 %"],
    [`engine around one ORT run (${ortRun.executionProvider}, ${f(ortRun.mflop, 0)} MFLOP)`, `+${f(ortRun.overheadUs, 1)} µs on ${f(ortRun.directMs)} ms = ${f(ortRun.overheadRatio * 100)} %`, "< 2 %"],
  ];
  const w0 = Math.max(...rows.map((r) => r[0].length)), w1 = Math.max(...rows.map((r) => r[1].length));
  console.log(`engine bench — node ${process.version}, ${os.cpus().length} cpus, medians`);
  for (const [a, b, c] of rows) console.log(`${a.padEnd(w0)}  ${b.padEnd(w1)}  target ${c}`);
  return { executorOverhead: overhead, rerun, ort: ortRun };
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
