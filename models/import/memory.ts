import type { ExecutionProvider } from "@/engine/runtime/types";
/**
 * Memory a model needs to run, estimated from its config before anything is loaded, and the check that it fits.
 * Weights take the bytes of the dtype the graph computes in, whatever the storage: 4 per parameter for the fp32
 * graph (CPU by default; fp16/bf16 storage is cast up once when ORT folds the Casts at load), 2 for the fp16
 * compute graph (CUDA by default, see fp16.ts); plus the KV cache (fp32 at the graph's interface; MLA: the latent, see
 * decoder/attention.ts kvCacheDims) and a margin. A quantised import's matrices count at their quantised bytes
 * (packed weights + fp32 scales + zero points, ImportManifest.quant).
 */
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { paramNames, zMoeLlmConfig, type MoeLlmConfig } from "../moe-llm/config";
import { kvCacheDims } from "../moe-llm/decoder/attention";
import type { ComputeDtype } from "./fp16";
import { parameterCounts, readManifest } from "./import";
import { CHUNK_BYTES as LENS_CHUNK_BYTES } from "../moe-llm/logit-lens";
import { moeLlmParamShapes } from "../moe-llm/moe-llm-graph";
import { quantizedBytes, ROUTER_WEIGHT, type QuantizeGraphOptions, type QuantSummary } from "../onnx/quantize";

export interface MemoryEstimate {
  bytes: number;
  weights: number;
  kvCache: number;
  explain: string;
}

const gb = (b: number) => (b >= 1e9 ? `${(b / 1e9).toFixed(1)} GB` : `${(b / 1e6).toFixed(1)} MB`);

/** Weights (in the compute dtype) + KV cache for `contextTokens` (fp32, one sequence) + 15 % activations/workspace. */
export function estimateFromConfig(config: MoeLlmConfig, contextTokens = 4096, compute: ComputeDtype = "fp32", quant?: Pick<QuantSummary, "parameters" | "bytes" | "bits">): MemoryEstimate {
  const bytesPerWeight = compute === "fp16" ? 2 : 4;
  const { key, value } = kvCacheDims(config);
  const total = parameterCounts(config).total;
  const full = (total - (quant?.parameters ?? 0)) * bytesPerWeight;
  const weights = full + (quant?.bytes ?? 0);
  const kvCache = config.num_hidden_layers * (key[0] * key[1] + value[0] * value[1]) * contextTokens * 4;
  const bytes = Math.ceil((weights + kvCache) * 1.15);
  const what = quant
    ? `weights ${gb(weights)} (${gb(quant.bytes)} int${quant.bits} for ${(quant.parameters / 1e6).toFixed(1)} M quantised params + ${gb(full)} for the rest at ${bytesPerWeight} B/param, ${compute} compute)`
    : `weights ${gb(weights)} at ${bytesPerWeight} B/param (${compute} compute)`;
  return { bytes, weights, kvCache, explain: `${what} + KV cache ${gb(kvCache)} for ${contextTokens} tokens + 15 %` };
}

/**
 * The logit-lens head of a model (models/moe-llm/logit-lens.ts): the final norm and the LM head [V, H] in the compute dtype
 * (at its quantised bytes when the import quantised the head; a tied embedding never is), plus the chunk of
 * log-probabilities runLogitLens keeps alive, + 15 %.
 */
export function estimateLensHead(config: MoeLlmConfig, compute: ComputeDtype = "fp32", quant?: Pick<QuantSummary, "bits" | "blockSize" | "symmetric" | "lmHead">): MemoryEstimate {
  const V = config.vocab_size, H = config.hidden_size;
  const quantised = !!quant?.lmHead && !config.tie_word_embeddings;
  const weights = (quantised ? quantizedBytes(V, H, quant) : V * H * (compute === "fp16" ? 2 : 4)) + 3 * H * 4;
  const bytes = Math.ceil((weights + LENS_CHUNK_BYTES) * 1.15);
  return { bytes, weights, kvCache: 0, explain: `LM head ${gb(weights)} (${quantised ? `int${quant.bits}` : `${compute} compute`}) + lens chunk ${gb(LENS_CHUNK_BYTES)} + 15 %` };
}

/**
 * Parameters and bytes a quantisation would cover, estimated from the config before an import: the 2-D weights of
 * attention and of the MLPs/experts (not the routers, embeddings, norms, biases; the LM head only when asked). The
 * import records the exact figures of the graph it quantised (ImportManifest.quant), which estimateMemory uses.
 */
export function quantizedShare(config: MoeLlmConfig, q: QuantizeGraphOptions): Pick<QuantSummary, "parameters" | "bytes" | "bits"> {
  let parameters = 0, bytes = 0;
  for (const [name, shape] of moeLlmParamShapes(config)) {
    const linear = QUANTISED_LINEAR.test(name) || (q.lmHead && name === paramNames.lmHead);
    if (shape.length !== 2 || !linear || ROUTER_WEIGHT.test(name)) continue;
    const [N, K] = shape as [number, number];
    parameters += N * K;
    bytes += quantizedBytes(N, K, q.scheme);
  }
  return { parameters, bytes, bits: q.scheme.bits };
}
/** Canonical names of the Linear weights the graph reads directly (DeepSeek's kv_b_proj is split and absorbed: not one). */
const QUANTISED_LINEAR = /\.(self_attn\.(q|k|v|o|q_a|q_b)_proj|self_attn\.kv_a_proj_with_mqa|mlp\..*(gate|up|down)_proj)\.weight$/;

export function estimateMemory(dir: string, contextTokens = 4096, compute: ComputeDtype = "fp32"): MemoryEstimate {
  const config = zMoeLlmConfig.parse(JSON.parse(readFileSync(path.join(dir, "config.json"), "utf8")));
  return estimateFromConfig(config, contextTokens, compute, readManifest(dir)?.quant);
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
