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
  /** [N × E] 1 where the expert was selected before capacity and dropped (absent: nothing was dropped by capacity). */
  dropped?: Uint8Array;
}

export interface RoutingTrace {
  kind: "routing-trace";
  model: string;
  /** How this family routes, in words, so the inspector can explain what it shows. */
  convention: string;
  experts: ExpertInfo[];
  tokens: TraceToken[];
  layers: LayerTrace[];
}

export function isRoutingTrace(v: unknown): v is RoutingTrace {
  return typeof v === "object" && v !== null && (v as { kind?: unknown }).kind === "routing-trace";
}

/** Appends rows (e.g. one decode step) to a trace, layer by layer. */
export function appendTrace(trace: RoutingTrace, tokens: TraceToken[], layers: LayerTrace[]): RoutingTrace {
  if (layers.length !== trace.layers.length) throw new Error(`trace has ${trace.layers.length} layers, the step has ${layers.length}`);
  const cat = <T extends Float32Array | Uint8Array | Int32Array>(a: T, b: T): T => {
    const out = new (a.constructor as new (n: number) => T)(a.length + b.length);
    out.set(a);
    out.set(b, a.length);
    return out;
  };
  return {
    ...trace,
    tokens: [...trace.tokens, ...tokens],
    layers: trace.layers.map((l, i) => {
      const s = layers[i]!;
      const merged: LayerTrace = { routerLogits: cat(l.routerLogits, s.routerLogits), mask: cat(l.mask, s.mask), weights: cat(l.weights, s.weights), k: cat(l.k, s.k) };
      if (l.dropped || s.dropped) merged.dropped = cat(l.dropped ?? new Uint8Array(l.mask.length), s.dropped ?? new Uint8Array(s.mask.length));
      return merged;
    }),
  };
}
