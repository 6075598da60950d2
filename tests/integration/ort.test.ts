import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { onnx } from "onnx-proto";
import * as ort from "onnxruntime-node";
import { afterAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { OutputCache, typedArrayCodec } from "@/engine/cache";
import type { RunEvent } from "@/engine/events";
import { Executor } from "@/engine/executor";
import { defineNode, NodeCatalogue } from "@/engine/node";
import { ortTensorCodec, SessionPool } from "@/engine/runtime";
import { MemoryStorage, wf } from "../unit/engine/helpers";

const B = 4, IN = 8, OUT = 6;

/** mulberry32: a small seeded PRNG, values in [-1, 1). */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (((t ^ (t >>> 14)) >>> 0) / 4294967296) * 2 - 1;
  };
}
const randn = (n: number, seed: number) => Float32Array.from({ length: n }, rng(seed));

const W = randn(IN * OUT, 1);
const bias = randn(OUT, 2);

/** y = Relu(x · W + b), x: [B, IN], W: [IN, OUT], b: [OUT] → y: [B, OUT]. */
function buildModel(w: Float32Array, b: Float32Array): Uint8Array {
  const F = onnx.TensorProto.DataType.FLOAT;
  const vi = (name: string, dims: number[]) => ({ name, type: { tensorType: { elemType: F, shape: { dim: dims.map((d) => ({ dimValue: d })) } } } });
  return onnx.ModelProto.encode({
    irVersion: 8,
    opsetImport: [{ domain: "", version: 17 }],
    producerName: "moe-studio-test",
    graph: {
      name: "mlp",
      node: [
        { opType: "MatMul", input: ["x", "W"], output: ["xw"], name: "matmul" },
        { opType: "Add", input: ["xw", "b"], output: ["pre"], name: "add" },
        { opType: "Relu", input: ["pre"], output: ["y"], name: "relu" },
      ],
      initializer: [
        { name: "W", dataType: F, dims: [IN, OUT], floatData: Array.from(w) },
        { name: "b", dataType: F, dims: [OUT], floatData: Array.from(b) },
      ],
      input: [vi("x", [B, IN])],
      output: [vi("y", [B, OUT])],
    },
  }).finish();
}

/** Independent reference: loops, no graph. */
function reference(x: Float32Array): Float32Array {
  const y = new Float32Array(B * OUT);
  for (let i = 0; i < B; i++)
    for (let j = 0; j < OUT; j++) {
      let s = bias[j]!;
      for (let k = 0; k < IN; k++) s += x[i * IN + k]! * W[k * OUT + j]!;
      y[i * OUT + j] = Math.max(0, s);
    }
  return y;
}

const seen: { tensor?: ort.Tensor } = {};

const inputNode = defineNode({
  type: "test.tensor-input",
  typeVersion: 1,
  title: "Random tensor",
  category: "Inputs",
  description: "Seeded random [B, IN] float32 tensor.",
  inputs: {},
  outputs: { x: { type: "JSON" } }, // an ort.Tensor: no socket kind is a tensor
  params: z.object({ seed: z.number().int().default(0) }),
  async execute({ params }) {
    return { x: new ort.Tensor("float32", randn(B * IN, params.seed), [B, IN]) };
  },
});

const mlpNode = defineNode({
  type: "test.mlp",
  typeVersion: 1,
  title: "MLP (ONNX)",
  category: "Models",
  description: "Runs the test model through the session pool.",
  inputs: { x: { type: "JSON" } },
  outputs: { y: { type: "JSON" } },
  params: z.object({ model: z.string().default("") }),
  async execute({ inputs, params, ctx }) {
    if (!ctx.runtime) throw new Error("no ONNX Runtime layer attached");
    seen.tensor = inputs.x as ort.Tensor;
    return ctx.runtime.withSession(params.model, undefined, async ({ session }) => {
      const out = await session.run({ x: inputs.x as ort.Tensor });
      return { y: out.y! };
    });
  },
});

const dir = mkdtempSync(path.join(os.tmpdir(), "studio-ort-"));
const modelPath = path.join(dir, "mlp.onnx");
writeFileSync(modelPath, buildModel(W, bias));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const catalogue = new NodeCatalogue([inputNode, mlpNode] as never[]);
const doc = (seed: number, model = modelPath) =>
  wf([{ id: "in", type: "test.tensor-input", params: { seed } }, { id: "mlp", type: "test.mlp", label: "Tiny MLP", params: { model } }], [["in", "mlp", "x", "x"]]);

describe("ONNX Runtime through the executor", () => {
  const pool = new SessionPool({ intraOpNumThreads: 1 });
  const storage = new MemoryStorage();
  const cache = new OutputCache({ maxBytes: 1 << 24, storage });
  const executor = new Executor({ catalogue, storage, cache, runtime: pool });
  afterAll(() => pool.close());

  it("matches a plain-TS reference and reuses the session across runs", async () => {
    let maxDiff = 0;
    for (const seed of [11, 12]) {
      const events: RunEvent[] = [];
      const r = await executor.run(doc(seed), { runId: `r${seed}`, onEvent: (e) => events.push(e) });
      expect(r.status, r.error).toBe("finished");
      expect(events[0]).toMatchObject({ type: "started", executionProvider: expect.stringMatching(/^(cpu|cuda)$/) });
      const y = r.outputs.get("mlp")!.y as ort.Tensor;
      expect(y).toBeInstanceOf(ort.Tensor);
      expect(y.dims).toEqual([B, OUT]);
      // The tensor flowed to the next node as the same object: no copies along edges.
      expect(seen.tensor).toBe(r.outputs.get("in")!.x);
      const ref = reference(randn(B * IN, seed));
      const got = y.data as Float32Array;
      for (let k = 0; k < ref.length; k++) maxDiff = Math.max(maxDiff, Math.abs(got[k]! - ref[k]!));
    }
    console.log(`ORT vs reference: max |diff| = ${maxDiff.toExponential(2)}`);
    expect(maxDiff).toBeLessThan(1e-5);
    const s = pool.stats();
    expect(s.loads).toBe(1);
    expect(s.hits).toBe(1);
    expect(s.sessions).toBe(1);
  });

  it("a missing model file fails the node with a clear error naming the file", async () => {
    const missing = path.join(dir, "nope.onnx");
    const r = await executor.run(doc(1, missing), { runId: "missing" });
    expect(r.status).toBe("failed");
    expect(r.nodes.get("mlp")!.error).toBe(`Node "Tiny MLP" (test.mlp): model file not found: ${missing}`);
    expect(r.nodes.get("in")!.status).toMatch(/done|cached/);
  });

  it("releases least recently used sessions beyond the memory budget", async () => {
    const a = buildModel(W, bias);
    const b = buildModel(W.map((v) => v * 2), bias);
    const small = new SessionPool({ memoryBudgetBytes: Math.ceil(a.byteLength * 1.5) + 10, intraOpNumThreads: 1, executionProvider: "cpu" });
    const h1 = await small.getSession(a);
    expect((await small.getSession(a)).session).toBe(h1.session);
    await small.getSession(b);
    expect(small.stats()).toMatchObject({ sessions: 1, loads: 2, evictions: 1, hits: 1 });
    await small.getSession(a); // reloaded after eviction
    expect(small.stats().loads).toBe(3);
    await small.close();
  });

  it("STUDIO_EP=cuda without CUDA is a clear error; auto falls back to CPU", async () => {
    const auto = new SessionPool({ executionProvider: "auto", intraOpNumThreads: 1 });
    const ep = await auto.resolveExecutionProvider();
    const h = await auto.getSession(modelPath);
    expect(h.executionProvider).toBe(ep);
    if (ep === "cpu") {
      expect(auto.stats().cudaUnavailable).toBeTruthy();
      const cuda = new SessionPool({ executionProvider: "cuda" });
      await expect(cuda.getSession(modelPath)).rejects.toThrow(/STUDIO_EP=cuda, but the CUDA execution provider is unavailable/);
    }
    await auto.close();
  });

  it("spills large tensors from the output cache and restores them", async () => {
    const store = new MemoryStorage();
    const c = new OutputCache({ maxBytes: 1 << 20, storage: store, spillThresholdBytes: 64, codecs: [ortTensorCodec, typedArrayCodec] });
    const t = new ort.Tensor("float32", randn(B * IN, 5), [B, IN]);
    await c.set("k", { t });
    expect(c.stats().spilledValues).toBe(1);
    const back = (await c.get("k"))!.t as ort.Tensor;
    expect(back).toBeInstanceOf(ort.Tensor);
    expect(back.dims).toEqual([B, IN]);
    expect(Array.from(back.data as Float32Array)).toEqual(Array.from(t.data as Float32Array));
  });
});
