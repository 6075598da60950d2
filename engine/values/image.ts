import { zImageValue, type ImageValue } from "../media/values";
import { defineValueKind, pick } from "./kind";

export type { ImageValue };

/** IMAGE: a decoded image in the file store (engine/media/values.ts). */
export const image = defineValueKind<ImageValue>({
  name: "IMAGE",
  noun: "an image",
  tag: "image",
  socket: { color: "#38bdf8", description: "A decoded image (stored as an artifact)." },
  schema: zImageValue,
  describe: (o) => ({ type: "image", headline: `image ${o.width}×${o.height}`, ...pick(o, ["file", "mime", "width", "height"]) }),
});
