/**
 * "uni-moe-tiny/dit": the seeded reference task-aware DiT + tiny VAE ("seeded, untrained").
 *
 * On disk (<models dir>/uni-moe-tiny/dit, built on first use, atomically: temp dir + rename):
 *   dit_config.json   { dit: DitConfig, vae: VaeConfig, seeded_untrained: true }  — NOT config.json, so
 *                     the LLM model list (models/moe-llm/moe-llm-model.ts listModels) does not offer it as an LLM
 *   model.safetensors fp32; DiT tensors prefixed "dit.", VAE tensors "vae."
 *   manifest.json     written last; contentHash = sha256(config, seed, generator version)
 * ONNX graphs (DiT, VAE decoder, VAE encoder) are cached by content hash in <models dir>/.graphs.
 */
import path from "node:path";
import type { InferenceSession } from "onnxruntime-node";
import * as ort from "onnxruntime-node";
import type { Runtime } from "@/engine/runtime/types";
import { cfgCombine, releasedGuidance, ditParamTable, ditParameterCount, latentSize, seedDitTensor, zDitConfig, type DitConditioning, type DitConfig } from "./dit";
import { buildDitGraph, DIT_GRAPH_VERSION } from "./dit-graph";
import { SafetensorsWeights, writeSafetensors, type SafetensorsEntry } from "../io/safetensors";
import { hashValue } from "../../engine/hash";
import { ensureSeededModel } from "../io/seeded-store";
import { modelsDir } from "@/engine/config";
import { buildVaeDecoderGraph, buildVaeEncoderGraph, seedVaeTensor, vaeImageSize, vaeParamTable, zVaeConfig, type VaeConfig } from "./vae";
import type { Tensor32, WeightSource } from "../io/weights";
import { cachedGraphFile } from "../onnx/graph-cache";

export const DIT_REF = "uni-moe-tiny/dit";
export const DIT_LABEL = "seeded, untrained";
/** Bump whenever generated weights or written files would change. */
export const DIT_GENERATOR_VERSION = 1;
export const DIT_DEFAULT_SEED = 2511;

export interface DitModelConfig {
  dit: DitConfig;
  vae: VaeConfig;
  seeded_untrained: true;
}

/** The reference config: latent 4×32×32, patch 2 (256 patches), D 96, 3 blocks, 4 heads; VAE 32 → 256. */
export function ditReferenceConfig(): DitModelConfig {
  return {
    dit: zDitConfig.parse({ latentChannels: 4, latentSize: 32, patchSize: 2, hidden: 96, depth: 3, heads: 4, mlpRatio: 4, condTokens: 32, taskTokens: 3, llmHidden: 128 }),
    vae: zVaeConfig.parse({ latentChannels: 4, latentSize: 32, decoderChannels: [64, 48, 32, 16], encoderChannels: [16, 32, 64] }),
    seeded_untrained: true,
  };
}

export interface DitManifest {
  ref: typeof DIT_REF;
  seed: number;
  generatorVersion: number;
  label: typeof DIT_LABEL;
  contentHash: string;
  files: Record<string, number>;
  parameters: { dit: number; vae: number };
  createdAt: string;
}

export interface DitModel {
  dir: string;
  config: DitModelConfig;
  manifest: DitManifest;
  /** false when a matching model was already on disk. */
  built: boolean;
}

export function ditModelDir(root = modelsDir()): string {
  return path.join(root, "uni-moe-tiny", "dit");
}

export function ditContentHash(config: DitModelConfig, seed: number): string {
  return hashValue({ config, seed, generatorVersion: DIT_GENERATOR_VERSION, ref: DIT_REF });
}

/** The seeded tensors of the whole model, lazily, in file order. */
function entries(config: DitModelConfig, seed: number): SafetensorsEntry[] {
  return [
    ...ditParamTable(config.dit).map((p) => ({ name: `dit.${p.name}`, shape: p.shape, data: () => seedDitTensor(p, seed).data })),
    ...vaeParamTable(config.vae).map((p) => ({ name: `vae.${p.name}`, shape: p.shape, data: () => seedVaeTensor(p, seed).data })),
  ];
}

/**
 * Makes sure `dir` (default <models dir>/uni-moe-tiny/dit) holds the seeded DiT + VAE. Builds it in a
 * temporary sibling and renames it into place, so an interrupted build never leaves half a model
 * (models/io/seeded-store.ts).
 */
export function ensureDitModel(dir?: string, opts: { seed?: number } = {}): Promise<DitModel> {
  const config = ditReferenceConfig();
  const seed = opts.seed ?? DIT_DEFAULT_SEED;
  const contentHash = ditContentHash(config, seed);
  return ensureSeededModel<DitManifest, DitModel>({
    dir: dir ?? ditModelDir(),
    contentHash,
    configFile: "dit_config.json",
    config,
    weights: { "model.safetensors": () => entries(config, 0).length },
    async write(tmp) {
      const metadata = { format: "pt", ref: DIT_REF, seed: String(seed), generator_version: String(DIT_GENERATOR_VERSION), label: DIT_LABEL };
      const { bytes } = await writeSafetensors(path.join(tmp, "model.safetensors"), entries(config, seed), { metadata });
      return {
        ref: DIT_REF,
        seed,
        generatorVersion: DIT_GENERATOR_VERSION,
        label: DIT_LABEL,
        contentHash,
        files: { "model.safetensors": bytes },
        parameters: { dit: ditParameterCount(config.dit), vae: vaeParamTable(config.vae).reduce((s, p) => s + p.shape.reduce((a, b) => a * b, 1), 0) },
        createdAt: new Date().toISOString(),
      };
    },
    result: ({ dir, built, manifest }) => ({ dir, config, manifest, built }),
  });
}

/** A WeightSource view of the tensors under `prefix` (names without it). */
export class PrefixedWeights implements WeightSource {
  constructor(
    private readonly inner: WeightSource,
    private readonly prefix: string,
  ) {}
  names(): string[] {
    return this.inner.names().filter((n) => n.startsWith(this.prefix)).map((n) => n.slice(this.prefix.length));
  }
  has(name: string): boolean {
    return this.inner.has(this.prefix + name);
  }
  get(name: string): Tensor32 {
    return this.inner.get(this.prefix + name);
  }
}

export type DitGraphKind = "dit" | "vae-decoder" | "vae-encoder";

/** The cached ONNX file of one of the model's graphs (built once per content hash). */
export function ditGraphFile(model: DitModel, kind: DitGraphKind): string {
  return cachedGraphFile({ hash: model.manifest.contentHash, kind, v: DIT_GRAPH_VERSION }, () => {
    const weights = new SafetensorsWeights(model.dir);
    try {
      return kind === "dit"
        ? buildDitGraph(model.config.dit, new PrefixedWeights(weights, "dit."))
        : kind === "vae-decoder"
          ? buildVaeDecoderGraph(model.config.vae, new PrefixedWeights(weights, "vae."))
          : buildVaeEncoderGraph(model.config.vae, new PrefixedWeights(weights, "vae."));
    } finally {
      weights.close();
    }
  });
}

// ---------------------------------------------------------------------------------------------
// Running

export interface DitBatch {
  /** [B, C, S, S] */
  x: Float32Array;
  /** [B, C, S, S] (zeros for text-to-image) */
  source: Float32Array;
  /** [B] */
  t: Float32Array;
  /** [B, M, L] */
  img: Float32Array;
  /** [B, K, L] */
  task: Float32Array;
  batch: number;
}

/** The three sessions of a loaded DiT pipeline (encoder only in editing mode). */
export class DitRunner {
  constructor(
    readonly config: DitModelConfig,
    private readonly dit: InferenceSession,
    private readonly decoder?: InferenceSession,
    private readonly encoder?: InferenceSession,
  ) {}

  /** Batched DiT forward → v [B, C, S, S]. */
  async forward(b: DitBatch): Promise<Float32Array> {
    const { latentChannels: C, latentSize: S, condTokens: M, taskTokens: K, llmHidden: L } = this.config.dit;
    const B = b.batch;
    const T = (data: Float32Array, dims: number[]) => {
      const n = dims.reduce((a, c) => a * c, 1);
      if (data.length !== n) throw new Error(`DiT input: [${dims}] needs ${n} values, got ${data.length}`);
      return new ort.Tensor("float32", data, dims);
    };
    const out = await this.dit.run({ x: T(b.x, [B, C, S, S]), source: T(b.source, [B, C, S, S]), t: T(b.t, [B]), img: T(b.img, [B, M, L]), task: T(b.task, [B, K, L]) });
    return out.v!.data as Float32Array;
  }

  /**
   * The guided velocity v_u + g·(v_c − v_u) at (x, t) for one latent. The unconditional branch has zero
   * [IMG*]/[TASK*] vectors and the same source latent. g = 1 skips the unconditional run, g = 0 the conditional.
   */
  async guidedVelocity(x: Float32Array, t: number, cond: Pick<DitConditioning, "img" | "task">, guidance: number, source?: Float32Array): Promise<Float32Array> {
    const n = latentSize(this.config.dit);
    const src = source ?? new Float32Array(n);
    if (guidance === 1 || guidance === 0) {
      const on = guidance === 1;
      return this.forward({ x, source: src, t: Float32Array.of(t), img: on ? cond.img : new Float32Array(cond.img.length), task: on ? cond.task : new Float32Array(cond.task.length), batch: 1 });
    }
    const two = (a: Float32Array, b: Float32Array) => {
      const o = new Float32Array(a.length + b.length);
      o.set(a);
      o.set(b, a.length);
      return o;
    };
    const v = await this.forward({
      x: two(x, x),
      source: two(src, src),
      t: Float32Array.of(t, t),
      img: two(cond.img, new Float32Array(cond.img.length)),
      task: two(cond.task, new Float32Array(cond.task.length)),
      batch: 2,
    });
    return cfgCombine(v.subarray(n), v.subarray(0, n), guidance);
  }

  /**
   * The release's guided velocity (RELEASED.md §2.5, on the tiny DiT): one batch of 3 branches — 0: the [IMG] states,
   * task = [TASK0]; 1: no caption (zeros), task = [TASK1]; 2: no caption, task = [TASK2], and the initial noise
   * `noise` as its input-image latent — combined by releasedGuidance. The tiny task projector averages its K rows,
   * so branch b's task input repeats [TASK b].
   */
  async releasedVelocity(x: Float32Array, t: number, cond: Pick<DitConditioning, "img" | "task">, text: number, image: number, noise: Float32Array, source?: Float32Array): Promise<Float32Array> {
    const c = this.config.dit;
    const n = latentSize(c), { K, L } = { K: c.taskTokens, L: c.llmHidden };
    const src = source ?? new Float32Array(n);
    const cat = (xs: Float32Array[]) => {
      const o = new Float32Array(xs.reduce((a, y) => a + y.length, 0));
      let off = 0;
      for (const y of xs) {
        o.set(y, off);
        off += y.length;
      }
      return o;
    };
    const taskRow = (b: number) => cat(Array.from({ length: K }, () => cond.task.subarray(b * L, (b + 1) * L)));
    const blank = new Float32Array(cond.img.length);
    const v = await this.forward({ x: cat([x, x, x]), source: cat([src, src, noise]), t: Float32Array.of(t, t, t), img: cat([cond.img, blank, blank]), task: cat([taskRow(0), taskRow(1), taskRow(2)]), batch: 3 });
    return releasedGuidance(c, v.subarray(0, n), v.subarray(n, 2 * n), v.subarray(2 * n), text, image);
  }

  /** z [C, s, s] → image [3, R, R] in [−1, 1]. */
  async decode(z: Float32Array): Promise<Float32Array> {
    if (!this.decoder) throw new Error("the VAE decoder is not loaded");
    const { latentChannels: C, latentSize: s } = this.config.vae;
    const out = await this.decoder.run({ z: new ort.Tensor("float32", z, [1, C, s, s]) });
    return out.image!.data as Float32Array;
  }

  /** image [3, R, R] in [−1, 1] → z [C, s, s]. */
  async encode(image: Float32Array): Promise<Float32Array> {
    if (!this.encoder) throw new Error("the VAE encoder is not loaded (editing mode only)");
    const R = vaeImageSize(this.config.vae);
    const out = await this.encoder.run({ image: new ort.Tensor("float32", image, [1, this.config.vae.imageChannels, R, R]) });
    return out.z!.data as Float32Array;
  }
}

/**
 * Resolves (building on first use) the reference DiT, its cached graphs, and pooled sessions pinned
 * while `fn` runs. `withEncoder` also loads the VAE encoder (editing mode).
 */
export async function withDit<T>(runtime: Runtime, opts: { withEncoder: boolean; dir?: string }, fn: (runner: DitRunner, model: DitModel) => Promise<T>): Promise<T> {
  const model = await ensureDitModel(opts.dir);
  const ditFile = ditGraphFile(model, "dit");
  const decFile = ditGraphFile(model, "vae-decoder");
  const encFile = opts.withEncoder ? ditGraphFile(model, "vae-encoder") : undefined;
  return runtime.withSession(ditFile, undefined, (dit) =>
    runtime.withSession(decFile, undefined, (dec) => {
      if (!encFile) return fn(new DitRunner(model.config, dit.session, dec.session), model);
      return runtime.withSession(encFile, undefined, (enc) => fn(new DitRunner(model.config, dit.session, dec.session, enc.session), model));
    }),
  );
}
