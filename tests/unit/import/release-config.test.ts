/**
 * The released Uni-MoE-2.0-Omni config.json and checkpoint layout import as they are (RELEASED.md §5 item 6): every
 * field the release writes is accepted (mlp_dynamic_top_k 0.0, token_drop true, training and parallelism settings,
 * the output-head model_type), unused fields are listed with what they are, vision_spatial_pool_stride sets the pooled
 * side, every part of the checkpoint is named with what MoE Studio does with it, and active parameters are a range
 * under Top-P.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import * as ort from "onnxruntime-node";
import { afterAll, describe, expect, it } from "vitest";
import { zMoeLlmConfig } from "@/models/moe-llm/config";
import { detectFamily } from "@/models/families/table";
import { GRAPH_FILE, IMPORT_GRAPH, importCheckpoint, inspectCheckpoint, parameterCounts, readManifest } from "@/models/import/import";
import { moeDims } from "@/models/moe-llm/moe-llm-graph";
import { MoeLlmRunner } from "@/models/moe-llm/moe-llm-session";
import { writeSafetensors } from "@/models/io/safetensors";
import { randomIds } from "../../reference/random";
import { omniLlmConfig, omniSpeech, omniTensors, releaseConfigText } from "./omni-checkpoint";

const tmp = mkdtempSync(path.join(os.tmpdir(), "release-config-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const llm = omniLlmConfig;

describe("the released Omni config and checkpoint layout", () => {
  const src = path.join(tmp, "omni");

  it("inspects: every release field accepted, unused ones listed with what they are, every part named", async () => {
    mkdirSync(src, { recursive: true });
    writeFileSync(path.join(src, "config.json"), releaseConfigText());
    expect(readFileSync(path.join(src, "config.json"), "utf8")).toContain('"mlp_dynamic_top_k": 0.0');
    await writeSafetensors(path.join(src, "model.safetensors"), omniTensors(), { dtype: "BF16" });
    const map = inspectCheckpoint(src);
    expect(map.family.name).toBe("grin_qwen2_vl");
    expect(map.config.model_type).toBe("grin_qwen2_vl_out");
    expect(map.config.mlp_dynamic_top_k).toBe(0);
    expect(map.config.token_drop).toBe(true);
    expect(map.missing).toEqual([]);
    // the pooled side the release uses
    expect(map.towers.map((t) => t.kind)).toEqual(["vision"]);
    expect(map.towers[0]!.kind === "vision" && map.towers[0]!.config.pool).toBe(2);
    // nothing unexpected unclaimed: the generation heads are claimed as listed-not-imported parts
    expect(map.unclaimed.map((t) => t.name)).toEqual(["mtp_head.weight"]);
    const parts = Object.fromEntries(map.parts.map((p) => [p.id, p]));
    expect(Object.keys(parts)).toEqual(["llm", "vision", "speech_generator", "image_generator", "image_projectors", "other"]);
    expect(parts.llm).toMatchObject({ imported: true, unclaimed: 0 });
    expect(parts.llm!.what).toMatch(/model\.onnx/);
    expect(parts.vision).toMatchObject({ imported: true, unclaimed: 0 });
    expect(parts.speech_generator).toMatchObject({ tensors: omniSpeech.tensors.length, imported: true, unclaimed: 0 });
    expect(parts.speech_generator!.what).toMatch(/speech\//);
    expect(map.speech?.transformer_num_blocks).toBe(omniSpeech.speech.transformer_num_blocks);
    expect(parts.image_generator).toMatchObject({ tensors: 1, imported: false, unclaimed: 0 });
    expect(parts.image_projectors).toMatchObject({ tensors: 3, imported: false, unclaimed: 0 });
    expect(parts.other).toMatchObject({ tensors: 1, unclaimed: 1, imported: false });
    const unused = Object.fromEntries(map.unusedConfig.map((f) => [f.key, f.note]));
    for (const key of ["ep_size", "fp32_gate", "input_jitter_noise", "ignore_differentiable_router", "l_aux_weight", "visual_aligner_type", "architectures", "a_field_from_the_future"]) expect(unused[key], key).toBeDefined();
    expect(unused.fp32_gate).toMatch(/training only/);
    expect(unused.a_field_from_the_future).toBe("not used by MoE Studio");
    for (const key of ["mlp_dynamic_top_k", "token_drop", "drop_policy", "capacity_factor", "min_capacity", "vision_spatial_pool_stride", "vision_config", "rope_scaling", "whisper_query_tokens_size", "model_type"]) expect(unused[key], key).toBeUndefined();
    // active parameters under Top-P: a range, from no routed expert (null only) to all four
    const counts = parameterCounts(map.config);
    expect(counts.routedPerLayer).toEqual({ min: 0, max: 4 });
    expect(counts.active.max - counts.active.min).toBe(4 * llm.num_hidden_layers * counts.perRoutedExpert);
  });

  it("imports with bf16 routing and the release's token drop; the manifest lists parts, unused fields and the active range", async () => {
    const r = await importCheckpoint(src, { root: path.join(tmp, "models"), name: "omni" });
    expect(r.unclaimed).toEqual(["mtp_head.weight"]);
    const m = readManifest(r.dir)!;
    expect(m.graph.options.routingPrecision).toBe("bf16");
    expect(m.parts!.map((p) => `${p.id}:${p.imported}`)).toEqual(["llm:true", "vision:true", "speech_generator:true", "image_generator:false", "image_projectors:false", "other:false"]);
    expect(m.unusedConfig!.some((f) => f.key === "ep_size")).toBe(true);
    expect(typeof m.activeParameters === "object" && m.activeParameters.min < m.activeParameters.max).toBe(true);
    expect(JSON.parse(readFileSync(path.join(r.dir, "vision", "config.json"), "utf8")).pool).toBe(2);
    const canonical = zMoeLlmConfig.parse(JSON.parse(readFileSync(path.join(r.dir, "config.json"), "utf8")));
    const session = await ort.InferenceSession.create(path.join(r.dir, GRAPH_FILE), { intraOpNumThreads: 1 });
    const out = await MoeLlmRunner.fromSession(canonical, IMPORT_GRAPH, session).forward({ batch: 1, seq: 12, ids: randomIds(12, llm.vocab_size, 54), positions: Array.from({ length: 36 }, (_, q) => q % 12) });
    await session.release();
    const { E } = moeDims(canonical);
    // min_capacity 8 of 12 tokens: probs drops where a column had more than 8 takers
    for (const t of out.trace!) {
      expect(t.dropped!.length).toBe(12 * E);
      expect(Array.from(t.k).every((k) => k >= 1n && k <= 6n)).toBe(true);
    }
  });

  it("model_type grin_qwen2_vl takes the release's defaults for absent fields (no null expert); uni_moe_tiny keeps ours", () => {
    const { mlp_dynamic_null_expert_num: _, ...rest } = JSON.parse(releaseConfigText()) as Record<string, unknown>;
    const canonical = (raw: Record<string, unknown>) => detectFamily(raw).toConfig(raw);
    expect(canonical({ ...rest, model_type: "grin_qwen2_vl" }).mlp_dynamic_null_expert_num).toBe(0);
    expect(canonical({ ...rest, model_type: "grin_qwen2_vl_out" }).mlp_dynamic_null_expert_num).toBe(0);
    expect(canonical({ ...rest, model_type: "uni_moe_tiny" }).mlp_dynamic_null_expert_num).toBe(1);
  });

  it("Uni-MoE-2.0-Omni's LLM (PAPER.md sizes): 26.15 B parameters, 3.3–26.2 B active per token under Top-P (14.7 B with two routed experts)", () => {
    const c = zMoeLlmConfig.parse({
      model_type: "grin_qwen2_vl", hidden_size: 3584, num_hidden_layers: 28, num_attention_heads: 28, num_key_value_heads: 4, vocab_size: 152064,
      rope_scaling: { type: "mrope", mrope_section: [16, 24, 24] }, mlp_dynamic_expert_num: 4, mlp_dynamic_null_expert_num: 1, mlp_fixed_expert_num: 2,
      dynamic_intermediate_size: 18944, shared_intermediate_size: 2368, mlp_dynamic_top_p: 0.7, mlp_dynamic_top_k: 0,
    });
    const p = parameterCounts(c);
    console.log(`Omni LLM: ${(p.total / 1e9).toFixed(2)} B parameters; active per token ${(p.active.min / 1e9).toFixed(2)}–${(p.active.max / 1e9).toFixed(2)} B; one routed expert ${(p.perRoutedExpert / 1e6).toFixed(1)} M per layer`);
    expect(p.total / 1e9).toBeCloseTo(26.15, 2);
    expect(p.perRoutedExpert).toBe(3 * 3584 * 18944);
    expect(p.active.max).toBe(p.total);
    expect(p.active.min).toBe(p.total - 28 * 4 * p.perRoutedExpert);
    expect((p.active.min + 28 * 2 * p.perRoutedExpert) / 1e9).toBeCloseTo(14.75, 1);
    // a fixed top-k: exact (2 of 4 routed, no null expert), or a range with null experts
    const k2 = parameterCounts({ ...c, mlp_dynamic_top_p: 0, mlp_dynamic_top_k: 2, mlp_dynamic_null_expert_num: 0 });
    expect(k2.active.min).toBe(k2.active.max);
    expect(parameterCounts({ ...c, mlp_dynamic_top_p: 0, mlp_dynamic_top_k: 2 }).routedPerLayer).toEqual({ min: 1, max: 2 });
  });
});
