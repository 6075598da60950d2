import { z } from "zod";
import { defineNode } from "../engine/node";
import type { ImageValue } from "../engine/media/values";
import { inspectStored } from "../engine/uploads";
import "./params";

/** An uploaded image (PNG, JPEG, WebP or GIF), checked to decode. */
export const imageInput = defineNode({
  type: "input.image",
  typeVersion: 1,
  title: "Image",
  category: "Inputs",
  description: "An uploaded image (PNG, JPEG, WebP or GIF).",
  inputs: {},
  outputs: { image: { type: "IMAGE" } },
  params: z.object({
    file: z.string().default("").meta({ widget: "file", accept: "image/*", label: "Image file" }),
  }),
  async execute({ params, ctx }) {
    if (params.file === "") throw new Error("choose an image file");
    const media = await inspectStored(ctx.storage, params.file, { expectedKind: "image" });
    if (media.kind !== "image") throw new Error("the chosen file is not an image");
    const image: ImageValue = { kind: "image", file: params.file, mime: media.mime, width: media.meta.width, height: media.meta.height };
    return { image };
  },
  warnings: (params) => (params.file === "" ? ["choose an image file: a run stops at this node until one is chosen"] : []),
  // The id is the content hash: equal ids mean equal bytes.
  async fingerprint(params) {
    return params.file;
  },
  summarize(outputs) {
    const v = outputs.image;
    return v ? `${v.mime.replace(/^image\//, "").toUpperCase()} image, ${v.width}×${v.height}` : "no image";
  },
});
