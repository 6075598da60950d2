import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { applySweepValue, checkSweptParams, parseSweep } from "@/engine/batch/sweep";
import { NodeCatalogue } from "@/engine/node";
import { zMoeLlmConfig } from "@/models/moe-llm/config";
import { layerRules } from "@/models/families/conventions";
import { importCheckpoint } from "@/models/import/import";
import { checkRoutingOverrides, compileInterventions, resolveTopK, resolveTopP, routingControls } from "@/models/moe-llm/interventions";
import { referenceConfig } from "@/models/moe-llm/uni-moe-tiny";
import { moeLlm } from "@/nodes/moe-llm";
import type { Workflow } from "@/engine/workflow/schema";
import { writeFamilyCheckpoint } from "../../import/family-checkpoints";

/** Routing overrides per routing kind (issue 20 item 2): what each router understands, refusals with their reasons. */
const tmp = mkdtempSync(path.join(os.tmpdir(), "routing-controls-"));
const saved = process.env.STUDIO_MODELS_DIR;
const canonical = (family: "mixtral" | "deepseek_v3" | "phimoe") => zMoeLlmConfig.parse(JSON.parse(readFileSync(path.join(tmp, "models", family, family, "config.json"), "utf8")));

beforeAll(async () => {
  process.env.STUDIO_MODELS_DIR = path.join(tmp, "models");
  for (const f of ["mixtral", "deepseek_v3", "phimoe"] as const) {
    await writeFamilyCheckpoint(path.join(tmp, f), f, { seed: 1 });
    await importCheckpoint(path.join(tmp, f), { name: f });
  }
});
afterAll(() => {
  if (saved === undefined) delete process.env.STUDIO_MODELS_DIR;
  else process.env.STUDIO_MODELS_DIR = saved;
  rmSync(tmp, { recursive: true, force: true });
});

describe("routing overrides per routing kind", () => {
  it("Top-P for dynamic capacity, top-k (1..R) for top-k routers, neither for the sparsemixer", () => {
    const grin = routingControls(referenceConfig("tiny"));
    expect(grin.topP.ok).toBe(true);
    expect(grin.topK).toMatchObject({ ok: false, reason: expect.stringContaining("Top-P chooses each token's k") });
    expect(routingControls(canonical("mixtral"))).toEqual({ topP: { ok: false, reason: expect.stringContaining("mixtral's router picks a fixed number of experts per token (top-2)") }, topK: { ok: true, max: 8 } });
    expect(routingControls(canonical("deepseek_v3")).topK).toEqual({ ok: true, max: 16 });
    const phi = routingControls(canonical("phimoe"));
    expect(phi.topK).toMatchObject({ ok: false, reason: "phimoe's sparsemixer is defined for top-2 only (transformers raises for any other top_k)" });
    expect(phi.topP.ok).toBe(false);
  });
  it("checkRoutingOverrides refuses what the router ignores, keeps what it understands", () => {
    expect(() => checkRoutingOverrides(canonical("mixtral"), { topP: 0.7 })).toThrow("Routing Top-P override 0.7: mixtral's router picks a fixed number of experts per token (top-2); it has no Top-P threshold (use the top-k override)");
    expect(() => checkRoutingOverrides(referenceConfig("tiny"), { topK: 2 })).toThrow("Routing top-k override 2: uni_moe_tiny routes by dynamic capacity");
    expect(() => checkRoutingOverrides(canonical("mixtral"), { topK: 9 })).toThrow("must be a whole number from 1 to 8");
    expect(checkRoutingOverrides(canonical("mixtral"), { topK: 3, topP: null })).toEqual({ topK: 3 });
    expect(checkRoutingOverrides(referenceConfig("tiny"), { topP: 0.5, topK: null })).toEqual({ topP: 0.5 });
    // null (or absent) is the model's own k; an explicit k must be 1 … routed experts
    expect(() => checkRoutingOverrides(canonical("mixtral"), { topK: 0 })).toThrow("Routing top-k override 0: must be a whole number from 1 to 8 (the routed experts; none = the model's k, 2)");
    expect(resolveTopK(canonical("mixtral"), null)).toBe(2);
    expect(resolveTopK(canonical("mixtral"), 5)).toBe(5);
    // null (or absent) is the model's own P; an explicit P must be in (0, 1]
    expect(checkRoutingOverrides(referenceConfig("tiny"), { topP: null })).toEqual({});
    expect(() => checkRoutingOverrides(referenceConfig("tiny"), { topP: 0 })).toThrow("Routing Top-P override 0: must be above 0 and at most 1 (none = the model's P, 0.7)");
    expect(resolveTopP(referenceConfig("tiny"), null)).toBe(0.7);
    expect(resolveTopP(referenceConfig("tiny"), 0.4)).toBe(0.4);
    // the rules alone: the overrides are not rules
    expect(compileInterventions(referenceConfig("tiny"), "")).toEqual({});
  });
  it("rules apply to MoE layers: '*' skips DeepSeek's dense first layer, naming it is refused", () => {
    const c = canonical("deepseek_v3");
    const E = 17;
    const iv = compileInterventions(c, [{ layer: "*", expert: "E3", action: "bias", value: 0.5 }]);
    expect(iv.routerBias![0 * E + 2]).toBe(0);
    expect(iv.routerBias![1 * E + 2]).toBe(0.5);
    expect(iv.routerBias![2 * E + 2]).toBe(0.5);
    expect(() => compileInterventions(c, [{ layer: 0, expert: "E1", action: "ban" }])).toThrow("interventions[0]: layer 0 is a dense MLP layer (no router); MoE layers: 1, 2");
  });
  it("the trace's layer rows: dense rows say so, MoE rows name the rule and an override", () => {
    const rules = layerRules(canonical("deepseek_v3"), { topK: 2 });
    expect(rules[0]).toEqual({ layer: 0, kind: "dense", rule: "dense MLP (intermediate 40), no router" });
    expect(rules[1]).toEqual({ layer: 1, kind: "moe", rule: "sigmoid + correction bias, 4 groups keep 2 (by top-2 sum), top-2 of 16 (override), renormalised, × 2.5" });
  });
});

describe("a sweep over a param the model ignores is refused before anything runs", () => {
  const doc = (model: string): Workflow =>
    ({ schemaVersion: 2, name: "t", nodes: [{ id: "llm", type: moeLlm.type, typeVersion: moeLlm.typeVersion, params: { model }, position: { x: 0, y: 0 } }], edges: [] }) as unknown as Workflow;
  const catalogue = new NodeCatalogue([moeLlm]);
  const docsFor = (model: string, spec: string) => {
    const sweep = parseSweep(spec);
    return { sweep, docs: sweep.values.map((v) => applySweepValue(doc(model), catalogue, sweep, v)) };
  };
  it("Top-P on a top-k model: refused naming the value and the reason", async () => {
    const { sweep, docs } = docsFor("mixtral/mixtral", "llm.routingTopP=0.3,0.6,0.9");
    await expect(checkSweptParams(docs, catalogue, sweep)).rejects.toThrow(
      "sweep of llm.routingTopP refused at 0.3: Routing Top-P override 0.3: mixtral's router picks a fixed number of experts per token (top-2); it has no Top-P threshold",
    );
  });
  it("routing precision bf16 on a top-k model: refused before the sweep runs (every record of that value failed)", async () => {
    const { sweep, docs } = docsFor("mixtral/mixtral", "llm.routingPrecision=fp32,bf16");
    await expect(checkSweptParams(docs, catalogue, sweep)).rejects.toThrow('sweep of llm.routingPrecision refused at "bf16": routing precision bf16 emulates');
    const tiny = docsFor("uni-moe-tiny/tiny", "llm.routingPrecision=fp32,bf16");
    await expect(checkSweptParams(tiny.docs, catalogue, tiny.sweep)).resolves.toBeUndefined();
  });

  it("top-k on a top-k model, and Top-P on the dynamic-capacity reference model, pass", async () => {
    const a = docsFor("mixtral/mixtral", "llm.routingTopK=1,2,4");
    await expect(checkSweptParams(a.docs, catalogue, a.sweep)).resolves.toBeUndefined();
    const b = docsFor("uni-moe-tiny/tiny", "llm.routingTopP=0.3,0.9");
    await expect(checkSweptParams(b.docs, catalogue, b.sweep)).resolves.toBeUndefined();
  });
});
