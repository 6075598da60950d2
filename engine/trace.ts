/**
 * The routing trace: one schema for every MoE in the product (the LLM now, the TTS later).
 * Per layer, row-major [tokens × experts] arrays; per token, what it is and where it sits.
 */
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

export interface LayerTrace {
  /** [N × E] router logits (after any intervention bias). */
  routerLogits: Float32Array;
  /** [N × E] 1 where the expert was used (chosen dynamic experts and the shared ones). */
  mask: Uint8Array;
  /** [N × E] final mixing weights; each row sums to 1. */
  weights: Float32Array;
  /** [N] number of dynamic experts chosen (Top-P k, null included). */
  k: Int32Array;
}

export interface RoutingTrace {
  kind: "routing-trace";
  model: string;
  /** How this family routes, in words, so the inspector can explain what it shows. */
  convention: string;
  experts: ExpertInfo[];
  tokens: TraceToken[];
  layers: LayerTrace[];
  /** The logit lens of every token, when the run asked for it. */
  lens?: LogitLens;
}

/**
 * The logit lens (models/logit-lens.ts): the residual stream after each layer through the final norm and LM
 * head. Per layer, row-major per token: the top-`k` next-token ids and their log-probabilities, the rank of the
 * model's final prediction (0 = it is already the top) and KL(final ‖ this layer) in nats.
 */
export interface LogitLens {
  k: number;
  layers: { topIds: Int32Array; topLogprobs: Float32Array; finalRank: Int32Array; kl: Float32Array }[];
  /** The text of every id in topIds (decoded by the model's tokenizer), for the views. */
  texts?: Record<number, string>;
}

export function isRoutingTrace(v: unknown): v is RoutingTrace {
  return typeof v === "object" && v !== null && (v as { kind?: unknown }).kind === "routing-trace";
}

/** Appends rows (e.g. one decode step) to a trace, layer by layer (without the logit lens, which covered only the old rows). */
export function appendTrace(trace: RoutingTrace, tokens: TraceToken[], layers: LayerTrace[]): RoutingTrace {
  if (layers.length !== trace.layers.length) throw new Error(`trace has ${trace.layers.length} layers, the step has ${layers.length}`);
  const cat = <T extends Float32Array | Uint8Array | Int32Array>(a: T, b: T): T => {
    const out = new (a.constructor as new (n: number) => T)(a.length + b.length);
    out.set(a);
    out.set(b, a.length);
    return out;
  };
  // A logit lens covers the tokens it was computed for: the longer trace has none.
  const { lens: _lens, ...rest } = trace;
  return {
    ...rest,
    tokens: [...trace.tokens, ...tokens],
    layers: trace.layers.map((l, i) => {
      const s = layers[i]!;
      return { routerLogits: cat(l.routerLogits, s.routerLogits), mask: cat(l.mask, s.mask), weights: cat(l.weights, s.weights), k: cat(l.k, s.k) };
    }),
  };
}
