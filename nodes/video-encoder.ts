import { z } from "zod";
import type { FeaturesValue } from "../engine/features";
import { extractAudio, MediaDecodeError, probeVideo, sampleFrames } from "../engine/media/ffmpeg";
import { defineNode } from "../engine/node";
import { DEFAULT_AUDIO_MODEL, DEFAULT_VISION_MODEL, resolveEncoder, withEncoder } from "../models/encoders/encoders-tiny";
import { tilesFromRgb } from "../models/encoders/image-preprocess";
import { CHUNK_FRAMES, chunkSamples, logMelChunk } from "../models/encoders/mel";
import { adaptiveAvgPool2d } from "../models/encoders/vision-encoder";
import "./params";

/** Longest audio track encoded (s), as the Audio Encoder's "Max duration" allows at most. */
const MAX_AUDIO_SECONDS = 3600;

/**
 * Video → FEATURES (PAPER.md §3–4): frames sampled at 1 fps (at least 8, at most "Max frames", an even
 * count; short clips get 8 frames spread evenly), each frame stretched to one 384×384 tile, normalised like
 * an image tile (x/255, (x−0.5)/0.5, CHW) and run through the vision encoder, pooled to s×s tokens per frame.
 * The audio track (when asked for and present) goes through the audio encoder as a second FEATURES output.
 *
 * Optional output: `audio` is `null` when "Include audio" is off or the file has no audio track. The executor
 * only insists that connected outputs are not `undefined`, so null passes; a node connected to `audio`
 * then receives null (the Prompt Builder reports a missing input) — the summary says why it is null.
 */
export const videoEncoder = defineNode({
  type: "encode.video",
  typeVersion: 1,
  title: "Video Encoder",
  category: "Encoders",
  description:
    "Samples the video at 1 fps (8 to Max frames, even count), encodes each frame as one 384×384 tile with the vision encoder (s×s tokens per frame), and the audio track with the audio encoder. Decoded with ffmpeg.",
  inputs: { video: { type: "VIDEO", label: "video" } },
  outputs: { features: { type: "FEATURES" }, audio: { type: "FEATURES" } },
  params: z.object({
    maxFrames: z.number().int().min(8).max(64).default(16).meta({ label: "Max frames", description: "Frames sampled at 1 fps, capped here (evenly over the clip when longer); even count", step: 2 }),
    includeAudio: z.boolean().default(true).meta({ label: "Include audio", description: "Encode the audio track too (output `audio`; null when off or absent)" }),
    visionModel: z
      .string()
      .min(1)
      .default(DEFAULT_VISION_MODEL)
      .meta({ label: "Vision model", description: "uni-moe-tiny/vision (seeded, untrained), or a folder in the models directory" }),
    audioModel: z
      .string()
      .min(1)
      .default(DEFAULT_AUDIO_MODEL)
      .meta({ label: "Audio model", description: "uni-moe-tiny/audio (seeded, untrained), or a folder in the models directory" }),
    pool: z.number().int().min(0).max(27).default(0).meta({ label: "Pooled side s (0 = model's)", step: 1 }),
  }),
  async fingerprint(params) {
    const v = (await resolveEncoder("vision", params.visionModel)).contentHash;
    if (!params.includeAudio) return v;
    return `${v}+${(await resolveEncoder("audio", params.audioModel)).contentHash}`;
  },
  async execute({ inputs, params, ctx }) {
    if (!ctx.runtime) throw new Error("no ONNX Runtime layer is attached to this run");
    const file = ctx.storage.pathOf(inputs.video.file);
    const signal = ctx.signal;

    ctx.progress(0, "loading the vision model");
    const model = await resolveEncoder("vision", params.visionModel);
    const { imageSize, grid, outDim } = model.info;
    const pool = params.pool || model.info.pool;
    if (pool > grid) throw new Error(`pool ${pool} is larger than the model's ${grid}×${grid} patch grid`);

    ctx.progress(0.01, "probing the video");
    let sampled: Awaited<ReturnType<typeof sampleFrames>>;
    let probe: Awaited<ReturnType<typeof probeVideo>>;
    try {
      probe = await probeVideo(file, { signal });
      ctx.progress(0.02, `sampling frames from ${probe.durationSec.toFixed(1)} s of ${probe.width}×${probe.height} video`);
      sampled = await sampleFrames(file, { fps: 1, minFrames: 8, maxFrames: params.maxFrames, size: imageSize, probe, signal });
    } catch (err) {
      if (err instanceof MediaDecodeError) throw new Error(err.message);
      throw err;
    }
    signal.throwIfAborted();

    const frames = sampled.frames.length;
    const perFrame = pool * pool * outDim;
    const data = new Float32Array(frames * perFrame);
    const visionShare = params.includeAudio && probe.hasAudio ? 0.8 : 1;
    await withEncoder(model, ctx.runtime, async (run) => {
      for (let f = 0; f < frames; f++) {
        signal.throwIfAborted();
        ctx.progress(0.05 + ((visionShare - 0.05) * f) / frames, `frame ${f + 1}/${frames} (t = ${sampled.times[f]!.toFixed(2)} s)`);
        const tile = tilesFromRgb(sampled.frames[f]!, 1, 1, imageSize)[0]!;
        const out = await run(tile, [1, 3, imageSize, imageSize]);
        if (out.dims.join(",") !== `1,${grid * grid},${outDim}`) {
          throw new Error(`vision model "${params.visionModel}" returned [${out.dims}], expected [1, ${grid * grid}, ${outDim}]`);
        }
        data.set(adaptiveAvgPool2d(out.data, 1, grid, outDim, pool), f * perFrame);
      }
    });
    const features: FeaturesValue = {
      kind: "features",
      modality: "video",
      data,
      n: frames * perFrame / outDim,
      dim: outDim,
      encoder: params.visionModel,
      video: { frames, secondsPerFrame: sampled.secondsPerFrame, pool },
    };

    let audio: FeaturesValue | null = null;
    if (params.includeAudio && probe.hasAudio) {
      ctx.progress(visionShare, "decoding the audio track");
      const amodel = await resolveEncoder("audio", params.audioModel);
      const { nMels, frames: melFrames, queries, outDim: aDim } = amodel.info;
      if (melFrames !== CHUNK_FRAMES) throw new Error(`audio model "${params.audioModel}" takes ${melFrames} mel frames per chunk; only 30-s chunks (${CHUNK_FRAMES} frames) are supported`);
      let pcm: Float32Array | null;
      try {
        pcm = await extractAudio(file, { probe, signal, sampleRate: 16_000, maxSeconds: MAX_AUDIO_SECONDS + 1 });
      } catch (err) {
        if (err instanceof MediaDecodeError) throw new Error(err.message);
        throw err;
      }
      if (pcm && pcm.length > MAX_AUDIO_SECONDS * 16_000) throw new Error(`the video's audio track is longer than ${MAX_AUDIO_SECONDS} s (the Audio Encoder's limit); trim the clip or turn "include audio" off`);
      if (pcm) {
        const chunks = chunkSamples(pcm);
        const perChunk = queries * aDim;
        const adata = new Float32Array(chunks.length * perChunk);
        await withEncoder(amodel, ctx.runtime, async (run) => {
          for (let c = 0; c < chunks.length; c++) {
            signal.throwIfAborted();
            ctx.progress(visionShare + ((1 - visionShare) * c) / chunks.length, `audio chunk ${c + 1}/${chunks.length}`);
            const out = await run(logMelChunk(chunks[c]!, nMels), [1, nMels, CHUNK_FRAMES]);
            if (out.dims.join(",") !== `1,${queries},${aDim}`) throw new Error(`audio model "${params.audioModel}" returned [${out.dims}], expected [1, ${queries}, ${aDim}]`);
            adata.set(out.data, c * perChunk);
          }
        });
        audio = {
          kind: "features",
          modality: "audio",
          data: adata,
          n: chunks.length * queries,
          dim: aDim,
          encoder: params.audioModel,
          audio: { chunks: chunks.length, durationSec: pcm.length / 16_000 },
        };
      }
    }
    const note = audio ? `, ${audio.n} audio tokens` : params.includeAudio ? ", no audio track" : ", audio off";
    ctx.progress(1, `${frames} frame(s) → ${features.n} tokens${note}`);
    return { features, audio };
  },
  summarize(outputs) {
    const f = outputs.features;
    if (!f?.video) return "no features";
    const { frames, secondsPerFrame, pool } = f.video;
    const a = outputs.audio;
    const audioPart = a?.audio ? `; ${a.n} audio tokens (${a.audio.durationSec.toFixed(2)} s)` : "; audio: null (off or no audio track)";
    return `${f.n} video tokens × ${f.dim} (${frames} frames, ${secondsPerFrame.toFixed(3)} s/frame, ${pool}×${pool} each)${audioPart}`;
  },
});
