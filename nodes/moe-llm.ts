import { z } from "zod";
import { defineNode } from "../engine/node";
import type { LlmOutputValue } from "../engine/values/llm-output";
import { nllScore, type ScoreValue } from "../engine/values/nll-score";
import { checkRoutingPrecision } from "../models/moe-llm/grin-routing";
import { checkRoutingOverrides, compileInterventions } from "../models/moe-llm/interventions";
import { resolveModel } from "../models/moe-llm/moe-llm-model";
import { promptFilesFingerprint } from "../models/moe-llm/prompt-input";
import { runMoeLlm } from "../models/moe-llm/run";
import "./params";

export type { LlmOutputValue, ScoreValue };
export { checkSequenceTokenizer } from "../models/moe-llm/prompt-input";
export { GENERATION_CONFIG_FILE, generationConfigEosIds, stopTokenIds } from "../models/moe-llm/stop-tokens";

export const moeLlm = defineNode({
  type: "model.moe-llm",
  // 2: routingTopP null = the model's P (version 1 wrote 0 for it); 3: routingTopK likewise null = the model's k (version 2
  // wrote 0 or nothing). migrateParams keeps those documents' meaning.
  typeVersion: 3,
  title: "MoE-LLM",
  category: "Models",
  description: "Uni-MoE-2.0 decoder: generates text (or scores a reference answer, teacher-forced) and records every routing decision; optional logit lens.",
  inputs: {
    prompt: { type: "TEXT", optional: true, label: "prompt" },
    sequence: { type: "SEQUENCE", optional: true, label: "sequence" },
    answer: { type: "TEXT", optional: true, label: "answer (to score)" },
  },
  connectOneOf: { inputs: ["prompt", "sequence"], exclusive: true },
  outputs: { output: { type: "LLM_OUTPUT" }, trace: { type: "ROUTING_TRACE" }, score: { type: "JSON", label: "score (NLL)", kind: nllScore } },
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
      .gt(0)
      .max(1)
      .nullable()
      .default(null)
      .meta({ widget: "routing-override", routingControl: "topP", label: "Routing Top-P override", step: 0.05, description: "Empty (null) = the model's own P. Dynamic-capacity routers (Uni-MoE-2.0) only; refused for a model whose router has no Top-P." }),
    routingTopK: z
      .number()
      .int()
      .min(1)
      .max(1024)
      .nullable()
      .default(null)
      .meta({ widget: "routing-override", routingControl: "topK", label: "Routing top-k override", step: 1, description: "Empty (null) = the model's own k. Experts per token for fixed top-k routers (1 … routed experts); refused for dynamic-capacity and sparsemixer routers." }),
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
  migrateParams(params, fromVersion) {
    // version 1 wrote routingTopP 0 for "the model's P", versions 1-2 routingTopK 0 for "the model's k"
    const out = { ...params };
    if (fromVersion < 2 && out.routingTopP === 0) out.routingTopP = null;
    if (fromVersion < 3 && out.routingTopK === 0) out.routingTopK = null;
    return out;
  },
  async fingerprint(params) {
    // The chat template and generation_config.json shape the prompt and the stop, beside the weights.
    return promptFilesFingerprint(await resolveModel(params.model));
  },
  async checkParams(params) {
    const { config } = await resolveModel(params.model);
    checkRoutingOverrides(config, { topP: params.routingTopP, topK: params.routingTopK });
    if (params.routingPrecision === "bf16") checkRoutingPrecision(config, "bf16");
  },
  async execute({ inputs, params, ctx }) {
    if (!ctx.runtime) throw new Error("no ONNX Runtime layer is attached to this run");
    const prompt = inputs.prompt ?? undefined;
    const sequence = inputs.sequence ?? undefined;
    if (prompt === undefined && !sequence) throw new Error("connect a prompt (TEXT) or a sequence from a Prompt Builder");
    if (prompt !== undefined && sequence) throw new Error("connect either a prompt or a sequence, not both");
    const model = await resolveModel(params.model, (f, m) => ctx.progress(f * 0.1, m));
    const interventions = { ...compileInterventions(model.config, params.interventions), ...checkRoutingOverrides(model.config, { topP: params.routingTopP, topK: params.routingTopK }) };
    const answer = inputs.answer ?? undefined;
    if (params.mode === "score-answer" && !answer?.trim()) throw new Error("mode score-answer needs a reference answer: connect the answer input (a Dataset's answer column or a Text node); none arrived");
    return runMoeLlm(model, ctx.runtime, { ...params, modelRef: params.model }, { prompt, sequence, answer }, interventions, ctx);
  },
  summarize(outputs) {
    const score = outputs.score;
    if (score) return `${score.headline} (one forward pass, ${score.forwardMs.toFixed(1)} ms)`;
    const o = outputs.output;
    if (!o) return "no output";
    const tps = o.ids.length / Math.max(1e-9, o.decodeMs / 1000);
    const format = o.promptFormat ? `; prompt: ${o.promptFormat}` : "";
    const routing = (o.routingPrecision === "bf16" ? "; routing in bf16 (as released)" : "") + (o.quantization ? `; weights ${o.quantization.label}` : "");
    const active = o.activeParameters === undefined ? "" : `, ≈${o.activeParameters >= 1e9 ? `${(o.activeParameters / 1e9).toFixed(2)} B` : `${(o.activeParameters / 1e6).toFixed(2)} M`} active params/token`;
    return `${o.ids.length} tokens (${o.stopReason}), prefill ${o.prefillMs.toFixed(1)} ms, ${tps.toFixed(0)} tok/s${active}${routing}${format}`;
  },
});
