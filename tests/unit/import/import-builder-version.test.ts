import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import * as ort from "onnxruntime-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SessionPool } from "@/engine/runtime";
import { zMoeLlmConfig, type MoeLlmConfig } from "@/models/moe-llm/config";
import { GRAPH_FILE, IMPORT_GRAPH, importCheckpoint, MANIFEST_FILE, readManifest } from "@/models/import/import";
import { importedGraphBuilderVersion, importedGraphFile } from "@/models/import/runtime";
import { GRAPH_BUILDER_VERSION, TOP_P_EXACT_SINCE, type MoeGraphOptions } from "@/models/moe-llm/moe-llm-graph";
import { resolveModel, withMoeLlm } from "@/models/moe-llm/moe-llm-model";
import { MoeLlmRunner } from "@/models/moe-llm/moe-llm-session";
import { writeSafetensors } from "@/models/io/safetensors";
import { randomConfig, randomIds, randomWeights } from "../../reference/random";

/**
 * An import records the GRAPH_BUILDER_VERSION its graph was built with (the manifest for model.onnx, build.json for a
 * variant); graphs written before TOP_P_EXACT_SINCE read top_p 0 as "the config's P", so MoeLlmRunner keeps feeding them
 * that way (an import from then routes exactly as it did), while newer graphs get the P in force.
 */
const tmp = mkdtempSync(path.join(os.tmpdir(), "import-builder-version-"));
const saved = process.env.STUDIO_MODELS_DIR;
const pool = new SessionPool({ intraOpNumThreads: 1, executionProvider: "cpu" });
let dir = "";
let canonical: MoeLlmConfig;

beforeAll(async () => {
  process.env.STUDIO_MODELS_DIR = path.join(tmp, "models");
  const config = randomConfig(23, { mlp_dynamic_null_expert_num: 1, mlp_fixed_expert_num: 2, tie_word_embeddings: false, model_type: "grin_qwen2_vl", mlp_dynamic_top_p: 0.7 });
  const W = randomWeights(config, 24);
  const src = path.join(tmp, "src");
  mkdirSync(src);
  await writeSafetensors(path.join(src, "model.safetensors"), W.names().map((n) => ({ name: n, shape: W.get(n).shape, data: W.get(n).data })), { dtype: "BF16" });
  writeFileSync(path.join(src, "config.json"), JSON.stringify(config));
  dir = (await importCheckpoint(src, { name: "uni" })).dir;
  canonical = zMoeLlmConfig.parse(JSON.parse(readFileSync(path.join(dir, "config.json"), "utf8")));
});
afterAll(async () => {
  await pool.close();
  if (saved === undefined) delete process.env.STUDIO_MODELS_DIR;
  else process.env.STUDIO_MODELS_DIR = saved;
  rmSync(tmp, { recursive: true, force: true });
});

const builderVersionOfRunner = async (options: MoeGraphOptions) => withMoeLlm(await resolveModel("grin_qwen2_vl/uni"), options, pool, async ({ runner }) => ({ version: runner.builderVersion, none: runner.topPFeed(undefined), half: runner.topPFeed(0.5) }));

describe("imported graphs keep the top_p convention of the builder that wrote them", () => {
  it("a new import records its builder version; its graph and its variants are fed the P in force", async () => {
    expect(readManifest(dir)!.graph.builderVersion).toBe(GRAPH_BUILDER_VERSION);
    expect(importedGraphBuilderVersion(dir, path.join(dir, GRAPH_FILE))).toBe(GRAPH_BUILDER_VERSION);
    expect(await builderVersionOfRunner(IMPORT_GRAPH)).toEqual({ version: GRAPH_BUILDER_VERSION, none: 0.7, half: 0.5 });
    const variant = importedGraphFile(dir, canonical, { ...IMPORT_GRAPH, routingPrecision: "fp32" });
    expect(variant).not.toBe(path.join(dir, GRAPH_FILE));
    expect(importedGraphBuilderVersion(dir, variant)).toBe(GRAPH_BUILDER_VERSION);
  });

  it("an import written before the version was recorded (no builderVersion, no build.json) is fed 0 for the model's P, as then", async () => {
    const manifestFile = path.join(dir, MANIFEST_FILE);
    const manifest = readManifest(dir)!;
    const { builderVersion: _, ...oldGraph } = manifest.graph;
    writeFileSync(manifestFile, JSON.stringify({ ...manifest, graph: oldGraph }));
    const variant = importedGraphFile(dir, canonical, { ...IMPORT_GRAPH, routingPrecision: "fp32" });
    rmSync(path.join(path.dirname(variant), "build.json"));
    try {
      expect(importedGraphBuilderVersion(dir, path.join(dir, GRAPH_FILE))).toBeLessThan(TOP_P_EXACT_SINCE);
      expect(importedGraphBuilderVersion(dir, variant)).toBeLessThan(TOP_P_EXACT_SINCE);
      expect(await builderVersionOfRunner(IMPORT_GRAPH)).toEqual({ version: 4, none: 0, half: 0.5 });
    } finally {
      writeFileSync(manifestFile, JSON.stringify(manifest));
    }
  });

  it("what reaches the graph's top_p input: the P in force for a current graph, the old encoding for an older one", async () => {
    const session = await ort.InferenceSession.create(path.join(dir, GRAPH_FILE), { intraOpNumThreads: 1 });
    const fed: number[] = [];
    const spy = new Proxy(session, {
      get(target, prop, receiver) {
        if (prop !== "run") return Reflect.get(target, prop, receiver);
        return (feeds: Record<string, ort.Tensor>) => {
          fed.push((feeds.top_p!.data as Float32Array)[0]!);
          return target.run(feeds);
        };
      },
    });
    const S = 4;
    const input = { batch: 1, seq: S, ids: randomIds(S, canonical.vocab_size, 3), positions: Array.from({ length: 3 * S }, (_, q) => q % S) };
    const options = readManifest(dir)!.graph.options;
    for (const version of [GRAPH_BUILDER_VERSION, 4]) {
      const runner = MoeLlmRunner.fromSession(canonical, options, spy, undefined, { builderVersion: version });
      await runner.forward(input);
      await runner.forward({ ...input, interventions: { topP: 0.4 } });
    }
    expect(fed.map((v) => Math.round(v * 1e6) / 1e6)).toEqual([0.7, 0.4, 0, 0.4]);
    await session.release();
  });
});
