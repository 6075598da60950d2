import { zAudioValue, type AudioValue } from "../media/values";
import { defineValueKind, pick } from "./kind";

export type { AudioValue };

/** AUDIO: an audio clip in the file store. A SPEECH value (speech.ts) is one too, and says how it was made. */
export const audio = defineValueKind<AudioValue>({
  name: "AUDIO",
  noun: "an audio clip",
  tag: "audio",
  socket: { color: "#a78bfa", description: "An audio clip (stored as an artifact)." },
  schema: zAudioValue,
  describe(value) {
    const o = value as AudioValue & { chunks?: { codes?: number }[]; mode?: unknown; codec?: unknown; drops?: unknown };
    const secs = typeof o.durationSec === "number" ? `, ${o.durationSec.toFixed(2)} s` : "";
    // a released MoE-TTS's speech says how it was made (speech.ts SpeechValue)
    const codes = Array.isArray(o.chunks) ? o.chunks.reduce((a, c) => a + (c.codes ?? 0), 0) : 0;
    const made = typeof o.mode === "string" ? `; ${codes} codes, ${o.mode} mode${o.mode === "cached" ? " (differs from the release)" : ""}, codec ${String(o.codec)}, ${String(o.drops)} choice(s) dropped by capacity` : "";
    return { type: "audio", headline: `audio (${o.mime})${secs}${made}`, ...pick(o, ["file", "mime", "sampleRate", "channels", "durationSec"]) };
  },
});
