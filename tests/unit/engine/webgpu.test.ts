import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { allOnProvider, describePlacement, parsePlacementLog } from "@/engine/runtime/placement";
import { adapterLabel, isSoftwareAdapter, mayHaveHardwareAdapter, parseVulkanLoaderLog, webGpuBackend } from "@/engine/runtime/webgpu";

const tmp = mkdtempSync(path.join(os.tmpdir(), "webgpu-unit-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe("the WebGPU adapter, as the Vulkan loader names it", () => {
  it("reads the device vkCreateDevice opened, in the formats of Debian 12's loader (1.3.239) and Chromium's (1.4)", () => {
    const debian = 'DRIVER:                  Using "SwiftShader Device (Subzero)" with driver: "/usr/lib/chromium/./libvk_swiftshader.so"\n';
    const chromium = '[Vulkan Loader] DRIVER:                Using "NVIDIA GeForce RTX 4090" with driver: "/usr/lib/x86_64-linux-gnu/libGLX_nvidia.so.0"\n';
    expect(parseVulkanLoaderLog(`noise\n${debian}more`)).toEqual({ name: "SwiftShader Device (Subzero)", driver: "/usr/lib/chromium/libvk_swiftshader.so" });
    expect(parseVulkanLoaderLog(debian + chromium)).toEqual({ name: "NVIDIA GeForce RTX 4090", driver: "/usr/lib/x86_64-linux-gnu/libGLX_nvidia.so.0" });
    expect(parseVulkanLoaderLog("[Vulkan Loader] DRIVER: Searching for driver manifest files")).toBeUndefined();
  });

  it("tells software adapters, labels them, and knows the backend per platform", () => {
    expect(isSoftwareAdapter("SwiftShader Device (Subzero)")).toBe(true);
    expect(isSoftwareAdapter("llvmpipe (LLVM 15.0.6, 256 bits)")).toBe(true);
    expect(isSoftwareAdapter(undefined, "/usr/lib/x86_64-linux-gnu/libvulkan_lvp.so")).toBe(true);
    expect(isSoftwareAdapter("AMD Radeon RX 7900 XTX (RADV NAVI31)", "libvulkan_radeon.so")).toBe(false);
    expect(adapterLabel({ name: "SwiftShader Device (Subzero)", backend: "Vulkan", software: true, shaderF16: false })).toBe("SwiftShader Device (Subzero) (Vulkan, software)");
    expect(adapterLabel({ backend: "Metal", software: false, shaderF16: true })).toBe("WebGPU adapter (Metal)");
    expect([webGpuBackend("linux"), webGpuBackend("darwin"), webGpuBackend("win32")]).toEqual(["Vulkan", "Metal", "D3D12"]);
  });

  it("auto looks for an adapter only where a hardware Vulkan driver is installed (or the user named drivers)", () => {
    const data = path.join(tmp, "share");
    mkdirSync(path.join(data, "vulkan", "icd.d"), { recursive: true });
    writeFileSync(path.join(data, "vulkan", "icd.d", "lvp_icd.x86_64.json"), JSON.stringify({ ICD: { library_path: "/usr/lib/x86_64-linux-gnu/libvulkan_lvp.so" } }));
    if (!existsSync("/etc/vulkan/icd.d")) expect(mayHaveHardwareAdapter("linux", { XDG_DATA_DIRS: data })).toBe(false);
    writeFileSync(path.join(data, "vulkan", "icd.d", "nvidia_icd.json"), JSON.stringify({ ICD: { library_path: "libGLX_nvidia.so.0" } }));
    expect(mayHaveHardwareAdapter("linux", { XDG_DATA_DIRS: data })).toBe(true);
    expect(mayHaveHardwareAdapter("linux", { XDG_DATA_DIRS: path.join(tmp, "none"), VK_ICD_FILENAMES: "/x.json" })).toBe(true);
    expect(mayHaveHardwareAdapter("darwin", {})).toBe(true);
  });
});

describe("placement report parser", () => {
  // Lines as ONNX Runtime 1.30 writes them at logSeverityLevel 0 (from a session of the seeded decoder on WebGPU)
  const log = [
    "2026-12-05 12:59:55.876007477 [I:onnxruntime:, transformer_memcpy.cc:393 AddCopyNode] Add MemcpyFromHost after l0/or for WebGpuExecutionProvider",
    "2026-12-05 12:59:55.876055989 [I:onnxruntime:, transformer_memcpy.cc:393 AddCopyNode] Add MemcpyToHost before l0/gather for WebGpuExecutionProvider",
    "2026-12-05 12:59:55.8 [I:onnxruntime:, webgpu_execution_provider.cc:665 GetCapability] webgpu kernel not found in registries for Op type: NonZero node name: l0/e0/nonzero",
    "2026-12-05 12:59:55.8 [I:onnxruntime:, webgpu_execution_provider.cc:665 GetCapability] webgpu kernel not found in registries for Op type: NonZero node name: l0/e0/nonzero",
    "2026-12-05 12:59:55.8 [I:onnxruntime:, fallback_cpu_capability.cc:89 operator()] Candidate for fallback CPU execution: l0/node/Concat_2",
    "2026-12-05 12:59:55.9 [V:onnxruntime:, session_state.cc:1377 VerifyEachNodeIsAssignedToAnEp] Node placements",
    "2026-12-05 12:59:55.9 [V:onnxruntime:, session_state.cc:1383 VerifyEachNodeIsAssignedToAnEp]  Node(s) placed on [CPUExecutionProvider]. Number of nodes: 3",
    "2026-12-05 12:59:55.9 [V:onnxruntime:, session_state.cc:1385 VerifyEachNodeIsAssignedToAnEp]   NonZero (l0/e0/nonzero)",
    "2026-12-05 12:59:55.9 [V:onnxruntime:, session_state.cc:1385 VerifyEachNodeIsAssignedToAnEp]   Concat (l0/node/Concat_2)",
    "2026-12-05 12:59:55.9 [V:onnxruntime:, session_state.cc:1385 VerifyEachNodeIsAssignedToAnEp]   Or (l0/or)",
    "2026-12-05 12:59:55.9 [V:onnxruntime:, session_state.cc:1383 VerifyEachNodeIsAssignedToAnEp]  Node(s) placed on [WebGpuExecutionProvider]. Number of nodes: 5",
    "2026-12-05 12:59:55.9 [V:onnxruntime:, session_state.cc:1385 VerifyEachNodeIsAssignedToAnEp]   MatMul (l0/q)",
    "2026-12-05 12:59:55.9 [V:onnxruntime:, session_state.cc:1385 VerifyEachNodeIsAssignedToAnEp]   MatMul (l0/k)",
    "2026-12-05 12:59:55.9 [V:onnxruntime:, session_state.cc:1385 VerifyEachNodeIsAssignedToAnEp]   Gather (l0/gather)",
    "2026-12-05 12:59:55.9 [V:onnxruntime:, session_state.cc:1385 VerifyEachNodeIsAssignedToAnEp]   MemcpyFromHost (Memcpy)",
    "2026-12-05 12:59:55.9 [V:onnxruntime:, session_state.cc:1385 VerifyEachNodeIsAssignedToAnEp]   MemcpyToHost (Memcpy_token_1)",
  ].join("\n");

  it("counts nodes per provider (Memcpy apart), the copies and why nodes are on the CPU", () => {
    const r = parsePlacementLog(log, "webgpu");
    expect(r.byProvider).toEqual([
      { provider: "CPUExecutionProvider", nodes: 3, ops: { NonZero: 1, Concat: 1, Or: 1 } },
      { provider: "WebGpuExecutionProvider", nodes: 3, ops: { MatMul: 2, Gather: 1 } },
    ]);
    expect(r.nodes).toBe(6);
    expect(r.memcpy).toEqual({ fromHost: 1, toHost: 1, sites: [{ kind: "MemcpyFromHost", tensor: "l0/or" }, { kind: "MemcpyToHost", tensor: "l0/gather" }] });
    expect(r.cpuFallbacks).toEqual([
      { op: "Concat", nodes: 1, noKernel: 0, preferredOnCpu: 1 },
      { op: "NonZero", nodes: 1, noKernel: 1, preferredOnCpu: 0 },
      { op: "Or", nodes: 1, noKernel: 0, preferredOnCpu: 0 },
    ]);
    expect(allOnProvider(r)).toBe(false);
    expect(describePlacement(r)).toBe("3 nodes on CPUExecutionProvider, 3 on WebGpuExecutionProvider; 1 MemcpyFromHost, 1 MemcpyToHost");
  });

  it("a graph on one provider; a log without placement lines is an error, not an empty report", () => {
    const one = parsePlacementLog("2026-12-05 1.0 [V:onnxruntime:, session_state.cc:1380 VerifyEachNodeIsAssignedToAnEp]  All nodes placed on [WebGpuExecutionProvider]. Number of nodes: 12", "webgpu");
    expect(allOnProvider(one)).toBe(true);
    expect(one.nodes).toBe(12);
    expect(() => parsePlacementLog("nothing", "webgpu")).toThrow(/no node placement lines/);
  });
});
