/**
 * The cost of the logit lens (models/moe-llm/logit-lens.ts) on uni-moe-tiny, side by side in one process (interleaved
 * rounds in rotating order; ratios are medians of the per-round ratios), prefill of 512 tokens and KV-cache decode:
 *   before     the decoder graph the MoE-LLM node builds (no lens option)
 *   off        the graph built with lens: false (byte-identical: the cost of the option when off is the cost of
 *              nothing; measured anyway, so the ratio shows the noise floor)
 *   separate   lens: true (hidden_{i} outputs) + the separate lens head graph over the residual states (the
 *              shipped design; in decode the head runs once over every generated token at the end)
 *   in-graph   the same lens head appended inside the decoder graph (runs at every call, decode steps included)
 * The two "on" designs do the same arithmetic (L × tokens × H × V for the head). The separate head ships: it runs
 * over chunks of tokens, so its [L, M, V] log-probabilities stay within a budget, where the in-graph head holds
 * [L, N, V] at once (28 × 4,096 × 152,064 floats = 70 GB for a 4,096-token prompt of the real model).
 */
import * as ort from "onnxruntime-node";
import { paramNames } from "../../models/moe-llm/config";
import { buildLensHeadGraph, lensHead, LENS_TOP_K, runLogitLens } from "../../models/moe-llm/logit-lens";
import { fusedNorm } from "../../models/moe-llm/decoder/fused";
import { buildMoeLlmGraph, decoderContext, io, lmHead, type MoeGraphOptions } from "../../models/moe-llm/moe-llm-graph";
import { resolveModel } from "../../models/moe-llm/moe-llm-model";
import { MoeLlmRunner, type KvCache } from "../../models/moe-llm/moe-llm-session";
import { GraphBuilder } from "../../models/onnx/builder";
import { SafetensorsWeights } from "../../models/io/safetensors";
import { median } from "./stats";

const BASE: MoeGraphOptions = { moe: "sparse", trace: true, kvCache: true };

export async function benchLens(log: (s: string) => void = console.log) {
  const model = await resolveModel("uni-moe-tiny/tiny");
  const c = model.config;
  const L = c.num_hidden_layers, H = c.hidden_size, V = c.vocab_size;
  const w = new SafetensorsWeights(model.dir);
  const before = buildMoeLlmGraph(c, w, BASE);
  const off = buildMoeLlmGraph(c, w, { ...BASE, lens: false });
  const on = buildMoeLlmGraph(c, w, { ...BASE, lens: true });
  // in-graph: the lens head on the stacked residual outputs, inside the decoder
  const g = new GraphBuilder("uni_moe_decoder");
  buildMoeLlmGraph(c, w, { ...BASE, lens: true }, g);
  // the decoder already holds the final norm and head weights under their canonical names
  const ctx = { ...decoderContext(c, w, g), w: (name: string) => name };
  const o = ctx.o;
  const stacked = o.reshape(o.concat(Array.from({ length: L }, (_, i) => o.unsqueeze(io.hidden(i), [0])), 0), g.ints([L, -1, H]));
  const head = lensHead(o, stacked, (rows) => lmHead(ctx, fusedNorm(ctx, rows, paramNames.finalNorm)), V, LENS_TOP_K);
  g.output(head.topIds, "lens_top_ids", "int64", [L, "tokens", LENS_TOP_K]);
  g.output(head.topLogprobs, "lens_top_logprobs", "float", [L, "tokens", LENS_TOP_K]);
  g.output(head.finalRank, "lens_final_rank", "int64", [L, "tokens"]);
  g.output(head.kl, "lens_kl", "float", [L, "tokens"]);
  const inGraph = g.toBytes();
  const headBytes = buildLensHeadGraph(c, w);
  w.close();
  const identical = Buffer.from(before).equals(Buffer.from(off));
  log(`tiny (L${L} H${H} V${V}): graph with lens: false byte-identical to the one without the option: ${identical}`);

  const opts: ort.InferenceSession.SessionOptions = { graphOptimizationLevel: "all", logSeverityLevel: 3 };
  const mk = async (bytes: Uint8Array, lens: boolean) => MoeLlmRunner.fromSession(c, { ...BASE, lens }, await ort.InferenceSession.create(bytes, opts));
  const runners = { before: await mk(before, false), off: await mk(off, false), separate: await mk(on, true), inGraph: await mk(inGraph, true) };
  const headSession = await ort.InferenceSession.create(headBytes, opts);

  const P = 512, STEPS = 48;
  const ids = Array.from({ length: P }, (_, i) => (i * 37) % 256);
  const pos = [...ids.keys()];
  const positions = [...pos, ...pos, ...pos];
  type Variant = keyof typeof runners;
  const prefill = async (v: Variant) => {
    const t = performance.now();
    const out = await runners[v].forward({ batch: 1, seq: P, ids, positions });
    if (v === "separate") await runLogitLens(headSession, c, out.hidden!, P);
    return { ms: performance.now() - t, cache: out.present! };
  };
  const decode = async (v: Variant, past: KvCache) => {
    let cache = past;
    const hidden: Float32Array[][] = [];
    const t = performance.now();
    for (let s = 0; s < STEPS; s++) {
      const p = P + s;
      const out = await runners[v].forward({ batch: 1, seq: 1, ids: [s % 256], positions: [p, p, p], past: cache });
      cache = out.present!;
      if (v === "separate") hidden.push(out.hidden!);
    }
    if (v === "separate") {
      const per = Array.from({ length: L }, (_, l) => {
        const a = new Float32Array(STEPS * H);
        hidden.forEach((h, s) => a.set(h[l]!, s * H));
        return a;
      });
      await runLogitLens(headSession, c, per, STEPS);
    }
    return (performance.now() - t) / STEPS;
  };
  const variants: Variant[] = ["before", "off", "separate", "inGraph"];
  const pre: Record<Variant, number[]> = { before: [], off: [], separate: [], inGraph: [] };
  const dec: Record<Variant, number[]> = { before: [], off: [], separate: [], inGraph: [] };
  const ROUNDS = 21;
  for (let r = 0; r < ROUNDS + 2; r++) {
    // rotate the order each round so no variant always runs right after another
    for (let k = 0; k < variants.length; k++) {
      const v = variants[(r + k) % variants.length]!;
      const p = await prefill(v);
      const d = await decode(v, p.cache);
      if (r >= 2) {
        pre[v].push(p.ms);
        dec[v].push(d);
      }
    }
  }
  for (const r of Object.values(runners)) await r.release();
  await headSession.release();
  const m = (xs: number[]) => median(xs);
  const paired = (xs: number[], base: number[]) => median(xs.map((x, i) => x / base[i]!));
  const result = {
    model: "uni-moe-tiny/tiny",
    graphOffIdentical: identical,
    prefillTokens: P,
    decodeSteps: STEPS,
    rounds: ROUNDS,
    prefillMs: Object.fromEntries(variants.map((v) => [v, m(pre[v])])) as Record<Variant, number>,
    decodeMsPerToken: Object.fromEntries(variants.map((v) => [v, m(dec[v])])) as Record<Variant, number>,
    /** Median over rounds of (variant / before) within the same round: paired, so machine-load drift between rounds cancels. */
    ratios: {
      offVsBeforePrefill: paired(pre.off, pre.before),
      offVsBeforeDecode: paired(dec.off, dec.before),
      separateVsBeforePrefill: paired(pre.separate, pre.before),
      separateVsBeforeDecode: paired(dec.separate, dec.before),
      inGraphVsBeforePrefill: paired(pre.inGraph, pre.before),
      inGraphVsBeforeDecode: paired(dec.inGraph, dec.before),
    },
  };
  const f = (x: number) => x.toFixed(3);
  for (const v of variants) log(`${v.padEnd(9)} prefill ${P}: ${result.prefillMs[v].toFixed(1)} ms (× ${f(paired(pre[v], pre.before))})   decode: ${result.decodeMsPerToken[v].toFixed(2)} ms/token (× ${f(paired(dec[v], dec.before))})`);
  log(`lens off vs no option: prefill × ${f(result.ratios.offVsBeforePrefill)}, decode × ${f(result.ratios.offVsBeforeDecode)} (target ≤ 1.02; the graphs are identical, so this is the noise)`);
  return result;
}

