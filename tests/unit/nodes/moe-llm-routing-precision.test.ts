/**
 * The MoE-LLM node's routingPrecision param: "model" is bf16 for an imported Uni-MoE-2.0 checkpoint (grin_qwen2_vl, as
 * its released inference computes) and fp32 for the seeded family; the trace records it; documents saved before the
 * param load unchanged (the param defaults to "model"); bf16 on a top-k family is refused naming the cause.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import type { RoutingTrace } from "@/engine/trace";
import { loadWorkflow } from "@/engine/workflow/load";
import { CURRENT_SCHEMA_VERSION } from "@/engine/workflow/schema";
import { importCheckpoint } from "@/models/import/import";
import { writeSafetensors } from "@/models/io/safetensors";
import { catalogue } from "@/nodes";
import { moeLlm, type LlmOutputValue } from "@/nodes/moe-llm";
import { moeLlmWorld } from "./moe-llm-fixture";
import { randomConfig, randomWeights } from "../../reference/random";

let grin = "", tiny = "";
const { root, ctx } = moeLlmWorld("precision", async () => {
  grin = await importGenerated("omni", { model_type: "grin_qwen2_vl" });
  tiny = await importGenerated("tiny-like", { model_type: "uni_moe_tiny" });
});

async function importGenerated(name: string, over: Record<string, unknown>): Promise<string> {
  const config = randomConfig(3, { vocab_size: 320, ...over });
  const W = randomWeights(config, 4);
  const src = path.join(root, "src", name);
  mkdirSync(src, { recursive: true });
  await writeSafetensors(path.join(src, "model.safetensors"), W.names().map((n) => ({ name: n, shape: W.get(n).shape, data: W.get(n).data })), { dtype: "BF16" });
  writeFileSync(path.join(src, "config.json"), JSON.stringify(config));
  return (await importCheckpoint(src, { root: path.join(root, "models"), name })).ref;
}

async function run(params: Record<string, unknown>) {
  const out = await moeLlm.execute({ inputs: { prompt: "hi" }, params: moeLlm.params.parse({ maxNewTokens: 2, ...params }), ctx: ctx() });
  return { output: out.output as LlmOutputValue, trace: out.trace as RoutingTrace };
}

describe("MoE-LLM node: routing precision", () => {
  it("a workflow saved before the routingPrecision param loads unchanged, with the model's precision", () => {
    const before = { model: "uni-moe-tiny/tiny", system: "", chatTemplate: "model", maxNewTokens: 24, temperature: 0, topK: 0, topP: 1, seed: 0, routingTopP: 0, emit: "none", interventions: "" };
    const doc = { schemaVersion: CURRENT_SCHEMA_VERSION, name: "saved before routing precisions", nodes: [{ id: "llm", type: "model.moe-llm", typeVersion: 1, params: before, position: { x: 0, y: 0 } }, { id: "prompt", type: "input.text", typeVersion: 1, params: { text: "hi" }, position: { x: -300, y: 0 } }], edges: [{ id: "e1", source: "prompt", sourceSocket: "text", target: "llm", targetSocket: "prompt" }], notes: [] };
    const { workflow, problems } = loadWorkflow(doc, catalogue);
    expect(problems).toEqual([]);
    expect(workflow.nodes[0]!.typeVersion).toBe(3);
    // typeVersion 1's routingTopP 0 ("the model's P") is null since typeVersion 2 (moe-llm-routing-top-p.test.ts), an
    // unset routingTopK the model's k (null) since typeVersion 3 (moe-llm-routing-top-k.test.ts)
    expect(workflow.nodes[0]!.params).toEqual({ ...before, routingTopP: null, routingTopK: null, routingPrecision: "model", mode: "generate", logitLens: false });
    expect(moeLlm.params.safeParse({ routingPrecision: "fp16" }).success).toBe(false);
  });

  it('"model": bf16 for an imported grin_qwen2_vl checkpoint, fp32 for the uni-moe-tiny family; recorded in the output and the trace', async () => {
    const g = await run({ model: grin });
    expect(g.output.routingPrecision).toBe("bf16");
    expect(g.trace.routingPrecision).toBe("bf16");
    expect(moeLlm.summarize!({ output: g.output })).toMatch(/routing in bf16 \(as released\)/);
    // bf16 router logits are bf16 numbers (the low 16 bits of their float32 pattern are 0)
    const bits = new Uint32Array(Float32Array.from(g.trace.layers[0]!.routerLogits).buffer);
    expect(bits.every((b) => (b & 0xffff) === 0)).toBe(true);
    const t = await run({ model: tiny });
    expect(t.output.routingPrecision).toBe("fp32");
    expect(t.trace.routingPrecision).toBe("fp32");
    expect(new Uint32Array(Float32Array.from(t.trace.layers[0]!.routerLogits).buffer).some((b) => (b & 0xffff) !== 0)).toBe(true);
    // explicit choices override the model's default
    expect((await run({ model: grin, routingPrecision: "fp32" })).trace.routingPrecision).toBe("fp32");
    expect((await run({ model: tiny, routingPrecision: "bf16" })).trace.routingPrecision).toBe("bf16");
  });

  it("bf16 on a model that routes by fixed top-k is refused naming the cause", async () => {
    const mixtral = await importGenerated("topk", {
      model_type: "uni_moe_tiny", routing_convention: "topk_softmax", mlp_dynamic_null_expert_num: 0, mlp_fixed_expert_num: 0, mlp_dynamic_top_p: 0, mlp_dynamic_top_k: 2,
    });
    await expect(run({ model: mixtral, routingPrecision: "bf16" })).rejects.toThrow(/routing precision bf16 emulates Uni-MoE-2.0's released routing; this model routes with topk_softmax/);
    expect((await run({ model: mixtral })).output.routingPrecision).toBe("fp32");
  });
});
