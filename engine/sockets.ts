/**
 * The socket-type registry: which kinds of value flow along edges (one file per kind in engine/values/, with its
 * colour, words, schema and preview), and which links are allowed. A new socket kind is one line in SOCKET_KINDS.
 */
import { any } from "./values/any";
import { audio } from "./values/audio";
import { features } from "./values/features";
import { generatedImage } from "./values/generated-image";
import { image } from "./values/image";
import { json } from "./values/json";
import type { ValueKind } from "./values/kind";
import { llmOutput } from "./values/llm-output";
import { number } from "./values/number";
import { routingTrace } from "./values/routing-trace";
import { sequence } from "./values/sequence";
import { speech } from "./values/speech";
import { text } from "./values/text";
import { video } from "./values/video";

export const SOCKET_KINDS = {
  TEXT: text,
  IMAGE: image,
  AUDIO: audio,
  VIDEO: video,
  FEATURES: features,
  SEQUENCE: sequence,
  LLM_OUTPUT: llmOutput,
  ROUTING_TRACE: routingTrace,
  SPEECH: speech,
  GENERATED_IMAGE: generatedImage,
  NUMBER: number,
  JSON: json,
  /** Accepts anything; only valid on inputs (e.g. Preview). */
  ANY: any,
};

export type SocketType = keyof typeof SOCKET_KINDS;
/** The TypeScript type of the values a socket type carries. */
export type SocketValue<S extends SocketType> = (typeof SOCKET_KINDS)[S] extends ValueKind<infer T> ? T : never;
export const SOCKET_TYPE_NAMES = Object.keys(SOCKET_KINDS) as SocketType[];

/** Colour and words of every socket type (what the editor draws; plain JSON, sent to the browser). */
export const SOCKET_TYPES = Object.fromEntries(SOCKET_TYPE_NAMES.map((name) => [name, SOCKET_KINDS[name].socket!])) as Record<SocketType, { color: string; description: string }>;

export function isSocketType(name: string): name is SocketType {
  return Object.prototype.hasOwnProperty.call(SOCKET_KINDS, name);
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
