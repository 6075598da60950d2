/**
 * The MoE-LLM node's routingTopP: null is the model's own P (typeVersion 2). Documents saved by typeVersion 1 wrote 0
 * for it; they load with null (migrateParams) and run with the model's P, exactly as an explicit P equal to the
 * model's routes; 0 itself is no longer a value of the param.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import type { RoutingTrace } from "@/engine/trace";
import { loadWorkflow } from "@/engine/workflow/load";
import { writeSafetensors } from "@/models/io/safetensors";
import { catalogue } from "@/nodes";
import { moeLlm } from "@/nodes/moe-llm";
import { randomConfig, randomWeights } from "../../reference/random";
import { moeLlmFixture } from "./moe-llm-fixture";

const { model: modelRef, docWith, trace } = moeLlmFixture("top-p", async (src) => {
  const config = randomConfig(5, { vocab_size: 320, model_type: "uni_moe_tiny", mlp_dynamic_top_p: 0.7, mlp_dynamic_expert_num: 4, mlp_dynamic_null_expert_num: 1 });
  const W = randomWeights(config, 6);
  mkdirSync(src, { recursive: true });
  await writeSafetensors(path.join(src, "model.safetensors"), W.names().map((n) => ({ name: n, shape: W.get(n).shape, data: W.get(n).data })));
  writeFileSync(path.join(src, "config.json"), JSON.stringify(config));
});

describe("MoE-LLM routingTopP: null = the model's P", () => {
  it("a typeVersion 1 document with routingTopP 0 loads as null; an explicit P is kept; 0 is refused in a current document", () => {
    const v1 = { model: "uni-moe-tiny/tiny", system: "", maxNewTokens: 24, temperature: 0, topK: 0, topP: 1, seed: 0, routingTopP: 0, emit: "none", interventions: "" };
    const { workflow, problems } = loadWorkflow(docWith(1, v1), catalogue);
    expect(problems).toEqual([]);
    expect(workflow.nodes[0]!.typeVersion).toBe(3);
    expect(workflow.nodes[0]!.params).toEqual({ ...v1, routingTopP: null, routingTopK: null, chatTemplate: "model", mode: "generate", logitLens: false, routingPrecision: "model" });

    const explicit = loadWorkflow(docWith(1, { ...v1, routingTopP: 0.4 }), catalogue).workflow.nodes[0]!.params;
    expect(explicit.routingTopP).toBe(0.4);
    // a version 1 node that never set it gets the new default
    expect(loadWorkflow(docWith(1, { model: "uni-moe-tiny/tiny" }), catalogue).workflow.nodes[0]!.params.routingTopP).toBeNull();

    const current = loadWorkflow(docWith(2, { ...v1, routingTopP: 0 }), catalogue);
    expect(current.problems.map((p) => p.message).join("\n")).toMatch(/routingTopP/);
    expect(moeLlm.params.parse({}).routingTopP).toBeNull();
    expect(moeLlm.params.safeParse({ routingTopP: 1.2 }).success).toBe(false);
  });

  it("the migrated document runs with the model's P: the routing of an explicit P = the model's, unlike another P", async () => {
    const v1 = { model: modelRef(), maxNewTokens: 3, routingTopP: 0 };
    const migrated = loadWorkflow(docWith(1, v1), catalogue).workflow.nodes[0]!.params;
    const own = await trace(migrated);
    const same = await trace({ ...migrated, routingTopP: 0.7 });
    const other = await trace({ ...migrated, routingTopP: 0.2 });
    expect(own.layers.length).toBeGreaterThan(0);
    const ks = (t: RoutingTrace) => t.layers.map((l) => Array.from(l.k));
    expect(ks(own)).toEqual(ks(same));
    own.layers.forEach((l, i) => {
      expect(Array.from(l.mask)).toEqual(Array.from(same.layers[i]!.mask));
      expect(Array.from(l.weights)).toEqual(Array.from(same.layers[i]!.weights));
    });
    expect(ks(own)).not.toEqual(ks(other));
    // the trace names the P in force, and only an explicit one as an override
    expect(own.layerInfo?.[0]?.rule).toMatch(/^Top-P 0\.7 over /);
    expect(own.layerInfo?.[0]?.rule).not.toMatch(/override/);
    expect(same.layerInfo?.[0]?.rule).toMatch(/^Top-P 0\.7 \(override\) over /);
  }, 120_000);
});
