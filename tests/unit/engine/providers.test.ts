import { describe, expect, it } from "vitest";
import { defaultIntraOpThreads, parseEpPreference, selectExecutionProviders } from "@/engine/runtime/providers";

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
