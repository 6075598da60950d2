import type { ExecutionProvider } from "@/engine/runtime/types";
/**
 * Memory a model needs to run, estimated from its config before anything is loaded, and the check that it fits.
 * Weights take the bytes of the dtype the graph computes in, whatever the storage: 4 per parameter for the fp32
 * graph (CPU by default; fp16/bf16 storage is cast up once when ORT folds the Casts at load), 2 for the fp16
 * compute graph (CUDA by default, see fp16.ts); plus the KV cache (fp32 at the graph's interface; MLA: the latent, see
 * decoder/attention.ts kvCacheDims) and a margin.
 */
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { zMoeLlmConfig, type MoeLlmConfig } from "../config";
import { kvCacheDims } from "../decoder/attention";
import type { ComputeDtype } from "./fp16";
import { parameterCounts } from "./import";

export interface MemoryEstimate {
  bytes: number;
  weights: number;
  kvCache: number;
  explain: string;
}

const gb = (b: number) => (b >= 1e9 ? `${(b / 1e9).toFixed(1)} GB` : `${(b / 1e6).toFixed(1)} MB`);

/** Weights (in the compute dtype) + KV cache for `contextTokens` (fp32, one sequence) + 15 % activations/workspace. */
export function estimateFromConfig(config: MoeLlmConfig, contextTokens = 4096, compute: ComputeDtype = "fp32"): MemoryEstimate {
  const bytesPerWeight = compute === "fp16" ? 2 : 4;
  const { key, value } = kvCacheDims(config);
  const weights = parameterCounts(config).total * bytesPerWeight;
  const kvCache = config.num_hidden_layers * (key[0] * key[1] + value[0] * value[1]) * contextTokens * 4;
  const bytes = Math.ceil((weights + kvCache) * 1.15);
  return { bytes, weights, kvCache, explain: `weights ${gb(weights)} at ${bytesPerWeight} B/param (${compute} compute) + KV cache ${gb(kvCache)} for ${contextTokens} tokens + 15 %` };
}

export function estimateMemory(dir: string, contextTokens = 4096, compute: ComputeDtype = "fp32"): MemoryEstimate {
  const config = zMoeLlmConfig.parse(JSON.parse(readFileSync(path.join(dir, "config.json"), "utf8")));
  return estimateFromConfig(config, contextTokens, compute);
}

/** Total memory of the first CUDA device (nvidia-smi), or undefined when it cannot be asked. */
export function cudaDeviceMemory(): number | undefined {
  const r = spawnSync("nvidia-smi", ["--query-gpu=memory.total", "--format=csv,noheader,nounits"], { encoding: "utf8", timeout: 5000 });
  const mib = Number(r.stdout?.split("\n")[0]?.trim());
  return r.status === 0 && Number.isFinite(mib) && mib > 0 ? mib * 1024 * 1024 : undefined;
}

/** Throws a clear error when the model will not fit the device (checked before the session is created). */
/** On WebGPU the device's memory cannot be read (ONNX Runtime does not report it), so nothing is checked there. */
export function checkFits(ref: string, estimate: MemoryEstimate, provider: ExecutionProvider, available = provider === "cuda" ? cudaDeviceMemory() : provider === "webgpu" ? undefined : os.totalmem()): void {
  if (available === undefined || estimate.bytes <= available) return;
  throw new Error(`model "${ref}" needs about ${gb(estimate.bytes)} to run (${estimate.explain}), but the ${provider === "cuda" ? "CUDA device" : "machine"} has ${gb(available)}`);
}
