import { z } from "zod";
import { audio } from "./audio";
import { defineValueKind } from "./kind";

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
  /** Released MoE-TTS only: the mode it ran in, the codec, and the choices capacity dropped (all layers). */
  mode?: "release" | "cached";
  codec?: string;
  drops?: number;
}

/** SPEECH: a synthesised waveform; it is AUDIO (sockets.ts socketsCompatible). */
export const speech = defineValueKind<SpeechValue>({
  name: "SPEECH",
  noun: "speech",
  socket: { color: "#c084fc", description: "A synthesised waveform." },
  schema: z.object({
    kind: z.literal("audio"),
    file: z.string(),
    mime: z.literal("audio/wav"),
    sampleRate: z.number(),
    channels: z.literal(1),
    durationSec: z.number(),
    model: z.string(),
    chunks: z.array(z.unknown()),
    skippedChunks: z.number(),
  }),
  describe: audio.describe,
});
