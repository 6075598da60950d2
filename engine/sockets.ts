/**
 * The socket-type registry: one place that says which kinds of value flow along edges,
 * what colour the editor draws them in, and which links are allowed.
 */
export const SOCKET_TYPES = {
  TEXT: { color: "#e2e8f0", description: "A string of text." },
  IMAGE: { color: "#38bdf8", description: "A decoded image (stored as an artifact)." },
  AUDIO: { color: "#a78bfa", description: "An audio clip (stored as an artifact)." },
  VIDEO: { color: "#f472b6", description: "A video clip (stored as an artifact)." },
  FEATURES: { color: "#fb923c", description: "Modality-tagged [N, D] encoder features." },
  SEQUENCE: { color: "#facc15", description: "Multimodal token sequence with (t, h, w) position ids." },
  LLM_OUTPUT: { color: "#4ade80", description: "Generated text, token ids and special-token hidden states." },
  ROUTING_TRACE: { color: "#f87171", description: "Per-layer routing decisions of an MoE." },
  SPEECH: { color: "#c084fc", description: "A synthesised waveform." },
  GENERATED_IMAGE: { color: "#22d3ee", description: "An image produced by a generator." },
  NUMBER: { color: "#94a3b8", description: "A number." },
  JSON: { color: "#cbd5e1", description: "A small JSON value." },
  /** Accepts anything; only valid on inputs (e.g. Preview). */
  ANY: { color: "#ffffff", description: "Any value." },
} as const;

export type SocketType = keyof typeof SOCKET_TYPES;
export const SOCKET_TYPE_NAMES = Object.keys(SOCKET_TYPES) as SocketType[];

export function isSocketType(name: string): name is SocketType {
  return Object.prototype.hasOwnProperty.call(SOCKET_TYPES, name);
}

/** May a value of type `from` (an output) flow into an input of type `to`? */
export function socketsCompatible(from: SocketType, to: SocketType): boolean {
  if (from === "ANY") return false;
  if (to === "ANY") return true;
  if (from === to) return true;
  // A generated image is an image; speech is audio.
  if (from === "GENERATED_IMAGE" && to === "IMAGE") return true;
  if (from === "SPEECH" && to === "AUDIO") return true;
  return false;
}
