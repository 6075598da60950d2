/**
 * Running the released MoE-TTS (models/tts/tts-released.ts): the sequence layout, the attention/capacity modes,
 * a teacher-forced forward (the `cli tts-forward` contract, RELEASED.md §1.12) and greedy decoding (§1.8).
 *
 * Modes (§1.10), as three settings:
 *   attention  none           every row sees every row (the release: attention_mask=None, eager attention)
 *              prefix_causal  conditioning rows see the conditioning; SOS/code rows see the conditioning and the code
 *                             rows up to themselves (the training mask)
 *              causal         plain causal over all rows (what SDPA would do with mask None)
 *   steps      recompute      every code is predicted by a forward over the whole prefix (the release)
 *              single         one forward over all rows
 *   capacity   train (cf 1.5, the release runs in training mode) | eval (cf 1.0) | off (no drops)
 * The node's two modes: "release" = none / recompute / train (optionally with seeded Gumbel second-expert sampling
 * and attention dropout, the release's two noise sources, off by default) and "cached" = prefix_causal with a KV
 * cache and no capacity (equal to prefix_causal / single / off; it differs from the release).
 */
import * as ort from "onnxruntime-node";
import { concatTyped } from "@/engine/trace";
import { SeededRandom } from "../io/seeded-random";
import { speechCodes, speechDims, speechIo, type SpeechGenConfig, type SpeechGraphOptions } from "./tts-released";

export type SpeechAttention = "none" | "prefix_causal" | "causal";
export type SpeechSteps = "recompute" | "single";
export type SpeechCapacity = "train" | "eval" | "off";

export interface SpeechMode {
  attention: SpeechAttention;
  steps: SpeechSteps;
  capacity: SpeechCapacity;
}

export const RELEASE_MODE: SpeechMode = { attention: "none", steps: "recompute", capacity: "train" };

/** One position: a text row in_fnn(E[id]) (id: an LLM token id) or an audio row A[id] (a code or special code). */
export interface SpeechRow {
  kind: "text" | "audio";
  id: number;
}

/** The release's noise sources, each off unless seeded. */
export interface SpeechNoise {
  /** Gumbel(0,1) noise on the gate logits before the second-expert argmax (DeepSpeed top2_2nd_expert_sampling). */
  gumbel?: SeededRandom;
  /** Attention dropout with p = transformer_dropout_rate. */
  dropout?: SeededRandom;
}

/**
 * The conditioning rows before SOS (§1.5): [SOPT] prompt [EOPT] (when prompt is not null), [SOP] prefix [EOP] (when
 * a prefix is given), [BOS] text [EOT].
 */
export function conditioningRows(c: SpeechGenConfig, textIds: readonly number[], promptIds: readonly number[] | null, prefixCodes: readonly number[] | null): SpeechRow[] {
  const s = speechCodes(c);
  const audio = (id: number): SpeechRow => ({ kind: "audio", id });
  const text = (id: number): SpeechRow => ({ kind: "text", id });
  const rows: SpeechRow[] = [];
  if (promptIds) rows.push(audio(s.SOPT), ...promptIds.map(text), audio(s.EOPT));
  if (prefixCodes) rows.push(audio(s.SOP), ...prefixCodes.map(audio), audio(s.EOP));
  rows.push(audio(s.BOS), ...textIds.map(text), audio(s.EOT));
  return rows;
}

/** The capacity cap for a call of S rows (DeepSpeed _capacity in float32: ceil(S/E · cf·2), at least min_capacity). */
export function speechCapacity(c: SpeechGenConfig, S: number, capacity: SpeechCapacity): number {
  if (capacity === "off") return Infinity;
  const cf = capacity === "train" ? c.capacity_factor : c.eval_capacity_factor;
  return Math.max(Math.ceil(Math.fround(Math.fround(S / c.num_experts) * Math.fround(cf * 2))), c.min_capacity);
}

/**
 * The additive attention bias [S, P+S] for rows P..P+S−1 of a sequence whose first C rows are the conditioning:
 * 0 where row i may see row j, −inf elsewhere.
 */
export function attentionBias(attention: SpeechAttention, C: number, P: number, S: number): Float32Array {
  const T = P + S;
  const out = new Float32Array(S * T);
  if (attention === "none") return out;
  for (let r = 0; r < S; r++) {
    const i = P + r;
    for (let j = 0; j < T; j++) {
      const visible = attention === "causal" ? j <= i : i < C ? j < C : j < C || j <= i;
      if (!visible) out[r * T + j] = -Infinity;
    }
  }
  return out;
}

/** Per-layer routing of one forward (row-major [S × E], selected [S × 2]). */
export interface SpeechLayerRouting {
  routerLogits: Float32Array;
  selected: Int32Array;
  mask: Uint8Array;
  weights: Float32Array;
  dropped: Uint8Array;
}

export interface SpeechKv {
  length: number;
  keys: Float32Array[];
  values: Float32Array[];
}

export interface SpeechForward {
  /** [S × (V+9)] */
  logits: Float32Array;
  layers: SpeechLayerRouting[];
  present?: SpeechKv;
}

/** Runs one graph of buildSpeechGraph (batch 1). */
export class SpeechRunner {
  constructor(
    readonly config: SpeechGenConfig,
    readonly options: SpeechGraphOptions,
    readonly session: ort.InferenceSession,
  ) {}

  /**
   * One forward over `rows` at positions P..P+S−1 (P = past length): `bias` [S × (P+S)], `cap` the capacity
   * (Infinity: none). Noise is drawn in a fixed order (all Gumbel values, then every layer's dropout mask).
   */
  async forward(rows: readonly SpeechRow[], bias: Float32Array, cap: number, noise: SpeechNoise = {}, past?: SpeechKv): Promise<SpeechForward> {
    const c = this.config;
    const { L, E, NH, KVH, Dh, Vo, Vt } = speechDims(c);
    const S = rows.length, P = past?.length ?? 0, T = P + S;
    if (S === 0) throw new Error("MoE-TTS forward: no rows");
    if (bias.length !== S * T) throw new Error(`MoE-TTS forward: attention bias has ${bias.length} values, expected ${S}×${T}`);
    if (P > 0 && !this.options.kvCache) throw new Error("MoE-TTS forward: this graph has no KV cache");
    for (const r of rows) {
      const limit = r.kind === "text" ? Vt : Vo;
      if (!Number.isInteger(r.id) || r.id < 0 || r.id >= limit) throw new Error(`MoE-TTS: ${r.kind} id ${r.id} is outside 0..${limit - 1}`);
    }
    const i64 = (v: number[]) => new ort.Tensor("int64", BigInt64Array.from(v, (x) => BigInt(x)), [v.length]);
    const gumbel = new Float32Array(L * S * E);
    if (noise.gumbel) for (let i = 0; i < gumbel.length; i++) gumbel[i] = -Math.log(-Math.log(Math.max(noise.gumbel.uniform(), 1e-20)));
    const feeds: Record<string, ort.Tensor> = {
      [speechIo.textIds]: i64(rows.map((r) => (r.kind === "text" ? r.id : 0))),
      [speechIo.audioIds]: i64(rows.map((r) => (r.kind === "audio" ? r.id : 0))),
      [speechIo.isText]: new ort.Tensor("float32", Float32Array.from(rows, (r) => (r.kind === "text" ? 1 : 0)), [S]),
      [speechIo.positions]: i64(rows.map((_, i) => P + i)),
      [speechIo.bias]: new ort.Tensor("float32", bias, [S, T]),
      [speechIo.capacity]: new ort.Tensor("float32", Float32Array.of(Number.isFinite(cap) ? cap : 3e38), []),
      [speechIo.gumbel]: new ort.Tensor("float32", gumbel, [L, S, E]),
    };
    if (this.options.dropout) {
      const p = c.transformer_dropout_rate;
      const keep = new Float32Array(L * NH * S * T).fill(1);
      if (noise.dropout && p > 0) for (let i = 0; i < keep.length; i++) keep[i] = noise.dropout.uniform() < p ? 0 : 1 / (1 - p);
      feeds[speechIo.keep] = new ort.Tensor("float32", keep, [L, NH, S, T]);
    } else if (noise.dropout) throw new Error("MoE-TTS forward: attention dropout needs the dropout graph");
    if (this.options.kvCache) {
      for (let i = 0; i < L; i++) {
        feeds[speechIo.pastKey(i)] = new ort.Tensor("float32", past?.keys[i] ?? new Float32Array(0), [1, KVH, P, Dh]);
        feeds[speechIo.pastValue(i)] = new ort.Tensor("float32", past?.values[i] ?? new Float32Array(0), [1, KVH, P, Dh]);
      }
    }
    const out = await this.session.run(feeds);
    const f32 = (name: string) => out[name]!.data as Float32Array;
    const result: SpeechForward = {
      logits: f32(speechIo.logits),
      layers: Array.from({ length: L }, (_, i) => ({
        routerLogits: f32(speechIo.routerLogits(i)),
        selected: Int32Array.from(out[speechIo.selected(i)]!.data as BigInt64Array, (v) => Number(v)),
        mask: Uint8Array.from(f32(speechIo.mask(i))),
        weights: f32(speechIo.weights(i)),
        dropped: Uint8Array.from(f32(speechIo.dropped(i))),
      })),
    };
    if (this.options.kvCache) result.present = { length: T, keys: Array.from({ length: L }, (_, i) => f32(speechIo.presentKey(i))), values: Array.from({ length: L }, (_, i) => f32(speechIo.presentValue(i))) };
    return result;
  }
}

// ---------------------------------------------------------------------------------------------
// Teacher-forced forward: the `cli tts-forward` contract (RELEASED.md §1.12)

export interface TeacherForcedInput {
  text_ids: number[];
  prompt_ids: number[] | null;
  prefix_codes: number[] | null;
  codes: number[];
  mode: SpeechMode;
}

export interface TeacherForcedLayer {
  router_logits: number[][];
  selected: [number, number][];
  mask: number[][];
  weights: number[][];
}

export interface TeacherForcedOutput {
  /** (n+1) rows of V+9: row t predicts the token after SOS, c_1..c_t. */
  logits: number[][];
  /** Every layer over all S = C+1+n rows of the full-length forward (mask/weights after capacity drops). */
  layers: TeacherForcedLayer[];
}

const rowsOf = <T>(a: ArrayLike<T>, width: number, n: number): T[][] => Array.from({ length: n }, (_, r) => Array.from({ length: width }, (_, j) => a[r * width + j]!));

/**
 * Teacher-forced logits and routing. recompute: row t is the last row of a forward over the first C+1+t rows;
 * single: rows C..C+n of one full forward. The layers describe the full-length forward.
 */
export async function teacherForced(runner: SpeechRunner, input: TeacherForcedInput): Promise<TeacherForcedOutput> {
  const c = runner.config;
  const { Vo, E } = speechDims(c);
  const cond = conditioningRows(c, input.text_ids, input.prompt_ids, input.prefix_codes);
  const C = cond.length;
  const all = [...cond, { kind: "audio" as const, id: speechCodes(c).SOS }, ...input.codes.map((id) => ({ kind: "audio" as const, id }))];
  const n = input.codes.length;
  const run = (S: number) => runner.forward(all.slice(0, S), attentionBias(input.mode.attention, C, 0, S), speechCapacity(c, S, input.mode.capacity));
  const full = await run(C + 1 + n);
  const logits: number[][] = [];
  if (input.mode.steps === "single") {
    for (let t = 0; t <= n; t++) logits.push(Array.from(full.logits.subarray((C + t) * Vo, (C + t + 1) * Vo)));
  } else {
    for (let t = 0; t < n; t++) {
      const S = C + 1 + t;
      logits.push(Array.from((await run(S)).logits.subarray((S - 1) * Vo, S * Vo)));
    }
    logits.push(Array.from(full.logits.subarray((C + n) * Vo, (C + n + 1) * Vo)));
  }
  const S = C + 1 + n;
  return {
    logits,
    layers: full.layers.map((l) => ({
      router_logits: rowsOf(l.routerLogits, E, S),
      selected: rowsOf(l.selected, 2, S) as [number, number][],
      mask: rowsOf(l.mask, E, S),
      weights: rowsOf(l.weights, E, S),
    })),
  };
}

// ---------------------------------------------------------------------------------------------
// Greedy decoding (§1.8)

export interface SpeechDecodeOptions {
  /** "release": none / recompute / train (+ optional noise); "cached": prefix-causal, KV cache, no capacity. */
  mode: "release" | "cached";
  maxCodes: number;
  noise?: SpeechNoise;
  signal?: AbortSignal;
  onCode?: (code: number) => void;
}

export interface SpeechChunkResult {
  /** Generated ids (codes 0..V−1 and any special id except EOS, as emitted; map % codebook_size for the codec). */
  codes: number[];
  stopReason: "eos" | "max-tokens";
  /** The rows the routing covers: conditioning, SOS, every generated id. */
  rows: SpeechRow[];
  /** Routing of those rows: release = the full-length forward; cached = the prefill, then each fed-back id. */
  layers: SpeechLayerRouting[];
}

export class SpeechCancelled extends Error {
  constructor() {
    super("cancelled");
    this.name = "SpeechCancelled";
  }
}

function argmax(a: Float32Array, from: number, to: number): number {
  let best = from;
  for (let i = from + 1; i < to; i++) if (a[i]! > a[best]!) best = i;
  return best - from;
}

/** Concatenates per-layer routing of consecutive row ranges. */
export function concatRouting(parts: SpeechLayerRouting[][]): SpeechLayerRouting[] {
  return parts[0]!.map((_, i) => ({
    routerLogits: concatTyped(parts.map((p) => p[i]!.routerLogits)),
    selected: concatTyped(parts.map((p) => p[i]!.selected)),
    mask: concatTyped(parts.map((p) => p[i]!.mask)),
    weights: concatTyped(parts.map((p) => p[i]!.weights)),
    dropped: concatTyped(parts.map((p) => p[i]!.dropped)),
  }));
}

/**
 * Greedy decoding of one chunk: argmax over all V+9 logits of the last row (top-k 1), stop at EOS = V+2 (not
 * returned), any other id is fed back and returned. Release mode recomputes the whole sequence for every code
 * (no mask, training capacity); cached mode prefills the conditioning with the prefix mask and feeds one id per step.
 */
export async function decodeSpeechChunk(runner: SpeechRunner, cond: readonly SpeechRow[], o: SpeechDecodeOptions): Promise<SpeechChunkResult> {
  const c = runner.config;
  const { Vo } = speechDims(c);
  const { SOS, EOS } = speechCodes(c);
  const C = cond.length;
  const rows: SpeechRow[] = [...cond, { kind: "audio", id: SOS }];
  const codes: number[] = [];
  const check = () => {
    if (o.signal?.aborted) throw new SpeechCancelled();
  };
  const lastRow = (f: SpeechForward, S: number) => argmax(f.logits, (S - 1) * Vo, S * Vo);
  if (o.mode === "cached") {
    if (!runner.options.kvCache) throw new Error("cached mode needs the KV-cache graph");
    check();
    let f = await runner.forward(rows, attentionBias("prefix_causal", C, 0, rows.length), Infinity, o.noise);
    const parts = [f.layers];
    let next = lastRow(f, rows.length);
    let stopReason: SpeechChunkResult["stopReason"] = "max-tokens";
    while (codes.length < o.maxCodes) {
      if (next === EOS) {
        stopReason = "eos";
        break;
      }
      check();
      codes.push(next);
      o.onCode?.(next);
      rows.push({ kind: "audio", id: next });
      f = await runner.forward([{ kind: "audio", id: next }], attentionBias("none", C, f.present!.length, 1), Infinity, o.noise, f.present);
      parts.push(f.layers);
      next = lastRow(f, 1);
    }
    if (stopReason === "max-tokens" && next === EOS) stopReason = "eos";
    return { codes, stopReason, rows, layers: concatRouting(parts) };
  }
  let last: SpeechForward | undefined;
  let stopReason: SpeechChunkResult["stopReason"] = "max-tokens";
  const forwardAll = () => runner.forward(rows, attentionBias("none", C, 0, rows.length), speechCapacity(c, rows.length, "train"), o.noise);
  for (;;) {
    check();
    last = await forwardAll();
    if (codes.length >= o.maxCodes) break;
    const next = lastRow(last, rows.length);
    if (next === EOS) {
      stopReason = "eos";
      break;
    }
    codes.push(next);
    o.onCode?.(next);
    rows.push({ kind: "audio", id: next });
  }
  return { codes, stopReason, rows, layers: last.layers };
}
