import { z } from "zod";
import { defineNode } from "../engine/node";
import type { VideoValue } from "../engine/media/values";
import { inspectStored } from "../engine/uploads";
import "./params";

/** An uploaded video (MP4, MOV, WebM, MKV or AVI); identified from its bytes, not decoded here. */
export const videoInput = defineNode({
  type: "input.video",
  typeVersion: 1,
  title: "Video",
  category: "Inputs",
  description: "An uploaded video (MP4, MOV, WebM, MKV or AVI).",
  inputs: {},
  outputs: { video: { type: "VIDEO" } },
  params: z.object({
    file: z.string().default("").meta({ widget: "file", accept: "video/*", label: "Video file" }),
  }),
  async execute({ params, ctx }) {
    if (params.file === "") throw new Error("choose a video file");
    const media = await inspectStored(ctx.storage, params.file, { expectedKind: "video" });
    const video: VideoValue = { kind: "video", file: params.file, mime: media.mime, bytes: media.bytes };
    return { video };
  },
  warnings: (params) => (params.file === "" ? ["choose a video file: a run stops at this node until one is chosen"] : []),
  async fingerprint(params) {
    return params.file;
  },
  summarize(outputs) {
    const v = outputs.video;
    if (!v) return "no video";
    const format = { "video/mp4": "MP4", "video/quicktime": "MOV", "video/webm": "WebM", "video/x-matroska": "MKV", "video/x-msvideo": "AVI" }[v.mime] ?? v.mime;
    return `${format} video, ${(v.bytes / (1024 * 1024)).toFixed(1)} MB`;
  },
});
