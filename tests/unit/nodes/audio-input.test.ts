import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { zAudioValue } from "../../../engine/media/values";
import { storeUpload } from "../../../engine/uploads";
import { audioInput } from "../../../nodes/audio-input";
import { heads, makeImage, makeWav, sine } from "../../fixtures/media/make";
import { makeCtx } from "./ctx";

let env: Awaited<ReturnType<typeof makeCtx>>;
beforeAll(async () => (env = await makeCtx()));
afterAll(() => env.dispose());

const run = (file: string) => audioInput.execute({ inputs: {}, params: audioInput.params.parse({ file }), ctx: env.ctx });

describe("input.audio", () => {
  it("outputs rate, channels and duration of a WAV", async () => {
    const wav = makeWav({ sampleRate: 16000, channels: [sine(8000, 440)], bits: 16, format: "pcm" });
    const up = await storeUpload(env.storage, wav, { filename: "hello.wav", expectedKind: "audio" });
    const out = await run(up.id);
    expect(out.audio).toEqual({ kind: "audio", file: up.id, mime: "audio/wav", sampleRate: 16000, channels: 1, durationSec: 0.5 });
    expect(zAudioValue.safeParse(out.audio).success).toBe(true);
    expect(audioInput.summarize!(out)).toBe("WAV audio, 16 kHz mono, 0.50 s");
    expect(await audioInput.fingerprint!(audioInput.params.parse({ file: up.id }), env.storage)).toBe(up.id);
  });
  it("identifies an MP3 without decoding it", async () => {
    const up = await storeUpload(env.storage, heads.mp3Frame(), { filename: "song.mp3", expectedKind: "audio" });
    const out = await run(up.id);
    expect(out.audio).toEqual({ kind: "audio", file: up.id, mime: "audio/mpeg" });
    expect(audioInput.summarize!(out)).toBe("MP3 audio");
  });
  it("asks for a file, and refuses an image", async () => {
    await expect(run("")).rejects.toThrow(/^choose an audio file$/);
    const id = await env.storage.write(await makeImage("png"), "png");
    await expect(run(id)).rejects.toThrow("the chosen file is not an audio file: it looks like a PNG image");
  });
});
