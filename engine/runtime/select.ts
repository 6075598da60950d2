/**
 * Which execution providers a STUDIO_EP preference tries, in order, on this machine:
 * `cpu`, `cuda` and `webgpu` are exactly that provider (an error says why it cannot run here); `auto` is
 * CUDA if it loads, else WebGPU on a hardware adapter, else CPU (a software adapter such as SwiftShader is
 * far slower than the CPU provider, so only an explicit `webgpu` uses one).
 */
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import * as ort from "onnxruntime-node";
import { onnx } from "onnx-proto";
import { ortRequireBase } from "./ort-child";
import type { EpPreference, ExecutionProvider } from "./types";
import { adapterLabel, mayHaveHardwareAdapter, noAdapterHelp, probeWebGpu } from "./webgpu";

export interface ProviderChoice {
  /** Providers to try, in order (the last one is the fallback when a session cannot be created on the first). */
  order: ExecutionProvider[];
  /** Why `auto` passed over CUDA or WebGPU. */
  skipped: Partial<Record<"cuda" | "webgpu", string>>;
}

export async function chooseProviders(pref: EpPreference): Promise<ProviderChoice> {
  if (pref === "cpu") return { order: ["cpu"], skipped: {} };
  if (pref === "cuda") {
    const reason = await probeCuda();
    if (reason) throw new Error(`STUDIO_EP=cuda, but the CUDA execution provider is unavailable: ${reason}`);
    return { order: ["cuda"], skipped: {} };
  }
  if (pref === "webgpu") {
    const p = await probeWebGpu();
    if (!p.ok) throw new Error(`STUDIO_EP=webgpu, but no WebGPU adapter was found (${p.reason}). ${noAdapterHelp()}`);
    return { order: ["webgpu"], skipped: {} };
  }
  const skipped: ProviderChoice["skipped"] = {};
  const order: ExecutionProvider[] = [];
  const cuda = await probeCuda();
  if (cuda) skipped.cuda = cuda;
  else order.push("cuda");
  if (!mayHaveHardwareAdapter()) skipped.webgpu = "no Vulkan driver for a GPU is installed";
  else {
    const p = await probeWebGpu();
    if (!p.ok) skipped.webgpu = p.reason;
    else if (p.adapter.software) skipped.webgpu = `the only adapter is a software one (${adapterLabel(p.adapter)}); STUDIO_EP=webgpu uses it`;
    else order.push("webgpu");
  }
  order.push("cpu");
  return { order, skipped };
}

let cudaProbe: Promise<string | undefined> | undefined;
/** Creates a one-op session on CUDA, once per process; resolves to undefined when CUDA works, else the reason. */
export function probeCuda(): Promise<string | undefined> {
  cudaProbe ??= (async () => {
    // The CUDA provider libraries sit next to the ORT binding when installed; without them, creating a
    // CUDA session only prints a native error line. Skip the attempt and give the reason instead.
    const bindingDir = ortBindingDir();
    if (bindingDir && !existsSync(path.join(bindingDir, "libonnxruntime_providers_cuda.so")) && !existsSync(path.join(bindingDir, "onnxruntime_providers_cuda.dll"))) {
      return `the CUDA provider libraries are not installed in ${bindingDir} (onnxruntime-node's install step fetches them on a machine with internet access: npm run setup:gpu)`;
    }
    try {
      const s = await ort.InferenceSession.create(probeModel(), { executionProviders: ["cuda"], logSeverityLevel: 4 });
      await s.release();
      return undefined;
    } catch (err) {
      return (err as Error).message;
    }
  })();
  return cudaProbe;
}

function ortBindingDir(): string | undefined {
  try {
    const entry = createRequire(ortRequireBase()).resolve("onnxruntime-node");
    return path.join(path.dirname(entry), "..", "bin", "napi-v6", process.platform, process.arch);
  } catch {
    return undefined;
  }
}

let probeBytes: Uint8Array | undefined;
/** A one-node Identity model, built in memory, used to check whether a provider loads. */
function probeModel(): Uint8Array {
  const F = onnx.TensorProto.DataType.FLOAT;
  const vi = (name: string) => ({ name, type: { tensorType: { elemType: F, shape: { dim: [{ dimValue: 1 }] } } } });
  probeBytes ??= onnx.ModelProto.encode({
    irVersion: 8,
    opsetImport: [{ domain: "", version: 17 }],
    graph: { name: "probe", node: [{ opType: "Identity", input: ["x"], output: ["y"] }], input: [vi("x")], output: [vi("y")] },
  }).finish();
  return probeBytes;
}
