/**
 * Reference-model throughput: prefill of 512 tokens and KV-cache decode per token for uni-moe-tiny
 * `tiny` and `small` (seeded, untrained; built on first use), through the same graph cache and session
 * pool the MoE-LLM node uses.
 */
import { readFileSync } from "node:fs";
import path from "node:path";
import { onnx } from "onnx-proto";
import { SessionPool } from "../../engine/runtime";
import { buildMoeLlmGraph, moeDims, type MoeGraphOptions } from "../../models/moe-llm/moe-llm-graph";
import { decodeTwinOptions, resolveModel, withMoeLlm } from "../../models/moe-llm/moe-llm-model";
import { type KvCache, MoeLlmRunner } from "../../models/moe-llm/moe-llm-session";
import { SafetensorsWeights } from "../../models/io/safetensors";
import { byteTokenizer } from "../../models/text/tokenizer";

export interface LlmBenchRow {
  model: string;
  prefillTokens: number;
  prefillMs: number;
  prefillTokPerS: number;
  decodeMsPerToken: number;
  decodeTokPerS: number;
}

/** How a decode twin's graph is built, in words. */
const twinForm = (o: MoeGraphOptions) => (o.decodeStep ? `decode-step form${o.expertsOp ? ", experts through the MoE operator" : ""}` : `${o.moe}${o.gpu ? ", device-resident form" : ""}`);

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

export async function benchLlm(names: ("tiny" | "small")[] = ["tiny", "small"], log: (s: string) => void = console.log): Promise<LlmBenchRow[]> {
  const pool = new SessionPool({ executionProvider: process.env.STUDIO_EP ?? "cpu" });
  const rows: LlmBenchRow[] = [];
  const P = 512;
  for (const name of names) {
    const t0 = performance.now();
    const model = await resolveModel(`uni-moe-tiny/${name}`);
    await withMoeLlm(model, { moe: "sparse", trace: true, kvCache: true }, pool, async ({ runner }) => {
      log(`  ${name}: model + graph + session ready in ${((performance.now() - t0) / 1000).toFixed(1)} s; decode steps on ${runner.extras.decodeTwin ? `the decode twin (${twinForm(runner.extras.decodeTwin.options)})` : "the prefill's graph"}`);
      const ids = Array.from({ length: P }, (_, i) => (i * 37) % 256);
      const pos = [...ids.keys()];
      const positions = [...pos, ...pos, ...pos];
      const prefill: number[] = [];
      let cache = runner.emptyCache(1);
      for (let r = 0; r < 7; r++) {
        const t = performance.now();
        const out = await runner.forward({ batch: 1, seq: P, ids, positions });
        prefill.push(performance.now() - t);
        cache = out.present!;
      }
      const decode: number[] = [];
      for (let step = 0; step < 64; step++) {
        const p = P + step;
        const t = performance.now();
        const out = await runner.forward({ batch: 1, seq: 1, ids: [step % 256], positions: [p, p, p], past: cache });
        decode.push(performance.now() - t);
        cache = out.present!;
      }
      const prefillMs = median(prefill.slice(2));
      const decodeMs = median(decode.slice(4));
      rows.push({ model: name, prefillTokens: P, prefillMs, prefillTokPerS: (P / prefillMs) * 1000, decodeMsPerToken: decodeMs, decodeTokPerS: 1000 / decodeMs });
    });
  }
  await pool.close();
  return rows;
}

export interface PrecisionBenchRow {
  precision: "fp32" | "bf16";
  prefillMs: number;
  decodeMsPerToken: number;
}

/**
 * Routing in bf16 (as released) vs fp32 on `tiny`: prefill of 512 tokens and KV-cache decode, the two graphs run
 * interleaved in one process so the ratio is side by side.
 */
export async function benchRoutingPrecision(log: (s: string) => void = console.log): Promise<PrecisionBenchRow[]> {
  const pool = new SessionPool({ executionProvider: process.env.STUDIO_EP ?? "cpu" });
  const model = await resolveModel("uni-moe-tiny/tiny");
  const P = 512;
  const ids = Array.from({ length: P }, (_, i) => (i * 37) % 256);
  const positions = [...ids.keys(), ...ids.keys(), ...ids.keys()];
  const times = { fp32: { prefill: [] as number[], decode: [] as number[] }, bf16: { prefill: [] as number[], decode: [] as number[] } };
  await withMoeLlm(model, { moe: "sparse", trace: true, kvCache: true, routingPrecision: "fp32" }, pool, ({ runner: fp32 }) =>
    withMoeLlm(model, { moe: "sparse", trace: true, kvCache: true, routingPrecision: "bf16" }, pool, async ({ runner: bf16 }) => {
      for (let r = 0; r < 7; r++) {
        for (const [name, runner] of [["fp32", fp32], ["bf16", bf16]] as const) {
          let t = performance.now();
          let cache = (await runner.forward({ batch: 1, seq: P, ids, positions })).present!;
          if (r >= 2) times[name].prefill.push(performance.now() - t);
          for (let step = 0; step < 12; step++) {
            const p = P + step;
            t = performance.now();
            cache = (await runner.forward({ batch: 1, seq: 1, ids: [step % 256], positions: [p, p, p], past: cache })).present!;
            if (step >= 2) times[name].decode.push(performance.now() - t);
          }
        }
      }
    }),
  );
  await pool.close();
  const rows = (["fp32", "bf16"] as const).map((precision) => ({ precision, prefillMs: median(times[precision].prefill), decodeMsPerToken: median(times[precision].decode) }));
  log(`  tiny routing bf16 / fp32 (interleaved): prefill ${rows[1]!.prefillMs.toFixed(1)} / ${rows[0]!.prefillMs.toFixed(1)} ms = ${(rows[1]!.prefillMs / rows[0]!.prefillMs).toFixed(2)}, decode ${rows[1]!.decodeMsPerToken.toFixed(2)} / ${rows[0]!.decodeMsPerToken.toFixed(2)} ms = ${(rows[1]!.decodeMsPerToken / rows[0]!.decodeMsPerToken).toFixed(2)}`);
  return rows;
}

export interface FusedBenchResult {
  /** ONNX nodes in one decoder layer (layer 1; layer 0 also holds the first norm) */
  nodesPerLayer: Record<string, number>;
  /** per thread count: medians per graph, and fused / unfused ratios */
  threads: { threads: number; prefillMs: Record<string, number>; decodeMs: Record<string, number>; decodeBlockMs: Record<string, number>; ratios: Record<string, { prefill: number; decode: number; decodeInBlocks: number }> }[];
  batched: { records: number; batch: number; oneByOneMs: number; batchedMs: number; speedup: number; padding: "right" | "left" };
}

const GRAPHS = { unfused: { moe: "sparse", unfused: true }, "fused sparse": { moe: "sparse" }, "fused dense": { moe: "dense" } } as const;
/** The CPU default: prefill on the fused sparse graph, decode steps on its twin (decodeTwinOptions: the decode-step form, experts through the MoE operator). */
const TWIN = "fused sparse + decode twin";
/** The twin before its decode-step form: GroupQueryAttention sharing a capacity buffer as past and present, dense experts (the form for windows/sinks). */
const TWIN_GQA = "GQA dense twin, cache in place";

/**
 * The fused decoder graph vs the unfused reference graph on the same checkpoint (uni-moe-tiny `tiny`): nodes per
 * decoder layer; prefill of 512 tokens and KV-cache decode at 1 and 2 intra-op threads, the graphs interleaved
 * (prefills round by round; decode steps step by step, and then in blocks of 8 consecutive steps per graph, as a
 * generation runs, the graphs taking turns; each graph on its own cache) so the ratios are side by side;
 * the decode twin (the CPU default: sparse prefill, decode steps on decodeTwinOptions' graph, the decode-step form)
 * runs as a graph of its own, and beside it the GroupQueryAttention dense twin it replaced; then batched prefill (forwardBatch, 8 records per forward) vs one
 * record per forward over the 36 prompts of the sample dataset (text only, byte tokens), asserting the per-record
 * routing and the expert-count aggregate are identical.
 */
export async function benchFused(log: (s: string) => void = console.log): Promise<FusedBenchResult> {
  const model = await resolveModel("uni-moe-tiny/tiny");
  const ws = new SafetensorsWeights(model.dir);
  const nodesPerLayer: Record<string, number> = {};
  const twinGraph = decodeTwinOptions(model.config, { moe: "sparse", trace: true, kvCache: true }, "cpu");
  for (const [name, o] of [...Object.entries(GRAPHS), ...(twinGraph ? [["decode twin", twinGraph] as const] : [])]) {
    const m = onnx.ModelProto.decode(buildMoeLlmGraph(model.config, ws, { trace: true, kvCache: true, ...o }));
    nodesPerLayer[name] = m.graph!.node!.filter((n) => (n.name ?? "").startsWith("l1/")).length;
    if (name === "fused dense" || name === "decode twin") nodesPerLayer[`${name}, whole graph`] = m.graph!.node!.length;
  }
  log(`  nodes per decoder layer (tiny, trace on): ${Object.entries(nodesPerLayer).map(([k, v]) => `${k} ${v}`).join(", ")}`);
  const P = 512;
  const ids = Array.from({ length: P }, (_, i) => (i * 37) % 256);
  const positions = [...ids.keys(), ...ids.keys(), ...ids.keys()];
  const threads: FusedBenchResult["threads"] = [];
  for (const n of [1, 2]) {
    const own = await Promise.all(Object.entries(GRAPHS).map(async ([name, o]) => [name, await MoeLlmRunner.create(model.config, ws, { trace: true, kvCache: true, ...o }, { intraOpNumThreads: n, interOpNumThreads: 1 })] as const));
    const sparse = own.find(([name]) => name === "fused sparse")![1];
    // the twin prefills on the sparse runner's session (as withMoeLlm does with the pool's), on its own cache
    const twinOptions = decodeTwinOptions(model.config, sparse.options, "cpu");
    if (!twinOptions?.decodeStep) throw new Error("bench: tiny has no decode-step twin (STUDIO_DECODE_TWIN=off?)");
    const twin = await MoeLlmRunner.create(model.config, ws, twinOptions, { intraOpNumThreads: n, interOpNumThreads: 1 });
    const gqaTwin = await MoeLlmRunner.create(model.config, ws, { ...twinOptions, decodeStep: false, expertsOp: false }, { intraOpNumThreads: n, interOpNumThreads: 1 });
    const runners = [...own, [TWIN, sparse.withDecodeTwin(twin)] as const, [TWIN_GQA, sparse.withDecodeTwin(gqaTwin)] as const];
    const pre: Record<string, number[]> = {}, dec: Record<string, number[]> = {}, blocks: Record<string, number[]> = {};
    for (let r = 0; r < 7; r++) {
      const caches: KvCache[] = [];
      for (const [name, runner] of runners) {
        const t = performance.now();
        caches.push((await runner.forward({ batch: 1, seq: P, ids, positions })).present!);
        if (r >= 2) (pre[name] ??= []).push(performance.now() - t);
      }
      const step = async (g: number, s: number, into: Record<string, number[]>, keep: boolean) => {
        const [name, runner] = runners[g]!;
        const p = P + s;
        const t = performance.now();
        caches[g] = (await runner.forward({ batch: 1, seq: 1, ids: [s % 256], positions: [p, p, p], past: caches[g] })).present!;
        if (keep) (into[name] ??= []).push(performance.now() - t);
      };
      // by step: every graph's step runs right after the others' (their weights push its own out of the CPU caches)
      for (let s = 0; s < 16; s++)
        for (let j = 0; j < runners.length; j++) {
          // rotate which graph goes first, forwards on even steps and backwards on odd ones: the two twins share a
          // session, and the one run right after the other finds its weights in the CPU caches as often as the other
          const k = (j + s) % runners.length, g = s % 2 ? runners.length - 1 - k : k;
          await step(g, s, dec, s >= 2);
        }
      // in blocks: 8 consecutive steps of one graph, as a generation runs, the graphs taking turns (rotated per round)
      for (let j = 0; j < runners.length; j++) {
        const g = (j + r) % runners.length;
        for (let s = 16; s < 24; s++) await step(g, s, blocks, s > 16);
      }
    }
    for (const [, runner] of own) await runner.release();
    await twin.release();
    await gqaTwin.release();
    const prefillMs = Object.fromEntries(Object.entries(pre).map(([k, v]) => [k, median(v)]));
    const decodeMs = Object.fromEntries(Object.entries(dec).map(([k, v]) => [k, median(v)]));
    const decodeBlockMs = Object.fromEntries(Object.entries(blocks).map(([k, v]) => [k, median(v)]));
    const ratios = Object.fromEntries(["fused sparse", "fused dense", TWIN, TWIN_GQA].map((k) => [k, { prefill: prefillMs[k]! / prefillMs.unfused!, decode: decodeMs[k]! / decodeMs.unfused!, decodeInBlocks: decodeBlockMs[k]! / decodeBlockMs.unfused! }]));
    threads.push({ threads: n, prefillMs, decodeMs, decodeBlockMs, ratios });
    log(`  ${n} thread(s): ${Object.keys(prefillMs).map((k) => `${k} prefill ${prefillMs[k]!.toFixed(1)} ms, decode ${decodeMs[k]!.toFixed(2)} ms/token (in blocks ${decodeBlockMs[k]!.toFixed(2)})`).join("; ")}`);
    log(`    fused / unfused: ${Object.entries(ratios).map(([k, r]) => `${k} prefill ${r.prefill.toFixed(2)}, decode ${r.decode.toFixed(2)} (in blocks ${r.decodeInBlocks.toFixed(2)})`).join("; ")}`);
    log(`    decode twin, decode-step form / GQA dense form: ${(decodeMs[TWIN]! / decodeMs[TWIN_GQA]!).toFixed(3)} (in blocks ${(decodeBlockMs[TWIN]! / decodeBlockMs[TWIN_GQA]!).toFixed(3)})`);
  }

  // batched prefill over the sample dataset's prompts
  const file = path.join(__dirname, "../../app/examples/datasets/sample/records.jsonl");
  const prompts = readFileSync(file, "utf8").trim().split("\n").map((l) => (JSON.parse(l) as { text: string }).text);
  const records = prompts.map((text) => {
    const t = byteTokenizer.encode(text);
    const pos = [...t.keys()];
    return { ids: t, positions: [...pos, ...pos, ...pos] };
  });
  const runner = await MoeLlmRunner.create(model.config, ws, { moe: "sparse", trace: true, kvCache: false, padding: true }, { intraOpNumThreads: 1, interOpNumThreads: 1 });
  const B = 8;
  const { E } = moeDims(model.config);
  /** selections per (layer, router column) over all records */
  const counts = (outs: { trace?: { mask: Float32Array }[] }[]) => {
    const total = new Float64Array(outs[0]!.trace!.length * E);
    for (const o of outs) o.trace!.forEach((t, l) => t.mask.forEach((v, q) => (total[l * E + (q % E)]! += v)));
    return Array.from(total);
  };
  const time: { one: number[]; batch: number[] } = { one: [], batch: [] };
  let one: Awaited<ReturnType<typeof runner.forwardBatch>> = [], batched: typeof one = [];
  for (let r = 0; r < 5; r++) {
    let t = performance.now();
    one = [];
    for (const rec of records) one.push(...(await runner.forwardBatch([rec])));
    if (r) time.one.push(performance.now() - t);
    t = performance.now();
    batched = [];
    for (let i = 0; i < records.length; i += B) batched.push(...(await runner.forwardBatch(records.slice(i, i + B), { padding: "right" })));
    if (r) time.batch.push(performance.now() - t);
  }
  await runner.release();
  ws.close();
  one.forEach((o, i) => o.trace!.forEach((t, l) => {
    if (t.mask.join() !== batched[i]!.trace![l]!.mask.join()) throw new Error(`batched prefill: record ${i} layer ${l} routes differently from its forward alone`);
  }));
  if (counts(one).join() !== counts(batched).join()) throw new Error("batched prefill: the expert-count aggregate differs from one record per forward");
  const batchedRes = { records: records.length, batch: B, oneByOneMs: median(time.one), batchedMs: median(time.batch), speedup: median(time.one) / median(time.batch), padding: "right" as const };
  log(`  prefill of the ${records.length} sample prompts: one per forward ${batchedRes.oneByOneMs.toFixed(1)} ms, ${B} per forward ${batchedRes.batchedMs.toFixed(1)} ms = ${batchedRes.speedup.toFixed(2)}× the records/s (routing and aggregate identical)`);
  return { nodesPerLayer, threads, batched: batchedRes };
}

/**
 * `small` (28 layers, 8 routed experts): decode on the fused sparse graph alone vs with its decode twin (the
 * decode-step form, experts through the MoE operator; the dense twin was slower than sparse at this size), interleaved
 * step by step after a 256-token prefill, 1 thread.
 */
export async function benchSmallTwin(log: (s: string) => void = console.log): Promise<{ sparseMs: number; twinMs: number; ratio: number }> {
  const model = await resolveModel("uni-moe-tiny/small");
  const ws = new SafetensorsWeights(model.dir);
  const so = { intraOpNumThreads: 1, interOpNumThreads: 1 };
  const sparse = await MoeLlmRunner.create(model.config, ws, { moe: "sparse", trace: true, kvCache: true }, so);
  const twinOptions = decodeTwinOptions(model.config, sparse.options, "cpu");
  if (!twinOptions) throw new Error("bench: small has no decode twin (STUDIO_DECODE_TWIN=off?)");
  const twin = await MoeLlmRunner.create(model.config, ws, twinOptions, so);
  const runners = [sparse, sparse.withDecodeTwin(twin)];
  const P = 256;
  const ids = Array.from({ length: P }, (_, i) => (i * 37) % 256);
  const positions = [...ids.keys(), ...ids.keys(), ...ids.keys()];
  const times: number[][] = [[], []];
  for (let round = 0; round < 3; round++) {
    const caches: KvCache[] = [];
    for (const r of runners) caches.push((await r.forward({ batch: 1, seq: P, ids, positions })).present!);
    for (let step = 0; step < 24; step++)
      for (let j = 0; j < 2; j++) {
        const g = (j + step) % 2, p = P + step;
        const t = performance.now();
        caches[g] = (await runners[g]!.forward({ batch: 1, seq: 1, ids: [step % 256], positions: [p, p, p], past: caches[g] })).present!;
        if (step >= 2) times[g]!.push(performance.now() - t);
      }
  }
  await sparse.release();
  await twin.release();
  ws.close();
  const [sparseMs, twinMs] = times.map(median) as [number, number];
  log(`  small, decode after 256 tokens (1 thread, interleaved): fused sparse alone ${sparseMs.toFixed(2)} ms/token, with the decode twin ${twinMs.toFixed(2)} ms/token = ${(twinMs / sparseMs).toFixed(2)}`);
  return { sparseMs, twinMs, ratio: twinMs / sparseMs };
}
