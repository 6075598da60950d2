import { z } from "zod";
import { defineNode } from "../engine/node";
import type { AudioValue } from "../engine/media/values";
import { inspectStored } from "../engine/uploads";
import "./params";

/** An uploaded audio clip. WAV is read fully (rate, channels, duration); MP3/OGG/FLAC/M4A are only identified. */
export const audioInput = defineNode({
  type: "input.audio",
  typeVersion: 1,
  title: "Audio",
  category: "Inputs",
  description: "An uploaded audio clip (WAV, MP3, OGG, FLAC or M4A).",
  inputs: {},
  outputs: { audio: { type: "AUDIO" } },
  params: z.object({
    file: z.string().default("").meta({ widget: "file", accept: "audio/*", label: "Audio file" }),
  }),
  async execute({ params, ctx }) {
    if (params.file === "") throw new Error("choose an audio file");
    const media = await inspectStored(ctx.storage, params.file, { expectedKind: "audio" });
    if (media.kind !== "audio") throw new Error("the chosen file is not an audio file");
    const audio: AudioValue = { kind: "audio", file: params.file, mime: media.mime };
    if ("sampleRate" in media.meta) {
      audio.sampleRate = media.meta.sampleRate;
      audio.channels = media.meta.channels;
      audio.durationSec = media.meta.durationSec;
    }
    return { audio };
  },
  warnings: (params) => (params.file === "" ? ["choose an audio file: a run stops at this node until one is chosen"] : []),
  async fingerprint(params) {
    return params.file;
  },
  summarize(outputs) {
    const v = outputs.audio;
    if (!v) return "no audio";
    const format = v.mime.replace(/^audio\//, "").replace(/^mpeg$/, "mp3").replace(/^mp4$/, "m4a").toUpperCase();
    if (v.sampleRate === undefined) return `${format} audio`;
    const ch = v.channels === 1 ? "mono" : v.channels === 2 ? "stereo" : `${v.channels} channels`;
    return `${format} audio, ${v.sampleRate / 1000} kHz ${ch}, ${(v.durationSec ?? 0).toFixed(2)} s`;
  },
});
