/**
 * The MoE-LLM node's routingTopK: null is the model's own k (typeVersion 3), as routingTopP's null is its P. Documents
 * saved by typeVersions 1-2 wrote 0 (or nothing) for it; they load with null (migrateParams) and run with the model's k,
 * exactly as an explicit k equal to the model's routes; 0 itself is no longer a value of the param.
 */
import { describe, expect, it } from "vitest";
import type { RoutingTrace } from "@/engine/trace";
import { loadWorkflow } from "@/engine/workflow/load";
import { resolveTopK } from "@/models/moe-llm/config";
import { resolveModel } from "@/models/moe-llm/moe-llm-model";
import { catalogue } from "@/nodes";
import { moeLlm } from "@/nodes/moe-llm";
import { writeFamilyCheckpoint } from "../import/family-checkpoints";
import { moeLlmFixture } from "./moe-llm-fixture";

const { model: modelRef, docWith, trace } = moeLlmFixture("top-k", async (src) => {
  await writeFamilyCheckpoint(src, "mixtral", { seed: 12, configOverride: { vocab_size: 320 } });
});

describe("MoE-LLM routingTopK: null = the model's k", () => {
  it("a typeVersion 2 document with routingTopK 0 (or none) loads as null; an explicit k is kept; 0 is refused in a current document", () => {
    const v2 = { model: "uni-moe-tiny/tiny", system: "", chatTemplate: "model", maxNewTokens: 24, temperature: 0, topK: 0, topP: 1, seed: 0, routingTopP: null, routingTopK: 0, routingPrecision: "model", emit: "none", interventions: "" };
    const { workflow, problems } = loadWorkflow(docWith(2, v2), catalogue);
    expect(problems).toEqual([]);
    expect(workflow.nodes[0]!.typeVersion).toBe(3);
    expect(workflow.nodes[0]!.params).toEqual({ ...v2, routingTopK: null, mode: "generate", logitLens: false });
    expect(loadWorkflow(docWith(2, { ...v2, routingTopK: 3 }), catalogue).workflow.nodes[0]!.params.routingTopK).toBe(3);
    // a node that never set it (version 1 or 2) gets the new default
    const { routingTopK: _, ...without } = v2;
    expect(loadWorkflow(docWith(2, without), catalogue).workflow.nodes[0]!.params.routingTopK).toBeNull();
    expect(loadWorkflow(docWith(1, { ...without, routingTopP: 0, routingTopK: 0 }), catalogue).workflow.nodes[0]!.params).toMatchObject({ routingTopP: null, routingTopK: null });

    const current = loadWorkflow(docWith(3, v2), catalogue);
    expect(current.problems.map((p) => p.message).join("\n")).toMatch(/routingTopK/);
    expect(moeLlm.params.parse({}).routingTopK).toBeNull();
  });

  it("the migrated document runs with the model's k: the routing of an explicit k = the model's, unlike another k", async () => {
    const migrated = loadWorkflow(docWith(2, { model: modelRef(), maxNewTokens: 3, routingTopK: 0 }), catalogue).workflow.nodes[0]!.params;
    const config = (await resolveModel(modelRef())).config;
    const k = resolveTopK(config, null);
    expect(k).toBe(config.mlp_dynamic_top_k);
    const own = await trace(migrated);
    const same = await trace({ ...migrated, routingTopK: k });
    const other = await trace({ ...migrated, routingTopK: k + 1 });
    const ks = (t: RoutingTrace) => t.layers.map((l) => Array.from(l.k, Number));
    expect(own.layers.length).toBeGreaterThan(0);
    expect(ks(own).flat().every((x) => x === k)).toBe(true);
    own.layers.forEach((l, i) => {
      expect(Array.from(l.mask)).toEqual(Array.from(same.layers[i]!.mask));
      expect(Array.from(l.weights)).toEqual(Array.from(same.layers[i]!.weights));
    });
    expect(ks(other).flat().every((x) => x === k + 1)).toBe(true);
    // the trace names the k in force, and only an explicit one as an override
    expect(own.layerInfo?.[0]?.rule).toMatch(new RegExp(`top-${k} of \\d+(?! \\(override\\))`));
    expect(own.layerInfo?.[0]?.rule).not.toMatch(/override/);
    expect(same.layerInfo?.[0]?.rule).toMatch(new RegExp(`top-${k} of \\d+ \\(override\\)`));
    // 0 is not "the model's k" any more: refused with the reason
    await expect(moeLlm.checkParams!({ ...moeLlm.params.parse(migrated), routingTopK: 0 })).rejects.toThrow(`Routing top-k override 0: must be a whole number from 1 to ${config.mlp_dynamic_expert_num}`);
  }, 120_000);
});
