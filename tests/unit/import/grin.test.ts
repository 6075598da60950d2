import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import * as ort from "onnxruntime-node";
import { afterAll, expect, it } from "vitest";
import { zMoeLlmConfig } from "@/models/moe-llm/config";
import { GRAPH_FILE, IMPORT_GRAPH, importCheckpoint, inspectCheckpoint, readManifest } from "@/models/import/import";
import { importedGraphFile } from "@/models/import/runtime";
import { MoeLlmRunner } from "@/models/moe-llm/moe-llm-session";
import { writeSafetensors } from "@/models/io/safetensors";
import { referenceForward } from "../../reference/moe-llm";
import { randomConfig, randomIds, randomWeights } from "../../reference/random";

const tmp = mkdtempSync(path.join(os.tmpdir(), "import-grin-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

it("grin_qwen2_vl (Uni-MoE-2.0 LLM): imported onto the reference graph, routing in bf16 as released (the fp32 variant on request), matches the Uni-MoE reference (M-RoPE, Top-P, null and shared experts); vision/audio tensors are reported unclaimed", async () => {
  const config = randomConfig(21, { mlp_dynamic_null_expert_num: 1, mlp_fixed_expert_num: 2, tie_word_embeddings: false, model_type: "grin_qwen2_vl" });
  const W = randomWeights(config, 22);
  const src = path.join(tmp, "uni-moe");
  mkdirSync(src);
  const extra = ["visual.blocks.0.attn.qkv.weight", "audio_tower.layers.0.fc1.weight"];
  await writeSafetensors(path.join(src, "model.safetensors"), [...W.names().map((n) => ({ name: n, shape: W.get(n).shape, data: W.get(n).data })), ...extra.map((n) => ({ name: n, shape: [2, 2], data: new Float32Array(4) }))], { dtype: "BF16" });
  writeFileSync(path.join(src, "config.json"), JSON.stringify(config));
  expect(inspectCheckpoint(src).unclaimed.map((t) => t.name).sort()).toEqual([...extra].sort());

  const r = await importCheckpoint(src, { root: path.join(tmp, "models"), name: "uni" });
  expect(r.ref).toBe("grin_qwen2_vl/uni");
  expect(r.unclaimed.sort()).toEqual([...extra].sort());
  const canonical = zMoeLlmConfig.parse(JSON.parse(readFileSync(path.join(r.dir, "config.json"), "utf8")));
  expect(readManifest(r.dir)!.graph.options.routingPrecision).toBe("bf16");
  const S = 6;
  const ids = randomIds(S, config.vocab_size, 5);
  const positions = Array.from({ length: 3 * S }, (_, q) => (q < S ? q : q < 2 * S ? 2 * (q - S) + 1 : 5 - (q - 2 * S)));
  // the reference reads the bf16-rounded weights, exactly as stored
  const { SafetensorsWeights } = await import("@/models/io/safetensors");
  const stored = new SafetensorsWeights(src);
  for (const routingPrecision of ["bf16", "fp32"] as const) {
    const ref = referenceForward(config, stored, { batch: 1, seq: S, ids, positions, routingPrecision });
    // bf16: model.onnx as imported; fp32: a variant built from the source checkpoint on first use
    const file = importedGraphFile(r.dir, canonical, { ...IMPORT_GRAPH, routingPrecision });
    if (routingPrecision === "bf16") expect(file).toBe(path.join(r.dir, GRAPH_FILE));
    else expect(file.startsWith(path.join(r.dir, "variants") + path.sep)).toBe(true);
    const session = await ort.InferenceSession.create(file, { intraOpNumThreads: 1 });
    const runner = MoeLlmRunner.fromSession(canonical, IMPORT_GRAPH, session);
    const out = await runner.forward({ batch: 1, seq: S, ids, positions });
    let d = 0;
    for (let i = 0; i < ref.logits.length; i++) d = Math.max(d, Math.abs(out.logits[i]! - ref.logits[i]!));
    let dw = 0;
    ref.trace.forEach((layer, l) => {
      expect(Array.from(out.trace![l]!.k, Number)).toEqual(layer.k);
      expect(Array.from(out.trace![l]!.mask)).toEqual(Array.from(layer.mask));
      for (let i = 0; i < layer.weights.length; i++) dw = Math.max(dw, Math.abs(out.trace![l]!.weights[i]! - layer.weights[i]!));
    });
    console.log(`grin_qwen2_vl, ${routingPrecision} routing: max |Δlogits| ${d.toExponential(2)}, max |Δweights| ${dw.toExponential(2)}`);
    expect(d).toBeLessThan(1e-4);
    expect(dw).toBeLessThan(routingPrecision === "bf16" ? 4e-3 : 1e-4);
    await session.release();
  }
  stored.close();
});
