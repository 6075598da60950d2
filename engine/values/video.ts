import { zVideoValue, type VideoValue } from "../media/values";
import { defineValueKind, pick } from "./kind";

export type { VideoValue };

/** VIDEO: a video clip in the file store. */
export const video = defineValueKind<VideoValue>({
  name: "VIDEO",
  noun: "a video",
  tag: "video",
  socket: { color: "#f472b6", description: "A video clip (stored as an artifact)." },
  schema: zVideoValue,
  describe: (o) => ({ type: "video", headline: `video (${o.mime}), ${(o.bytes / (1024 * 1024)).toFixed(1)} MB`, ...pick(o, ["file", "mime", "bytes"]) }),
});
