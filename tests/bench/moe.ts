/**
 * MoE benchmarks (medians over interleaved runs, so ratios are side by side in one process):
 * 1. one MoE layer, sparse vs dense, at 4/8/16/64 routed experts with 2 active per token (fixed top-2 over
 *    routed + 1 null, so ~2 real experts);
 * 2. a tiny-like whole decoder (8 layers, hidden 128): prefill of 512 tokens with routing trace on vs off,
 *    and KV-cache decode per token.
 * Run alone: npx tsx -e "import('./tests/bench/moe.ts').then((m) => (m.benchMoe ?? m.default.benchMoe)())"
 */
import * as ort from "onnxruntime-node";
import { type MoeLlmConfig, zMoeLlmConfig } from "../../models/moe-llm/config";
import { buildMoeLayerGraph, io, moeDims } from "../../models/moe-llm/moe-llm-graph";
import { MoeLlmRunner } from "../../models/moe-llm/moe-llm-session";
import { randomIds, randomWeights } from "../reference/random";

export interface MoeBenchResult {
  layer: { routed: number; tokens: number; hidden: number; intermediate: number; sparseMs: number; denseMs: number; ratio: number; activePerToken: number }[];
  model: { layers: number; hidden: number; tokens: number; traceOffMs: number; traceOnMs: number; traceOverhead: number; decodeMs: number };
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
};

/** Runs each fn `reps` times, interleaved, after `warm` warm-up rounds; returns the medians in ms. */
async function sideBySide(fns: (() => Promise<unknown>)[], reps: number, warm = 3): Promise<number[]> {
  for (let i = 0; i < warm; i++) for (const f of fns) await f();
  const times = fns.map(() => [] as number[]);
  for (let r = 0; r < reps; r++)
    for (const [i, f] of fns.entries()) {
      const t0 = performance.now();
      await f();
      times[i]!.push(performance.now() - t0);
    }
  return times.map(median);
}

function config(over: Partial<MoeLlmConfig>): MoeLlmConfig {
  return zMoeLlmConfig.parse({
    hidden_size: 128, num_hidden_layers: 1, num_attention_heads: 4, num_key_value_heads: 2, vocab_size: 1024,
    rope_scaling: { type: "mrope", mrope_section: [4, 6, 6] }, mlp_dynamic_expert_num: 4, mlp_dynamic_null_expert_num: 1,
    mlp_fixed_expert_num: 2, dynamic_intermediate_size: 512, shared_intermediate_size: 64,
    mlp_dynamic_top_p: 0, mlp_dynamic_top_k: 2, ...over,
  });
}

export async function benchMoe(opts: { tokens?: number; reps?: number; threads?: number; log?: (s: string) => void } = {}): Promise<MoeBenchResult> {
  const N = opts.tokens ?? 512, reps = opts.reps ?? 15, log = opts.log ?? console.log;
  const so: ort.InferenceSession.SessionOptions = { intraOpNumThreads: opts.threads ?? 2, graphOptimizationLevel: "all", logSeverityLevel: 3 };
  const result: MoeBenchResult = { layer: [], model: { layers: 0, hidden: 0, tokens: 0, traceOffMs: 0, traceOnMs: 0, traceOverhead: 0, decodeMs: 0 } };

  log(`MoE layer, ${N} tokens, hidden 128, expert intermediate 512, 2 shared (64), top-2 over routed + 1 null`);
  log("routed | active/token | sparse ms | dense ms | sparse/dense");
  for (const R of [4, 8, 16, 64]) {
    const c = config({ mlp_dynamic_expert_num: R });
    const w = randomWeights(c, R);
    const { H, E } = moeDims(c);
    const hidden = new ort.Tensor("float32", Float32Array.from({ length: N * H }, (_, i) => Math.sin(i * 12.9898) * 1.5), [N, H]);
    const feeds = {
      hidden,
      [io.routerBias]: new ort.Tensor("float32", new Float32Array(E), [1, E]),
      [io.ban]: new ort.Tensor("float32", new Float32Array(E), [1, E]),
      [io.force]: new ort.Tensor("float32", new Float32Array(E), [1, E]),
      [io.topP]: new ort.Tensor("float32", new Float32Array(1), [1]),
    };
    const sparse = await ort.InferenceSession.create(buildMoeLayerGraph(c, w, 0, { moe: "sparse", trace: true }), so);
    const dense = await ort.InferenceSession.create(buildMoeLayerGraph(c, w, 0, { moe: "dense", trace: false }), so);
    const mask = (await sparse.run(feeds)).mask!.data as Float32Array;
    let active = 0;
    for (let n = 0; n < N; n++) for (let e = 0; e < R; e++) active += mask[n * E + e]!;
    const [s, d] = await sideBySide([() => sparse.run(feeds), () => dense.run(feeds)], reps);
    const row = { routed: R, tokens: N, hidden: H, intermediate: c.dynamic_intermediate_size, sparseMs: s!, denseMs: d!, ratio: s! / d!, activePerToken: active / N };
    result.layer.push(row);
    log(`${String(R).padStart(6)} | ${row.activePerToken.toFixed(2).padStart(12)} | ${s!.toFixed(2).padStart(9)} | ${d!.toFixed(2).padStart(8)} | ${row.ratio.toFixed(3)}`);
    await sparse.release();
    await dense.release();
  }

  // tiny-like decoder: trace on vs off (prefill), and decode with the KV cache
  const c = config({ num_hidden_layers: 8, mlp_dynamic_top_p: 0.7 });
  const w = randomWeights(c, 1);
  const ids = randomIds(N, c.vocab_size, 2);
  const positions = Array.from({ length: 3 * N }, (_, q) => q % N);
  const on = await MoeLlmRunner.create(c, w, { moe: "sparse", trace: true, kvCache: true }, so);
  const off = await MoeLlmRunner.create(c, w, { moe: "sparse", trace: false, kvCache: true }, so);
  const [tOn, tOff] = await sideBySide([() => on.forward({ batch: 1, seq: N, ids, positions }), () => off.forward({ batch: 1, seq: N, ids, positions })], 2 * reps);
  const pre = await off.forward({ batch: 1, seq: N, ids, positions });
  const steps: number[] = [];
  let past = pre.present!;
  for (let t = 0; t < 40; t++) {
    const t0 = performance.now();
    const out = await off.forward({ batch: 1, seq: 1, ids: [t % c.vocab_size], positions: [N + t, N + t, N + t], past });
    steps.push(performance.now() - t0);
    past = out.present!;
  }
  result.model = { layers: 8, hidden: 128, tokens: N, traceOffMs: tOff!, traceOnMs: tOn!, traceOverhead: tOn! / tOff! - 1, decodeMs: median(steps.slice(5)) };
  log(`tiny-like decoder (8 layers, hidden 128, 4 routed + 1 null + 2 shared, P 0.7): prefill ${N} tokens trace off ${tOff!.toFixed(2)} ms, on ${tOn!.toFixed(2)} ms (${(100 * result.model.traceOverhead).toFixed(1)} %); decode with KV cache ${result.model.decodeMs.toFixed(2)} ms/token at past ≈ ${N}`);
  await on.release();
  await off.release();
  return result;
}
