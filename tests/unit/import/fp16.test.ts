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
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import * as ort from "onnxruntime-node";
import { onnx } from "onnx-proto";
import { afterAll, describe, expect, it } from "vitest";
import { zMoeLlmConfig, type MoeLlmConfig } from "@/models/config";
import { convertToFp16, ensureFp16Graph, fp16GraphPath } from "@/models/import/fp16";
import { DATA_FILE, GRAPH_FILE, IMPORT_GRAPH, importCheckpoint } from "@/models/import/import";
import type { StorageDtype } from "@/models/import/external-graph";
import { MoeLlmRunner, type ForwardOutput } from "@/models/moe-llm-session";
import { bf16BitsToF32, f16BitsToF32, f32ToBf16Bits, f32ToF16Bits } from "@/models/safetensors";
import { referenceForward, type Family } from "../../reference/families/topk-moe";
import { randomIds } from "../../reference/random";
import { writeFamilyCheckpoint } from "./family-checkpoints";

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

async function importFamily(family: Family, label: string, dtype: StorageDtype, seed: number) {
  const src = path.join(tmp, `${family}-${label}`);
  const fixture = await writeFamilyCheckpoint(src, family, { seed });
  const result = await importCheckpoint(src, { root, name: label, dtype });
  const config = zMoeLlmConfig.parse(JSON.parse(readFileSync(path.join(result.dir, "config.json"), "utf8")));
  // the fp16 graph holds every weight rounded to fp16 (after the bf16 storage rounding): the reference gets the same weights
  const stored = dtype === "bf16" ? (v: number) => bf16BitsToF32(f32ToBf16Bits(v)) : (v: number) => v;
  for (const t of fixture.tensors.values()) t.data = t.data.map((v) => half(stored(v)));
  return { ...fixture, result, canonical: config };
}

async function compareFamily(family: Family, dtype: StorageDtype, seed: number) {
  const { config, tensors, result, canonical } = await importFamily(family, `${family}-${dtype}`, dtype, seed);
  const file = ensureFp16Graph(path.join(result.dir, GRAPH_FILE));
  const S = 9;
  const ids = randomIds(S, config.vocab_size as number, seed + 100);
  const out = await runGraph(file, canonical, ids);
  const ref = referenceForward(family, config, tensors, ids);
  const K = config.num_experts_per_tok as number;
  const R = ref.layers[0]!.mask[0]!.length - (family === "qwen2_moe" ? 1 : 0);
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
        const m = margin(layer.routerLogits[s]!, K, R);
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
});
