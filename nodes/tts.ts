import { z } from "zod";
import { defineNode, type RunContext } from "../engine/node";
import { embedWorkflowInWav } from "../engine/provenance";
import type { RoutingTrace } from "../engine/trace";
import type { LlmOutputValue } from "../engine/values/llm-output";
import type { SpeechValue } from "../engine/values/speech";
import { extractSpeechSpans, resolveTtsModel, synthesize, TtsCancelled, withTts, type SpeechSegment } from "../models/tts/tts";
import { TTS_REFERENCE_REF } from "../models/tts/tts-tiny";
import { encodeWav16 } from "../models/io/wav-write";
import { resolveCodec, withCodec } from "../models/tts/codec-wavtokenizer-model";
import { readDefaults } from "../models/defaults";
import { resolveSpeechRef, speechRunner, speechTokenizer, type ResolvedSpeech } from "../models/tts/tts-released-model";
import { releasedChunks, synthesizeReleased } from "../models/tts/tts-released-synth";
import { SpeechCancelled } from "../models/tts/tts-released-run";
import { byteTokenizer } from "../models/text/tokenizer";
import "./params";

/** The Models page's codec for MoE-TTS nodes (defaults.json key). */
export const TTS_CODEC_DEFAULT_KEY = "generate.tts.codec";

export type { SpeechValue };

export const NO_SPAN_MESSAGE = "the LLM output has no <|speech_start|> … <|speech_end|> span; connect TEXT instead, or prompt the model to speak";

/**
 * What to speak: the LLM output's speech spans when it has any (their style prompt, or `voice` when a
 * span has none); otherwise the TEXT input with `voice`. An LLM output without a span and no TEXT fails.
 */
export function speechSegments(llm: Pick<LlmOutputValue, "text"> | null | undefined, text: string | null | undefined, voice: string, log?: (m: string) => void): SpeechSegment[] {
  const llmText = llm?.text;
  const plain = text ?? undefined;
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

const ttsParams = z.object({
  model: z.string().min(1).default(TTS_REFERENCE_REF).meta({ label: "TTS model", description: "uni-moe-tiny/tts is a seeded, untrained reference: its speech is noise-like. An Omni import's MoE-TTS is <family>/<name>/speech." }),
  mode: z
    .enum(["release", "cached"])
    .default("release")
    .meta({
      label: "Mode (released MoE-TTS)",
      description:
        "release: exactly the released inference minus its noise: no attention mask, the whole sequence recomputed for every code, training capacity (factor 1.5, choices dropped); slow. cached: prefix-causal mask, KV cache, no capacity: fast, but it DIFFERS from the release. The seeded uni-moe-tiny/tts ignores this.",
    }),
  codec: z.string().max(300).default("").meta({ label: "Codec (released MoE-TTS)", description: "An imported WavTokenizer (wavtokenizer/<name>); empty: the codec chosen on the Models page. The seeded uni-moe-tiny/tts uses its own." }),
  secondExpertSampling: z.boolean().default(false).meta({ label: "Sample the second expert (Gumbel, seeded)", description: "The release's DeepSpeed gate draws the second expert with Gumbel noise; off = argmax." }),
  attentionDropout: z.boolean().default(false).meta({ label: "Attention dropout (seeded, release mode)", description: "The release runs in training mode, so dropout p = 0.1 is active there; off by default." }),
  voice: z.string().max(1000).default("Language: English; Speaker: default;").meta({ label: "Voice / style prompt", description: "Used for TEXT, and for LLM spans that carry no style of their own." }),
  maxSeconds: z.number().min(0.1).max(120).default(4).meta({ label: "Max seconds", step: 0.1, description: "Cap on the whole clip (40 codec tokens per second), shared by the text's chunks." }),
  temperature: z.number().min(0).max(2).default(0).meta({ label: "Temperature (0 = greedy)", step: 0.05 }),
  topK: z.number().int().min(0).max(4096).default(0).meta({ label: "Top-k (0 = off)" }),
  topP: z.number().min(0.01).max(1).default(1).meta({ label: "Top-p sampling", step: 0.01 }),
  seed: z.number().int().min(0).max(2 ** 31 - 1).default(0).meta({ label: "Seed" }),
});
type TtsParams = z.infer<typeof ttsParams>;

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
  connectOneOf: { inputs: ["llm", "text"], exclusive: false },
  outputs: { speech: { type: "SPEECH" }, trace: { type: "ROUTING_TRACE" } },
  params: ttsParams,
  async fingerprint(params) {
    const released = resolveSpeechRef(params.model);
    if (released) return `${released.contentHash}:${resolveCodec(codecRef(params.codec)).contentHash}`;
    return (await resolveTtsModel(params.model)).contentHash;
  },
  async execute({ inputs, params, ctx }) {
    if (!ctx.runtime) throw new Error("no ONNX Runtime layer is attached to this run");
    const released = resolveSpeechRef(params.model);
    if (released) return executeReleased(released, inputs, params, ctx);
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
      const speech: SpeechValue = {
        ...(await storedSpeech(ctx, result, params.model)),
        durationSec: result.durationSec,
        chunks: result.chunks.map((c) => ({ style: c.style, text: c.text, codes: c.codes.length, stopReason: c.stopReason })),
      };
      ctx.progress(1);
      const trace: RoutingTrace = result.trace;
      return { speech, trace };
    } catch (err) {
      if (err instanceof TtsCancelled) throw ctx.signal.reason ?? err;
      throw err;
    }
  },
  summarize(outputs) {
    const s = outputs.speech;
    if (!s) return "no speech";
    const released = s.mode ? `; ${s.mode} mode${s.mode === "cached" ? " (differs from the release)" : ""}, codec ${s.codec}, ${s.drops} choice(s) dropped by capacity` : "";
    return `${s.durationSec.toFixed(2)} s of speech in ${s.chunks.length} chunk(s) (${s.chunks.reduce((a, c) => a + c.codes, 0)} codec tokens)${released}`;
  },
});

/**
 * A synthesis's waveform as a stored WAV and the SPEECH fields both paths share. The file says which workflow made it
 * (so its content id differs per workflow, by design).
 */
async function storedSpeech(ctx: RunContext, result: { waveform: Float32Array; sampleRate: number; skippedChunks: number }, model: string) {
  const wav = encodeWav16(result.waveform, { sampleRate: result.sampleRate });
  const file = await ctx.storage.write(ctx.workflow ? embedWorkflowInWav(wav, ctx.workflow) : wav, "wav");
  if (result.skippedChunks > 0) ctx.log(`max seconds ran out: ${result.skippedChunks} chunk(s) were not spoken`);
  return { kind: "audio", file, mime: "audio/wav", sampleRate: result.sampleRate, channels: 1, model, skippedChunks: result.skippedChunks } as const;
}

/** The codec for a released MoE-TTS: the node's, else the Models page's. */
function codecRef(param: string): string {
  const ref = param || readDefaults()[TTS_CODEC_DEFAULT_KEY];
  if (!ref) throw new Error("this MoE-TTS needs a codec: import a WavTokenizer checkpoint and choose it on the Models page (or set the node's Codec)");
  return ref;
}


/** The released MoE-TTS path (models/tts-released-synth.ts). */
async function executeReleased(model: ResolvedSpeech, inputs: { llm?: LlmOutputValue | null; text?: string | null }, params: TtsParams, ctx: RunContext): Promise<{ speech: SpeechValue; trace: RoutingTrace }> {
  const codec = resolveCodec(codecRef(params.codec));
  const tok = speechTokenizer(model) ?? byteTokenizer;
  const llm = inputs.llm;
  let chunks = llm ? releasedChunks(model.config, tok, { ids: llm.ids, stopReason: llm.stopReason }) : [];
  if (chunks.length === 0) {
    if (typeof inputs.text !== "string") throw new Error(llm ? NO_SPAN_MESSAGE : "connect an LLM output (with a speech span) or a TEXT input");
    if (llm) ctx.log("the LLM output has no speech span; speaking the TEXT input");
    chunks = releasedChunks(model.config, tok, { text: inputs.text, voice: params.voice });
  }
  if (params.mode === "cached") ctx.log("cached mode: prefix-causal mask, KV cache, no capacity — this differs from the released inference");
  ctx.progress(0, `loading ${params.model} (${params.mode} mode) and ${codec.ref}`);
  const runner = await speechRunner(model, { kvCache: params.mode === "cached", dropout: params.mode === "release" && params.attentionDropout });
  try {
    const result = await withCodec(codec, ctx.runtime!, (decoder) =>
      synthesizeReleased(runner, decoder, tok, chunks, {
        mode: params.mode,
        seed: params.seed,
        secondExpertSampling: params.secondExpertSampling,
        attentionDropout: params.mode === "release" && params.attentionDropout,
        maxSeconds: params.maxSeconds,
        modelName: params.model,
        signal: ctx.signal,
        onProgress: (done, budget, chunk, n) => ctx.progress(done / budget, `code ${done} / ${budget} (chunk ${chunk + 1} of ${n}, ${params.mode} mode)`),
      }),
    );
    const speech: SpeechValue = {
      ...(await storedSpeech(ctx, result, params.model)),
      durationSec: result.waveform.length / result.sampleRate,
      chunks: result.chunks.map((c) => ({ style: tok.decode(c.prompt), text: tok.decode(c.text), codes: c.codes, stopReason: c.stopReason })),
      mode: params.mode,
      codec: codec.ref,
      drops: result.drops,
    };
    ctx.progress(1);
    return { speech, trace: result.trace };
  } catch (err) {
    if (err instanceof SpeechCancelled) throw ctx.signal.reason ?? err;
    throw err;
  }
}
