import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { zVideoValue } from "../../../engine/media/values";
import { storeUpload } from "../../../engine/uploads";
import { videoInput } from "../../../nodes/video-input";
import { heads, makeWav, sine } from "../../fixtures/media/make";
import { makeCtx } from "./ctx";

let env: Awaited<ReturnType<typeof makeCtx>>;
beforeAll(async () => (env = await makeCtx()));
afterAll(() => env.dispose());

const run = (file: string) => videoInput.execute({ inputs: {}, params: videoInput.params.parse({ file }), ctx: env.ctx });

describe("input.video", () => {
  it("outputs type and size of a stored video", async () => {
    const bytes = new Uint8Array(3 * 1024 * 1024);
    bytes.set(heads.webm());
    const up = await storeUpload(env.storage, bytes, { filename: "clip.webm", expectedKind: "video" });
    const out = await run(up.id);
    expect(out.video).toEqual({ kind: "video", file: up.id, mime: "video/webm", bytes: bytes.length });
    expect(zVideoValue.safeParse(out.video).success).toBe(true);
    expect(videoInput.summarize!(out)).toBe("WebM video, 3.0 MB");
    expect(await videoInput.fingerprint!(videoInput.params.parse({ file: up.id }), env.storage)).toBe(up.id);
  });
  it("asks for a file, and refuses audio", async () => {
    await expect(run("")).rejects.toThrow(/^choose a video file$/);
    const id = await env.storage.write(makeWav({ channels: [sine(10, 1)], bits: 16, format: "pcm" }), "wav");
    await expect(run(id)).rejects.toThrow("the chosen file is not a video: it looks like a WAV audio file");
  });
});
