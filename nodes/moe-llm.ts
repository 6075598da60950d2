import { createHash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { z } from "zod";
import { defineNode } from "../engine/node";
import { activeParameters } from "../engine/routing/active";
import { generate, GenerationCancelled } from "../models/moe-llm/generate";
import { checkRoutingOverrides, compileInterventions } from "../models/moe-llm/interventions";
import { defaultRoutingPrecision } from "../models/moe-llm/grin-routing";
import { logitLens, promptEmbeddings, resolveModel, withMoeLlm } from "../models/moe-llm/moe-llm-model";
import type { RoutingPrecision } from "../models/onnx/bf16";
import { quantLabel } from "../models/onnx/quantize";
import { continuePositions, scoredSequence, scoreSequence, type NllSummary } from "../models/moe-llm/scoring";
import { isSequence, type SequenceValue } from "../engine/sequence";
import type { RoutingTrace, TraceQuantization } from "../engine/trace";
import { tokenizerHash } from "../models/text/prompt-tokenizer";
import { byteTokenizer, type Tokenizer } from "../models/text/tokenizer";
import { JsonTokenizer, loadTokenizer } from "../models/text/tokenizer-json";
import "./params";

const GRAPH = { moe: "sparse", trace: true, kvCache: true } as const;

/** The tokens forced after the answer for `emit` (PAPER.md §5 layouts); the speech span speaks the answer. */
function controlTokens(tok: Tokenizer, emit: string): ((answer: string) => number[]) | undefined {
  if (emit === "none") return undefined;
  return (answer) => {
    const ids: number[] = [];
    if (emit.includes("speech")) {
      // The answer's own text goes in as plain bytes, so stray marker text in it cannot open another span.
      ids.push(...tok.encode("<|speech_start|>Language: English; Speaker: default;<|speech_prompt|>"));
      ids.push(...tok.encode(answer.trim() || "…", { allowSpecial: false }));
      ids.push(tok.tokenId("<|speech_end|>"));
    }
    if (emit.includes("image")) ids.push(...tok.encode(`${[0, 1, 2].map((i) => `[TASK${i}]`).join("")}${Array.from({ length: 32 }, (_, i) => `[IMG${i}]`).join("")}`));
    return ids;
  };
}

/** `rows` ([n × H] row-major) with more rows appended. */
function appendRows(rows: Float32Array, more: Float32Array[]): Float32Array {
  const out = new Float32Array(rows.length + more.reduce((a, r) => a + r.length, 0));
  out.set(rows);
  let at = rows.length;
  for (const r of more) {
    out.set(r, at);
    at += r.length;
  }
  return out;
}

export const GENERATION_CONFIG_FILE = "generation_config.json";

/** `eos_token_id` of a model directory's generation_config.json (a number or a list, as transformers reads it); [] when absent. */
export function generationConfigEosIds(modelDir: string): number[] {
  const file = path.join(modelDir, GENERATION_CONFIG_FILE);
  if (!existsSync(file)) return [];
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(file, "utf8"));
  } catch (e) {
    throw new Error(`${file} is not valid JSON (${(e as Error).message})`);
  }
  const eos = json !== null && typeof json === "object" ? (json as { eos_token_id?: unknown }).eos_token_id : undefined;
  if (eos === undefined || eos === null) return [];
  const ids = Array.isArray(eos) ? eos : [eos];
  if (!ids.every((id) => Number.isInteger(id) && (id as number) >= 0)) throw new Error(`${file}: eos_token_id must be a token id or a list of token ids (got ${JSON.stringify(eos)})`);
  return ids as number[];
}

/**
 * Ids generation stops at: ChatML's end markers when the vocabulary has them as single tokens, the eos token
 * of tokenizer_config.json (`</s>` for Mixtral, `<|endoftext|>` for OLMoE), and — when the model directory is
 * given — every `eos_token_id` of its generation_config.json (what transformers' generate stops at).
 */
export function stopTokenIds(tok: Tokenizer, modelDir?: string): number[] {
  const names = ["<|im_end|>", "<|endoftext|>", ...(tok instanceof JsonTokenizer && tok.eosToken ? [tok.eosToken] : [])];
  const ids = new Set<number>();
  for (const name of names) {
    try {
      ids.add(tok.tokenId(name));
    } catch {
      // not a single token of this vocabulary
    }
  }
  if (modelDir !== undefined) for (const id of generationConfigEosIds(modelDir)) ids.add(id);
  return [...ids];
}

/**
 * Refuses a Prompt Builder sequence whose ids belong to another tokenizer than the model's (they would index the
 * wrong embeddings: silently wrong output), and ids past the model's vocabulary.
 */
export function checkSequenceTokenizer(sequence: SequenceValue, modelRef: string, tok: Tokenizer, vocabSize: number): void {
  const hash = tokenizerHash(tok);
  if (sequence.tokenizer) {
    if (sequence.tokenizer.hash !== hash) {
      throw new Error(
        `the sequence was tokenised for ${sequence.tokenizer.model}'s tokenizer but this node runs ${modelRef}, whose tokenizer differs; set the Prompt Builder's model to ${modelRef}`,
      );
    }
  } else if (tok !== byteTokenizer) {
    throw new Error(
      `the sequence records no tokenizer (it was built before Prompt Builders had a model, with the reference byte tokenizer) but ${modelRef} has its own tokenizer; set the Prompt Builder's model to ${modelRef} and run it again`,
    );
  }
  const bad = sequence.ids.findIndex((id) => !Number.isInteger(id) || id < 0 || id >= vocabSize);
  if (bad >= 0) throw new Error(`the sequence's token ${bad} has id ${sequence.ids[bad]}, outside ${modelRef}'s vocabulary of ${vocabSize}`);
}

/** An LLM's answer as it flows to the next node. */
export interface LlmOutputValue {
  kind: "llm-output";
  model: string;
  text: string;
  promptIds: number[];
  ids: number[];
  stopReason: string;
  /** Final hidden states of generated special tokens ([IMG*], [TASK*], speech markers), for the generation heads. */
  specialHidden: { token: string; id: number; index: number; hidden: Float32Array }[];
  /** Final hidden states of the last generated tokens that were fed back (up to 67, oldest first): what the released DiT path reads. Absent in outputs of older runs. */
  tailHidden?: Float32Array[];
  prefillMs: number;
  decodeMs: number;
  /** The prompt as text (the chat template's output, or the Prompt Builder's sequence text). */
  promptText?: string;
  /** How the prompt was written: "chat template from tokenizer_config.json", "built-in ChatML", … */
  promptFormat?: string;
  /** The arithmetic the routing ran in. */
  routingPrecision?: RoutingPrecision;
  /** Parameters active per token, averaged over the tokens of this run (engine/routing/active.ts). */
  activeParameters?: number;
  /** The model's weight-only quantisation (an int8/int4 import); absent: full precision. */
  quantization?: TraceQuantization;
}

/** What a scoring run (mode score-answer / score-text) outputs on `score`; the trace's tokens carry the same NLL. */
export interface ScoreValue {
  kind: "nll-score";
  /** `type` + `headline` make it its own preview in the editor. */
  type: "score";
  headline: string;
  mode: "answer" | "text";
  model: string;
  tokens: number;
  sumNll: number;
  meanNll: number;
  perplexity: number;
  /** Per scored token, in order: its text and NLL (nats). */
  perToken: { text: string; nll: number }[];
  forwardMs: number;
}

function scoreHeadline(s: NllSummary, mode: "answer" | "text"): string {
  return `${s.tokens} ${mode === "answer" ? "answer" : "text"} token(s): mean NLL ${s.mean.toFixed(3)} nats · perplexity ${s.perplexity.toPrecision(4)}`;
}

export const moeLlm = defineNode({
  type: "model.moe-llm",
  typeVersion: 1,
  title: "MoE-LLM",
  category: "Models",
  description: "Uni-MoE-2.0 decoder: generates text (or scores a reference answer, teacher-forced) and records every routing decision; optional logit lens.",
  inputs: {
    prompt: { type: "TEXT", optional: true, label: "prompt" },
    sequence: { type: "SEQUENCE", optional: true, label: "sequence" },
    answer: { type: "TEXT", optional: true, label: "answer (to score)" },
  },
  outputs: { output: { type: "LLM_OUTPUT" }, trace: { type: "ROUTING_TRACE" }, score: { type: "JSON", label: "score (NLL)" } },
  params: z.object({
    model: z.string().min(1).default("uni-moe-tiny/tiny").meta({ widget: "model", label: "Model", description: "uni-moe-tiny/tiny and /small are seeded, untrained reference models." }),
    mode: z
      .enum(["generate", "score-answer", "score-text"])
      .default("generate")
      .meta({
        label: "Mode",
        description:
          "generate: write an answer. score-answer: the negative log-likelihood of the answer input given the prompt (teacher-forced, one forward pass, no generation). score-text: language-model scoring of the input itself (every text token after the first; a plain prompt is read without the chat template).",
      }),
    logitLens: z.boolean().default(false).meta({ label: "Logit lens", description: "Also pass the residual stream after each layer through the final norm and LM head: top-5 predictions per layer and token, shown by the Routing Inspector. Off: the graph has no extra outputs." }),
    system: z.string().max(10_000).default("").meta({ widget: "textarea", label: "System prompt" }),
    chatTemplate: z
      .enum(["model", "chatml"])
      .default("model")
      .meta({
        label: "Chat template",
        description: "model: the checkpoint's own chat template (chat_template.jinja or tokenizer_config.json), ChatML when it has none; chatml: always the built-in ChatML format. Applies to the prompt input (a Prompt Builder sequence is already templated).",
      }),
    maxNewTokens: z.number().int().min(1).max(2048).default(24).meta({ label: "Max new tokens", step: 1 }),
    temperature: z.number().min(0).max(2).default(0).meta({ label: "Temperature (0 = greedy)", step: 0.05 }),
    topK: z.number().int().min(0).max(1000).default(0).meta({ label: "Top-k (0 = off)" }),
    topP: z.number().min(0.01).max(1).default(1).meta({ label: "Top-p sampling", step: 0.01 }),
    seed: z.number().int().min(0).max(2 ** 31 - 1).default(0).meta({ label: "Seed" }),
    routingTopP: z
      .number()
      .min(0)
      .max(1)
      .default(0)
      .meta({ widget: "routing-override", routingControl: "topP", label: "Routing Top-P override (0 = model's)", step: 0.05, description: "Dynamic-capacity routers (Uni-MoE-2.0) only; refused for a model whose router has no Top-P." }),
    // optional (no default): nodes that never set it keep their cache keys
    routingTopK: z
      .number()
      .int()
      .min(0)
      .max(1024)
      .optional()
      .meta({ widget: "routing-override", routingControl: "topK", label: "Routing top-k override (0 = model's)", step: 1, description: "Experts per token for fixed top-k routers (1 … routed experts); refused for dynamic-capacity and sparsemixer routers." }),
    routingPrecision: z
      .enum(["model", "fp32", "bf16"])
      .default("model")
      .meta({
        label: "Routing precision",
        description:
          "The arithmetic of the Uni-MoE routing (gate, Top-P softmax and cumsum, GRIN multipliers, weights). bf16: as Uni-MoE-2.0's released inference computes it, rounding where it rounds; fp32: the same rules in float32. model: bf16 for imported Uni-MoE-2.0 checkpoints (grin_qwen2_vl), fp32 for the seeded uni-moe-tiny models and the top-k families.",
      }),
    emit: z
      .enum(["none", "speech", "image", "speech+image"])
      .default("none")
      .meta({
        label: "Emit control tokens",
        description: "Appends a speech span and/or [TASK0..2][IMG0..31], teacher-forced after the answer, so TTS and DiT get the hidden states. The seeded models never write these tokens themselves.",
      }),
    interventions: z
      .string()
      .max(100_000)
      .default("")
      .meta({ widget: "interventions", label: "Interventions", description: 'e.g. [{"layer": "*", "expert": "E2", "action": "ban"}]; actions: ban, force, bias (with value)' }),
  }),
  async fingerprint(params) {
    const model = await resolveModel(params.model);
    // The chat template shapes the prompt but is not part of the weights' content hash.
    const tokenizer = loadTokenizer(model.dir);
    const template = tokenizer instanceof JsonTokenizer ? tokenizer.chatTemplate : null;
    // generation_config.json decides where generation stops.
    const generationFile = path.join(model.dir, GENERATION_CONFIG_FILE);
    const extras = [template, existsSync(generationFile) ? readFileSync(generationFile, "utf8") : null];
    if (extras.every((e) => e === null)) return model.contentHash;
    return `${model.contentHash}:${createHash("sha256").update(JSON.stringify(extras)).digest("hex").slice(0, 16)}`;
  },
  async checkParams(params) {
    checkRoutingOverrides((await resolveModel(params.model)).config, { topP: params.routingTopP, topK: params.routingTopK });
  },
  async execute({ inputs, params, ctx }) {
    if (!ctx.runtime) throw new Error("no ONNX Runtime layer is attached to this run");
    const prompt = typeof inputs.prompt === "string" ? inputs.prompt : undefined;
    const sequence = isSequence(inputs.sequence) ? inputs.sequence : undefined;
    if (prompt === undefined && !sequence) throw new Error("connect a prompt (TEXT) or a sequence from a Prompt Builder");
    if (prompt !== undefined && sequence) throw new Error("connect either a prompt or a sequence, not both");
    const model = await resolveModel(params.model, (f, m) => ctx.progress(f * 0.1, m));
    const interventions = compileInterventions(model.config, params.interventions, { topP: params.routingTopP, topK: params.routingTopK });
    // Checked before the session loads, so a mismatch fails fast.
    const modelTokenizer = loadTokenizer(model.dir);
    if (sequence) checkSequenceTokenizer(sequence, params.model, modelTokenizer, model.config.vocab_size);
    const stopTokens = stopTokenIds(modelTokenizer, model.dir);
    const routingPrecision: RoutingPrecision = params.routingPrecision === "model" ? defaultRoutingPrecision(model.config) : params.routingPrecision;
    const graph = { ...GRAPH, embeds: !!sequence?.media, routingPrecision, ...(params.logitLens ? { lens: true } : {}) };
    const answer = typeof inputs.answer === "string" ? inputs.answer : undefined;
    if (params.mode === "score-answer" && !answer?.trim()) throw new Error("mode score-answer needs a reference answer: connect the answer input (a Dataset's answer column or a Text node); none arrived");
    const runtime = ctx.runtime;
    const q = model.quantization;
    const quantization: TraceQuantization | undefined = q && { bits: q.bits, blockSize: q.blockSize, symmetric: q.symmetric, compute: q.accuracyLevel === 4 ? "int8" : "fp32", label: quantLabel(q) };
    const withLens = async <T extends { trace: RoutingTrace }>(out0: T, hidden: Float32Array[] | undefined): Promise<T> => {
      // every run records the weights it ran with (trace and output)
      const out = quantization ? { ...out0, trace: { ...out0.trace, quantization }, ...("output" in out0 ? { output: { ...(out0.output as LlmOutputValue), quantization } } : {}) } : out0;
      if (!params.logitLens) return out;
      if (!hidden) throw new Error("internal: the logit-lens graph returned no residual states");
      const lens = await logitLens(model, runtime, hidden, out.trace.tokens.length);
      const tok = loadTokenizer(model.dir);
      const texts: Record<number, string> = {};
      for (const l of lens.layers) for (const id of l.topIds) texts[id] ??= tok.decode([id]);
      return { ...out, trace: { ...out.trace, lens: { ...lens, texts } } };
    };
    return withMoeLlm(model, graph, ctx.runtime, async ({ runner, tokenizer }) => {
      let ids: number[];
      let promptInput: Parameters<typeof generate>[2];
      let promptText: string;
      let promptFormat: string;
      if (sequence) {
        promptText = sequence.text;
        promptFormat = sequence.tokenizer ? `sequence from the Prompt Builder, tokenised for ${sequence.tokenizer.model}` : "sequence from the Prompt Builder";
        ids = sequence.ids;
        promptInput = {
          ids,
          positions: sequence.positions,
          modalities: sequence.modality,
          modelName: params.model,
          ...(sequence.media ? { embeds: promptEmbeddings(model, ids, sequence.media) } : {}),
        };
      } else if (params.mode === "score-text") {
        promptText = prompt!;
        promptFormat = "the prompt as it is (language-model scoring, no chat template)";
        ids = tokenizer.encode(promptText);
        promptInput = { ids, modelName: params.model };
      } else {
        const messages = [...(params.system ? [{ role: "system", content: params.system }] : []), { role: "user", content: prompt! }];
        const options = { addGenerationPrompt: true, template: params.chatTemplate };
        promptText = tokenizer.applyChatTemplate(messages, options);
        promptFormat = tokenizer.chatTemplateLabel(options);
        ids = tokenizer.encode(promptText);
        promptInput = { ids, modelName: params.model };
      }
      if (params.mode !== "generate") {
        ctx.progress(0.5, "scoring (one forward pass)");
        const answerIds = params.mode === "score-answer" ? tokenizer.encode(answer!, { allowSpecial: false }) : null;
        const seq = scoredSequence(ids, answerIds);
        const extra = seq.ids.length - ids.length;
        const scored = await scoreSequence(
          runner,
          tokenizer,
          {
            ...seq,
            modelName: params.model,
            ...(promptInput.positions ? { positions: continuePositions(promptInput.positions, extra) } : {}),
            ...(promptInput.modalities ? { modalities: [...promptInput.modalities, ...Array<"text">(extra).fill("text")] } : {}),
            ...(promptInput.embeds ? { embeds: appendRows(promptInput.embeds.prompt, seq.ids.slice(ids.length).map(promptInput.embeds.token)) } : {}),
          },
          interventions,
        );
        const mode = params.mode === "score-answer" ? "answer" : "text";
        const perToken = scored.trace.tokens.filter((t) => t.nll !== undefined).map((t) => ({ text: t.text, nll: t.nll! }));
        const score: ScoreValue = {
          kind: "nll-score",
          type: "score",
          headline: scoreHeadline(scored.summary, mode),
          mode,
          model: params.model,
          tokens: scored.summary.tokens,
          sumNll: scored.summary.sum,
          meanNll: scored.summary.mean,
          perplexity: scored.summary.perplexity,
          perToken,
          forwardMs: scored.ms,
        };
        const output: LlmOutputValue = { kind: "llm-output", model: params.model, text: answer ?? "", promptIds: ids, ids: answerIds ?? [], stopReason: "scored (teacher-forced)", specialHidden: [], prefillMs: scored.ms, decodeMs: 0, promptText, promptFormat };
        return withLens({ output, trace: scored.trace, score }, scored.hidden);
      }
      let text = "";
      try {
        const result = await generate(
          runner,
          tokenizer,
          promptInput,
          {
            maxNewTokens: params.maxNewTokens,
            temperature: params.temperature,
            topK: params.topK,
            topP: params.topP,
            seed: params.seed,
            stopTokens,
            interventions,
            forceSuffix: controlTokens(tokenizer, params.emit),
            signal: ctx.signal,
            onToken: (step, _id, piece) => {
              text += piece;
              ctx.progress((step + 1) / params.maxNewTokens, text);
            },
          },
        );
        const output: LlmOutputValue = {
          kind: "llm-output",
          model: params.model,
          text: result.text,
          promptIds: result.promptIds,
          ids: result.newIds,
          stopReason: result.stopReason,
          specialHidden: result.specialHidden,
          tailHidden: result.tailHidden,
          prefillMs: result.prefillMs,
          decodeMs: result.decodeMs,
          promptText,
          promptFormat,
          routingPrecision,
          activeParameters: activeParameters(result.trace)?.expected,
        };
        return await withLens({ output, trace: result.trace }, result.hidden);
      } catch (err) {
        if (err instanceof GenerationCancelled) throw ctx.signal.reason ?? err;
        throw err;
      }
    });
  },
  summarize(outputs) {
    const score = outputs.score as ScoreValue | undefined;
    if (score) return `${score.headline} (one forward pass, ${score.forwardMs.toFixed(1)} ms)`;
    const o = outputs.output as LlmOutputValue | undefined;
    if (!o) return "no output";
    const tps = o.ids.length / Math.max(1e-9, o.decodeMs / 1000);
    const format = o.promptFormat ? `; prompt: ${o.promptFormat}` : "";
    const routing = (o.routingPrecision === "bf16" ? "; routing in bf16 (as released)" : "") + (o.quantization ? `; weights ${o.quantization.label}` : "");
    const active = o.activeParameters === undefined ? "" : `, ≈${o.activeParameters >= 1e9 ? `${(o.activeParameters / 1e9).toFixed(2)} B` : `${(o.activeParameters / 1e6).toFixed(2)} M`} active params/token`;
    return `${o.ids.length} tokens (${o.stopReason}), prefill ${o.prefillMs.toFixed(1)} ms, ${tps.toFixed(0)} tok/s${active}${routing}${format}`;
  },
});
