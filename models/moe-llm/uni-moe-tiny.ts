/**
 * "uni-moe-tiny": the seeded reference family. Same architecture and parameter names as Uni-MoE-2.0
 * (models/moe-llm/config.ts), scaled down, with SEEDED, UNTRAINED weights — the UI must say so.
 *
 * Init (per tensor, from a seed derived from (seed, parameter name), so tensors can be generated
 * one at a time and in any order):
 *   - embeddings, attention, experts, lm_head, q/k/v biases: N(0, 0.02²)
 *   - RMSNorm weights: 1 + N(0, 0.02²)
 *   - routers: N(0, (s_i / √hidden)²), with s_i ~ U[0.8, 2.0) drawn per layer from the seed. The router
 *     reads an RMS-normalised vector (RMS ≈ 1), so its logits have std ≈ s_i: a std-0.02 router would
 *     route almost uniformly (k = 4 for nearly every token); logit std 0.8–2 gives a mix of k = 1, 2, 3
 *     that also differs from layer to layer, which is what the routing views are for.
 */
import fs from "node:fs";
import path from "node:path";
import { hashValue } from "../../engine/hash";
import { headDim, paramNames, zMoeLlmConfig, type MoeLlmConfig } from "./config";
import { ensureSeededModel, type SeededModelManifest } from "../io/seeded-store";
import { safetensorsFileSize, writeSafetensors, type SafetensorsEntry } from "../io/safetensors";
import { SeededRandom, deriveSeed } from "../io/seeded-random";
import { byteTokenizer } from "../text/tokenizer";
import type { Tensor32 } from "../io/weights";
import { modelsDir } from "@/engine/config";

export const FAMILY = "uni-moe-tiny";
/** Bump whenever generated weights or written files would change (init, PRNG, table order, config). */
export const GENERATOR_VERSION = 1;
export const DEFAULT_SEED = 2511;
export const INIT_STD = 0.02;
export const ROUTER_LOGIT_STD_RANGE: readonly [number, number] = [0.8, 2.0];
export const REFERENCE_LABEL = "seeded, untrained";

export type ReferenceModelName = "tiny" | "small";
export const REFERENCE_MODEL_NAMES: readonly ReferenceModelName[] = ["tiny", "small"];

/** The byte tokenizer's size rounded up to a multiple of 64. */
export const REFERENCE_VOCAB_SIZE = Math.ceil(byteTokenizer.vocabSize / 64) * 64;

function makeConfig(c: {
  layers: number;
  hidden: number;
  heads: number;
  kvHeads: number;
  routed: number;
  routedInter: number;
  sharedInter: number;
}): MoeLlmConfig {
  return zMoeLlmConfig.parse({
    model_type: "uni_moe_tiny",
    hidden_act: "silu",
    torch_dtype: "float32",
    hidden_size: c.hidden,
    num_hidden_layers: c.layers,
    num_attention_heads: c.heads,
    num_key_value_heads: c.kvHeads,
    head_dim: 32,
    vocab_size: REFERENCE_VOCAB_SIZE,
    max_position_embeddings: 32768,
    rms_norm_eps: 1e-6,
    rope_theta: 1_000_000,
    rope_scaling: { type: "mrope", mrope_section: [4, 6, 6] },
    mlp_dynamic_expert_num: c.routed,
    mlp_dynamic_null_expert_num: 1,
    mlp_fixed_expert_num: 2,
    dynamic_intermediate_size: c.routedInter,
    shared_intermediate_size: c.sharedInter,
    mlp_dynamic_top_p: 0.7,
    mlp_dynamic_top_k: 2,
    router_jitter_noise: 0.01,
    token_drop: false,
    capacity_factor: 1,
    min_capacity: 8,
    tie_word_embeddings: false,
    initializer_range: INIT_STD,
    bos_token_id: null,
    eos_token_id: byteTokenizer.tokenId("<|im_end|>"),
    pad_token_id: byteTokenizer.tokenId("<|endoftext|>"),
    seeded_untrained: true,
  });
}

/** Configs of the family (zMoeLlmConfig-valid, defaults filled in). */
export const referenceConfigs: Record<ReferenceModelName, MoeLlmConfig> = {
  tiny: makeConfig({ layers: 8, hidden: 128, heads: 4, kvHeads: 2, routed: 4, routedInter: 256, sharedInter: 32 }),
  small: makeConfig({ layers: 28, hidden: 256, heads: 8, kvHeads: 4, routed: 8, routedInter: 512, sharedInter: 64 }),
};

export function referenceConfig(name: ReferenceModelName): MoeLlmConfig {
  const c = referenceConfigs[name];
  if (!c) throw new Error(`unknown ${FAMILY} model "${name}" (known: ${REFERENCE_MODEL_NAMES.join(", ")})`);
  return structuredClone(c);
}

// ---------------------------------------------------------------------------------------------
// The parameter table

export type ParamKind = "embed" | "norm" | "linear" | "bias" | "router" | "lm_head";

export interface ParamSpec {
  name: string;
  shape: number[];
  kind: ParamKind;
  /** Layer index for per-layer parameters. */
  layer?: number;
}

/** Every parameter of a Uni-MoE-2.0-layout MoE-LLM with its shape, in file order (Linear weights are [out, in]). */
export function paramTable(c: MoeLlmConfig): ParamSpec[] {
  const H = c.hidden_size;
  const hd = headDim(c);
  const q = c.num_attention_heads * hd;
  const kv = c.num_key_value_heads * hd;
  const cols = c.mlp_dynamic_expert_num + c.mlp_dynamic_null_expert_num + c.mlp_fixed_expert_num;
  const t: ParamSpec[] = [{ name: paramNames.embed, shape: [c.vocab_size, H], kind: "embed" }];
  for (let i = 0; i < c.num_hidden_layers; i++) {
    const L = (name: string, shape: number[], kind: ParamKind) => t.push({ name, shape, kind, layer: i });
    L(paramNames.inputNorm(i), [H], "norm");
    L(paramNames.attn(i, "q", "weight"), [q, H], "linear"); // x: [T,H] → [T, heads*hd]
    L(paramNames.attn(i, "q", "bias"), [q], "bias");
    L(paramNames.attn(i, "k", "weight"), [kv, H], "linear"); // → [T, kv_heads*hd]
    L(paramNames.attn(i, "k", "bias"), [kv], "bias");
    L(paramNames.attn(i, "v", "weight"), [kv, H], "linear");
    L(paramNames.attn(i, "v", "bias"), [kv], "bias");
    L(paramNames.attn(i, "o", "weight"), [H, q], "linear"); // [T, heads*hd] → [T,H], no bias
    L(paramNames.postNorm(i), [H], "norm");
    L(paramNames.router(i), [cols, H], "router"); // [T,H] → [T, routed+null+shared]
    for (let s = 0; s < c.mlp_fixed_expert_num; s++) {
      L(paramNames.shared(i, s, "gate"), [c.shared_intermediate_size, H], "linear");
      L(paramNames.shared(i, s, "up"), [c.shared_intermediate_size, H], "linear");
      L(paramNames.shared(i, s, "down"), [H, c.shared_intermediate_size], "linear");
    }
    for (let e = 0; e < c.mlp_dynamic_expert_num; e++) {
      L(paramNames.routed(i, e, "gate"), [c.dynamic_intermediate_size, H], "linear");
      L(paramNames.routed(i, e, "up"), [c.dynamic_intermediate_size, H], "linear");
      L(paramNames.routed(i, e, "down"), [H, c.dynamic_intermediate_size], "linear");
    }
  }
  t.push({ name: paramNames.finalNorm, shape: [H], kind: "norm" });
  if (!c.tie_word_embeddings) t.push({ name: paramNames.lmHead, shape: [c.vocab_size, H], kind: "lm_head" });
  return t;
}

export function parameterCount(c: MoeLlmConfig): number {
  return paramTable(c).reduce((s, p) => s + p.shape.reduce((a, b) => a * b, 1), 0);
}

// ---------------------------------------------------------------------------------------------
// Seeded weights

/** Logit std of layer `layer`'s router (see the file comment). */
export function routerLogitStd(seed: number, layer: number): number {
  const [lo, hi] = ROUTER_LOGIT_STD_RANGE;
  return new SeededRandom(deriveSeed(seed, `router-logit-std.${layer}`)).range(lo, hi);
}

/** One seeded parameter; depends only on (config, spec, seed), not on other tensors. */
export function seedTensor(c: MoeLlmConfig, spec: ParamSpec, seed: number): Tensor32 {
  const n = spec.shape.reduce((a, b) => a * b, 1);
  const rng = new SeededRandom(deriveSeed(seed, spec.name));
  const data = new Float32Array(n);
  switch (spec.kind) {
    case "norm":
      rng.fillNormal(data, INIT_STD, 1);
      break;
    case "router":
      rng.fillNormal(data, routerLogitStd(seed, spec.layer ?? 0) / Math.sqrt(c.hidden_size));
      break;
    default:
      rng.fillNormal(data, INIT_STD);
  }
  return { shape: [...spec.shape], data };
}

/** Every parameter of `config`, seeded. Deterministic per seed. */
export function seedWeights(config: MoeLlmConfig, seed: number): Map<string, Tensor32> {
  return new Map(paramTable(config).map((p) => [p.name, seedTensor(config, p, seed)]));
}
/** Issue 4's name for seedWeights. */
export const seed_weights = seedWeights;

// ---------------------------------------------------------------------------------------------
// On-disk reference models

/** contentHash: sha256 of (canonical config JSON, seed, generator version). */
export type ReferenceManifest = SeededModelManifest<ReferenceModelName>;

export function referenceModelDir(name: ReferenceModelName, root = modelsDir()): string {
  return path.join(root, FAMILY, name);
}

export function referenceContentHash(config: MoeLlmConfig, seed: number): string {
  return hashValue({ config, seed, generatorVersion: GENERATOR_VERSION });
}

export interface EnsureOptions {
  seed?: number;
  /** Bytes of model.safetensors written so far and its total size (only called when building). */
  onProgress?: (written: number, total: number) => void;
}

export interface EnsureResult {
  dir: string;
  /** false when a matching model was already there. */
  built: boolean;
  config: MoeLlmConfig;
  manifest: ReferenceManifest;
  /** Why it was (re)built. */
  reason?: string;
}

/**
 * Makes sure `dir` (default: <models dir>/uni-moe-tiny/<name>) holds the seeded reference model:
 * config.json, model.safetensors (fp32), manifest.json and tokenizer_config.json. Does nothing when a
 * manifest with the same content hash is there and the files check out; otherwise builds the model in a
 * temporary sibling directory and renames it into place, so an interrupted build never leaves half a model
 * (the seeded-model store, models/io/seeded-store.ts).
 */
export function ensureReferenceModel(name: ReferenceModelName, dir?: string, opts: EnsureOptions = {}): Promise<EnsureResult> {
  const config = referenceConfig(name);
  const seed = opts.seed ?? DEFAULT_SEED;
  const contentHash = referenceContentHash(config, seed);
  return ensureSeededModel<ReferenceManifest, EnsureResult>({
    dir: dir ?? referenceModelDir(name),
    contentHash,
    configFile: "config.json",
    config,
    weights: { "model.safetensors": () => paramTable(config).length },
    otherFiles: ["tokenizer_config.json"],
    async write(tmp) {
      const table = paramTable(config);
      const entries: SafetensorsEntry[] = table.map((p) => ({ name: p.name, shape: p.shape, data: () => seedTensor(config, p, seed).data }));
      const metadata = { format: "pt", family: FAMILY, name, seed: String(seed), generator_version: String(GENERATOR_VERSION), label: REFERENCE_LABEL };
      const expectedBytes = safetensorsFileSize(entries, { metadata });
      const { bytes } = await writeSafetensors(path.join(tmp, "model.safetensors"), entries, { metadata, onProgress: opts.onProgress });
      if (bytes !== expectedBytes) throw new Error(`internal: wrote ${bytes} bytes, expected ${expectedBytes}`);
      fs.writeFileSync(path.join(tmp, "tokenizer_config.json"), `${JSON.stringify(byteTokenizer.tokenizerConfig(), null, 2)}\n`);
      return {
        family: FAMILY,
        name,
        seed,
        generatorVersion: GENERATOR_VERSION,
        label: REFERENCE_LABEL,
        contentHash,
        files: { "model.safetensors": bytes },
        parameters: parameterCount(config),
        createdAt: new Date().toISOString(),
      };
    },
    result: ({ dir, built, manifest, reason }) => ({ dir, built, config, manifest, ...(reason === undefined ? {} : { reason }) }),
  });
}
