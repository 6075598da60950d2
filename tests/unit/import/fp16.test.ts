/**
 * fp16 compute graphs (models/import/fp16.ts): the transform of an imported fp32-compute graph, run on the CPU
 * provider (ORT inserts casts where its CPU kernels lack fp16), compared with the plain-TS fp32 references.
 *
 * Tolerances, and why: the references compute in float64 on the weights as the fp16 graph holds them (rounded to
 * fp16), so the difference is the fp16 arithmetic alone: every matrix product rounds its inputs and output to
 * fp16 (relative step 2^-11 ≈ 4.9e-4), over 2 layers × (attention + experts) + LM head. We require
 *   max |Δlogits|        ≤ 1e-2 · max |reference logits|   (~20 fp16 steps of the largest logit)
 *   max |Δrouter logits| ≤ 1e-2 · max |reference router logits|
 *   max |Δrouting weights| ≤ 1e-2 (weights are in [0, 1])
 * and the routing choices must agree except near ties: a token's chosen set may differ from the reference's only
 * where the reference's own decision margin is below TIE (see `margin`); such a token, and every later one (they
 * attend to it), is left out of the logits comparison, and the count is printed.
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import * as ort from "onnxruntime-node";
import { onnx } from "onnx-proto";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { SessionPool } from "@/engine/runtime";
import { zMoeLlmConfig, type MoeLlmConfig } from "@/models/moe-llm/config";
import { SLIDING_WINDOW_KEY } from "@/models/families/conventions";
import { computeDtypeFor, convertToFp16, ensureFp16Graph, parseComputeDtype, FP32_PROJECTION, fp16GraphPath, halfFromFloatBits } from "@/models/import/fp16";
import { DATA_FILE, GRAPH_FILE, IMPORT_GRAPH, importCheckpoint, parameterCounts, readManifest } from "@/models/import/import";
import { ExternalDataGraphBuilder, type StorageDtype } from "@/models/import/external-graph";
import { estimateFromConfig } from "@/models/import/memory";
import { loadedSessions, type ImportedSession } from "@/models/import/runtime";
import { generate } from "@/models/moe-llm/generate";
import { resolveModel, withMoeLlm } from "@/models/moe-llm/moe-llm-model";
import { MoeLlmRunner, type ForwardOutput } from "@/models/moe-llm/moe-llm-session";
import { bf16BitsToF32, f16BitsToF32, f32ToBf16Bits, f32ToF16Bits, writeSafetensors } from "@/models/io/safetensors";
import { MemoryWeights, type Tensor32 } from "@/models/io/weights";
import { audioParamTable, buildAudioGraph, zAudioConfig } from "@/models/encoders/audio-encoder";
import { buildVisionGraph, visionParamTable, zVisionConfig } from "@/models/encoders/vision-encoder";
import { seedEncoderWeights } from "@/models/encoders/encoders-tiny";
import { SeededRandom } from "@/models/io/seeded-random";
import { familyReference } from "../../reference/families";
import { referenceForward } from "../../reference/families/topk-moe";
import { referenceForward as uniMoeReference } from "../../reference/moe-llm";
import { randomConfig, randomIds, randomWeights } from "../../reference/random";
import { writeFamilyCheckpoint, type Family } from "./family-checkpoints";

const tmp = mkdtempSync(path.join(os.tmpdir(), "import-fp16-"));
const root = path.join(tmp, "models");
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const REL_TOL = 1e-2;
const WEIGHT_TOL = 1e-2;
/** Decision margins (in router-logit units) below this count as near ties. */
const TIE = 0.05;
const T = onnx.TensorProto.DataType;

const half = (v: number) => f16BitsToF32(f32ToF16Bits(v));
const maxAbs = (a: ArrayLike<number>) => {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]!));
  return m;
};

async function runGraph(file: string, config: MoeLlmConfig, ids: number[]): Promise<ForwardOutput> {
  const session = await ort.InferenceSession.create(file, { intraOpNumThreads: 1, graphOptimizationLevel: "all" });
  try {
    const S = ids.length;
    return await MoeLlmRunner.fromSession(config, IMPORT_GRAPH, session).forward({ batch: 1, seq: S, ids, positions: Array.from({ length: 3 * S }, (_, q) => q % S) });
  } finally {
    await session.release();
  }
}

/** Top-k decision margin of one token: the gap between the k-th and (k+1)-th largest routed logits. */
function margin(logits: number[], k: number, routed: number): number {
  const s = logits.slice(0, routed).sort((a, b) => b - a);
  return k < routed ? s[k - 1]! - s[k]! : Infinity;
}

async function importFamily(family: Family, label: string, dtype: StorageDtype, seed: number, write: Parameters<typeof writeFamilyCheckpoint>[2] = {}) {
  const src = path.join(tmp, `${family}-${label}`);
  const fixture = await writeFamilyCheckpoint(src, family, { seed, ...write });
  const result = await importCheckpoint(src, { root, name: label, dtype });
  const config = zMoeLlmConfig.parse(JSON.parse(readFileSync(path.join(result.dir, "config.json"), "utf8")));
  // the fp16 graph holds every weight rounded to fp16 (after the bf16 storage rounding): the reference gets the same weights
  const stored = dtype === "bf16" ? (v: number) => bf16BitsToF32(f32ToBf16Bits(v)) : (v: number) => v;
  for (const t of fixture.tensors.values()) t.data = t.data.map((v) => half(stored(v)));
  return { ...fixture, result, canonical: config };
}

async function compareFamily(family: Family, dtype: StorageDtype, seed: number, write: Parameters<typeof writeFamilyCheckpoint>[2] = {}) {
  const { config, tensors, result, canonical } = await importFamily(family, `${family}-${dtype}${write.slidingWindow ? "-window" : ""}`, dtype, seed, write);
  if (write.slidingWindow) expect((canonical as Record<string, unknown>)[SLIDING_WINDOW_KEY]).toEqual(Array(canonical.num_hidden_layers).fill(write.slidingWindow.size));
  const file = await ensureFp16Graph(path.join(result.dir, GRAPH_FILE));
  const S = 9;
  const ids = randomIds(S, config.vocab_size as number, seed + 100);
  const out = await runGraph(file, canonical, ids);
  const ref = familyReference(family, config, tensors, ids);
  const K = config.num_experts_per_tok as number;
  const R = ref.layers[0]!.mask[0]!.length - (family === "qwen2_moe" || (family.startsWith("deepseek") && config.n_shared_experts) ? 1 : 0);
  let firstFlip = S, flips = 0, routerDiff = 0, routerScale = 0, weightDiff = 0;
  ref.layers.forEach((layer, l) => {
    const t = out.trace![l]!;
    const E = layer.mask[0]!.length;
    for (let s = 0; s < S; s++) {
      const got = Array.from(t.mask.subarray(s * E, (s + 1) * E));
      if (s < firstFlip) {
        for (let e = 0; e < E; e++) {
          routerDiff = Math.max(routerDiff, Math.abs(t.routerLogits[s * E + e]! - layer.routerLogits[s]![e]!));
          weightDiff = Math.max(weightDiff, Math.abs(t.weights[s * E + e]! - layer.weights[s]![e]!));
        }
        routerScale = Math.max(routerScale, maxAbs(layer.routerLogits[s]!));
      }
      if (got.join() !== layer.mask[s]!.join()) {
        flips++;
        const m = margin((layer.scores ?? layer.routerLogits)[s]!, K, R);
        expect(m, `${family} layer ${l} token ${s}: routing differs with a reference margin of ${m}`).toBeLessThan(TIE);
        firstFlip = Math.min(firstFlip, s);
      }
    }
  });
  const V = config.vocab_size as number;
  let logitDiff = 0, logitScale = 0;
  for (let s = 0; s < firstFlip; s++)
    for (let v = 0; v < V; v++) {
      logitDiff = Math.max(logitDiff, Math.abs(out.logits[s * V + v]! - ref.logits[s]![v]!));
      logitScale = Math.max(logitScale, Math.abs(ref.logits[s]![v]!));
    }
  console.log(
    `fp16 ${family} (${dtype} storage): max |Δlogits| ${logitDiff.toExponential(2)} of max |logit| ${logitScale.toFixed(2)} (${(logitDiff / logitScale).toExponential(2)}), ` +
      `max |Δrouter logits| ${routerDiff.toExponential(2)} of ${routerScale.toFixed(2)}, max |Δweights| ${weightDiff.toExponential(2)}, near-tie flips ${flips}, tokens compared ${firstFlip}/${S}`,
  );
  expect(firstFlip).toBeGreaterThan(0);
  expect(logitDiff).toBeLessThan(REL_TOL * logitScale);
  expect(routerDiff).toBeLessThan(REL_TOL * routerScale);
  expect(weightDiff).toBeLessThan(WEIGHT_TOL);
  return { result, file, canonical, out };
}

describe("fp16 compute graphs vs the fp32 family references (CPU provider)", () => {
  it("qwen2_moe (fp32 storage): shared expert with sigmoid gate", async () => {
    await compareFamily("qwen2_moe", "fp32", 31);
  });
  it("qwen3_moe (bf16 storage): per-head q/k norm, renormalised top-k", async () => {
    await compareFamily("qwen3_moe", "bf16", 32);
  });
  it("olmoe (fp32 storage): top-8 of 64", async () => {
    await compareFamily("olmoe", "fp32", 33);
  });
  it("mixtral (fp16 storage): top-2", async () => {
    await compareFamily("mixtral", "fp16", 34);
  });
  it("mixtral with a sliding window of 4 over 9 tokens (fp32 storage)", async () => {
    await compareFamily("mixtral", "fp32", 35, { slidingWindow: { size: 4 } });
  });
  it("deepseek_v2 (fp32 storage): MLA, softmax top-k × scaling, dense first layer", async () => {
    await compareFamily("deepseek_v2", "fp32", 36);
  });
  it("deepseek_v3 (bf16 storage): MLA, sigmoid + correction bias, groups", async () => {
    await compareFamily("deepseek_v3", "bf16", 37);
  });
  it("phimoe (fp16 storage): LayerNorm, sparsemixer, biases", async () => {
    await compareFamily("phimoe", "fp16", 38);
  });
  it("gpt_oss (fp32 storage, MXFP4 source): sinks, clamped SwiGLU, router bias", async () => {
    await compareFamily("gpt_oss", "fp32", 39, { mxfp4: true });
  });
});

describe("fp16 compute graph of the Uni-MoE-2.0 LLM (grin_qwen2_vl: M-RoPE, Top-P, null + shared experts)", () => {
  it("matches the Uni-MoE reference within the fp16 tolerances; routing agrees except near ties", async () => {
    const config = randomConfig(41, { mlp_dynamic_null_expert_num: 1, mlp_fixed_expert_num: 2, tie_word_embeddings: false, model_type: "grin_qwen2_vl" });
    const W = randomWeights(config, 42);
    const src = path.join(tmp, "uni-moe");
    mkdirSync(src);
    await writeSafetensors(path.join(src, "model.safetensors"), W.names().map((n) => ({ name: n, shape: W.get(n).shape, data: W.get(n).data })));
    writeFileSync(path.join(src, "config.json"), JSON.stringify(config));
    const r = await importCheckpoint(src, { root, name: "uni", dtype: "fp32" });
    const canonical = zMoeLlmConfig.parse(JSON.parse(readFileSync(path.join(r.dir, "config.json"), "utf8")));
    const S = 8;
    const ids = randomIds(S, config.vocab_size, 43);
    const positions = Array.from({ length: 3 * S }, (_, q) => (q < S ? q : q < 2 * S ? 2 * (q - S) + 1 : 7 - (q - 2 * S)));
    const session = await ort.InferenceSession.create(await ensureFp16Graph(path.join(r.dir, GRAPH_FILE)), { intraOpNumThreads: 1 });
    const out = await MoeLlmRunner.fromSession(canonical, IMPORT_GRAPH, session).forward({ batch: 1, seq: S, ids, positions });
    await session.release();
    const rounded = new MemoryWeights(new Map<string, Tensor32>(W.names().map((n) => [n, { shape: W.get(n).shape, data: W.get(n).data.map(half) }])));
    // the import routes in bf16, as the release: so does the reference (the fp16 transform keeps the bf16 rounding casts)
    expect(readManifest(r.dir)!.graph.options.routingPrecision).toBe("bf16");
    const ref = uniMoeReference(config, rounded, { batch: 1, seq: S, ids, positions, routingPrecision: "bf16" });
    const D = config.mlp_dynamic_expert_num + config.mlp_dynamic_null_expert_num;
    const E = D + config.mlp_fixed_expert_num;
    // near tie for Top-P routing: two dynamic logits within TIE (the order), or a cumulative probability within 0.01 of P
    const nearTie = (z: number[]) => {
      const zd = z.slice(0, D).sort((a, b) => b - a);
      const m = Math.max(...zd);
      const p = zd.map((v) => Math.exp(v - m));
      const sum = p.reduce((a, b) => a + b, 0);
      let cum = 0;
      const cums = p.map((v) => (cum += v / sum));
      return zd.some((v, j) => j > 0 && zd[j - 1]! - v < TIE) || cums.some((c) => Math.abs(c - config.mlp_dynamic_top_p) < 0.01);
    };
    let firstFlip = S, flips = 0, dz = 0, zScale = 0, dw = 0;
    ref.trace.forEach((layer, l) => {
      const t = out.trace![l]!;
      for (let s = 0; s < S; s++) {
        const z = Array.from(layer.routerLogits.slice(s * E, (s + 1) * E));
        if (Array.from(t.mask.subarray(s * E, (s + 1) * E)).join() !== layer.mask.slice(s * E, (s + 1) * E).join()) {
          flips++;
          expect(nearTie(z), `layer ${l} token ${s}: Top-P routing differs away from a tie`).toBe(true);
          firstFlip = Math.min(firstFlip, s);
        }
        if (s >= firstFlip) continue;
        zScale = Math.max(zScale, maxAbs(z));
        for (let e = 0; e < E; e++) {
          dz = Math.max(dz, Math.abs(t.routerLogits[s * E + e]! - z[e]!));
          dw = Math.max(dw, Math.abs(t.weights[s * E + e]! - layer.weights[s * E + e]!));
        }
      }
    });
    const V = config.vocab_size;
    const refLogits = ref.logits.slice(0, firstFlip * V);
    let dl = 0;
    for (let i = 0; i < refLogits.length; i++) dl = Math.max(dl, Math.abs(out.logits[i]! - refLogits[i]!));
    const scale = maxAbs(refLogits);
    console.log(`fp16 grin_qwen2_vl: max |Δlogits| ${dl.toExponential(2)} of ${scale.toFixed(2)} (${(dl / scale).toExponential(2)}), max |Δrouter logits| ${dz.toExponential(2)} of ${zScale.toFixed(2)}, max |Δweights| ${dw.toExponential(2)}, near-tie flips ${flips}, tokens compared ${firstFlip}/${S}`);
    expect(firstFlip).toBeGreaterThan(0);
    expect(dl).toBeLessThan(REL_TOL * scale);
    expect(dz).toBeLessThan(REL_TOL * zScale);
    expect(dw).toBeLessThan(WEIGHT_TOL);
  });
});

/** Element type of every value of a graph: inputs, initializers and the value_info the transform writes. */
function valueTypes(model: onnx.IModelProto): Map<string, number> {
  const g = model.graph!;
  const types = new Map<string, number>();
  for (const v of [...(g.input ?? []), ...(g.output ?? []), ...(g.valueInfo ?? [])]) types.set(v.name!, v.type!.tensorType!.elemType!);
  for (const t of g.initializer ?? []) types.set(t.name!, t.dataType!);
  return types;
}

const decode = (file: string) => onnx.ModelProto.decode(readFileSync(file));
const ioTypes = (m: onnx.IModelProto) => ({
  inputs: m.graph!.input!.map((v) => `${v.name}:${v.type!.tensorType!.elemType}`),
  outputs: m.graph!.output!.map((v) => `${v.name}:${v.type!.tensorType!.elemType}`),
});

describe("the converted graph really computes in fp16", () => {
  it("MatMul/Gemm read FLOAT16 (router projections FLOAT), weights are FLOAT16 initializers, norm/softmax/routing/RoPE ops read FLOAT; ORT checks every annotation", async () => {
    const { result } = await importFamily("qwen3_moe", "structure", "fp32", 51);
    const src = decode(path.join(result.dir, GRAPH_FILE));
    const model = decode(await ensureFp16Graph(path.join(result.dir, GRAPH_FILE)));
    const types = valueTypes(model);
    const nodes = model.graph!.node!;
    const inputTypes = (op: string) => nodes.filter((n) => n.opType === op).flatMap((n) => n.input!.filter((x) => x !== "").map((x) => types.get(x)));
    // the router projections read their fp16 weight through a Cast and compute in fp32 (FP32_PROJECTION)
    const castOf = new Map(nodes.filter((n) => n.opType === "Cast").map((n) => [n.output![0]!, n.input![0]!]));
    const readsRouter = (n: onnx.INodeProto) => n.input!.some((x) => FP32_PROJECTION.test(castOf.get(x) ?? x));
    const products = nodes.filter((n) => n.opType === "MatMul" || n.opType === "Gemm");
    const routers = products.filter(readsRouter);
    expect(routers).toHaveLength(2);
    expect(new Set(routers.flatMap((n) => n.input!.map((x) => types.get(x))))).toEqual(new Set([T.FLOAT]));
    const matmulInputs = products.filter((n) => !readsRouter(n)).flatMap((n) => n.input!.filter((x) => x !== "").map((x) => types.get(x)));
    // attention 2 MatMul per layer; Gemm: qkv, o, experts, LM head
    expect(matmulInputs.length).toBeGreaterThan(20);
    expect(new Set(matmulInputs)).toEqual(new Set([T.FLOAT16]));
    const weights = model.graph!.initializer!.filter((t) => t.dataLocation === onnx.TensorProto.DataLocation.EXTERNAL);
    expect(weights.length).toBe(src.graph!.initializer!.filter((t) => t.dataLocation === onnx.TensorProto.DataLocation.EXTERNAL).length);
    expect(new Set(weights.map((t) => t.dataType))).toEqual(new Set([T.FLOAT16]));
    const floatInputs = (op: string) => inputTypes(op).filter((t) => t === T.FLOAT || t === T.FLOAT16);
    // qwen3 (2 layers), fused graph: per layer 2 norms with the residual add (SkipSimplifiedLayerNormalization: input,
    // skip, weight) except layer 0's input norm, q and k norms per head (SimplifiedLayerNormalization: input, weight)
    expect(floatInputs("SimplifiedLayerNormalization")).toHaveLength(2 * (1 + 2 * 2));
    expect(floatInputs("SkipSimplifiedLayerNormalization")).toHaveLength(3 * 4);
    for (const op of ["SimplifiedLayerNormalization", "SkipSimplifiedLayerNormalization", "Softmax", "Cos", "Sin", "TopK", "ReduceSum"]) {
      expect(floatInputs(op).length, op).toBeGreaterThan(0);
      expect(new Set(floatInputs(op)), op).toEqual(new Set([T.FLOAT]));
    }
    // the RoPE angles: the Cast of the int64 positions to float feeds the angle product in fp32
    const posCast = nodes.find((n) => n.opType === "Cast" && n.input![0] === "position_ids")!;
    expect(types.get(posCast.output![0]!)).toBe(T.FLOAT);
    expect(ioTypes(model)).toEqual(ioTypes(src));

    // ORT's own type inference agrees with every annotation: one wrong element type and the session refuses to load
    await (await ort.InferenceSession.create(fp16GraphPath(path.join(result.dir, GRAPH_FILE)))).release();
    const gemmOut = nodes.find((n) => n.opType === "Gemm")!.output![0]!;
    const wrong = onnx.ModelProto.decode(onnx.ModelProto.encode(model).finish());
    wrong.graph!.valueInfo!.find((v) => v.name === gemmOut)!.type!.tensorType!.elemType = T.FLOAT;
    const wrongFile = path.join(result.dir, "wrong.onnx");
    writeFileSync(wrongFile, onnx.ModelProto.encode(wrong).finish());
    await expect(ort.InferenceSession.create(wrongFile)).rejects.toThrow();
    rmSync(wrongFile);

    // the fp16 graph's results differ from the fp32 graph's by fp16 rounding, not by float32 noise
    const canonical = zMoeLlmConfig.parse(JSON.parse(readFileSync(path.join(result.dir, "config.json"), "utf8")));
    const ids = randomIds(6, 64, 5);
    const a = await runGraph(path.join(result.dir, GRAPH_FILE), canonical, ids);
    const b = await runGraph(fp16GraphPath(path.join(result.dir, GRAPH_FILE)), canonical, ids);
    let d = 0;
    for (let i = 0; i < a.logits.length; i++) d = Math.max(d, Math.abs(a.logits[i]! - b.logits[i]!));
    console.log(`fp16 vs fp32 graph, same weights source: max |Δlogits| ${d.toExponential(2)}`);
    expect(d).toBeGreaterThan(1e-5);
  });

  it("an fp16-stored import reuses model.onnx.data (no second data file, Cast-after-weight dropped); fp32 storage writes model.fp16.onnx.data", async () => {
    const f16 = await importFamily("mixtral", "stored-fp16", "fp16", 52);
    // fp16 storage: the import writes the fp16 compute graph itself (only a graph proto; no conversion on first CUDA use)
    expect(existsSync(path.join(f16.result.dir, "model.fp16.onnx"))).toBe(true);
    const graph16 = await ensureFp16Graph(path.join(f16.result.dir, GRAPH_FILE));
    expect(graph16).toBe(path.join(f16.result.dir, "model.fp16.onnx"));
    expect(readdirSync(f16.result.dir).filter((f) => f.endsWith(".data"))).toEqual([DATA_FILE]);
    const src = decode(path.join(f16.result.dir, GRAPH_FILE));
    const m16 = decode(graph16);
    const ext = (t: onnx.ITensorProto) => Object.fromEntries(t.externalData!.map((e) => [e.key, e.value]));
    const srcExternal = new Map(src.graph!.initializer!.filter((t) => t.externalData?.length).map((t) => [t.name!, ext(t)]));
    const external = m16.graph!.initializer!.filter((t) => t.externalData?.length);
    expect(external.length).toBe(srcExternal.size);
    for (const t of external) expect(ext(t)).toEqual(srcExternal.get(t.name!)); // same file, same offsets
    const weightCasts = (m: onnx.IModelProto) => m.graph!.node!.filter((n) => n.opType === "Cast" && srcExternal.has(n.input![0]!)).length;
    expect(weightCasts(src)).toBe(srcExternal.size);
    // left: casts of the tiny norm weights, which feed fp32 ops (RMSNorm's scale after the fp32 normalisation), and
    // of the 2 router weights (their projection runs in fp32)
    expect(weightCasts(m16)).toBe(2 * 2 + 1 + 2);

    const f32 = await importFamily("mixtral", "stored-fp32", "fp32", 52);
    expect(existsSync(path.join(f32.result.dir, "model.fp16.onnx"))).toBe(false); // converted on first fp16 use only
    const graph32 = await ensureFp16Graph(path.join(f32.result.dir, GRAPH_FILE));
    const data32 = path.join(f32.result.dir, "model.fp16.onnx.data");
    expect(existsSync(data32)).toBe(true);
    const m32 = decode(graph32);
    for (const t of m32.graph!.initializer!.filter((x) => x.externalData?.length)) expect(ext(t).location).toBe("model.fp16.onnx.data");
    // the same fp16 values as the fp16-stored import (both round the same fp32 checkpoint), half of the fp32 bytes
    expect(Math.abs(statSync(data32).size - statSync(path.join(f16.result.dir, DATA_FILE)).size)).toBeLessThan(64 * external.length);
    expect(statSync(data32).size).toBeLessThan(statSync(path.join(f32.result.dir, DATA_FILE)).size * 0.55);
    const ids = randomIds(7, 64, 9);
    const a = await runGraph(graph16, f16.canonical, ids);
    const b = await runGraph(graph32, f32.canonical, ids);
    expect(Array.from(b.logits)).toEqual(Array.from(a.logits));

    // built once, then reused; a changed source graph is converted again
    const mtime = statSync(graph32).mtimeMs;
    expect(await ensureFp16Graph(path.join(f32.result.dir, GRAPH_FILE))).toBe(graph32);
    expect(statSync(graph32).mtimeMs).toBe(mtime);
    // temp files of a build whose process died are removed by the next build
    const dead = path.join(f32.result.dir, ".model.fp16.onnx.data.tmp-999999999-dead");
    writeFileSync(dead, "partial");
    const changed = decode(path.join(f32.result.dir, GRAPH_FILE));
    changed.docString = "changed";
    writeFileSync(path.join(f32.result.dir, GRAPH_FILE), onnx.ModelProto.encode(changed).finish());
    await ensureFp16Graph(path.join(f32.result.dir, GRAPH_FILE));
    expect(statSync(graph32).mtimeMs).toBeGreaterThan(mtime);
    expect(readdirSync(f32.result.dir).filter((f) => f.startsWith("."))).toEqual([]);
  });

  it("the bulk weight conversion rounds exactly as safetensors.ts f32ToF16Bits (ties to even, subnormals, NaN, ±inf) and refuses values past 65504", () => {
    const rnd = new SeededRandom(91);
    const special = [0, -0, 1, -1, 65504, -65504, 65519.99, 6.1035156e-5, 6.0e-8, 2.98e-8, 2.9e-8, 1e-10, 1 + 2 ** -11, 1 + 3 * 2 ** -11, 0.1, Infinity, -Infinity, NaN];
    const values = Float32Array.from([...special, ...Array.from({ length: 20000 }, (_, i) => rnd.fillNormal(new Float32Array(1), 1, 0)[0]! * 10 ** ((i % 12) - 8))]);
    const out = new Uint16Array(values.length);
    halfFromFloatBits(new Uint32Array(values.buffer), out, "test");
    expect(Array.from(out)).toEqual(Array.from(values, (v) => f32ToF16Bits(v)));
    expect(() => halfFromFloatBits(new Uint32Array(Float32Array.from([1, -70000]).buffer), new Uint16Array(2), 'weight "w"')).toThrow('weight "w": value -70000 at index 1 does not fit fp16');
    expect(() => halfFromFloatBits(new Uint32Array(Float32Array.from([65520]).buffer), new Uint16Array(1), "w")).toThrow("does not fit fp16");
  });

  it("an op without an fp16 rule is refused naming the node", () => {
    const model = onnx.ModelProto.create({
      irVersion: 8,
      opsetImport: [{ domain: "", version: 17 }],
      graph: {
        name: "g",
        input: [{ name: "x", type: { tensorType: { elemType: T.FLOAT } } }],
        output: [{ name: "y", type: { tensorType: { elemType: T.FLOAT } } }],
        node: [{ opType: "Einsum", name: "mix", input: ["x"], output: ["y"], attribute: [{ name: "equation", type: onnx.AttributeProto.AttributeType.STRING, s: new TextEncoder().encode("i->i") }] }],
      },
    });
    expect(() => convertToFp16(model)).toThrow(/node "mix" \(Einsum\) has no fp16 rule/);
  });
});

describe("activations beyond fp16's range in RMSNorm", () => {
  it("embeddings scaled so x² > 65504: the fp16 graph stays finite and close (the norm squares in fp32)", async () => {
    const src = path.join(tmp, "overflow");
    const fixture = await writeFamilyCheckpoint(src, "mixtral", { seed: 61 });
    const embed = fixture.tensors.get("model.embed_tokens.weight")!;
    embed.data = embed.data.map((v) => v * 2000); // |x| up to ~600: x² up to ~3.6e5
    await writeSafetensors(path.join(src, "model.safetensors"), [...fixture.tensors].map(([name, t]) => ({ name, shape: t.shape, data: t.data })));
    const r = await importCheckpoint(src, { root, name: "overflow", dtype: "fp16" });
    for (const t of fixture.tensors.values()) t.data = t.data.map(half);
    const canonical = zMoeLlmConfig.parse(JSON.parse(readFileSync(path.join(r.dir, "config.json"), "utf8")));
    const ids = randomIds(8, 64, 62);
    const H = 32;
    const squares = ids.flatMap((id) => Array.from(embed.data.subarray(id * H, (id + 1) * H), (v) => v * v));
    expect(Math.max(...squares)).toBeGreaterThan(65504);
    const file = await ensureFp16Graph(path.join(r.dir, GRAPH_FILE));
    // ORT's CPU provider runs nodes that lack an fp16 kernel in float with casts around them (and drops cast pairs
    // between such nodes), so on CPU an fp16 Pow would not overflow either: what keeps it from overflowing on CUDA
    // is that the squaring reads float, checked here on the graph itself
    const m = decode(file), types = valueTypes(m);
    const norms = m.graph!.node!.filter((n) => (n.opType ?? "").endsWith("SimplifiedLayerNormalization"));
    expect(norms).toHaveLength(2 * 2 + 1);
    for (const n of norms) expect(types.get(n.input![0]!)).toBe(T.FLOAT);
    const out = await runGraph(file, canonical, ids);
    const ref = referenceForward("mixtral", fixture.config, fixture.tensors, ids);
    expect(Array.from(out.logits).every(Number.isFinite)).toBe(true);
    expect(Array.from(out.lastHidden).every(Number.isFinite)).toBe(true);
    const flat = ref.logits.flat();
    let d = 0;
    for (let i = 0; i < flat.length; i++) d = Math.max(d, Math.abs(out.logits[i]! - flat[i]!));
    const mismatched = ref.layers.reduce((a, layer, l) => a + layer.mask.filter((m, s) => m.join() !== Array.from(out.trace![l]!.mask.subarray(s * 8, (s + 1) * 8)).join()).length, 0);
    console.log(`fp16 with max x² ${Math.max(...squares).toFixed(0)}: max |Δlogits| ${d.toExponential(2)} of ${maxAbs(flat).toFixed(2)}, routing differences ${mismatched}`);
    expect(mismatched).toBe(0);
    expect(d).toBeLessThan(REL_TOL * maxAbs(flat));
  });
});

describe("choosing the compute dtype at run time", () => {
  const pool = new SessionPool({ intraOpNumThreads: 1, executionProvider: "cpu" });
  const saved = { models: process.env.STUDIO_MODELS_DIR, dtype: process.env.STUDIO_COMPUTE_DTYPE };
  afterEach(() => {
    for (const [k, v] of [["STUDIO_MODELS_DIR", saved.models], ["STUDIO_COMPUTE_DTYPE", saved.dtype]] as const) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  });

  it("cuda → fp16, cpu → fp32, STUDIO_COMPUTE_DTYPE overrides; a bad value is named", () => {
    expect(computeDtypeFor("cuda", "")).toBe("fp16");
    expect(computeDtypeFor("cpu", undefined)).toBe("fp32");
    expect(computeDtypeFor("cpu", "fp16")).toBe("fp16");
    expect(computeDtypeFor("cuda", "FP32")).toBe("fp32");
    expect(() => parseComputeDtype("half")).toThrow('STUDIO_COMPUTE_DTYPE: "half" is not one of auto, fp32, fp16');
  });

  it("the memory estimate counts 2 bytes per weight for fp16 compute (Uni-MoE-2.0-Omni LLM: ~61 GB vs ~121 GB)", () => {
    const c = zMoeLlmConfig.parse({
      model_type: "grin_qwen2_vl", hidden_size: 3584, num_hidden_layers: 28, num_attention_heads: 28, num_key_value_heads: 4, head_dim: 128, vocab_size: 152064,
      rope_scaling: { mrope_section: [16, 24, 24] }, mlp_dynamic_expert_num: 4, mlp_dynamic_null_expert_num: 1, mlp_fixed_expert_num: 2,
      dynamic_intermediate_size: 18944, shared_intermediate_size: 2368,
    });
    const fp16 = estimateFromConfig(c, 4096, "fp16"), fp32 = estimateFromConfig(c, 4096, "fp32");
    expect(fp16.weights).toBe(parameterCounts(c).total * 2);
    expect(fp32.weights).toBe(parameterCounts(c).total * 4);
    expect(fp16.kvCache).toBe(fp32.kvCache);
    expect(fp16.bytes / 1e9).toBeCloseTo(60.7, 1);
    expect(fp16.explain).toContain("2 B/param (fp16 compute)");
  });

  it("STUDIO_COMPUTE_DTYPE=fp16 on CPU: the session runs model.fp16.onnx with the graph's own inputs/outputs, generates greedily, and decodes with the KV cache like fp32", async () => {
    process.env.STUDIO_MODELS_DIR = path.join(tmp, "run-models");
    await writeFamilyCheckpoint(path.join(tmp, "gen-src"), "qwen2_moe", { seed: 71, configOverride: { vocab_size: 320 } });
    await importCheckpoint(path.join(tmp, "gen-src"), { name: "gen", dtype: "fp16" });
    const model = await resolveModel("qwen2_moe/gen");
    const run = (dtype: "fp16" | "fp32") => {
      process.env.STUDIO_COMPUTE_DTYPE = dtype;
      return withMoeLlm(model, IMPORT_GRAPH, pool, async ({ runner, tokenizer, handle }) => {
        const h = handle as ImportedSession;
        const g = await generate(runner, tokenizer, { ids: [3, 141, 59, 26, 5], modelName: model.ref }, { maxNewTokens: 5, temperature: 0, topK: 0, topP: 1, seed: 0, stopTokens: [] });
        // prefill 6 tokens, then one decode step fed the present keys/values (fp32 at the interface)
        const ids = [7, 300, 12, 99, 4, 250];
        const pos = (from: number, n: number) => Array.from({ length: 3 * n }, (_, q) => from + (q % n));
        const pre = await runner.forward({ batch: 1, seq: 6, ids, positions: pos(0, 6) });
        const step = await runner.forward({ batch: 1, seq: 1, ids: [17], positions: pos(6, 1), past: pre.present });
        return { h, g, pre, step, inputs: [...h.session.inputNames], outputs: [...h.session.outputNames] };
      });
    };
    const a = await run("fp16");
    const b = await run("fp32");
    expect(a.h.computeDtype).toBe("fp16");
    expect(path.basename(a.h.graphFile)).toBe("model.fp16.onnx");
    expect(a.h.executionProvider).toBe("cpu");
    expect(b.h.computeDtype).toBe("fp32");
    expect(path.basename(b.h.graphFile)).toBe(GRAPH_FILE);
    expect(a.inputs).toEqual(b.inputs);
    expect(a.outputs).toEqual(b.outputs);
    expect(ioTypes(decode(a.h.graphFile))).toEqual(ioTypes(decode(b.h.graphFile)));
    expect(a.step.present!.keys[0]).toBeInstanceOf(Float32Array);
    expect(a.g.newIds).toHaveLength(5);
    const rel = (x: Float32Array, y: Float32Array) => {
      let d = 0;
      for (let i = 0; i < x.length; i++) d = Math.max(d, Math.abs(x[i]! - y[i]!));
      return d / maxAbs(y);
    };
    const dPre = rel(a.pre.logits, b.pre.logits), dStep = rel(a.step.logits, b.step.logits), dKey = rel(a.step.present!.keys[1]!, b.step.present!.keys[1]!);
    console.log(`fp16 vs fp32 session: greedy ${a.g.newIds.join(",")} vs ${b.g.newIds.join(",")}; relative max |Δlogits| prefill ${dPre.toExponential(2)}, decode step ${dStep.toExponential(2)}, |Δpresent keys| ${dKey.toExponential(2)}`);
    expect(a.g.newIds).toEqual(b.g.newIds);
    expect(dPre).toBeLessThan(REL_TOL);
    expect(dStep).toBeLessThan(REL_TOL);
    expect(dKey).toBeLessThan(REL_TOL);
    const loaded = await loadedSessions(model.dir);
    expect(loaded.map((s) => `${s.file}:${s.provider}:${s.computeDtype}`).sort()).toEqual(["model.fp16.onnx:cpu:fp16", "model.onnx:cpu:fp32"]);
  });
});

// Compared with the fp32 graph of the same (unrounded) weights: the difference includes the weights' fp16 rounding.
describe("the same transform on the encoder towers (SigLIP vision, Whisper + query former audio)", () => {
  const vc = zVisionConfig.parse({ model_type: "siglip_vision_model", image_size: 70, patch_size: 14, hidden_size: 24, intermediate_size: 40, num_attention_heads: 3, num_hidden_layers: 3, layer_norm_eps: 1e-6, hidden_act: "gelu_pytorch_tanh", projector_hidden_size: 20, out_dim: 32 });
  const ac = zAudioConfig.parse({ model_type: "whisper", num_mel_bins: 16, max_source_positions: 1500, max_target_positions: 12, d_model: 24, encoder_layers: 2, encoder_attention_heads: 3, encoder_ffn_dim: 40, decoder_layers: 2, decoder_attention_heads: 2, decoder_ffn_dim: 32, vocab_size: 50, num_queries: 10, qformer_layers: 2, qformer_attention_heads: 2, qformer_ffn_dim: 32, out_dim: 32 });
  // ×10 gain on Linear/embedding weights so activations are O(1) and the nonlinearities matter (as towers.test.ts)
  const gained = (w: Map<string, Tensor32>, table: { name: string; kind: string }[]) => {
    for (const p of table) if (p.kind === "linear" || p.kind === "embed") w.get(p.name)!.data.forEach((v, i, a) => (a[i] = v * 10));
    return new MemoryWeights(w);
  };
  const cases = [
    { kind: "vision" as const, input: "pixel_values", dims: [1, 3, 70, 70], build: (b: ExternalDataGraphBuilder) => buildVisionGraph(vc, gained(seedEncoderWeights("vision", vc, 81), visionParamTable(vc)), b) },
    { kind: "audio" as const, input: "input_features", dims: [1, 16, 3000], build: (b: ExternalDataGraphBuilder) => buildAudioGraph(ac, gained(seedEncoderWeights("audio", ac, 82), audioParamTable(ac)), b) },
  ];
  for (const c of cases)
    it(`${c.kind}: convolutions and matrix products in fp16, LayerNorm/softmax in fp32, output within 1e-2 of the fp32 graph`, async () => {
      const dir = path.join(tmp, `tower-${c.kind}`);
      mkdirSync(dir);
      const builder = new ExternalDataGraphBuilder(c.kind, path.join(dir, `${c.kind}.onnx.data`), "fp32");
      writeFileSync(path.join(dir, `${c.kind}.onnx`), c.build(builder));
      const file16 = await ensureFp16Graph(path.join(dir, `${c.kind}.onnx`));
      expect(existsSync(path.join(dir, `${c.kind}.fp16.onnx.data`))).toBe(true);
      const m = decode(file16), types = valueTypes(m);
      const reads = (op: string) => m.graph!.node!.filter((n) => n.opType === op).flatMap((n) => n.input!.filter((x) => x !== "").map((x) => types.get(x)));
      expect(new Set([...reads("Conv"), ...reads("MatMul")])).toEqual(new Set([T.FLOAT16]));
      expect(new Set([...reads("LayerNormalization"), ...reads("Softmax")])).toEqual(new Set([T.FLOAT]));
      const x = new SeededRandom(83).fillNormal(new Float32Array(c.dims.reduce((a, b) => a * b, 1)), 1, 0);
      const run = async (file: string) => {
        const session = await ort.InferenceSession.create(file, { intraOpNumThreads: 1 });
        try {
          const out = await session.run({ [c.input]: new ort.Tensor("float32", x, c.dims) });
          return out[session.outputNames[0]!]!.data as Float32Array;
        } finally {
          await session.release();
        }
      };
      const a = await run(path.join(dir, `${c.kind}.onnx`)), b = await run(file16);
      let d = 0;
      for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i]! - b[i]!));
      console.log(`fp16 ${c.kind} tower: max |Δ| ${d.toExponential(2)} of max |y| ${maxAbs(a).toFixed(2)}`);
      expect(b.every(Number.isFinite)).toBe(true);
      expect(d).toBeLessThan(REL_TOL * maxAbs(a));
    });
});
