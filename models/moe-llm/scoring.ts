/**
 * Teacher-forced scoring: the negative log-likelihood of a reference continuation under the decoder, from ONE
 * forward pass over the whole sequence — the graph that generates, with no sampling.
 *
 *   nll[t] = −log softmax(logits[t − 1])[ids[t]]  (nats), for every scored position t ≥ 1,
 *
 * computed in float64 from the graph's float32 logits (log-sum-exp with the row maximum subtracted). What is
 * scored: an answer after a prompt (the answer's tokens), or a text itself (language-model scoring: every text
 * token after the first). Mean NLL is over scored tokens; perplexity = exp(mean NLL).
 */
import { sketchLogits } from "@/engine/routing/logits";
import { conventionText } from "../families/conventions";
import type { Modality, RoutingTrace } from "@/engine/trace";
import { expertColumns } from "./config";
import { promptTraceTokens, toLayerTrace, type DecoderModel } from "./generate";
import type { Interventions } from "./moe-llm-session";
import type { Tokenizer } from "../text/tokenizer";

/**
 * Per-position NLL of one sequence: `logits` [S*V] (row s predicts token s + 1), `ids` [S]; NaN where
 * `scored(t)` is false and at t = 0 (nothing predicts the first token).
 */
export function tokenNll(logits: ArrayLike<number>, V: number, ids: ArrayLike<number>, scored: (t: number) => boolean): Float64Array {
  const S = ids.length;
  if (logits.length < S * V) throw new Error(`tokenNll: ${logits.length} logits for ${S} positions × ${V}`);
  const out = new Float64Array(S).fill(NaN);
  for (let t = 1; t < S; t++) {
    if (!scored(t)) continue;
    const row = (t - 1) * V;
    let mx = -Infinity;
    for (let v = 0; v < V; v++) mx = Math.max(mx, logits[row + v]!);
    let sum = 0;
    for (let v = 0; v < V; v++) sum += Math.exp(logits[row + v]! - mx);
    out[t] = mx + Math.log(sum) - logits[row + ids[t]!]!;
  }
  return out;
}

export interface NllSummary {
  /** Scored tokens. */
  tokens: number;
  /** Σ NLL over them (nats). */
  sum: number;
  /** sum / tokens (NaN without scored tokens). */
  mean: number;
  /** exp(mean). */
  perplexity: number;
}

/** Count, sum, mean and perplexity of the scored (non-NaN) entries. */
export function summarizeNll(nll: ArrayLike<number>): NllSummary {
  let tokens = 0;
  let sum = 0;
  for (let i = 0; i < nll.length; i++) {
    if (Number.isNaN(nll[i])) continue;
    tokens++;
    sum += nll[i]!;
  }
  const mean = tokens ? sum / tokens : NaN;
  return { tokens, sum, mean, perplexity: Math.exp(mean) };
}

export interface ScoreInput {
  ids: number[];
  /** (t, h, w) per token; default 0..n-1 on all axes. */
  positions?: { t: number[]; h: number[]; w: number[] };
  modalities?: Modality[];
  /** Input embeddings [n × hidden] (the model must be an `embeds` graph). */
  embeds?: Float32Array;
  /** First position scored (≥ 1); positions from here on are scored when their modality is text. */
  scoreFrom: number;
  /** Model name recorded in the trace. */
  modelName: string;
}

export interface ScoreResult {
  /** Routing of every token (phase "prefill": one call), with `nll` on the scored tokens. */
  trace: RoutingTrace;
  /** Per position, NaN where not scored. */
  nll: Float64Array;
  summary: NllSummary;
  ms: number;
  /** With a `lens` graph: per layer, the residual stream of every token [n*H]. */
  hidden?: Float32Array[];
}

/**
 * The ids to score and where scoring starts: an answer after the prompt (`answerIds` given), or the prompt
 * itself from its second token (language-model scoring).
 */
export function scoredSequence(promptIds: number[], answerIds: number[] | null): { ids: number[]; scoreFrom: number } {
  if (answerIds === null) {
    if (promptIds.length < 2) throw new Error("language-model scoring needs a text of at least two tokens");
    return { ids: promptIds, scoreFrom: 1 };
  }
  if (answerIds.length === 0) throw new Error("the answer to score is empty");
  if (promptIds.length === 0) throw new Error("the prompt is empty");
  return { ids: [...promptIds, ...answerIds], scoreFrom: promptIds.length };
}

/** Positions of `count` tokens appended after `pos`: from max(pos) + 1 on, one per token on all axes (as decoding). */
export function continuePositions(pos: { t: number[]; h: number[]; w: number[] }, count: number): { t: number[]; h: number[]; w: number[] } {
  let next = Math.max(-1, ...pos.t, ...pos.h, ...pos.w) + 1;
  const extra = Array.from({ length: count }, () => next++);
  return { t: [...pos.t, ...extra], h: [...pos.h, ...extra], w: [...pos.w, ...extra] };
}

/** One teacher-forced forward pass over `input.ids`; see the file comment. */
export async function scoreSequence(model: DecoderModel, tokenizer: Tokenizer, input: ScoreInput, interventions?: Interventions): Promise<ScoreResult> {
  const n = input.ids.length;
  const V = model.config.vocab_size;
  if (!(input.scoreFrom >= 1 && input.scoreFrom < n)) throw new Error(`nothing to score: scoring starts at token ${input.scoreFrom} of ${n}`);
  const bad = input.ids.find((id) => !Number.isInteger(id) || id < 0 || id >= V);
  if (bad !== undefined) throw new Error(`token id ${bad} is outside the model's vocabulary (0..${V - 1})`);
  const pos = input.positions ?? { t: [...input.ids.keys()], h: [...input.ids.keys()], w: [...input.ids.keys()] };
  if (pos.t.length !== n || pos.h.length !== n || pos.w.length !== n) throw new Error(`positions must have ${n} entries per axis`);
  const t0 = performance.now();
  const out = await model.forward({ batch: 1, seq: n, ...(input.embeds ? { embeds: input.embeds } : { ids: input.ids }), positions: [...pos.t, ...pos.h, ...pos.w], interventions });
  const ms = performance.now() - t0;
  if (!out.trace) throw new Error("the model was built without trace outputs");
  const nll = tokenNll(out.logits, V, input.ids, (t) => t >= input.scoreFrom && (input.modalities?.[t] ?? "text") === "text");
  const tokens = promptTraceTokens(tokenizer, input.ids, pos, input.modalities);
  nll.forEach((v, t) => {
    if (!Number.isNaN(v)) tokens[t]!.nll = v;
  });
  const trace: RoutingTrace = { kind: "routing-trace", model: input.modelName, convention: conventionText(model.config), experts: expertColumns(model.config), tokens, layers: out.trace.map(toLayerTrace), logits: sketchLogits(out.logits, V, n) };
  return { trace, nll, summary: summarizeNll(nll), ms, ...(out.hidden ? { hidden: out.hidden } : {}) };
}
