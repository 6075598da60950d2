import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, expect, it } from "vitest";
import { zMoeLlmConfig } from "@/models/moe-llm/config";
import { checkFits, estimateFromConfig } from "@/models/import/memory";
import { writeFamilyCheckpoint } from "./family-checkpoints";
import { cliEntry } from "../../cli-bundle";

const tmp = mkdtempSync(path.join(os.tmpdir(), "import-cli-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** The real CLI (app/server/cli.ts, main() in the process runCliProcess sets up, as its dispatch line does for `npm run cli --`; here the bundle: tests/cli-bundle.ts). */
function cli(...args: string[]) {
  const r = spawnSync(process.execPath, [...cliEntry(), ...args], { encoding: "utf8", env: { ...process.env, STUDIO_MODELS_DIR: path.join(tmp, "models") }, timeout: 120_000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

it("inspect-checkpoint lists every tensor with its rule and names the unknown one as unclaimed; import then notes it", async () => {
  const src = path.join(tmp, "olmoe");
  await writeFamilyCheckpoint(src, "olmoe", { extra: new Map([["model.layers.1.mlp.router_bias", [64]]]) });
  const r = cli("inspect-checkpoint", src);
  expect(r.code).toBe(0);
  expect(r.out).toContain("family: olmoe");
  expect(r.out).toContain("model.layers.0.self_attn.q_norm.weight  [32] F32  model.safetensors  <- model.layers.{i}.self_attn.q_norm.weight");
  expect(r.out).toContain("model.layers.1.mlp.router_bias  [64] F32  model.safetensors  <- UNCLAIMED");
  expect(r.out).toContain("unclaimed (1): model.layers.1.mlp.router_bias");
  expect(r.out).toContain("missing: none");
  const imp = cli("import", src, "--name", "o", "--dtype", "bf16");
  expect(imp.code).toBe(0);
  expect(imp.out).toMatch(/olmoe\/o: imported in [\d.]+ s \(olmoe, [\d.]+M? params, [\d.]+M? active per token, bf16/);
  expect(imp.out).toContain("note: 1 tensor(s) of the checkpoint are not used: model.layers.1.mlp.router_bias");
  expect(imp.out).toContain("100%");
  expect(cli("import", src, "--name", "o", "--dtype", "bf16").out).toContain("already imported from these files");
});

it("a missing tensor: inspect exits 1 naming it; bad usage exits 2", async () => {
  const src = path.join(tmp, "q3");
  await writeFamilyCheckpoint(src, "qwen3_moe", { omit: ["model.layers.0.self_attn.k_norm.weight"] });
  const r = cli("inspect-checkpoint", src);
  expect(r.code).toBe(1);
  expect(r.out).toContain("missing (1): model.layers.0.self_attn.k_norm.weight");
  const imp = cli("import", src);
  expect(imp.code).toBe(1);
  expect(imp.err).toContain('missing 1 tensor(s): "model.layers.0.self_attn.k_norm.weight"');
  expect(cli("import", src, "--dtype", "int8").code).toBe(2);
  expect(cli("import").err).toContain("which checkpoint?");
});

it("a model that will not fit the device is refused before loading, with the figures", () => {
  const c = zMoeLlmConfig.parse({
    model_type: "grin_qwen2_vl", hidden_size: 3584, num_hidden_layers: 28, num_attention_heads: 28, num_key_value_heads: 4, head_dim: 128, vocab_size: 152064,
    rope_scaling: { mrope_section: [16, 24, 24] }, mlp_dynamic_expert_num: 4, mlp_dynamic_null_expert_num: 1, mlp_fixed_expert_num: 2,
    dynamic_intermediate_size: 18944, shared_intermediate_size: 2368,
  });
  const e = estimateFromConfig(c);
  expect(e.weights).toBe(26_151_734_784 * 4); // 26.15 B parameters (PAPER.md: 26B), fp32 at run time
  expect(() => checkFits("grin_qwen2_vl/omni", e, "cuda", 80e9)).toThrow(/needs about 120\.8 GB to run .* but the CUDA device has 80\.0 GB/);
  expect(() => checkFits("grin_qwen2_vl/omni", e, "cpu", 256e9)).not.toThrow();
});

it("a checkpoint of a model_type we have never seen: its tensors are listed with a hint; --family checks and imports it as that family", async () => {
  const src = path.join(tmp, "custom");
  await writeFamilyCheckpoint(src, "mixtral", { configOverride: { model_type: "my_mixtral_finetune" } });
  const r = cli("inspect-checkpoint", src);
  expect(r.code).toBe(1);
  expect(r.out).toContain("none claimed (no family chosen)");
  expect(r.out).toContain("model.layers.0.block_sparse_moe.experts.7.w2.weight  [32, 24] F32  model.safetensors");
  expect(r.err).toContain('model_type "my_mixtral_finetune" is not a family');
  expect(r.err).toContain("--family grin_qwen2_vl|qwen2_moe|qwen3_moe|olmoe|mixtral");
  const asMixtral = cli("inspect-checkpoint", src, "--family", "mixtral");
  expect(asMixtral.code).toBe(0);
  expect(asMixtral.out).toContain("unclaimed: none");
  expect(asMixtral.out).toContain("missing: none");
  expect(cli("inspect-checkpoint", src, "--family", "qwen3_moe").err).toContain('config.json: "num_experts" must be a number');
  const imp = cli("import", src, "--family", "mixtral", "--name", "custom");
  expect(imp.code).toBe(0);
  expect(imp.out).toContain("mixtral/custom: imported");
});
