import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { onnx } from "onnx-proto";
import { afterAll, describe, expect, it } from "vitest";
import type { MoeLlmConfig } from "@/models/moe-llm/config";
import { mapCheckpoint, MappedWeights } from "@/models/import/checkpoint";
import { convertToFp16 } from "@/models/import/fp16";
import { buildMoeLlmGraph, type MoeGraphOptions } from "@/models/moe-llm/moe-llm-graph";
import { decodeTwinOptions } from "@/models/moe-llm/moe-llm-model";
import { SafetensorsWeights } from "@/models/io/safetensors";
import type { WeightSource } from "@/models/io/weights";
import { randomConfig, randomWeights } from "../../../reference/random";
import { writeFamilyCheckpoint, type Family } from "../../import/family-checkpoints";

/**
 * Every op of the fused decoder graph (all families, both dispatch modes, trace/lens/KV cache, fp32 and bf16 routing,
 * token drop, and the CPU decode twin's forms) has a CUDA kernel in ONNX Runtime's kernel table (data/ort-cuda-kernels.json, derived from
 * OperatorKernels.md, source recorded there); GroupQueryAttention's CUDA kernel is fp16/bf16 only, so it must compute in
 * fp16 in the fp16 compute graph CUDA sessions run (models/import/fp16.ts); the fixed-shape ("dense") dispatch has no
 * data-dependent shape in the layers (no NonZero).
 */
const table = JSON.parse(readFileSync(path.join(__dirname, "data/ort-cuda-kernels.json"), "utf8")) as { kernels: Record<string, string[]> };
const tmp = mkdtempSync(path.join(os.tmpdir(), "cuda-kernels-"));
const closers: (() => void)[] = [];
afterAll(() => {
  for (const c of closers) c();
  rmSync(tmp, { recursive: true, force: true });
});

const opsOf = (m: onnx.IModelProto) => m.graph!.node!.map((n) => `${n.domain || "ai.onnx"}:${n.opType}`);

async function graphs(): Promise<{ label: string; config: MoeLlmConfig; weights: WeightSource }[]> {
  const out: { label: string; config: MoeLlmConfig; weights: WeightSource }[] = [];
  for (const seed of [1, 2, 3]) {
    const config = randomConfig(seed, seed === 3 ? ({ token_drop: true } as Partial<MoeLlmConfig>) : {});
    out.push({ label: `uni-moe ${seed}`, config, weights: randomWeights(config, seed) });
  }
  const families: Family[] = ["qwen2_moe", "qwen3_moe", "olmoe", "mixtral", "deepseek_v2", "deepseek_v3", "phimoe", "gpt_oss"];
  for (const family of families) {
    const src = path.join(tmp, family);
    await writeFamilyCheckpoint(src, family, { seed: 5 });
    const st = new SafetensorsWeights(src);
    closers.push(() => st.close());
    const map = mapCheckpoint(src, st, family);
    out.push({ label: family, config: map.config, weights: new MappedWeights(st, map) });
  }
  return out;
}

describe("the fused decoder's ops on CUDA", () => {
  it("every op has a CUDA kernel; GroupQueryAttention runs in fp16; dense dispatch has no NonZero", async () => {
    const used = new Map<string, Set<string>>();
    for (const { label, config, weights } of await graphs())
      for (const moe of ["sparse", "dense"] as const)
        for (const routingPrecision of config.model_type.startsWith("uni") || label.startsWith("uni") ? (["fp32", "bf16"] as const) : (["fp32"] as const)) {
          const options: MoeGraphOptions = { moe, trace: true, kvCache: true, lens: true, routingPrecision };
          const model = onnx.ModelProto.decode(buildMoeLlmGraph(config, weights, options));
          const ops = opsOf(model);
          for (const op of ops) (used.get(op) ?? used.set(op, new Set()).get(op)!).add(label);
          if (moe === "dense") expect(model.graph!.node!.filter((n) => n.opType === "NonZero" && /^l\d+\//.test(n.name ?? "")).map((n) => n.name), `${label}: NonZero in dense layers`).toEqual([]);
          if (moe === "sparse" && routingPrecision === "fp32") {
            const fp16 = convertToFp16(model).model;
            const types = new Map<string, number>();
            for (const v of fp16.graph!.valueInfo ?? []) types.set(v.name!, v.type!.tensorType!.elemType!);
            for (const n of fp16.graph!.node!.filter((n) => n.opType === "GroupQueryAttention"))
              expect(types.get(n.input![0]!), `${label}: GroupQueryAttention query type in the fp16 graph`).toBe(onnx.TensorProto.DataType.FLOAT16);
          }
        }
    // the CPU decode twin's graphs too (decodeTwinOptions: the decode-step form with the MoE operator, or the dense one)
    for (const { label, config, weights } of await graphs()) {
      const twin = decodeTwinOptions(config, { moe: "sparse", trace: true, kvCache: true, lens: true }, "cpu");
      if (!twin) continue;
      for (const op of opsOf(onnx.ModelProto.decode(buildMoeLlmGraph(config, weights, twin)))) (used.get(op) ?? used.set(op, new Set()).get(op)!).add(`${label} (decode twin)`);
    }
    expect([...used.keys()], "the decode-step twin's MoE operator is among the ops checked").toContain("com.microsoft:MoE");
    const missing = [...used.keys()].filter((op) => !table.kernels[op]);
    console.log(`${used.size} ops across the decoder graphs: ${[...used.keys()].sort().join(", ")}`);
    expect(missing, "ops without a CUDA kernel").toEqual([]);
    expect(table.kernels["com.microsoft:GroupQueryAttention"]).not.toContain("float");
  });
});
