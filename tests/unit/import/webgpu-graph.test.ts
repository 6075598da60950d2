/**
 * The WebGPU variant of an imported graph (models/import/webgpu-graph.ts): every GroupQueryAttention gets
 * smooth_softmax with a null head_sink, which must compute the same values as the plain softmax. Checked on the CPU
 * provider (the WebGPU run is tests/integration/webgpu.test.ts): the variant's outputs against the import's own graph
 * (fp32: max |Δ| ≤ 1e-5 · max(1, peak): the softmax sums in another order; routing identical), and the fp16 compute graph's variant (fp16 sink) likewise
 * (≤ 1e-3 · max(1, peak): the same fp16 arithmetic, only the softmax code path differs).
 */
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import * as ort from "onnxruntime-node";
import { onnx } from "onnx-proto";
import { afterAll, describe, expect, it } from "vitest";
import { zMoeLlmConfig, type MoeLlmConfig } from "@/models/moe-llm/config";
import { ensureFp16Graph } from "@/models/import/fp16";
import { GRAPH_FILE, IMPORT_GRAPH, importCheckpoint } from "@/models/import/import";
import { ensureWebGpuGraph, webGpuGraphPath } from "@/models/import/webgpu-graph";
import { MoeLlmRunner, type ForwardOutput } from "@/models/moe-llm/moe-llm-session";
import { randomIds } from "../../reference/random";
import { writeFamilyCheckpoint } from "./family-checkpoints";

const tmp = mkdtempSync(path.join(os.tmpdir(), "import-webgpu-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

async function run(file: string, config: MoeLlmConfig, ids: number[]): Promise<ForwardOutput> {
  const session = await ort.InferenceSession.create(file, { intraOpNumThreads: 1 });
  try {
    const S = ids.length;
    return await MoeLlmRunner.fromSession(config, IMPORT_GRAPH, session).forward({ batch: 1, seq: S, ids, positions: Array.from({ length: 3 * S }, (_, q) => q % S) });
  } finally {
    await session.release();
  }
}

function expectSame(a: ForwardOutput, b: ForwardOutput, rel: number) {
  const peak = Math.max(1, ...Array.from(a.logits, Math.abs));
  let d = 0;
  for (let i = 0; i < a.logits.length; i++) d = Math.max(d, Math.abs(a.logits[i]! - b.logits[i]!));
  expect(d).toBeLessThanOrEqual(rel * peak);
  a.trace!.forEach((l, i) => {
    expect(Array.from(b.trace![i]!.mask), `layer ${i} mask`).toEqual(Array.from(l.mask));
    expect(Array.from(b.trace![i]!.k), `layer ${i} k`).toEqual(Array.from(l.k));
  });
  return d;
}

const gqaNodes = (file: string) => onnx.ModelProto.decode(readFileSync(file)).graph!.node!.filter((n) => n.opType === "GroupQueryAttention");

describe("WebGPU variant of an imported graph", () => {
  it("every GroupQueryAttention has smooth_softmax and a null head_sink; same outputs on the CPU (fp32 and fp16 compute graphs)", { timeout: 120_000 }, async () => {
    const src = path.join(tmp, "src");
    const { config } = await writeFamilyCheckpoint(src, "qwen3_moe", { seed: 5 });
    const result = await importCheckpoint(src, { root: path.join(tmp, "models"), name: "webgpu" });
    const canonical = zMoeLlmConfig.parse(JSON.parse(readFileSync(path.join(result.dir, "config.json"), "utf8")));
    const graph = path.join(result.dir, GRAPH_FILE);
    const variant = ensureWebGpuGraph(graph);
    expect(variant).toBe(webGpuGraphPath(graph));
    const nodes = gqaNodes(variant);
    expect(nodes.length).toBe(canonical.num_hidden_layers);
    for (const n of nodes) {
      expect(Number(n.attribute!.find((a) => a.name === "smooth_softmax")?.i)).toBe(1);
      expect(n.input![11]).toMatch(/null_sink/);
    }
    expect(gqaNodes(graph).every((n) => !n.attribute!.some((a) => a.name === "smooth_softmax"))).toBe(true); // the import's graph is untouched

    const ids = randomIds(40, config.vocab_size as number, 7);
    const d32 = expectSame(await run(graph, canonical, ids), await run(variant, canonical, ids), 1e-5);
    const fp16 = await ensureFp16Graph(graph);
    const variant16 = ensureWebGpuGraph(fp16);
    expect(variant16).toBe(webGpuGraphPath(fp16));
    const d16 = expectSame(await run(fp16, canonical, ids), await run(variant16, canonical, ids), 1e-3);
    console.log(`WebGPU variant vs the import's graph on the CPU, 40 tokens: logits max |Δ| ${d32.toExponential(2)} (fp32), ${d16.toExponential(2)} (fp16 compute)`);

    // reused while the source is unchanged, rebuilt when it changes
    const mtime = statSync(variant).mtimeMs;
    expect(ensureWebGpuGraph(graph)).toBe(variant);
    expect(statSync(variant).mtimeMs).toBe(mtime);
    const model = onnx.ModelProto.decode(readFileSync(graph));
    model.docString = "changed";
    writeFileSync(graph, onnx.ModelProto.encode(model).finish());
    ensureWebGpuGraph(graph);
    expect(onnx.ModelProto.decode(readFileSync(variant)).docString).toBe("changed");
  });

  it("a graph without GroupQueryAttention is its own WebGPU graph", () => {
    const file = path.join(tmp, "relu.onnx");
    const vi = (name: string) => ({ name, type: { tensorType: { elemType: onnx.TensorProto.DataType.FLOAT, shape: { dim: [{ dimValue: 2 }] } } } });
    writeFileSync(file, onnx.ModelProto.encode({ irVersion: 8, opsetImport: [{ domain: "", version: 17 }], graph: { name: "g", node: [{ opType: "Relu", input: ["x"], output: ["y"] }], input: [vi("x")], output: [vi("y")] } }).finish());
    expect(ensureWebGpuGraph(file)).toBe(file);
  });
});
