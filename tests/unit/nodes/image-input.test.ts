import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { zImageValue } from "../../../engine/media/values";
import { storeUpload } from "../../../engine/uploads";
import { imageInput } from "../../../nodes/image-input";
import { makeImage, makeWav, sine } from "../../fixtures/media/make";
import { makeCtx } from "./ctx";

let env: Awaited<ReturnType<typeof makeCtx>>;
beforeAll(async () => (env = await makeCtx()));
afterAll(() => env.dispose());

const run = (file: string) => imageInput.execute({ inputs: {}, params: imageInput.params.parse({ file }), ctx: env.ctx });

describe("input.image", () => {
  it("outputs the stored image's id, type and size", async () => {
    const up = await storeUpload(env.storage, await makeImage("webp", 120, 80), { filename: "cat.webp", expectedKind: "image" });
    const out = await run(up.id);
    expect(out.image).toEqual({ kind: "image", file: up.id, mime: "image/webp", width: 120, height: 80 });
    expect(zImageValue.safeParse(out.image).success).toBe(true);
    expect(imageInput.summarize!(out)).toBe("WEBP image, 120×80");
    expect(await imageInput.fingerprint!(imageInput.params.parse({ file: up.id }), env.storage)).toBe(up.id);
  });
  it("asks for a file when none is chosen", async () => {
    await expect(run("")).rejects.toThrow(/^choose an image file$/);
  });
  it("refuses a stored file of another kind, and a missing or malformed id", async () => {
    const wav = await env.storage.write(makeWav({ channels: [sine(100, 440)], bits: 16, format: "pcm" }), "wav");
    await expect(run(wav)).rejects.toThrow("the chosen file is not an image: it looks like a WAV audio file");
    await expect(run(`${"a".repeat(64)}.png`)).rejects.toThrow(/missing/);
    await expect(run("../../etc/passwd")).rejects.toThrow(/not a valid file id/);
  });
  it("refuses a stored image that no longer decodes", async () => {
    const png = await makeImage("png", 200, 150);
    const id = await env.storage.write(png.subarray(0, png.length >> 1), "png");
    await expect(run(id)).rejects.toThrow(/^the chosen file is not a readable PNG image: /);
  });
});
