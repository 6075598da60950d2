import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SessionPool } from "@/engine/runtime";
import { CONVENTION_TEXT } from "@/models/families/conventions";
import { forwardJson } from "@/models/moe-llm/forward";
import { generate } from "@/models/moe-llm/generate";
import { importCheckpoint } from "@/models/import/import";
import { loadedSessions } from "@/models/import/runtime";
import { embeddingTable, listModels, resolveModel, withMoeLlm } from "@/models/moe-llm/moe-llm-model";
import { familyReference } from "../../reference/families";
import { referenceForward } from "../../reference/families/topk-moe";
import { writeFamilyCheckpoint } from "./family-checkpoints";

const tmp = mkdtempSync(path.join(os.tmpdir(), "import-run-"));
const saved = process.env.STUDIO_MODELS_DIR;
const pool = new SessionPool({ intraOpNumThreads: 1, executionProvider: "cpu" });
let fixture: Awaited<ReturnType<typeof writeFamilyCheckpoint>>;

beforeAll(async () => {
  process.env.STUDIO_MODELS_DIR = path.join(tmp, "models");
  fixture = await writeFamilyCheckpoint(path.join(tmp, "src"), "qwen2_moe", { seed: 9, configOverride: { vocab_size: 320 } });
  await importCheckpoint(path.join(tmp, "src"), { name: "run" });
});
afterAll(() => {
  if (saved === undefined) delete process.env.STUDIO_MODELS_DIR;
  else process.env.STUDIO_MODELS_DIR = saved;
  rmSync(tmp, { recursive: true, force: true });
});

describe("an imported model runs where the reference models run", () => {
  it("is listed, resolves, and `cli forward` (a graph variant built from the source) matches the reference", async () => {
    expect(listModels()).toContain("qwen2_moe/run");
    const model = await resolveModel("qwen2_moe/run");
    const ids = [5, 17, 300, 2, 99];
    const got = await forwardJson(model, pool, ids, {});
    const ref = referenceForward("qwen2_moe", fixture.config, fixture.tensors, ids);
    const diff = Math.max(...got.logits.map((v, i) => Math.abs(v - ref.logits[ids.length - 1]![i]!)));
    expect(diff).toBeLessThan(1e-4);
    expect(got.layers[1]!.mask).toEqual(ref.layers[1]!.mask);
  });
  it("generates with the KV-cache graph written at import; the trace carries the family's convention; the session records its provider", async () => {
    const model = await resolveModel("qwen2_moe/run");
    expect(embeddingTable(model).length).toBe(320 * 32);
    const result = await withMoeLlm(model, { moe: "sparse", trace: true, kvCache: true }, pool, async ({ runner, tokenizer, handle }) => {
      expect(handle.executionProvider).toBe("cpu");
      const r = await generate(runner, tokenizer, { ids: [1, 2, 3, 4], modelName: model.ref }, { maxNewTokens: 4, temperature: 0, topK: 0, topP: 1, seed: 0, stopTokens: [] });
      return { text: r.text, trace: r.trace };
    });
    expect(result.trace.layers).toHaveLength(2);
    expect(result.trace.experts.map((e) => e.name)).toEqual(["E1", "E2", "E3", "E4", "E5", "E6", "E7", "E8", "Shared1"]);
    expect(result.trace.convention).toBe(CONVENTION_TEXT.softmax_topk);
    const loaded = await loadedSessions(model.dir);
    expect(loaded.map((s) => s.provider)).toContain("cpu");
  });
  it("`cli forward` on a model with a dense first layer lists the MoE layers only, each with its decoder index (deepseek_v3)", async () => {
    const src = await writeFamilyCheckpoint(path.join(tmp, "v3"), "deepseek_v3", { seed: 10, configOverride: { vocab_size: 320 } });
    await importCheckpoint(path.join(tmp, "v3"), { name: "v3" });
    const model = await resolveModel("deepseek_v3/v3");
    const ids = [5, 17, 300, 2, 99];
    const got = await forwardJson(model, pool, ids, {});
    const ref = familyReference("deepseek_v3", src.config, src.tensors, ids);
    expect(got.layers.map((l) => l.layer)).toEqual([1, 2]);
    expect(Object.keys(got.layers[0]!)).toEqual(["layer", "router_logits", "k", "mask", "weights"]);
    got.layers.forEach((l, j) => expect(l.mask).toEqual(ref.layers[j]!.mask));
    expect(Math.max(...got.logits.map((v, i) => Math.abs(v - ref.logits[ids.length - 1]![i]!)))).toBeLessThan(1e-4);
    // a top-k override changes every token's k; a Top-P override is refused: this router has none
    const k2 = await forwardJson(model, pool, ids, { topK: 2 });
    expect(k2.layers.every((l) => l.k.every((k) => k === 2))).toBe(true);
    await expect(forwardJson(model, pool, ids, { topP: 0.5 })).rejects.toThrow("Routing Top-P override 0.5: deepseek_v3's router picks a fixed number of experts per token (top-4); it has no Top-P threshold");
  });
});
