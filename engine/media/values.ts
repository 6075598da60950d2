import { z } from "zod";

/**
 * Values that flow along IMAGE, AUDIO and VIDEO edges from the input nodes. The pixels and samples
 * stay in storage; `file` is the storage id (content hash + extension), so values are small and
 * their cache keys change exactly when the content does.
 */
export const zImageValue = z.object({
  kind: z.literal("image"),
  file: z.string(),
  mime: z.string(),
  width: z.number().int().positive(),
  height: z.number().int().positive(),
});
export type ImageValue = z.infer<typeof zImageValue>;

export const zAudioValue = z.object({
  kind: z.literal("audio"),
  file: z.string(),
  mime: z.string(),
  /** Known for WAV; absent for formats this version does not decode (MP3, OGG, FLAC, M4A). */
  sampleRate: z.number().int().positive().optional(),
  channels: z.number().int().positive().optional(),
  durationSec: z.number().nonnegative().optional(),
});
export type AudioValue = z.infer<typeof zAudioValue>;

export const zVideoValue = z.object({
  kind: z.literal("video"),
  file: z.string(),
  mime: z.string(),
  /** File size in bytes. */
  bytes: z.number().int().nonnegative(),
});
export type VideoValue = z.infer<typeof zVideoValue>;
