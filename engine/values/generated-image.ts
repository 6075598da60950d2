import { defineValueKind } from "./kind";
import { image, type ImageValue } from "./image";

/** GENERATED_IMAGE: an image a generator made; it is an IMAGE (sockets.ts socketsCompatible). */
export const generatedImage = defineValueKind<ImageValue>({
  ...image,
  name: "GENERATED_IMAGE",
  tag: undefined,
  socket: { color: "#22d3ee", description: "An image produced by a generator." },
});
