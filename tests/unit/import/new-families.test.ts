import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { zMoeLlmConfig } from "@/models/moe-llm/config";
import { architectureOf, conventionText } from "@/models/families/conventions";
import { importCheckpoint, inspectCheckpoint } from "@/models/import/import";
import { importAndCompareIn } from "./compare-imported";
import type { Family, WriteOptions } from "./family-checkpoints";

/**
 * DeepSeek-V2/V3, Phi-3.5-MoE and gpt-oss: tiny random checkpoints in each family's real layout (config.json fields,
 * tensor names, sharded or single, F32/BF16; gpt-oss also MXFP4, DeepSeek-V3 also fp8 blocks), imported, run, and
 * compared with the family's plain-TS reference (tests/reference/families/): logits within 1e-4, routing exact
 * (masks and k equal, weights and logits within 1e-4), with deliberate near-ties in every router (`nearTies`).
 */
const tmp = mkdtempSync(path.join(os.tmpdir(), "import-new-families-"));
const root = path.join(tmp, "models");
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const run = (family: Family, opts: WriteOptions, label: string) => importAndCompareIn(tmp, root, family, opts, label);
const canonicalOf = (dir: string) => zMoeLlmConfig.parse(JSON.parse(readFileSync(path.join(dir, "config.json"), "utf8")));

/** Count of (token, layer) rows whose two largest logits differ by less than `gap` (the near-ties a test exercised). */
function nearTies(layers: { routerLogits: number[][] }[], experts: number, gap: number): number {
  let n = 0;
  for (const l of layers)
    for (const row of l.routerLogits) {
      const z = row.slice(0, experts).sort((a, b) => b - a);
      if (z.some((v, j) => j > 0 && Math.abs(z[j - 1]! - v) < gap)) n++;
    }
  return n;
}

describe("DeepSeek-V2 (MLA, softmax top-k, shared experts, dense first layer)", () => {
  it("greedy, q_proj, YaRN (V2-Lite's), single file F32, near-ties", async () => {
    const { result, ref } = await run("deepseek_v2", { seed: 21, nearTies: true }, "v2-greedy");
    const a = architectureOf(canonicalOf(result.dir));
    expect(a.attention).toBe("mla");
    expect(a.denseLayers).toEqual([true, false, false]);
    expect(ref.layers.map((l) => l.layer)).toEqual([1, 2]);
    expect(nearTies(ref.layers, 8, 1e-2)).toBeGreaterThan(0);
  });
  it("group_limited_greedy with routed scaling, q_a/q_b + attention bias, sharded BF16", async () => {
    await run("deepseek_v2", { seed: 22, shards: 3, dtype: "BF16", nearTies: true, configOverride: { topk_method: "group_limited_greedy", n_group: 4, topk_group: 2, routed_scaling_factor: 16, q_lora_rank: 12, attention_bias: true } }, "v2-grouped");
  });
  it("refuses norm_topk_prob (transformers' DeepseekV2Moe never renormalises) and unknown topk methods, naming them", async () => {
    const { writeFamilyCheckpoint } = await import("./family-checkpoints");
    const src = path.join(tmp, "v2-bad");
    await writeFamilyCheckpoint(src, "deepseek_v2", { configOverride: { norm_topk_prob: true } });
    expect(() => inspectCheckpoint(src)).toThrow("deepseek_v2: norm_topk_prob true is refused");
    await writeFamilyCheckpoint(src, "deepseek_v2", { configOverride: { topk_method: "noaux_tc" } });
    expect(() => inspectCheckpoint(src)).toThrow('deepseek_v2: topk_method "noaux_tc" is not supported');
  });
});

describe("DeepSeek-V3 (MLA with rope_interleave, sigmoid + correction bias, groups, × routed_scaling_factor)", () => {
  it("single file F32, near-ties; the trace keeps raw logits and the bias-corrected selection scores", async () => {
    const { result, ref } = await run("deepseek_v3", { seed: 31, nearTies: true }, "v3");
    expect(ref.layers.every((l) => l.scores && l.scores.length === 7)).toBe(true);
    const c = canonicalOf(result.dir);
    // DeepseekV3Attention: qk_head_dim^-0.5 × yarn_get_mscale(40, 1.0)²
    const m = 0.1 * Math.log(40) + 1;
    expect(architectureOf(c).attentionScale).toBeCloseTo((m * m) / Math.sqrt(16), 12);
    expect(conventionText(c)).toContain("e_score_correction_bias");
    expect(conventionText(c)).toContain("Dense MLP layers (no router): 0.");
  });
  it("sharded BF16, rope_interleave false, without norm_topk_prob", async () => {
    await run("deepseek_v3", { seed: 32, shards: 2, dtype: "BF16", nearTies: true, configOverride: { rope_interleave: false, norm_topk_prob: false } }, "v3-bf16");
  });
  it("fp8 block-quantised weights (F8_E4M3 + weight_scale_inv) are dequantised at import", async () => {
    const { src } = await run("deepseek_v3", { seed: 33, fp8Block: [16, 16] }, "v3-fp8");
    const map = inspectCheckpoint(src);
    expect(map.tensors.find((t) => t.name === "model.layers.1.self_attn.q_b_proj.weight")!.dtype).toBe("F8_E4M3");
    expect(map.tensors.find((t) => t.name === "model.layers.1.self_attn.q_b_proj.weight_scale_inv")!.note).toContain("fp8 block scales");
    expect(map.unclaimed).toEqual([]);
  });
  it("the multi-token-prediction layer (model.layers.{L}.*) is claimed and listed as not used", async () => {
    const { writeFamilyCheckpoint } = await import("./family-checkpoints");
    const src = path.join(tmp, "v3-mtp");
    await writeFamilyCheckpoint(src, "deepseek_v3", { extra: new Map([["model.layers.3.mlp.gate.weight", [16, 32]], ["model.layers.3.input_layernorm.weight", [32]]]) });
    const map = inspectCheckpoint(src);
    expect(map.unclaimed).toEqual([]);
    expect(map.unused.map((t) => t.name).sort()).toEqual(["model.layers.3.input_layernorm.weight", "model.layers.3.mlp.gate.weight"]);
    await expect(importCheckpoint(src, { root, name: "v3-mtp" })).resolves.toMatchObject({ status: "imported" });
  });
});

describe("Phi-3.5-MoE (sparsemixer, LayerNorm, biases, LongRoPE short factors)", () => {
  it("single file F32 with near-ties inside the jitter threshold", async () => {
    const { ref } = await run("phimoe", { seed: 41, nearTies: true }, "phimoe");
    // near-tied experts share the first softmax: its multiplier is about 1/2, not 1
    const mults = ref.layers.flatMap((l) => l.weights.flatMap((w) => w.filter((v) => v > 0)));
    expect(mults.some((v) => v > 0.3 && v < 0.7)).toBe(true);
  });
  it("sharded BF16", async () => {
    await run("phimoe", { seed: 42, shards: 2, dtype: "BF16", nearTies: true }, "phimoe-bf16");
  });
});

describe("gpt-oss (sinks, sliding/full layers, YaRN, router bias, clamped SwiGLU)", () => {
  it("the dequantised layout, single file F32, near-ties", async () => {
    await run("gpt_oss", { seed: 51, nearTies: true }, "gpt-oss");
  });
  it("the released MXFP4 layout (uint8 blocks + scales), sharded BF16", async () => {
    const { src } = await run("gpt_oss", { seed: 52, mxfp4: true, shards: 2, dtype: "BF16", nearTies: true }, "gpt-oss-mxfp4");
    const map = inspectCheckpoint(src);
    expect(map.unclaimed).toEqual([]);
    expect(map.tensors.find((t) => t.name === "model.layers.0.mlp.experts.gate_up_proj_blocks")!.dtype).toBe("U8");
  });
  it("a missing MXFP4 scales tensor is named", async () => {
    const { writeFamilyCheckpoint } = await import("./family-checkpoints");
    const src = path.join(tmp, "gpt-oss-noscales");
    await writeFamilyCheckpoint(src, "gpt_oss", { mxfp4: true, omit: ["model.layers.1.mlp.experts.down_proj_scales"] });
    expect(inspectCheckpoint(src).missing.map((m) => m.expected)).toContain("model.layers.1.mlp.experts.down_proj_scales");
  });
});
