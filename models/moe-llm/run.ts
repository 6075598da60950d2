import { activeParameters } from "../../engine/routing/active";
import type { Runtime } from "../../engine/runtime/types";
import type { SequenceValue } from "../../engine/sequence";
import type { RoutingTrace, TraceQuantization } from "../../engine/trace";
import type { LlmOutputValue } from "../../engine/values/llm-output";
import type { ScoreValue } from "../../engine/values/nll-score";
import { generate, GenerationCancelled } from "./generate";
import { defaultRoutingPrecision } from "./grin-routing";
import { batchWindowFor, logitLens, withMoeLlm, type ResolvedModel } from "./moe-llm-model";
import type { Interventions } from "./moe-llm-session";
import type { RoutingPrecision } from "../onnx/bf16";
import { quantLabel } from "../onnx/quantize";
import { scoreSequence, type NllSummary } from "./scoring";
import { loadTokenizer } from "../text/tokenizer-json";
import { buildPrompt, checkSequenceTokenizer, scoringInput } from "./prompt-input";
import { controlTokens, stopTokenIds } from "./stop-tokens";

const GRAPH = { moe: "sparse", trace: true, kvCache: true } as const;

/** What one MoE-LLM node run asks of the model (the node's params, minus what the node resolves itself). */
export interface MoeLlmRunOptions {
  modelRef: string;
  mode: "generate" | "score-answer" | "score-text";
  logitLens: boolean;
  system: string;
  chatTemplate: "model" | "chatml";
  maxNewTokens: number;
  temperature: number;
  topK: number;
  topP: number;
  seed: number;
  routingPrecision: "model" | "fp32" | "bf16";
  emit: "none" | "speech" | "image" | "speech+image";
}

export interface MoeLlmRunInputs {
  prompt?: string;
  sequence?: SequenceValue;
  answer?: string;
}

export interface MoeLlmRunResult {
  output: LlmOutputValue;
  trace: RoutingTrace;
  score?: ScoreValue;
}

function scoreHeadline(s: NllSummary, mode: "answer" | "text"): string {
  return `${s.tokens} ${mode === "answer" ? "answer" : "text"} token(s): mean NLL ${s.mean.toFixed(3)} nats · perplexity ${s.perplexity.toPrecision(4)}`;
}

/**
 * Generates an answer (or scores one, teacher-forced, in one forward pass) with the model, recording every routing
 * decision; with `logitLens`, the lens of every token too. The sequence's tokenizer is checked before the session loads.
 */
export async function runMoeLlm(
  model: ResolvedModel,
  runtime: Runtime,
  o: MoeLlmRunOptions,
  inputs: MoeLlmRunInputs,
  interventions: Interventions,
  ctx: { signal: AbortSignal; progress(fraction: number, message?: string): void },
): Promise<MoeLlmRunResult> {
  const { sequence, answer } = inputs;
  const modelTokenizer = loadTokenizer(model.dir);
  if (sequence) checkSequenceTokenizer(sequence, o.modelRef, modelTokenizer, model.config.vocab_size);
  const stopTokens = stopTokenIds(modelTokenizer, model.dir);
  const routingPrecision: RoutingPrecision = o.routingPrecision === "model" ? defaultRoutingPrecision(model.config) : o.routingPrecision;
  // a record without media feeds embeddings too where its batch-mates may have media (BatchWindow.feedEmbeddings)
  const window = batchWindowFor(model, await runtime.resolveExecutionProvider());
  const graph = { ...GRAPH, embeds: !!sequence?.media || !!window?.feedEmbeddings, routingPrecision, ...(o.logitLens ? { lens: true } : {}) };
  const q = model.quantization;
  const quantization: TraceQuantization | undefined = q && { bits: q.bits, blockSize: q.blockSize, symmetric: q.symmetric, compute: q.accuracyLevel === 4 ? "int8" : "fp32", label: quantLabel(q) };
  // every run records the weights it ran with (trace and output), and the lens when asked
  const finish = async (out0: MoeLlmRunResult, hidden: Float32Array[] | undefined): Promise<MoeLlmRunResult> => {
    const out = quantization ? { ...out0, trace: { ...out0.trace, quantization }, output: { ...out0.output, quantization } } : out0;
    if (!o.logitLens) return out;
    if (!hidden) throw new Error("internal: the logit-lens graph returned no residual states");
    const lens = await logitLens(model, runtime, hidden, out.trace.tokens.length);
    const texts: Record<number, string> = {};
    for (const l of lens.layers) for (const id of l.topIds) texts[id] ??= modelTokenizer.decode([id]);
    return { ...out, trace: { ...out.trace, lens: { ...lens, texts } } };
  };
  return withMoeLlm(model, graph, runtime, async ({ runner, tokenizer }) => {
    const prompt = buildPrompt(model, tokenizer, o.modelRef, { embeds: graph.embeds, sequence, prompt: inputs.prompt, scoreText: o.mode === "score-text", system: o.system, chatTemplate: o.chatTemplate });
    const base = { kind: "llm-output", model: o.modelRef, promptIds: prompt.ids, promptText: prompt.text, promptFormat: prompt.format } as const;
    if (o.mode !== "generate") {
      ctx.progress(0.5, "scoring (one forward pass)");
      const answerIds = o.mode === "score-answer" ? tokenizer.encode(answer!, { allowSpecial: false }) : null;
      const scored = await scoreSequence(runner, tokenizer, scoringInput(prompt, answerIds, o.modelRef), interventions);
      const mode = o.mode === "score-answer" ? "answer" : "text";
      const s = scored.summary;
      const perToken = scored.trace.tokens.filter((t) => t.nll !== undefined).map((t) => ({ text: t.text, nll: t.nll! }));
      const score: ScoreValue = { kind: "nll-score", type: "score", headline: scoreHeadline(s, mode), mode, model: o.modelRef, tokens: s.tokens, sumNll: s.sum, meanNll: s.mean, perplexity: s.perplexity, perToken, forwardMs: scored.ms };
      const output: LlmOutputValue = { ...base, text: answer ?? "", ids: answerIds ?? [], stopReason: "scored (teacher-forced)", specialHidden: [], prefillMs: scored.ms, decodeMs: 0 };
      return finish({ output, trace: scored.trace, score }, scored.hidden);
    }
    let text = "";
    try {
      const result = await generate(runner, tokenizer, prompt.input, {
        maxNewTokens: o.maxNewTokens,
        temperature: o.temperature,
        topK: o.topK,
        topP: o.topP,
        seed: o.seed,
        stopTokens,
        interventions,
        forceSuffix: controlTokens(tokenizer, o.emit),
        signal: ctx.signal,
        onToken: (step, _id, piece) => {
          text += piece;
          ctx.progress((step + 1) / o.maxNewTokens, text);
        },
      });
      const output: LlmOutputValue = {
        ...base,
        text: result.text,
        promptIds: result.promptIds,
        ids: result.newIds,
        ...(result.forced ? { forcedTokens: result.forced } : {}),
        stopReason: result.stopReason,
        specialHidden: result.specialHidden,
        tailHidden: result.tailHidden,
        prefillMs: result.prefillMs,
        decodeMs: result.decodeMs,
        routingPrecision,
        activeParameters: activeParameters(result.trace)?.expected,
      };
      return await finish({ output, trace: result.trace }, result.hidden);
    } catch (err) {
      if (err instanceof GenerationCancelled) throw ctx.signal.reason ?? err;
      throw err;
    }
  });
}
