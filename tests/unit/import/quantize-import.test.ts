/**
 * `cli import --quant`: the quantised graph with external data (models/import/quantize-file.ts), what the manifest and
 * the memory estimate record, graph variants built from the checkpoint quantised the same way, the fp16 compute graph of
 * a quantised import, and runs recording the quantisation. The numerics of MatMulNBits are in tests/unit/models/onnx/quantize.test.ts.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { onnx } from "onnx-proto";
import * as ort from "onnxruntime-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SessionPool } from "@/engine/runtime";
import { paramNames } from "@/models/moe-llm/config";
import { forwardJson } from "@/models/moe-llm/forward";
import { generate } from "@/models/moe-llm/generate";
import { readExternalBytes } from "@/models/import/external-graph";
import { ensureFp16Graph } from "@/models/import/fp16";
import { importCheckpoint, readManifest } from "@/models/import/import";
import { estimateFromConfig, estimateMemory, quantizedShare } from "@/models/import/memory";
import { resolveModel, withMoeLlm } from "@/models/moe-llm/moe-llm-model";
import { MoeLlmRunner } from "@/models/moe-llm/moe-llm-session";
import { resolveQuant } from "@/models/onnx/quantize";
import { decodeToF32 } from "@/models/io/safetensors";
import { refDequantNBits } from "../../reference/matmul-nbits";
import { writeFamilyCheckpoint } from "./family-checkpoints";
import { cliEntry } from "../../cli-bundle";

const tmp = mkdtempSync(path.join(os.tmpdir(), "import-quant-"));
const saved = process.env.STUDIO_MODELS_DIR;
const models = path.join(tmp, "models");
const pool = new SessionPool({ intraOpNumThreads: 1, executionProvider: "cpu" });

function cli(...args: string[]) {
  const r = spawnSync(process.execPath, [...cliEntry(), ...args], { encoding: "utf8", env: { ...process.env, STUDIO_MODELS_DIR: models }, timeout: 120_000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

const graphOf = (dir: string) => onnx.ModelProto.decode(readFileSync(path.join(dir, "model.onnx")));
const attr = (n: onnx.INodeProto, a: string) => Number(n.attribute!.find((x) => x.name === a)!.i);

beforeAll(async () => {
  process.env.STUDIO_MODELS_DIR = models;
  // olmoe in small but with widths the blocks divide (and one they do not: intermediate 48 with block 32)
  await writeFamilyCheckpoint(path.join(tmp, "src"), "olmoe", { seed: 3, dtype: "BF16", configOverride: { hidden_size: 64, intermediate_size: 48, vocab_size: 300 } });
});
afterAll(() => {
  if (saved === undefined) delete process.env.STUDIO_MODELS_DIR;
  else process.env.STUDIO_MODELS_DIR = saved;
  rmSync(tmp, { recursive: true, force: true });
});

describe("import --quant", () => {
  it("bad quantisation flags are usage errors (exit 2)", () => {
    const src = path.join(tmp, "src");
    expect(cli("import", src, "--quant", "int3").err).toContain('--quant must be int8 or int4 (got "int3")');
    expect(cli("import", src, "--quant", "int4", "--quant-block", "48").code).toBe(2);
    expect(cli("import", src, "--quant-block", "32").err).toContain("--quant-block needs --quant int8|int4");
    expect(cli("import", src, "--quant", "int8", "--quant-compute", "fp16").code).toBe(2);
  });

  it("writes MatMulNBits for attention and experts, keeps routers/norms/embeddings/LM head, records it, and is smaller", async () => {
    const src = path.join(tmp, "src");
    expect(cli("import", src, "--name", "full", "--dtype", "bf16").code).toBe(0);
    const r = cli("import", src, "--name", "q4", "--dtype", "bf16", "--quant", "int4");
    expect(r.code, r.err).toBe(0);
    expect(r.out).toContain("quantised: int4 (block 32, symmetric)");
    expect(r.out).toMatch(/memory to run: ~[\d.]+ [MG]B on CPU \(fp32: weights [\d.]+ [MG]B \([\d.]+ [MG]B int4 for/);
    const full = path.join(models, "olmoe", "full"), q4 = path.join(models, "olmoe", "q4");
    const m = readManifest(q4)!;
    // 2 layers × (q, k, v, o + 64 experts × gate/up (fused) + down): the LM head and routers stay
    expect(m.quant).toMatchObject({ bits: 4, blockSize: 32, symmetric: true, accuracyLevel: 0, lmHead: false });
    const config = (await resolveModel("olmoe/q4")).config;
    // the estimate from the config (before an import) covers exactly the matrices the transform quantised
    expect(quantizedShare(config, resolveQuant({ kind: "int4" }))).toEqual({ parameters: m.quant!.parameters, bytes: m.quant!.bytes, bits: 4 });
    expect(m.bytesOnDisk).toBeLessThan(readManifest(full)!.bytesOnDisk * 0.6);
    expect(estimateMemory(q4).weights).toBeLessThan(estimateFromConfig(config).weights * 0.4);
    expect(readdirSync(q4).filter((f) => f.includes(".tmp-"))).toEqual([]);

    // every MatMulNBits weight dequantises to within one quantisation step of the full import's weight; kept weights are byte-identical
    const gq = graphOf(q4), gf = graphOf(full);
    const initQ = new Map(gq.graph!.initializer!.map((t) => [t.name!, t]));
    const initF = new Map(gf.graph!.initializer!.map((t) => [t.name!, t]));
    const nodes = gq.graph!.node!.filter((n) => n.opType === "MatMulNBits");
    expect(nodes.length).toBe(m.quant!.matrices);
    let checked = 0;
    for (const n of nodes) {
      const N = attr(n, "N"), K = attr(n, "K");
      const source = n.input![1]!.replace(/\.q4$/, "");
      const w = decodeToF32(readExternalBytes(full, initF.get(source)!), "BF16");
      const deq = refDequantNBits({ N, K, bits: 4, blockSize: 32, b: readExternalBytes(q4, initQ.get(n.input![1]!)!), scales: decodeToF32(readExternalBytes(q4, initQ.get(n.input![2]!)!), "F32") });
      const nk = initF.get(source)!.dims!.map(Number)[0] === N; // Gemm(transB) weight [N, K], else MatMul [K, N]
      let worst = 0, amax = 0;
      for (let i = 0; i < N; i++) for (let k = 0; k < K; k++) {
        const v = w[nk ? i * K + k : k * N + i]!;
        amax = Math.max(amax, Math.abs(v));
        worst = Math.max(worst, Math.abs(v - deq[i * K + k]!));
      }
      expect(worst).toBeLessThanOrEqual(amax / 8 + 1e-7);
      checked++;
    }
    expect(checked).toBeGreaterThan(100);
    for (const kept of [paramNames.router(0), paramNames.lmHead, paramNames.embed, paramNames.inputNorm(1)]) {
      expect(initQ.has(kept), kept).toBe(true);
      expect(Buffer.from(readExternalBytes(q4, initQ.get(kept)!)).equals(Buffer.from(readExternalBytes(full, initF.get(kept)!)))).toBe(true);
    }
    expect(cli("import", src, "--name", "q4", "--dtype", "bf16", "--quant", "int4").out).toContain("already imported from these files");
    const again = cli("import", src, "--name", "q4", "--dtype", "bf16", "--quant", "int8", "--quant-asym");
    expect(again.out).toContain("quantised: int8 (block 128, asymmetric)");
    expect(readManifest(q4)!.quant).toMatchObject({ bits: 8, blockSize: 128, symmetric: false, accuracyLevel: 4 });
  });

  it("runs: generation works; a graph variant is quantised too; the fp16 compute graph loads", async () => {
    await importCheckpoint(path.join(tmp, "src"), { name: "run4", dtype: "bf16", quant: { kind: "int4", blockSize: 16 } });
    const model = await resolveModel("olmoe/run4");
    expect(model.quantization).toMatchObject({ bits: 4, blockSize: 16 });
    const r = await withMoeLlm(model, { moe: "sparse", trace: true, kvCache: true }, pool, ({ runner, tokenizer }) =>
      generate(runner, tokenizer, { ids: [1, 2, 3, 4], modelName: model.ref }, { maxNewTokens: 3, temperature: 0, topK: 0, topP: 1, seed: 0, stopTokens: [] }),
    );
    expect(r.newIds).toHaveLength(3);
    // forwardJson runs the no-cache variant, built from the checkpoint on first use: quantised like model.onnx
    const f = await forwardJson(model, pool, [1, 2, 3], {});
    expect(f.logits.every(Number.isFinite)).toBe(true);
    const variants = readdirSync(path.join(model.dir, "variants"));
    expect(variants.length).toBe(1);
    const vg = onnx.ModelProto.decode(readFileSync(path.join(model.dir, "variants", variants[0]!, "model.onnx")));
    expect(vg.graph!.node!.filter((n) => n.opType === "MatMulNBits").length).toBe(readManifest(model.dir)!.quant!.matrices);

    const fp16 = await ensureFp16Graph(path.join(model.dir, "model.onnx"));
    const options = readManifest(model.dir)!.graph.options;
    const s32 = await ort.InferenceSession.create(path.join(model.dir, "model.onnx"), { intraOpNumThreads: 1, logSeverityLevel: 3 });
    const s16 = await ort.InferenceSession.create(fp16, { intraOpNumThreads: 1, logSeverityLevel: 3 });
    const input = { batch: 1, seq: 3, ids: [5, 6, 7], positions: [0, 1, 2, 0, 1, 2, 0, 1, 2] };
    const [a, b] = [await MoeLlmRunner.fromSession(model.config, options, s32).forward(input), await MoeLlmRunner.fromSession(model.config, options, s16).forward(input)];
    const la = a.logits, lb = b.logits;
    let d = 0, mx = 0;
    la.forEach((v, i) => ((d = Math.max(d, Math.abs(v - lb[i]!))), (mx = Math.max(mx, Math.abs(v)))));
    console.log(`quantised int4 import: fp16 compute graph vs fp32 compute: ${(d / mx).toExponential(2)} of the largest logit`);
    expect(d / mx).toBeLessThan(2e-2);
    await s32.release();
    await s16.release();
  });
});
