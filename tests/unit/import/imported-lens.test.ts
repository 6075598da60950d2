/**
 * The logit lens on imported models of every family: tiny random checkpoints in each family's real layout, imported,
 * then the MoE-LLM forward with the lens on (a graph variant built from the source checkpoint) and the lens head (a
 * variant beside it), both in real ONNX Runtime sessions. Checked per family:
 *  - hidden_{i} for every decoder layer (dense layers included) equals the family's plain-TS reference residual stream,
 *    and the logits equal the reference's (1e-4);
 *  - the last layer's lens IS the model's own prediction: top-5 of the log-softmax of its logits (ids exact,
 *    log-probabilities within 1e-4), final rank 0, KL 0 (1e-5);
 *  - every layer's lens equals the plain-TS lens (tests/reference/lens.ts: the family's final norm, RMSNorm or
 *    LayerNorm with bias, and its head, lm_head or the tied embedding, with its bias) on that layer's residual
 *    states (ids and ranks exact, log-probabilities and KL within 1e-4).
 * Quantised imports get a lens head quantised like the decoder (int4 LM head → MatMulNBits), fp16 compute an fp16
 * lens head, so the last layer is still the model's own prediction.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { onnx } from "onnx-proto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunContext } from "@/engine/node";
import { SessionPool } from "@/engine/runtime";
import { DiskStorage } from "@/engine/storage";
import type { LogitLens, RoutingTrace } from "@/engine/trace";
import { paramNames } from "@/models/moe-llm/config";
import { defaultRoutingPrecision } from "@/models/moe-llm/grin-routing";
import { importCheckpoint } from "@/models/import/import";
import { loadedSessions } from "@/models/import/runtime";
import { CHUNK_BYTES, LENS_TOP_K } from "@/models/moe-llm/logit-lens";
import { estimateLensHead } from "@/models/import/memory";
import { graphFile, lensHeadFile, logitLens, resolveModel, withMoeLlm, type ResolvedModel } from "@/models/moe-llm/moe-llm-model";
import { SafetensorsWeights, writeSafetensors } from "@/models/io/safetensors";
import { quantizedBytes, type QuantChoice } from "@/models/onnx/quantize";
import { moeLlm } from "@/nodes/moe-llm";
import { familyReference } from "../../reference/families";
import { get, type Tensors } from "../../reference/families/ops";
import { referenceLens, type LensHeadWeights } from "../../reference/lens";
import { referenceForward } from "../../reference/moe-llm";
import { randomConfig, randomIds, randomWeights } from "../../reference/random";
import { writeFamilyCheckpoint, type Family } from "./family-checkpoints";

const tmp = mkdtempSync(path.join(os.tmpdir(), "import-lens-"));
const saved = process.env.STUDIO_MODELS_DIR;
const pool = new SessionPool({ intraOpNumThreads: 1, executionProvider: "cpu" });
beforeAll(() => {
  process.env.STUDIO_MODELS_DIR = path.join(tmp, "models");
});
afterAll(async () => {
  await pool.close();
  if (saved === undefined) delete process.env.STUDIO_MODELS_DIR;
  else process.env.STUDIO_MODELS_DIR = saved;
  rmSync(tmp, { recursive: true, force: true });
});

const S = 7;
const K = LENS_TOP_K;
const variantsOf = (model: ResolvedModel) => path.join(model.dir, "variants") + path.sep;

/** Log-softmax of one row of logits, in float64. */
function logSoftmax(row: ArrayLike<number>): number[] {
  const r = Array.from(row, Number);
  const mx = Math.max(...r);
  const lse = mx + Math.log(r.reduce((a, v) => a + Math.exp(v - mx), 0));
  return r.map((v) => v - lse);
}
const topOf = (lp: number[]) => [...lp.keys()].sort((a, b) => lp[b]! - lp[a]! || a - b).slice(0, K);

/** The last layer's lens against the model's own logits [N × V]: top-K ids exact; returns max |Δlogprob| and max |KL|. */
function checkLastLayer(lens: LogitLens, logits: Float32Array, N: number, V: number) {
  const last = lens.layers[lens.layers.length - 1]!;
  let dLp = 0, kl = 0;
  for (let n = 0; n < N; n++) {
    const lp = logSoftmax(logits.subarray(n * V, (n + 1) * V));
    const top = topOf(lp);
    expect(Array.from(last.topIds.subarray(n * K, (n + 1) * K)), `last layer top ids, token ${n}`).toEqual(top);
    top.forEach((v, j) => (dLp = Math.max(dLp, Math.abs(lp[v]! - last.topLogprobs[n * K + j]!))));
    expect(last.finalRank[n], `last layer rank, token ${n}`).toBe(0);
    kl = Math.max(kl, Math.abs(last.kl[n]!));
  }
  return { dLp, kl };
}

/** Every layer's lens against the plain-TS lens of the same residual states; returns max |Δlogprob| and |ΔKL|. */
function checkAgainstReference(lens: LogitLens, head: LensHeadWeights, hidden: ArrayLike<number>[], N: number, H: number, V: number) {
  const want = referenceLens(head, hidden, N, H, V, K);
  let dLp = 0, dKl = 0;
  want.forEach((layer, l) =>
    layer.forEach((r, n) => {
      const got = lens.layers[l]!;
      expect(Array.from(got.topIds.subarray(n * K, (n + 1) * K)), `top ids L${l} token ${n}`).toEqual(r.ids);
      r.logprobs.forEach((v, j) => (dLp = Math.max(dLp, Math.abs(v - got.topLogprobs[n * K + j]!))));
      expect(got.finalRank[n], `rank L${l} token ${n}`).toBe(r.rank);
      dKl = Math.max(dKl, Math.abs(r.kl - got.kl[n]!));
    }),
  );
  return { dLp, dKl };
}

/** The final norm and head of a checkpoint, read from the family's own config and tensor names (not from models/). */
function headWeights(family: Family, config: Record<string, unknown>, t: Tensors): LensHeadWeights {
  return {
    norm: get(t, "model.norm.weight"),
    ...(family === "phimoe" ? { normBias: get(t, "model.norm.bias") } : {}),
    eps: config.rms_norm_eps as number,
    head: get(t, config.tie_word_embeddings === true ? "model.embed_tokens.weight" : "lm_head.weight"),
    ...(config.lm_head_bias === true ? { headBias: get(t, "lm_head.bias") } : {}),
  };
}

/** The forward with the lens on, through the same calls the MoE-LLM node and `cli forward` make. */
async function forwardWithLens(model: ResolvedModel, ids: number[], positions: number[]) {
  const options = { moe: "sparse", trace: true, kvCache: false, lens: true, routingPrecision: defaultRoutingPrecision(model.config) } as const;
  const out = await withMoeLlm(model, options, pool, ({ runner }) => runner.forward({ batch: 1, seq: ids.length, ids, positions }));
  expect(graphFile(model, options).startsWith(variantsOf(model)), "the lens decoder is a variant built from the source").toBe(true);
  const lens = await logitLens(model, pool, out.hidden!, ids.length);
  expect(lensHeadFile(model).startsWith(variantsOf(model)), "the lens head is a variant beside it").toBe(true);
  expect(lens.k).toBe(K);
  expect(lens.layers).toHaveLength(model.config.num_hidden_layers);
  return { out, lens };
}

const maxAbs = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
};

const cases: { family: Family; label: string; what: string; configOverride?: Record<string, unknown>; omit?: string[] }[] = [
  { family: "phimoe", label: "phi", what: "LayerNorm with bias, lm_head bias" },
  { family: "deepseek_v3", label: "v3", what: "dense first layer, MLA" },
  { family: "deepseek_v2", label: "v2", what: "dense first layer, MLA" },
  { family: "qwen3_moe", label: "tied", what: "tied embeddings (no lm_head.weight)", configOverride: { tie_word_embeddings: true }, omit: ["lm_head.weight"] },
  { family: "qwen2_moe", label: "dense-mid", what: "shared expert, a dense middle layer", configOverride: { num_hidden_layers: 3, mlp_only_layers: [1] } },
  { family: "mixtral", label: "mix", what: "RMSNorm, bias-free head" },
  { family: "olmoe", label: "olmoe", what: "q/k norm" },
  { family: "gpt_oss", label: "oss", what: "sinks, sliding window" },
];

describe("logit lens on imported models", () => {
  it.each(cases)("$family ($what): hidden_{i} per decoder layer, the last layer is the model's own prediction, every layer equals the plain-TS lens", async ({ family, label, configOverride, omit }) => {
    const src = path.join(tmp, "src", label);
    const { config, tensors } = await writeFamilyCheckpoint(src, family, { seed: 31, configOverride, omit });
    await importCheckpoint(src, { name: label });
    const model = await resolveModel(`${family}/${label}`);
    const { hidden_size: H, vocab_size: V, num_hidden_layers: L } = model.config;
    const ids = randomIds(S, V, 17);
    const { out, lens } = await forwardWithLens(model, ids, Array.from({ length: 3 * S }, (_, q) => q % S));

    const ref = familyReference(family, config, tensors, ids);
    expect(out.hidden).toHaveLength(L);
    expect(ref.hidden).toHaveLength(L);
    const dHidden = Math.max(...out.hidden!.map((h, l) => maxAbs(h, ref.hidden[l]!.flat())));
    const dLogits = maxAbs(out.logits, ref.logits.flat());
    const last = checkLastLayer(lens, out.logits, S, V);
    const every = checkAgainstReference(lens, headWeights(family, config, tensors), out.hidden!, S, H, V);
    console.log(
      `${family} (L${L}, ${model.config.tie_word_embeddings ? "tied" : "lm_head"}): |Δhidden| ${dHidden.toExponential(2)}, |Δlogits| ${dLogits.toExponential(2)}; ` +
        `last layer vs own log-softmax ${last.dLp.toExponential(2)}, |KL| ${last.kl.toExponential(2)}; every layer vs plain TS: |Δlogprob| ${every.dLp.toExponential(2)}, |ΔKL| ${every.dKl.toExponential(2)}`,
    );
    expect(dHidden).toBeLessThan(1e-4);
    expect(dLogits).toBeLessThan(1e-4);
    expect(last.dLp).toBeLessThan(1e-4);
    expect(last.kl).toBeLessThan(1e-5);
    expect(every.dLp).toBeLessThan(1e-4);
    expect(every.dKl).toBeLessThan(1e-4);
  });

  it("grin_qwen2_vl (Uni-MoE-2.0, tied embeddings, bf16 storage and routing as released, M-RoPE positions): the same against the Uni-MoE reference", async () => {
    const config = randomConfig(23, { mlp_dynamic_null_expert_num: 1, mlp_fixed_expert_num: 2, tie_word_embeddings: true, model_type: "grin_qwen2_vl" });
    const W = randomWeights(config, 24);
    const src = path.join(tmp, "src", "uni");
    mkdirSync(src, { recursive: true });
    await writeSafetensors(path.join(src, "model.safetensors"), W.names().map((n) => ({ name: n, shape: W.get(n).shape, data: W.get(n).data })), { dtype: "BF16" });
    writeFileSync(path.join(src, "config.json"), JSON.stringify(config));
    await importCheckpoint(src, { name: "uni" });
    const model = await resolveModel("grin_qwen2_vl/uni");
    const { hidden_size: H, vocab_size: V, num_hidden_layers: L } = model.config;
    const ids = randomIds(S, V, 5);
    const positions = Array.from({ length: 3 * S }, (_, q) => (q < S ? q : q < 2 * S ? 2 * (q - S) + 1 : 5 - (q - 2 * S)));
    const { out, lens } = await forwardWithLens(model, ids, positions);
    // the reference reads the weights as stored (bf16-rounded)
    const stored = new SafetensorsWeights(src);
    const ref = referenceForward(config, stored, { batch: 1, seq: S, ids, positions, routingPrecision: "bf16" });
    const head = { norm: stored.get(paramNames.finalNorm).data, eps: config.rms_norm_eps, head: stored.get(paramNames.embed).data };
    stored.close();
    const dHidden = Math.max(...out.hidden!.map((h, l) => maxAbs(h, ref.hidden[l]!)));
    const last = checkLastLayer(lens, out.logits, S, V);
    const every = checkAgainstReference(lens, head, out.hidden!, S, H, V);
    console.log(`grin_qwen2_vl (L${L}, tied): |Δhidden| ${dHidden.toExponential(2)}; last layer vs own log-softmax ${last.dLp.toExponential(2)}, |KL| ${last.kl.toExponential(2)}; every layer vs plain TS: |Δlogprob| ${every.dLp.toExponential(2)}, |ΔKL| ${every.dKl.toExponential(2)}`);
    expect(dHidden).toBeLessThan(1e-4);
    expect(last.dLp).toBeLessThan(1e-4);
    expect(last.kl).toBeLessThan(1e-5);
    expect(every.dLp).toBeLessThan(1e-4);
    expect(every.dKl).toBeLessThan(1e-4);
  });

  it.each([
    { family: "phimoe" as Family, label: "phi-q4", quant: { kind: "int4", lmHead: true } as QuantChoice, headQuantised: true },
    { family: "qwen3_moe" as Family, label: "tied-q4", quant: { kind: "int4", lmHead: true } as QuantChoice, headQuantised: false },
  ])("a quantised import ($label): the lens head is quantised like the decoder (a tied embedding never is); the last layer is still the model's own prediction", async ({ family, label, quant, headQuantised }) => {
    const tied = family === "qwen3_moe";
    const src = path.join(tmp, "src", label);
    await writeFamilyCheckpoint(src, family, { seed: 32, ...(tied ? { configOverride: { tie_word_embeddings: true }, omit: ["lm_head.weight"] } : {}) });
    await importCheckpoint(src, { name: label, quant });
    const model = await resolveModel(`${family}/${label}`);
    expect(model.quantization?.lmHead).toBe(true);
    const V = model.config.vocab_size;
    const { out, lens } = await forwardWithLens(model, randomIds(S, V, 18), Array.from({ length: 3 * S }, (_, q) => q % S));
    const graph = onnx.ModelProto.decode(readFileSync(lensHeadFile(model)));
    const nbits = graph.graph!.node!.filter((n) => n.opType === "MatMulNBits");
    expect(nbits.length).toBe(headQuantised ? 1 : 0);
    const last = checkLastLayer(lens, out.logits, S, V);
    console.log(`${family} ${label}: lens head ${headQuantised ? "int4 (MatMulNBits)" : "full precision"}; last layer vs own log-softmax ${last.dLp.toExponential(2)}, |KL| ${last.kl.toExponential(2)}`);
    expect(last.dLp).toBeLessThan(1e-4);
    expect(last.kl).toBeLessThan(1e-5);
  });

  it("fp16 compute (STUDIO_COMPUTE_DTYPE=fp16, the CUDA default): the lens head gets an fp16 compute graph like the decoder; the last layer is still the model's own prediction", async () => {
    const src = path.join(tmp, "src", "phi-fp16");
    await writeFamilyCheckpoint(src, "phimoe", { seed: 35 });
    await importCheckpoint(src, { name: "phi-fp16" });
    const model = await resolveModel("phimoe/phi-fp16");
    const saved = process.env.STUDIO_COMPUTE_DTYPE;
    process.env.STUDIO_COMPUTE_DTYPE = "fp16";
    try {
      const V = model.config.vocab_size;
      const { out, lens } = await forwardWithLens(model, randomIds(S, V, 19), Array.from({ length: 3 * S }, (_, q) => q % S));
      const fp16 = (await loadedSessions(model.dir)).filter((s) => s.computeDtype === "fp16").map((s) => s.file);
      expect(fp16).toContain(path.relative(model.dir, lensHeadFile(model)).replace(/\.onnx$/, ".fp16.onnx"));
      const last = checkLastLayer(lens, out.logits, S, V);
      console.log(`phimoe, fp16 compute: last layer vs own log-softmax ${last.dLp.toExponential(2)}, |KL| ${last.kl.toExponential(2)}`);
      expect(last.dLp).toBeLessThan(1e-4);
      expect(last.kl).toBeLessThan(1e-5);
    } finally {
      if (saved === undefined) delete process.env.STUDIO_COMPUTE_DTYPE;
      else process.env.STUDIO_COMPUTE_DTYPE = saved;
    }
  });

  it("the lens head variant is built once and needs the source checkpoint like every variant", async () => {
    const src = path.join(tmp, "src", "gone");
    await writeFamilyCheckpoint(src, "mixtral", { seed: 33 });
    await importCheckpoint(src, { name: "gone" });
    const model = await resolveModel("mixtral/gone");
    rmSync(src, { recursive: true, force: true });
    expect(() => lensHeadFile(model)).toThrow(/is built from the checkpoint the model was imported from, and .* is gone; import it again/);
  });
});

describe("the lens head's memory estimate (checked before its session loads)", () => {
  it("counts the LM head in the compute dtype, at its quantised bytes when the import quantised it, and a tied embedding in full", () => {
    const c = randomConfig(3, { hidden_size: 64, vocab_size: 1000, tie_word_embeddings: false });
    const q = { bits: 4, blockSize: 32, symmetric: true, lmHead: true } as const;
    const norm = 3 * 64 * 4;
    expect(estimateLensHead(c, "fp32").weights).toBe(1000 * 64 * 4 + norm);
    expect(estimateLensHead(c, "fp16").weights).toBe(1000 * 64 * 2 + norm);
    expect(estimateLensHead(c, "fp32", q).weights).toBe(quantizedBytes(1000, 64, q) + norm);
    expect(estimateLensHead(c, "fp32", { ...q, lmHead: false }).weights).toBe(1000 * 64 * 4 + norm);
    expect(estimateLensHead({ ...c, tie_word_embeddings: true }, "fp32", q).weights).toBe(1000 * 64 * 4 + norm);
    const e = estimateLensHead(c, "fp32");
    expect(e.bytes).toBe(Math.ceil((e.weights + CHUNK_BYTES) * 1.15));
    expect(e.explain).toMatch(/^LM head .* \+ lens chunk .* \+ 15 %$/);
  });
});

describe("the MoE-LLM node's logit lens on an imported model", () => {
  const ctx = (): RunContext => ({ runId: "r", nodeId: "llm", signal: new AbortController().signal, storage: new DiskStorage(path.join(tmp, "files")), runtime: pool, progress: () => {}, log: () => {} });

  it("deepseek_v3 (dense first layer), score-text: a lens per decoder layer for every token; the last layer is the reference's prediction", async () => {
    const src = path.join(tmp, "src", "node-v3");
    const { config, tensors } = await writeFamilyCheckpoint(src, "deepseek_v3", { seed: 34, configOverride: { vocab_size: 320 } });
    await importCheckpoint(src, { name: "node-v3" });
    const out = (await moeLlm.execute({ inputs: { prompt: "the cat sleeps" }, params: moeLlm.params.parse({ model: "deepseek_v3/node-v3", mode: "score-text", logitLens: true }), ctx: ctx() })) as { trace: RoutingTrace };
    const lens = out.trace.lens!;
    const ids = out.trace.tokens.map((t) => t.id);
    const N = ids.length;
    expect(lens.layers).toHaveLength(3);
    for (const l of lens.layers) expect(l.topIds).toHaveLength(N * K);
    expect(Object.keys(lens.texts ?? {}).length).toBeGreaterThan(0);
    // the last layer is the model's prediction: the plain-TS reference forward's log-softmax top-5 at every position
    const ref = familyReference("deepseek_v3", config, tensors, ids);
    const last = lens.layers[2]!;
    let d = 0;
    ref.logits.forEach((row, n) => {
      const lp = logSoftmax(row);
      const top = topOf(lp);
      expect(Array.from(last.topIds.subarray(n * K, (n + 1) * K))).toEqual(top);
      top.forEach((v, j) => (d = Math.max(d, Math.abs(lp[v]! - last.topLogprobs[n * K + j]!))));
      expect(last.finalRank[n]).toBe(0);
    });
    console.log(`MoE-LLM node, imported deepseek_v3, ${N} tokens: last layer vs the reference's log-softmax |Δ| ${d.toExponential(2)}`);
    expect(d).toBeLessThan(1e-4);
  });
});
