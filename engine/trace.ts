/**
 * The routing trace: one schema for every MoE in the product (the LLM now, the TTS later).
 * Per layer, row-major [tokens × experts] arrays; per token, what it is and where it sits.
 */
import type { LogitSketch } from "./routing/logits";

export type ExpertRole = "routed" | "null" | "shared";
export type Phase = "prefill" | "decode";
export type Modality = "text" | "image" | "video" | "audio" | "speech";

export interface ExpertInfo {
  name: string;
  role: ExpertRole;
}

export interface TraceToken {
  id: number;
  text: string;
  modality: Modality;
  /** (t, h, w) rotary position. */
  position: [number, number, number];
  phase: Phase;
  /** Teacher-forced negative log-likelihood of this token given the ones before it (nats), when scored. */
  nll?: number;
}

/** One MoE layer's routing (dense, router-less layers have none: see RoutingTrace.layerInfo). */
export interface LayerTrace {
  /** Decoder index of this layer (absent: its position in `layers`, every layer being an MoE layer). */
  layer?: number;
  /** [N × E] router logits (after any intervention bias). */
  routerLogits: Float32Array;
  /** [N × E] 1 where the expert was used (chosen dynamic experts and the shared ones). */
  mask: Uint8Array;
  /** [N × E] final mixing weights (sum to 1 for Uni-MoE; per family otherwise, e.g. × routed_scaling_factor for DeepSeek). */
  weights: Float32Array;
  /**
   * [N] number of dynamic experts chosen (Top-P k, null included), as the model reports it: before capacity drops,
   * and for Uni-MoE as released possibly D + 1 (Top-P never reached: no dynamic expert).
   */
  k: Int32Array;
  /**
   * [N × E] 1 where the expert was selected before capacity and dropped (token drop / capacity factor): such an
   * entry has mask 0 and weight 0. Absent when the model drops nothing by design.
   */
  dropped?: Uint8Array;
  /** DeepSeek-V3: [N × routed] the scores experts were selected on (sigmoid + correction bias + bias intervention). */
  scores?: Float32Array;
}

/** One decoder layer as the inspector lists it: an MoE layer names its routing rule, a dense layer has no router. */
export interface LayerInfo {
  layer: number;
  kind: "moe" | "dense";
  rule: string;
}

export interface RoutingTrace {
  kind: "routing-trace";
  model: string;
  /** How this family routes, in words, so the inspector can explain what it shows. */
  convention: string;
  /** The arithmetic the routing was computed in (Uni-MoE as released: bf16); absent = fp32. */
  routingPrecision?: "fp32" | "bf16";
  /** The model's parameter counts (models/moe-llm/parameters.ts), for the active parameters per token of these tokens. */
  parameters?: { total: number; fixed: number; perRoutedExpert: number };
  experts: ExpertInfo[];
  tokens: TraceToken[];
  /** The MoE layers, in decoder order. */
  layers: LayerTrace[];
  /** Every decoder layer (absent: all are MoE layers); its "moe" entries are `layers`, in order. */
  layerInfo?: LayerInfo[];
  /** The logit lens of every token, when the run asked for it. */
  lens?: LogitLens;
  /** Each token's next-token logits in brief (engine/routing/logits.ts), for comparing runs; absent in older traces. */
  logits?: LogitSketch;
  /** The model's weight-only quantisation (an int8/int4 import), absent for full precision. */
  quantization?: TraceQuantization;
}

export interface TraceQuantization {
  bits: 4 | 8;
  blockSize: number;
  symmetric: boolean;
  /** How the quantised products computed: fp32 activations, or int8 (MatMulNBits accuracy level 4). */
  compute: "fp32" | "int8";
  /** e.g. "int4 (block 32, symmetric)" */
  label: string;
}

/**
 * The logit lens (models/moe-llm/logit-lens.ts): the residual stream after each decoder layer through the final norm and LM
 * head. Per layer, row-major per token: the top-`k` next-token ids and their log-probabilities, the rank of the
 * model's final prediction (0 = it is already the top) and KL(final ‖ this layer) in nats.
 */
export interface LogitLens {
  k: number;
  layers: { topIds: Int32Array; topLogprobs: Float32Array; finalRank: Int32Array; kl: Float32Array }[];
  /** The text of every id in topIds (decoded by the model's tokenizer), for the views. */
  texts?: Record<number, string>;
}

/** The decoder index of each entry of `trace.layers`. */
export function layerIds(trace: Pick<RoutingTrace, "layers">): number[] {
  return trace.layers.map((l, i) => l.layer ?? i);
}

export function isRoutingTrace(v: unknown): v is RoutingTrace {
  return typeof v === "object" && v !== null && (v as { kind?: unknown }).kind === "routing-trace";
}

/** Typed arrays of one type, one after another. */
export function concatTyped<T extends Float32Array | Uint8Array | Int32Array>(xs: T[]): T {
  const out = new (xs[0]!.constructor as new (n: number) => T)(xs.reduce((a, x) => a + x.length, 0));
  let o = 0;
  for (const x of xs) {
    out.set(x, o);
    o += x.length;
  }
  return out;
}

/** Layer traces of the same layers, rows of `b` after rows of `a` (a `dropped` on one side only is padded with zeros). */
export function concatLayerTraces(a: LayerTrace[], b: LayerTrace[]): LayerTrace[] {
  if (a.length !== b.length) throw new Error(`trace has ${a.length} layers, the step has ${b.length}`);
  const cat = <T extends Float32Array | Uint8Array | Int32Array>(x: T, y: T): T => concatTyped([x, y]);
  return a.map((l, i) => {
    const s = b[i]!;
    const out: LayerTrace = { ...(l.layer !== undefined ? { layer: l.layer } : {}), routerLogits: cat(l.routerLogits, s.routerLogits), mask: cat(l.mask, s.mask), weights: cat(l.weights, s.weights), k: cat(l.k, s.k) };
    if (l.scores && s.scores) out.scores = cat(l.scores, s.scores);
    if (l.dropped || s.dropped) out.dropped = cat(l.dropped ?? new Uint8Array(l.mask.length), s.dropped ?? new Uint8Array(s.mask.length));
    return out;
  });
}

/** Appends rows (e.g. one decode step) to a trace, layer by layer (without the logit lens, which covered only the old rows). */
export function appendTrace(trace: RoutingTrace, tokens: TraceToken[], layers: LayerTrace[]): RoutingTrace {
  const { lens: _lens, ...rest } = trace;
  return { ...rest, tokens: [...trace.tokens, ...tokens], layers: concatLayerTraces(trace.layers, layers) };
}
