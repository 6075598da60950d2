import { z } from "zod";
import { defineNode } from "../engine/node";
import { embedWorkflowInWav } from "../engine/provenance";
import type { RoutingTrace } from "../engine/trace";
import { extractSpeechSpans, resolveTtsModel, synthesize, TtsCancelled, withTts, type SpeechSegment } from "../models/tts";
import { TTS_REFERENCE_REF } from "../models/tts-tiny";
import { encodeWav16 } from "../models/wav-write";
import "./params";

/** A synthesised clip as it flows to the next node (the preview shows it with an <audio> player). */
export interface SpeechValue {
  kind: "audio";
  /** WAV in the file store (16-bit PCM, mono). */
  file: string;
  mime: "audio/wav";
  sampleRate: number;
  channels: 1;
  durationSec: number;
  model: string;
  /** What was spoken, chunk by chunk, with the codec codes' count and why each chunk stopped. */
  chunks: { style: string; text: string; codes: number; stopReason: "eos" | "max-tokens" }[];
  skippedChunks: number;
}

export const NO_SPAN_MESSAGE = "the LLM output has no <|speech_start|> … <|speech_end|> span; connect TEXT instead, or prompt the model to speak";

/**
 * What to speak: the LLM output's speech spans when it has any (their style prompt, or `voice` when a
 * span has none); otherwise the TEXT input with `voice`. An LLM output without a span and no TEXT fails.
 */
export function speechSegments(llm: unknown, text: unknown, voice: string, log?: (m: string) => void): SpeechSegment[] {
  const llmText = typeof llm === "object" && llm !== null && typeof (llm as { text?: unknown }).text === "string" ? (llm as { text: string }).text : undefined;
  if (llm !== undefined && llm !== null && llmText === undefined) throw new Error("the llm input is not an LLM output (it has no text)");
  const plain = typeof text === "string" ? text : undefined;
  if (text !== undefined && text !== null && plain === undefined) throw new Error("the text input is not text");
  if (llmText === undefined && plain === undefined) throw new Error("connect an LLM output (with a speech span) or a TEXT input");
  if (llmText !== undefined) {
    const spans = extractSpeechSpans(llmText);
    if (spans.length > 0) {
      if (plain !== undefined) log?.("the LLM output has a speech span; the TEXT input is not used");
      return spans.map((s) => ({ style: s.style || voice, text: s.text }));
    }
    if (plain === undefined) throw new Error(NO_SPAN_MESSAGE);
    log?.("the LLM output has no speech span; speaking the TEXT input");
  }
  return [{ style: voice, text: plain! }];
}

export const tts = defineNode({
  type: "generate.tts",
  typeVersion: 1,
  title: "MoE-TTS",
  category: "Generate",
  description: "Speaks the LLM's <|speech_start|>…<|speech_end|> span (or a text) with the MoE-TTS decoder and codec; records its expert routing.",
  inputs: {
    llm: { type: "LLM_OUTPUT", optional: true, label: "LLM output" },
    text: { type: "TEXT", optional: true, label: "text" },
  },
  outputs: { speech: { type: "SPEECH" }, trace: { type: "ROUTING_TRACE" } },
  params: z.object({
    model: z.string().min(1).default(TTS_REFERENCE_REF).meta({ label: "TTS model", description: "uni-moe-tiny/tts is a seeded, untrained reference: its speech is noise-like." }),
    voice: z.string().max(1000).default("Language: English; Speaker: default;").meta({ label: "Voice / style prompt", description: "Used for TEXT, and for LLM spans that carry no style of their own." }),
    maxSeconds: z.number().min(0.1).max(120).default(4).meta({ label: "Max seconds", step: 0.1, description: "Cap on the whole clip (40 codec tokens per second), shared by the text's chunks." }),
    temperature: z.number().min(0).max(2).default(0).meta({ label: "Temperature (0 = greedy)", step: 0.05 }),
    topK: z.number().int().min(0).max(4096).default(0).meta({ label: "Top-k (0 = off)" }),
    topP: z.number().min(0.01).max(1).default(1).meta({ label: "Top-p sampling", step: 0.01 }),
    seed: z.number().int().min(0).max(2 ** 31 - 1).default(0).meta({ label: "Seed" }),
  }),
  async fingerprint(params) {
    return (await resolveTtsModel(params.model)).contentHash;
  },
  async execute({ inputs, params, ctx }) {
    if (!ctx.runtime) throw new Error("no ONNX Runtime layer is attached to this run");
    const segments = speechSegments(inputs.llm, inputs.text, params.voice, (m) => ctx.log(m));
    ctx.progress(0, "loading the TTS model");
    const model = await resolveTtsModel(params.model);
    try {
      const result = await withTts(model, ctx.runtime, ({ tts: decoder, codec }) =>
        synthesize(decoder, codec, segments, {
          temperature: params.temperature,
          topK: params.topK,
          topP: params.topP,
          seed: params.seed,
          maxSeconds: params.maxSeconds,
          modelName: params.model,
          signal: ctx.signal,
          onProgress: (done, budget, chunk, chunks) => ctx.progress(done / budget, `codec token ${done} / ${budget} (chunk ${chunk + 1} of ${chunks})`),
        }),
      );
      const wav = encodeWav16(result.waveform, { sampleRate: result.sampleRate });
      // The file says which workflow made it (so its content id differs per workflow, by design).
      const file = await ctx.storage.write(ctx.workflow ? embedWorkflowInWav(wav, ctx.workflow) : wav, "wav");
      const speech: SpeechValue = {
        kind: "audio",
        file,
        mime: "audio/wav",
        sampleRate: result.sampleRate,
        channels: 1,
        durationSec: result.durationSec,
        model: params.model,
        chunks: result.chunks.map((c) => ({ style: c.style, text: c.text, codes: c.codes.length, stopReason: c.stopReason })),
        skippedChunks: result.skippedChunks,
      };
      if (result.skippedChunks > 0) ctx.log(`max seconds ran out: ${result.skippedChunks} chunk(s) were not spoken`);
      ctx.progress(1);
      const trace: RoutingTrace = result.trace;
      return { speech, trace };
    } catch (err) {
      if (err instanceof TtsCancelled) throw ctx.signal.reason ?? err;
      throw err;
    }
  },
  summarize(outputs) {
    const s = outputs.speech as SpeechValue | undefined;
    if (!s) return "no speech";
    return `${s.durationSec.toFixed(2)} s of speech in ${s.chunks.length} chunk(s) (${s.chunks.reduce((a, c) => a + c.codes, 0)} codec tokens)`;
  },
});
