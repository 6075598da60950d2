import { z } from "zod";
import type { FeaturesValue } from "../engine/features";
import { decodeAudio, MediaDecodeError } from "../engine/media/ffmpeg";
import { decodeWavMonoYielding, parseWav, WavError } from "../engine/media/wav";
import { defineNode } from "../engine/node";
import { DEFAULT_AUDIO_MODEL, resolveEncoder, withEncoder } from "../models/encoders/encoders-tiny";
import { CHUNK_FRAMES, CHUNK_SECONDS, chunkSamples, logMelChunk, resampleYielding, SAMPLE_RATE } from "../models/encoders/mel";
import "./params";

const WAV_MIMES = new Set(["audio/wav", "audio/x-wav", "audio/wave", "audio/vnd.wave"]);

/**
 * Audio → FEATURES: WAV decoded to mono, resampled to 16 kHz, cut into 30-s chunks, Whisper log-mel,
 * encoder + query former → 200 tokens per chunk at the LLM's hidden size.
 */
export const audioEncoder = defineNode({
  type: "encode.audio",
  typeVersion: 1,
  title: "Audio Encoder",
  category: "Encoders",
  description:
    "Whisper-style audio encoder with a query former: 16 kHz mono, 30-s chunks of log-mel, 200 tokens per chunk at the LLM's hidden size. Reads WAV, and MP3/OGG/FLAC/M4A through ffmpeg. uni-moe-tiny/audio is seeded, untrained.",
  inputs: { audio: { type: "AUDIO", label: "audio" } },
  outputs: { features: { type: "FEATURES" } },
  params: z.object({
    model: z
      .string()
      .min(1)
      .default(DEFAULT_AUDIO_MODEL)
      .meta({ label: "Audio model", description: "uni-moe-tiny/audio (seeded, untrained), an imported Uni-MoE-2.0-Omni tower (<family>/<name>/audio, e.g. grin_qwen2_vl/omni/audio), or a folder in the models directory with config.json + model.safetensors or audio.onnx" }),
    maxDurationSec: z.number().min(1).max(3600).default(120).meta({ label: "Max duration (s)", description: "Longer clips are refused" }),
  }),
  async fingerprint(params) {
    return (await resolveEncoder("audio", params.model)).contentHash;
  },
  async execute({ inputs, params, ctx }) {
    if (!ctx.runtime) throw new Error("no ONNX Runtime layer is attached to this run");
    const audio = inputs.audio;
    ctx.progress(0, "loading the audio model");
    const model = await resolveEncoder("audio", params.model);
    const { nMels, frames, queries, outDim } = model.info;
    if (frames !== CHUNK_FRAMES) throw new Error(`audio model "${params.model}" takes ${frames} mel frames per chunk; only 30-s chunks (${CHUNK_FRAMES} frames) are supported`);

    let samples: Float32Array = new Float32Array(0);
    let rate = SAMPLE_RATE;
    let durationSec = 0;
    // WAV in the encodings engine/media/wav reads is decoded in-process; everything else (MP3, OGG, FLAC,
    // M4A, and WAV variants such as ADPCM or µ-law) goes through ffmpeg to 16 kHz mono float32.
    let viaFfmpeg = !WAV_MIMES.has(audio.mime);
    if (!viaFfmpeg) {
      const bytes = await ctx.storage.read(audio.file);
      try {
        const info = parseWav(bytes);
        if (info.frames === 0) throw new WavError("it contains no audio samples", "corrupt");
        if (info.durationSec > params.maxDurationSec) {
          throw new Error(`the audio is ${info.durationSec.toFixed(1)} s long; the limit is ${params.maxDurationSec} s (raise "Max duration" or trim the clip)`);
        }
        ({ samples } = await decodeWavMonoYielding(bytes, ctx.signal));
        rate = info.sampleRate;
        durationSec = info.durationSec;
      } catch (err) {
        if (err instanceof WavError && err.code === "unsupported") viaFfmpeg = true;
        else if (err instanceof WavError) throw new Error(`the input audio is not a readable WAV file: ${err.message}`);
        else throw err;
      }
    }
    if (viaFfmpeg) {
      const format = audio.mime.replace(/^audio\//, "").replace(/^(mpeg|mp3)$/, "mp3").replace(/^x-/, "").toUpperCase();
      ctx.progress(0.01, `decoding ${format} with ffmpeg`);
      try {
        // Decode a little past the limit so an over-long clip is recognised without decoding all of it.
        samples = await decodeAudio(ctx.storage.pathOf(audio.file), { sampleRate: SAMPLE_RATE, maxSeconds: params.maxDurationSec + 1, signal: ctx.signal, what: `input audio (${format})` });
      } catch (err) {
        if (err instanceof MediaDecodeError) throw new Error(err.message);
        throw err;
      }
      rate = SAMPLE_RATE;
      durationSec = samples.length / SAMPLE_RATE;
      if (durationSec > params.maxDurationSec) {
        throw new Error(`the audio is longer than ${params.maxDurationSec} s (raise "Max duration" or trim the clip)`);
      }
    }
    ctx.signal.throwIfAborted();
    if (rate !== SAMPLE_RATE) ctx.progress(0.02, `resampling ${rate} Hz → 16 kHz`);
    const pcm = await resampleYielding(samples, rate, SAMPLE_RATE, ctx.signal);
    const chunks = chunkSamples(pcm);
    const perChunk = queries * outDim;
    const data = new Float32Array(chunks.length * perChunk);
    await withEncoder(model, ctx.runtime, async (run) => {
      for (let c = 0; c < chunks.length; c++) {
        ctx.signal.throwIfAborted();
        ctx.progress(0.05 + (0.95 * c) / chunks.length, `chunk ${c + 1}/${chunks.length} (${CHUNK_SECONDS} s each)`);
        const mel = logMelChunk(chunks[c]!, nMels);
        ctx.signal.throwIfAborted();
        const out = await run(mel, [1, nMels, CHUNK_FRAMES]);
        if (out.dims.join(",") !== `1,${queries},${outDim}`) throw new Error(`audio model "${params.model}" returned [${out.dims}], expected [1, ${queries}, ${outDim}]`);
        data.set(out.data, c * perChunk);
      }
    });
    ctx.progress(1, `${chunks.length} chunk(s) → ${chunks.length * queries} tokens`);
    const features: FeaturesValue = {
      kind: "features",
      modality: "audio",
      data,
      n: chunks.length * queries,
      dim: outDim,
      encoder: params.model,
      audio: { chunks: chunks.length, durationSec },
    };
    return { features };
  },
  summarize(outputs) {
    const f = outputs.features;
    if (!f?.audio) return "no features";
    return `${f.n} audio tokens × ${f.dim} (${f.audio.chunks} chunk(s), ${f.audio.durationSec.toFixed(2)} s)`;
  },
});
