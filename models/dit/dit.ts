/**
 * Task-aware DiT (PAPER §5): config, parameter table, seeded init, LLM conditioning and the Euler
 * flow-matching sampler with classifier-free guidance. The ONNX graph is in ./dit-graph.ts, the VAE in
 * ./vae.ts, the seeded reference model on disk in ./dit-tiny.ts.
 *
 * Dimension letters: B batch, C latent channels (4), S latent side (32), p patch (2), G = S/p grid side,
 * N = G² patches (256), D DiT hidden, Hd = D/heads, F timestep-frequency dim, M conditioning tokens (32),
 * K task tokens (3), L LLM hidden (128).
 *
 * Conventions (chosen here, used everywhere):
 *   - Rectified flow: x_t = (1 − t)·x0 + t·ε, so the model predicts v = dx/dt = ε − x0. Sampling starts from
 *     noise at t = 1 and integrates to t = 0 on the uniform grid t_i = 1 − i/N with Euler steps
 *     x_{i+1} = x_i + v(x_i, t_i)·(t_{i+1} − t_i)  (dt = −1/N).
 *   - Classifier-free guidance: v = v_u + g·(v_c − v_u). The unconditional branch zeroes the LLM hidden
 *     states (all 32 [IMG*] and 3 [TASK*] vectors) BEFORE the projectors; the timestep and, in editing
 *     mode, the source latent stay. g = 1 runs only the conditional branch, g = 0 only the unconditional.
 *   - TASK conditioning: the MEAN of the 3 [TASK*] hidden states goes through the TASK projector and is
 *     added to the timestep embedding: c = t_emb + task_proj(mean(task)). That c drives every adaLN.
 *   - Editing: ONE graph with in-channels 2C (noisy latent ‖ source latent, concatenated on channels).
 *     Text-to-image passes a zero source latent, which makes the patch embed exactly a C-channel patch
 *     embed using the first C input-channel slices of its weight.
 *   - adaLN-Zero structure (shift/scale/gate per sub-block, gated residuals), but the seeded weights are NOT
 *     zero-initialised: a zero-init untrained model would output v ≡ 0 and ignore every condition.
 *   - Timestep embedding: DiT's sinusoidal embedding of t·timeScale (1000), [cos ‖ sin], F = 256.
 *   - Position embedding: fixed 2-D sin-cos (DiT/MAE), first D/2 channels encode the row, last D/2 the column.
 */
import { z } from "zod";
import { SeededRandom, deriveSeed, hashString32 } from "../io/seeded-random";
import type { Tensor32 } from "../io/weights";

// ---------------------------------------------------------------------------------------------
// Config

export const zDitConfig = z.object({
  /** C: latent channels. */
  latentChannels: z.number().int().positive().default(4),
  /** S: latent height = width. */
  latentSize: z.number().int().positive().default(32),
  /** p: patch side. */
  patchSize: z.number().int().positive().default(2),
  /** D: hidden size. */
  hidden: z.number().int().positive().default(96),
  depth: z.number().int().positive().default(3),
  heads: z.number().int().positive().default(4),
  mlpRatio: z.number().int().positive().default(4),
  /** M: [IMG*] conditioning vectors (cross-attention keys/values). */
  condTokens: z.number().int().positive().default(32),
  /** K: [TASK*] vectors (averaged into the adaLN conditioning). */
  taskTokens: z.number().int().positive().default(3),
  /** L: the LLM's hidden size (input of both projectors). */
  llmHidden: z.number().int().positive().default(128),
  /** F: sinusoidal timestep-embedding size (even). */
  freqDim: z.number().int().positive().default(256),
  /** t ∈ [0, 1] is multiplied by this before the sinusoidal embedding. */
  timeScale: z.number().positive().default(1000),
  layerNormEps: z.number().positive().default(1e-6),
});
export type DitConfig = z.infer<typeof zDitConfig>;

export function checkDitConfig(c: DitConfig): DitConfig {
  const bad = (m: string) => new Error(`DiT config: ${m}`);
  if (c.latentSize % c.patchSize !== 0) throw bad(`latentSize ${c.latentSize} is not a multiple of patchSize ${c.patchSize}`);
  if (c.hidden % c.heads !== 0) throw bad(`hidden ${c.hidden} is not a multiple of heads ${c.heads}`);
  if (c.hidden % 4 !== 0) throw bad(`hidden ${c.hidden} must be a multiple of 4 (2-D sin-cos position embedding)`);
  if (c.freqDim % 2 !== 0) throw bad(`freqDim ${c.freqDim} must be even`);
  return c;
}

export const ditDims = (c: DitConfig) => {
  const G = c.latentSize / c.patchSize;
  return { C: c.latentChannels, S: c.latentSize, p: c.patchSize, G, N: G * G, D: c.hidden, Hd: c.hidden / c.heads, M: c.condTokens, K: c.taskTokens, L: c.llmHidden, F: c.freqDim };
};

/** Values in one latent [C, S, S]. */
export const latentSize = (c: DitConfig) => c.latentChannels * c.latentSize * c.latentSize;

// ---------------------------------------------------------------------------------------------
// Parameter table (PyTorch layouts: Linear [out, in], Conv [out, in, kh, kw])

export type DitParamKind = "linear" | "bias" | "conv" | "ada";

export interface DitParamSpec {
  name: string;
  shape: number[];
  kind: DitParamKind;
  /** Fan-in, for the seeded init. */
  fanIn: number;
}

export const ditParamNames = {
  patchW: "x_embedder.proj.weight", // [D, 2C, p, p]
  patchB: "x_embedder.proj.bias", // [D]
  t1W: "t_embedder.mlp.0.weight", // [D, F]
  t1B: "t_embedder.mlp.0.bias",
  t2W: "t_embedder.mlp.2.weight", // [D, D]
  t2B: "t_embedder.mlp.2.bias",
  task1W: "task_projector.0.weight", // [D, L]
  task1B: "task_projector.0.bias",
  task2W: "task_projector.2.weight", // [D, D]
  task2B: "task_projector.2.bias",
  img1W: "img_projector.0.weight", // [D, L]
  img1B: "img_projector.0.bias",
  img2W: "img_projector.2.weight", // [D, D]
  img2B: "img_projector.2.bias",
  block: (i: number, part: "ada" | "qkv" | "attnOut" | "crossQ" | "crossKv" | "crossOut" | "fc1" | "fc2", wb: "weight" | "bias") =>
    `blocks.${i}.${{ ada: "adaLN_modulation.1", qkv: "attn.qkv", attnOut: "attn.proj", crossQ: "cross_attn.q", crossKv: "cross_attn.kv", crossOut: "cross_attn.proj", fc1: "mlp.fc1", fc2: "mlp.fc2" }[part]}.${wb}`,
  finalAdaW: "final_layer.adaLN_modulation.1.weight", // [2D, D]
  finalAdaB: "final_layer.adaLN_modulation.1.bias",
  finalW: "final_layer.linear.weight", // [p·p·C, D]
  finalB: "final_layer.linear.bias",
} as const;

/** Every DiT parameter with its shape, in file order. */
export function ditParamTable(c: DitConfig): DitParamSpec[] {
  const { C, p, D, L, F } = ditDims(checkDitConfig(c));
  const I = D * c.mlpRatio;
  const n = ditParamNames;
  const t: DitParamSpec[] = [];
  const lin = (w: string, b: string, out: number, inp: number, kind: DitParamKind = "linear") => {
    t.push({ name: w, shape: [out, inp], kind, fanIn: inp });
    t.push({ name: b, shape: [out], kind: "bias", fanIn: inp });
  };
  t.push({ name: n.patchW, shape: [D, 2 * C, p, p], kind: "conv", fanIn: C * p * p });
  t.push({ name: n.patchB, shape: [D], kind: "bias", fanIn: C * p * p });
  lin(n.t1W, n.t1B, D, F);
  lin(n.t2W, n.t2B, D, D);
  lin(n.task1W, n.task1B, D, L);
  lin(n.task2W, n.task2B, D, D);
  lin(n.img1W, n.img1B, D, L);
  lin(n.img2W, n.img2B, D, D);
  for (let i = 0; i < c.depth; i++) {
    const b = (part: Parameters<typeof n.block>[1], out: number, inp: number, kind?: DitParamKind) => lin(n.block(i, part, "weight"), n.block(i, part, "bias"), out, inp, kind);
    b("ada", 6 * D, D, "ada"); // → shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp
    b("qkv", 3 * D, D); // → q ‖ k ‖ v, each heads × Hd
    b("attnOut", D, D);
    b("crossQ", D, D);
    b("crossKv", 2 * D, D); // → k ‖ v of the M conditioning tokens
    b("crossOut", D, D);
    b("fc1", I, D);
    b("fc2", D, I);
  }
  lin(n.finalAdaW, n.finalAdaB, 2 * D, D, "ada"); // → shift, scale
  lin(n.finalW, n.finalB, p * p * C, D); // output index (pi, pj, c), as DiT's unpatchify
  return t;
}

export function ditParameterCount(c: DitConfig): number {
  return ditParamTable(c).reduce((s, p) => s + p.shape.reduce((a, b) => a * b, 1), 0);
}

/**
 * Seeded init, one tensor at a time from deriveSeed(seed, name):
 *   linear / conv weights N(0, 1/fanIn) (unit-variance activations), adaLN weights N(0, 0.25/fanIn)
 *   (modulations of order ±0.5), biases N(0, 0.02²).
 */
export function seedDitTensor(spec: DitParamSpec, seed: number): Tensor32 {
  const n = spec.shape.reduce((a, b) => a * b, 1);
  const rng = new SeededRandom(deriveSeed(seed, spec.name));
  const std = spec.kind === "bias" ? 0.02 : spec.kind === "ada" ? 0.5 / Math.sqrt(spec.fanIn) : 1 / Math.sqrt(spec.fanIn);
  return { shape: [...spec.shape], data: rng.fillNormal(new Float32Array(n), std) };
}

export function seedDitWeights(c: DitConfig, seed: number): Map<string, Tensor32> {
  return new Map(ditParamTable(c).map((p) => [p.name, seedDitTensor(p, seed)]));
}

// ---------------------------------------------------------------------------------------------
// Fixed embeddings (also used as graph constants)

/** [G·G, D] 2-D sin-cos position embedding: channels [0, D/2) from the row index, [D/2, D) from the column. */
export function posEmbed2d(D: number, G: number): Float32Array {
  const out = new Float32Array(G * G * D);
  const half = D / 2;
  const quarter = half / 2;
  for (let r = 0; r < G; r++)
    for (let col = 0; col < G; col++) {
      const row = out.subarray((r * G + col) * D, (r * G + col + 1) * D);
      for (const [off, pos] of [[0, r], [half, col]] as const) {
        for (let k = 0; k < quarter; k++) {
          const omega = 1 / 10000 ** (k / quarter);
          row[off + k] = Math.sin(pos * omega);
          row[off + quarter + k] = Math.cos(pos * omega);
        }
      }
    }
  return out;
}

/** [F/2] frequencies of the timestep embedding: exp(−ln(10000)·k/(F/2)). */
export function timestepFreqs(F: number): Float32Array {
  const half = F / 2;
  return Float32Array.from({ length: half }, (_, k) => Math.exp((-Math.log(10000) * k) / half));
}

// ---------------------------------------------------------------------------------------------
// LLM conditioning

/** What the DiT is conditioned on: M [IMG*] and K [TASK*] LLM hidden states. */
export interface DitConditioning {
  /** [M, L] row-major. */
  img: Float32Array;
  /** [K, L] row-major. */
  task: Float32Array;
  /** Where the vectors came from. */
  source: "llm" | "seeded-from-text";
  /** Human-readable explanation (shown in the node summary). */
  note: string;
}

export interface SpecialHiddenLike {
  token: string;
  hidden: ArrayLike<number>;
}

/**
 * Picks [IMG0..M-1] and [TASK0..K-1] from an LLM's special-token hidden states (first occurrence of
 * each). Returns the conditioning, or the reason it cannot (missing tokens, wrong hidden size).
 */
export function conditioningFromLlm(c: DitConfig, special: readonly SpecialHiddenLike[]): DitConditioning | { missing: string } {
  const { M, K, L } = ditDims(c);
  const img = new Float32Array(M * L);
  const task = new Float32Array(K * L);
  const seen = new Set<string>();
  for (const s of special) {
    const m = /^\[(IMG|TASK)(\d+)\]$/.exec(s.token.trim());
    if (!m || seen.has(s.token.trim())) continue;
    const idx = Number(m[2]);
    const isImg = m[1] === "IMG";
    if (idx >= (isImg ? M : K)) continue;
    if (s.hidden.length !== L) return { missing: `${s.token} has a ${s.hidden.length}-dim hidden state, the DiT's projectors take ${L} (uni-moe-tiny/tiny)` };
    seen.add(s.token.trim());
    (isImg ? img : task).set(Array.from(s.hidden), idx * L);
  }
  const want = [...Array.from({ length: M }, (_, i) => `[IMG${i}]`), ...Array.from({ length: K }, (_, i) => `[TASK${i}]`)];
  const absent = want.filter((t) => !seen.has(t));
  if (absent.length > 0) {
    const list = absent.length > 4 ? `${absent.slice(0, 3).join(", ")}, … (${absent.length} missing)` : absent.join(", ");
    return { missing: `the LLM generated ${want.length - absent.length} of the ${want.length} tokens [IMG0..${M - 1}] + [TASK0..${K - 1}]; missing ${list}` };
  }
  for (const x of [...img, ...task]) if (!Number.isFinite(x)) return { missing: "an [IMG*]/[TASK*] hidden state is not finite" };
  return { img, task, source: "llm", note: `LLM [IMG0..${M - 1}] + [TASK0..${K - 1}] hidden states` };
}

/**
 * [IMG]/[TASK] states as the release takes them (RELEASED.md §2.1, scaled to the tiny DiT's M and K): when the
 * output has an [IMG0] or [TASK0], the LAST M fed-back generated states (whatever their tokens) are the image
 * states and the K before them the task states. `tail`: the final hidden states of the last fed-back tokens, oldest first.
 */
export function conditioningAsReleased(c: DitConfig, hasMarker: boolean, tail: readonly ArrayLike<number>[]): DitConditioning | { missing: string } {
  const { M, K, L } = ditDims(c);
  if (!hasMarker) return { missing: "the LLM output has no [IMG0] or [TASK0]" };
  if (tail.length < M + K) return { missing: `the release takes the last ${M} + ${K} fed-back states; the LLM output has ${tail.length}` };
  const rows = tail.slice(tail.length - M - K);
  if (rows.some((r) => r.length !== L)) return { missing: `the LLM's hidden size is not the DiT projectors' ${L}` };
  const task = new Float32Array(K * L), img = new Float32Array(M * L);
  rows.forEach((r, i) => (i < K ? task : img).set(Array.from(r), (i < K ? i : i - K) * L));
  return { img, task, source: "llm", note: `the last ${M} fed-back states as [IMG] and the ${K} before as [TASK] (as released)` };
}

/** The released sampler (§2.5): 59 Euler steps on a 60-point grid; guidance 3 branches on the first ⌊3C/4⌋ channels. */
export const RELEASED_STEPS = 59;
export const guidedChannels = (c: DitConfig) => Math.floor((3 * c.latentChannels) / 4);

/**
 * The release's 3-branch guidance on velocities [C, S, S] (branch 0 conditional, 1 image-only, 2 null): the first
 * ⌊3C/4⌋ channels get v2 + image·(v1 − v2) + text·(v0 − v1); the other channels keep branch 0's.
 */
export function releasedGuidance(c: DitConfig, v0: Float32Array, v1: Float32Array, v2: Float32Array, text: number, image: number): Float32Array {
  const plane = c.latentSize * c.latentSize, guided = guidedChannels(c) * plane;
  return Float32Array.from(v0, (x, i) => (i < guided ? v2[i]! + image * (v1[i]! - v2[i]!) + text * (x - v1[i]!) : x));
}

/**
 * The deterministic fallback: M + K vectors of N(0, 1) (the scale of RMS-normalised final hidden states)
 * seeded by an FNV-1a hash of the LLM's generated text and token ids. Same LLM output → same vectors.
 */
export function seededConditioning(c: DitConfig, text: string, ids: readonly number[], why: string): DitConditioning {
  const { M, K, L } = ditDims(c);
  const h = hashString32(`${text}\u0000${ids.join(",")}`);
  const img = new SeededRandom(deriveSeed(h, "dit.fallback.img")).fillNormal(new Float32Array(M * L));
  const task = new SeededRandom(deriveSeed(h, "dit.fallback.task")).fillNormal(new Float32Array(K * L));
  const hex = h.toString(16).padStart(8, "0");
  return { img, task, source: "seeded-from-text", note: `seeded from a hash of the LLM text (${hex}) because ${why}` };
}

// ---------------------------------------------------------------------------------------------
// Sampler

/** Velocity of the flow at (x, t); x and the result have the same length. */
export type VelocityFn = (x: Float32Array, t: number, step: number) => Promise<Float32Array>;

export class SamplingCancelled extends Error {
  constructor(readonly step: number) {
    super(`sampling was cancelled before step ${step + 1}`);
    this.name = "SamplingCancelled";
  }
}

/** The time grid t_0 = 1 > t_1 > … > t_N = 0 (uniform). */
export function timeGrid(steps: number): number[] {
  if (!Number.isInteger(steps) || steps < 1) throw new Error(`steps must be a positive integer, got ${steps}`);
  return Array.from({ length: steps + 1 }, (_, i) => 1 - i / steps);
}

export interface EulerOptions {
  steps: number;
  /** x at t = 1 (not modified). */
  noise: Float32Array;
  velocity: VelocityFn;
  /** Checked before every step; an aborted signal rejects with its reason (else SamplingCancelled). */
  signal?: AbortSignal;
  /** After each step: step index (0-based), steps, the t reached. */
  onStep?: (step: number, steps: number, t: number) => void | Promise<void>;
}

/** Euler integration of dx/dt = v(x, t) from t = 1 to t = 0 (see the file comment). Returns x at t = 0. */
export async function sampleEuler(o: EulerOptions): Promise<Float32Array> {
  const ts = timeGrid(o.steps);
  const x = Float32Array.from(o.noise);
  for (let i = 0; i < o.steps; i++) {
    if (o.signal?.aborted) throw o.signal.reason ?? new SamplingCancelled(i);
    const t = ts[i]!;
    const dt = ts[i + 1]! - t;
    const v = await o.velocity(x, t, i);
    if (v.length !== x.length) throw new Error(`velocity has ${v.length} values, the state has ${x.length}`);
    for (let j = 0; j < x.length; j++) x[j] = x[j]! + v[j]! * dt;
    await o.onStep?.(i, o.steps, ts[i + 1]!);
  }
  return x;
}

/** v = v_u + g·(v_c − v_u), computed in float64 (so g = 1 returns v_c exactly and g = 0 returns v_u). */
export function cfgCombine(uncond: Float32Array, cond: Float32Array, g: number): Float32Array {
  if (uncond.length !== cond.length) throw new Error(`CFG: ${uncond.length} vs ${cond.length} values`);
  const out = new Float32Array(cond.length);
  for (let i = 0; i < out.length; i++) out[i] = uncond[i]! + g * (cond[i]! - uncond[i]!);
  return out;
}

/** Initial noise x_1 ~ N(0, I) from a seed. */
export function initialNoise(c: DitConfig, seed: number): Float32Array {
  return new SeededRandom(deriveSeed(seed, "dit.noise")).fillNormal(new Float32Array(latentSize(c)));
}
