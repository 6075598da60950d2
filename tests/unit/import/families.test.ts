import { existsSync, mkdtempSync, readdirSync, rmSync, statSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { DATA_FILE, importCheckpoint, inspectCheckpoint } from "@/models/import/import";
import type { StorageDtype } from "@/models/import/external-graph";
import { importAndCompareIn } from "./compare-imported";
import { writeFamilyCheckpoint, type Family, type WriteOptions } from "./family-checkpoints";

const tmp = mkdtempSync(path.join(os.tmpdir(), "import-families-"));
const root = path.join(tmp, "models");
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const importAndCompare = (family: Family, opts: WriteOptions, label: string, dtype?: StorageDtype) => importAndCompareIn(tmp, root, family, opts, label, dtype);

describe("import of tiny random checkpoints, per family, vs the plain-TS reference (fp32, 1e-4)", () => {
  it("qwen2_moe: sharded with model.safetensors.index.json; shared expert with sigmoid gate; re-import is a no-op", async () => {
    const { src, result } = await importAndCompare("qwen2_moe", { shards: 3, seed: 2 }, "q2-sharded");
    expect(readdirSync(src).filter((f) => f.endsWith(".safetensors"))).toHaveLength(3);
    expect(result.manifest.dtype).toBe("fp32");
    const again = await importCheckpoint(src, { root, name: "q2-sharded" });
    expect(again.status).toBe("unchanged");
    expect(again.manifest.importedAt).toBe(result.manifest.importedAt);
  });
  it("qwen3_moe: bf16 source, head_dim != hidden/heads, per-head q/k norm, renormalised top-k", async () => {
    await importAndCompare("qwen3_moe", { dtype: "BF16", seed: 3 }, "q3-bf16");
  });
  it("olmoe: top-8 of 64, q/k norm over the whole projection", async () => {
    await importAndCompare("olmoe", { seed: 4, shards: 2 }, "olmoe");
  });
  it("mixtral: top-2, softmax over the chosen logits (block_sparse_moe w1/w2/w3)", async () => {
    await importAndCompare("mixtral", { seed: 5, dtype: "BF16" }, "mixtral");
  });
  it("--dtype fp16: weights stored as FLOAT16 external data (+ Cast), half the bytes, same results on the rounded weights", async () => {
    const { result } = await importAndCompare("mixtral", { seed: 6 }, "mixtral-fp16", "fp16");
    const fp32 = await importCheckpoint(path.join(tmp, "mixtral-mixtral"), { root, name: "mixtral" });
    expect(result.manifest.dtype).toBe("fp16");
    const dataBytes = (dir: string) => statSync(path.join(dir, DATA_FILE)).size;
    expect(dataBytes(result.dir)).toBeLessThan(dataBytes(fp32.dir) * 0.6);
  });
});

describe("checkpoint problems are named", () => {
  it("a missing tensor fails the import with its checkpoint name, and leaves nothing behind", async () => {
    const src = path.join(tmp, "missing");
    const gone = "model.layers.1.mlp.experts.3.up_proj.weight";
    await writeFamilyCheckpoint(src, "qwen3_moe", { omit: [gone] });
    await expect(importCheckpoint(src, { root, name: "missing" })).rejects.toThrow(`missing 1 tensor(s): "${gone}"`);
    expect(existsSync(path.join(root, "qwen3_moe", "missing"))).toBe(false);
    expect(readdirSync(path.join(root, "qwen3_moe")).filter((f) => f.startsWith(".missing"))).toEqual([]);
  });
  it("a missing shared_expert_gate (second part of the qwen2_moe router) is named", async () => {
    const src = path.join(tmp, "missing-gate");
    await writeFamilyCheckpoint(src, "qwen2_moe", { omit: ["model.layers.0.mlp.shared_expert_gate.weight"] });
    const map = inspectCheckpoint(src);
    expect(map.missing.map((m) => m.expected)).toEqual(["model.layers.0.mlp.shared_expert_gate.weight"]);
  });
  it("inspect-checkpoint names an unknown extra tensor as unclaimed and says which rule claimed the others", async () => {
    const src = path.join(tmp, "extra");
    await writeFamilyCheckpoint(src, "mixtral", { extra: new Map([["model.layers.0.block_sparse_moe.mystery_bias", [8]]]) });
    const map = inspectCheckpoint(src);
    expect(map.unclaimed.map((t) => t.name)).toEqual(["model.layers.0.block_sparse_moe.mystery_bias"]);
    expect(map.missing).toEqual([]);
    const w1 = map.tensors.find((t) => t.name === "model.layers.1.block_sparse_moe.experts.5.w1.weight")!;
    expect(w1.rule).toBe("model.layers.{i}.block_sparse_moe.experts.{e}.w1.weight");
    expect(w1.canonical).toBe("model.layers.1.mlp.dynamic_real_moe.deepspeed_moe.experts.deepspeed_experts.5.gate_proj.weight");
  });
  it("an unknown model_type is refused naming the known families", async () => {
    const src = path.join(tmp, "unknown");
    await writeFamilyCheckpoint(src, "mixtral", { configOverride: { model_type: "jamba" } });
    expect(() => inspectCheckpoint(src)).toThrow(/model_type "jamba" is not a family .*known: grin_qwen2_vl/);
  });
});

describe("dense layers between MoE layers (Qwen2-MoE / Qwen3-MoE) and YaRN", () => {
  it("qwen2_moe mlp_only_layers + decoder_sparse_step: dense rows in the config, MoE layers only in the trace", async () => {
    // layers 0..3: 0 in mlp_only_layers; decoder_sparse_step 2 makes the even layers dense → MoE layers 1 and 3
    const { result, ref } = await importAndCompare("qwen2_moe", { seed: 8, configOverride: { num_hidden_layers: 4, mlp_only_layers: [0], decoder_sparse_step: 2 } }, "q2-dense");
    expect(ref.layers.map((l) => l.layer)).toEqual([1, 3]);
    const active = result.manifest.activeParameters;
    expect(typeof active === "number" ? active : active.max).toBeLessThan(result.manifest.parameters);
  });
  it("qwen3_moe with YaRN rope_scaling (factor 4, original 2048 of 8192)", async () => {
    await importAndCompare("qwen3_moe", { seed: 9, configOverride: { max_position_embeddings: 8192, rope_scaling: { rope_type: "yarn", factor: 4.0, original_max_position_embeddings: 2048 } } }, "q3-yarn");
  });
  it("other RoPE scalings are refused naming the type and the reason", async () => {
    const src = path.join(tmp, "q3-linear");
    await writeFamilyCheckpoint(src, "qwen3_moe", { configOverride: { rope_scaling: { rope_type: "linear", factor: 2 } } });
    expect(() => inspectCheckpoint(src)).toThrow('qwen3_moe: rope_scaling type "linear" is not supported (only YaRN (and Phi-3.5-MoE\'s LongRoPE short factors) are implemented)');
    await writeFamilyCheckpoint(src, "qwen3_moe", { configOverride: { rope_scaling: { rope_type: "dynamic", factor: 2 } } });
    expect(() => inspectCheckpoint(src)).toThrow("its frequencies change with the sequence length at run time");
    // Qwen3's documented YaRN edit keeps max_position_embeddings 40960 with factor 4 of 32768: transformers versions disagree
    await writeFamilyCheckpoint(src, "qwen3_moe", { configOverride: { max_position_embeddings: 40960, rope_scaling: { rope_type: "yarn", factor: 4.0, original_max_position_embeddings: 32768 } } });
    expect(() => inspectCheckpoint(src)).toThrow("transformers versions disagree on which one applies");
  });
});
