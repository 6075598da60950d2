import { sketchLogits, type LogitSketch } from "@/engine/routing/logits";
import { conventionText, layerRules } from "../families/conventions";
import { concatTyped, type LayerTrace, type Modality, type RoutingTrace, type TraceToken } from "@/engine/trace";
import { expertColumns, type MoeLlmConfig } from "./config";
import type { ForwardInput, ForwardOutput, Interventions, KvCache, LayerTrace as GraphLayerTrace } from "./moe-llm-session";
import type { RoutingPrecision } from "../onnx/bf16";
import { parameterCounts } from "./parameters";
import { sampleToken, type SamplingOptions } from "../text/sampling";
import { SeededRandom } from "../io/seeded-random";
import type { Tokenizer } from "../text/tokenizer";

/** The part of MoeLlmRunner generation needs (a KV-cache graph, with trace outputs when tracing). */
export interface DecoderModel {
  readonly config: MoeLlmConfig;
  /** The graph's options; `routingPrecision` is recorded in the trace. */
  readonly options?: { routingPrecision?: RoutingPrecision };
  forward(input: ForwardInput): Promise<ForwardOutput>;
}

export interface GenerateOptions extends SamplingOptions {
  maxNewTokens: number;
  seed: number;
  /** Generation stops after emitting one of these ids (it is kept in the output). */
  stopTokens: number[];
  interventions?: Interventions;
  signal?: AbortSignal;
  /**
   * Tokens appended after generation, teacher-forced through the model (before a generated stop token):
   * how the seeded models, which never write control tokens, are made to emit a speech span or [TASK][IMG].
   */
  forceSuffix?: number[] | ((generatedText: string) => number[]);
  /** Called for every generated token with the text it completed ("" inside a UTF-8 character). */
  onToken?: (step: number, id: number, piece: string) => void;
}

export interface PromptInput {
  ids: number[];
  /**
   * With media: the prompt's input embeddings [n × hidden] (media rows spliced in) and a lookup for the
   * embedding of each generated token; the model must then be an `embeds` graph.
   */
  embeds?: { prompt: Float32Array; token: (id: number) => Float32Array };
  /** (t, h, w) per prompt token; default 0..n-1 on all axes. */
  positions?: { t: number[]; h: number[]; w: number[] };
  modalities?: Modality[];
  /** Model name recorded in the trace. */
  modelName: string;
}

export interface SpecialHidden {
  token: string;
  id: number;
  /** Index among the generated tokens. */
  index: number;
  /** Final hidden state (after the last norm) at this token's position: [hidden_size]. */
  hidden: Float32Array;
}

/** How many of the last fed-back generated tokens' final hidden states a generation keeps (the release's 64 [IMG] + 3 [TASK]). */
export const TAIL_HIDDEN = 67;

export interface GenerateResult {
  /** Final hidden states (after the last norm) of the last TAIL_HIDDEN generated tokens that were fed back, oldest first. */
  tailHidden: Float32Array[];
  promptIds: number[];
  newIds: number[];
  /** How many of `newIds` were teacher-forced (`forceSuffix`), not generated. */
  forced: number;
  text: string;
  stopReason: "stop-token" | "max-tokens";
  trace: RoutingTrace;
  specialHidden: SpecialHidden[];
  prefillMs: number;
  decodeMs: number;
  /** With a `lens` graph: per layer, the residual stream of every traced token [N*H] (models/moe-llm/logit-lens.ts). */
  hidden?: Float32Array[];
}

export class GenerationCancelled extends Error {
  constructor() {
    super("cancelled");
    this.name = "GenerationCancelled";
  }
}

/** The counts a trace carries for its active-parameters expectation (engine/routing/active.ts). */
function tracedParameters(c: MoeLlmConfig): RoutingTrace["parameters"] {
  const p = parameterCounts(c);
  return { total: p.total, fixed: p.fixed, perRoutedExpert: p.perRoutedExpert };
}

/** Control tokens the generation heads read hidden states of (PAPER.md §5). */
const HEAD_TOKEN = /^(\[(IMG|TASK)\d+\]|<\|speech_(start|prompt|end|split)\|>)$/;

export function toLayerTrace(t: GraphLayerTrace): LayerTrace {
  const out: LayerTrace = { layer: t.layer, routerLogits: t.routerLogits, mask: Uint8Array.from(t.mask), weights: t.weights, k: Int32Array.from(t.k, (v) => Number(v)) };
  if (t.scores) out.scores = t.scores;
  if (t.dropped) out.dropped = Uint8Array.from(t.dropped);
  return out;
}

/** The layer traces of consecutive calls (prefill, then each decode step) as one, each array copied once. */
function joinLayerTraces(parts: LayerTrace[][]): LayerTrace[] {
  if (parts.length === 1) return parts[0]!;
  return parts[0]!.map((first, l) => {
    const rows = parts.map((p) => p[l]!);
    const out: LayerTrace = { ...(first.layer !== undefined ? { layer: first.layer } : {}), routerLogits: concatTyped(rows.map((r) => r.routerLogits)), mask: concatTyped(rows.map((r) => r.mask)), weights: concatTyped(rows.map((r) => r.weights)), k: concatTyped(rows.map((r) => r.k)) };
    if (rows.every((r) => r.scores)) out.scores = concatTyped(rows.map((r) => r.scores!));
    if (rows.some((r) => r.dropped)) out.dropped = concatTyped(rows.map((r) => r.dropped ?? new Uint8Array(r.mask.length)));
    return out;
  });
}

function joinSketches(parts: LogitSketch[]): LogitSketch {
  if (parts.length === 1) return parts[0]!;
  const [a] = parts as [LogitSketch];
  return { vocab: a.vocab, ids: a.ids, values: concatTyped(parts.map((p) => p.values)), top: concatTyped(parts.map((p) => p.top)), topLogit: concatTyped(parts.map((p) => p.topLogit)), lse: concatTyped(parts.map((p) => p.lse)) };
}

/** The trace rows of prompt tokens read in one call (phase "prefill"). */
export function promptTraceTokens(tokenizer: Tokenizer, ids: readonly number[], pos: { t: number[]; h: number[]; w: number[] }, modalities?: readonly Modality[]): TraceToken[] {
  return ids.map((id, i) => ({ id, text: tokenizer.decode([id]), modality: modalities?.[i] ?? "text", position: [pos.t[i]!, pos.h[i]!, pos.w[i]!], phase: "prefill" }));
}

/**
 * Prefill the prompt, then decode token by token with the KV cache. Routing is recorded for every
 * token the model reads (prompt: phase "prefill"; each generated token when fed back: "decode").
 * The hidden states of generated special tokens ([IMG*], [TASK*], speech markers) are kept for the
 * generation heads.
 */
export async function generate(model: DecoderModel, tokenizer: Tokenizer, prompt: PromptInput, o: GenerateOptions): Promise<GenerateResult> {
  const n = prompt.ids.length;
  if (n === 0) throw new Error("the prompt is empty");
  const vocab = model.config.vocab_size;
  const bad = prompt.ids.find((id) => !Number.isInteger(id) || id < 0 || id >= vocab);
  if (bad !== undefined) throw new Error(`token id ${bad} is outside the model's vocabulary (0..${vocab - 1})`);
  const pos = prompt.positions ?? { t: [...prompt.ids.keys()], h: [...prompt.ids.keys()], w: [...prompt.ids.keys()] };
  if (pos.t.length !== n || pos.h.length !== n || pos.w.length !== n) throw new Error(`positions must have ${n} entries per axis`);
  const H = model.config.hidden_size;
  const rng = new SeededRandom(o.seed);
  const decoder = tokenizer.createStreamDecoder();
  const checkCancel = () => {
    if (o.signal?.aborted) throw new GenerationCancelled();
  };

  const tokens = promptTraceTokens(tokenizer, prompt.ids, pos, prompt.modalities);

  checkCancel();
  let t0 = performance.now();
  const positions = [...pos.t, ...pos.h, ...pos.w];
  const first = await model.forward({ batch: 1, seq: n, ...(prompt.embeds ? { embeds: prompt.embeds.prompt } : { ids: prompt.ids }), positions, interventions: o.interventions });
  const prefillMs = performance.now() - t0;
  if (!first.trace || !first.present) throw new Error("the model was built without trace outputs or KV cache");
  // per call (prompt, then each fed-back token): joined once at the end, not copied at every step
  const layerParts = [first.trace.map(toLayerTrace)];
  const hiddenParts = first.hidden ? [first.hidden] : undefined;
  let cache: KvCache = first.present;
  let logits = first.logits.subarray((n - 1) * vocab, n * vocab);
  const sketches = [sketchLogits(first.logits, vocab, n)];
  let nextPos = [pos.t, pos.h, pos.w].reduce((m, axis) => axis.reduce((a, b) => Math.max(a, b), m), -1) + 1;

  const newIds: number[] = [];
  const specialHidden: SpecialHidden[] = [];
  const tailHidden: Float32Array[] = [];
  let text = "";
  let stopReason: GenerateResult["stopReason"] = "max-tokens";
  t0 = performance.now();
  const isHead = (id: number) => tokenizer.isSpecial(id) && HEAD_TOKEN.test(tokenizer.decode([id]));
  /** Runs one token through the model: its routing and (for head tokens) its hidden state are recorded. */
  const feed = async (id: number) => {
    checkCancel();
    const input = prompt.embeds ? { embeds: prompt.embeds.token(id) } : { ids: [id] };
    const out = await model.forward({ batch: 1, seq: 1, ...input, positions: [nextPos, nextPos, nextPos], past: cache, interventions: o.interventions });
    tokens.push({ id, text: tokenizer.decode([id]), modality: "text", position: [nextPos, nextPos, nextPos], phase: "decode" });
    layerParts.push(out.trace!.map(toLayerTrace));
    if (hiddenParts && out.hidden) hiddenParts.push(out.hidden);
    if (isHead(id)) specialHidden.push({ token: tokenizer.decode([id]), id, index: newIds.lastIndexOf(id), hidden: out.lastHidden.slice(0, H) });
    tailHidden.push(out.lastHidden.slice(0, H));
    if (tailHidden.length > TAIL_HIDDEN) tailHidden.shift();
    cache = out.present!;
    logits = out.logits;
    sketches.push(sketchLogits(logits, vocab, 1));
    nextPos++;
  };
  const emit = (step: number, id: number) => {
    newIds.push(id);
    const piece = decoder.push(id);
    text += piece;
    o.onToken?.(step, id, piece);
  };
  // Each sampled token is fed back just before the next one is sampled; a stop token is never fed.
  let unfed: number | null = null;
  let stopToken: number | null = null;
  for (let step = 0; step < o.maxNewTokens; step++) {
    if (unfed !== null) await feed(unfed);
    checkCancel();
    const id = sampleToken(logits, o, rng);
    if (o.stopTokens.includes(id) && o.forceSuffix) {
      // The forced tokens go before the end of the turn: hold the stop token back.
      stopToken = id;
      stopReason = "stop-token";
      unfed = null;
      break;
    }
    emit(step, id);
    unfed = id;
    if (o.stopTokens.includes(id)) {
      stopReason = "stop-token";
      unfed = null;
      break;
    }
  }
  // Teacher-forced control tokens (a speech span, [TASK*][IMG*]) so the heads get their hidden states.
  const suffix = typeof o.forceSuffix === "function" ? o.forceSuffix(text) : (o.forceSuffix ?? []);
  for (const id of suffix) {
    if (unfed !== null) await feed(unfed);
    emit(newIds.length, id);
    unfed = id;
  }
  if (unfed !== null && isHead(unfed)) await feed(unfed);
  if (stopToken !== null) emit(newIds.length, stopToken);
  text += decoder.flush();
  const layers = joinLayerTraces(layerParts), logitSketch = joinSketches(sketches);
  const hidden = hiddenParts?.[0]!.map((_, l) => concatTyped(hiddenParts.map((h) => h[l]!)));
  const decodeMs = performance.now() - t0;
  return {
    tailHidden,
    promptIds: prompt.ids,
    newIds,
    forced: suffix.length,
    text,
    stopReason,
    trace: {
      kind: "routing-trace",
      model: prompt.modelName,
      convention: conventionText(model.config),
      ...(model.options?.routingPrecision ? { routingPrecision: model.options.routingPrecision } : {}),
      parameters: tracedParameters(model.config),
      experts: expertColumns(model.config),
      tokens,
      layers,
      layerInfo: layerRules(model.config, { topP: o.interventions?.topP, topK: o.interventions?.topK }),
      logits: logitSketch,
    },
    specialHidden,
    prefillMs,
    decodeMs,
    ...(hidden ? { hidden } : {}),
  };
}
