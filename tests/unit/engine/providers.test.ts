import * as ort from "onnxruntime-node";
import { describe, expect, it, vi } from "vitest";
import { SessionPool } from "@/engine/runtime";
import { defaultIntraOpThreads, parseEpPreference, SESSION_CONFIG_ENTRIES, selectExecutionProviders } from "@/engine/runtime/providers";
import { GraphBuilder } from "@/models/onnx/builder";

describe("execution provider selection", () => {
  it("maps STUDIO_EP to providers to try", () => {
    expect(selectExecutionProviders(undefined)).toEqual(["cuda", "webgpu", "cpu"]);
    expect(selectExecutionProviders("auto")).toEqual(["cuda", "webgpu", "cpu"]);
    expect(selectExecutionProviders("WebGPU")).toEqual(["webgpu"]);
    expect(selectExecutionProviders("CPU")).toEqual(["cpu"]);
    expect(selectExecutionProviders("cuda")).toEqual(["cuda"]);
    expect(() => parseEpPreference("tpu")).toThrow(/STUDIO_EP: "tpu" is not one of auto, cuda, webgpu, cpu/);
  });

  it("reads STUDIO_THREADS", () => {
    expect(defaultIntraOpThreads("3")).toBe(3);
    expect(defaultIntraOpThreads(undefined)).toBeGreaterThanOrEqual(1);
    expect(() => defaultIntraOpThreads("0")).toThrow(/STUDIO_THREADS/);
    expect(() => defaultIntraOpThreads("two")).toThrow(/STUDIO_THREADS/);
  });
});

describe("session config entries", () => {
  it("every pool session stops its intra-op workers spinning after a run, unless the pool says otherwise", async () => {
    const g = new GraphBuilder("identity");
    g.output(g.op("Identity", [g.input("x", "float", [1])]), "y", "float", [1]);
    const bytes = g.toBytes();
    const create = vi.spyOn(ort.InferenceSession, "create");
    try {
      const pools = [new SessionPool({ executionProvider: "cpu" }), new SessionPool({ executionProvider: "cpu", configEntries: {} })];
      for (const pool of pools) {
        const y = await pool.withSession(bytes, undefined, async ({ session }) => (await session.run({ x: new ort.Tensor("float32", Float32Array.of(2), [1]) })).y!.data);
        expect(y).toEqual(Float32Array.of(2));
        await pool.close();
      }
      const extras = create.mock.calls.map((call) => (call[1] as ort.InferenceSession.SessionOptions).extra);
      expect(extras).toEqual([{ session: { force_spinning_stop: "1" } }, {}]);
      expect(SESSION_CONFIG_ENTRIES).toEqual({ session: { force_spinning_stop: "1" } });
    } finally {
      create.mockRestore();
    }
  });
});
