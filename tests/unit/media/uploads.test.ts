import { createHash } from "node:crypto";
import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { DiskStorage } from "../../../engine/storage";
import { cleanFilename, envUploadLimits, inspectMedia, inspectStored, receiveToFile, storeUpload, storeUploadedFile, UploadError, uploadLimitBytes } from "../../../engine/uploads";
import { heads, makeImage, makeWav, sine } from "../../fixtures/media/make";

let dir: string;
let storage: DiskStorage;
beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "moe-uploads-"));
  storage = new DiskStorage(dir);
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});
const savedEnv = process.env.STUDIO_MAX_UPLOAD_MB;
afterEach(() => {
  if (savedEnv === undefined) delete process.env.STUDIO_MAX_UPLOAD_MB;
  else process.env.STUDIO_MAX_UPLOAD_MB = savedEnv;
});

async function refused(p: Promise<unknown>): Promise<UploadError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(UploadError);
    return e as UploadError;
  }
  throw new Error("expected the upload to be refused");
}

describe("storeUpload: accepted files", () => {
  it("stores a PNG under its content hash with its size", async () => {
    const png = await makeImage("png", 64, 48);
    const up = await storeUpload(storage, png, { filename: "cat.png", expectedKind: "image" });
    expect(up).toMatchObject({ kind: "image", mime: "image/png", bytes: png.length, filename: "cat.png", meta: { width: 64, height: 48, format: "png" } });
    expect(up.id).toMatch(/^[0-9a-f]{64}\.png$/);
    expect((await storage.read(up.id)).equals(png)).toBe(true);
    const again = await storeUpload(storage, png, { filename: "copy.png" });
    expect(again.id).toBe(up.id);
  });

  it("stores by what the bytes are, not by the name: a JPEG named .png is kept as .jpg", async () => {
    const up = await storeUpload(storage, await makeImage("jpeg"), { filename: "photo.png", expectedKind: "image" });
    expect(up.id.endsWith(".jpg")).toBe(true);
    expect(up.mime).toBe("image/jpeg");
  });

  it("reads WAV headers into meta", async () => {
    const wav = makeWav({ sampleRate: 22050, channels: [sine(2205, 440, 22050), sine(2205, 220, 22050)], bits: 24, format: "pcm" });
    const up = await storeUpload(storage, wav, { filename: "voice.wav", expectedKind: "audio" });
    expect(up).toMatchObject({ kind: "audio", mime: "audio/wav", meta: { format: "WAV", sampleRate: 22050, channels: 2, bitsPerSample: 24, encoding: "pcm", frames: 2205 } });
    if (up.kind === "audio" && "durationSec" in up.meta) expect(up.meta.durationSec).toBeCloseTo(0.1, 9);
  });

  it("sniffs MP3 and video without decoding them", async () => {
    expect(await storeUpload(storage, heads.mp3Id3(), { filename: "song.mp3", expectedKind: "audio" })).toMatchObject({ kind: "audio", mime: "audio/mpeg", meta: { format: "MP3" } });
    const mp4 = heads.mp4();
    expect(await storeUpload(storage, mp4, { filename: "clip.mp4", expectedKind: "video" })).toMatchObject({ kind: "video", mime: "video/mp4", bytes: mp4.length, meta: { format: "MP4" } });
  });

  it("keeps only a safe base name of the file name", () => {
    expect(cleanFilename("../../etc/passwd")).toBe("passwd");
    expect(cleanFilename("C:\\Users\\me\\a\u0000b.png")).toBe("ab.png");
    expect(cleanFilename("")).toBe("upload");
  });
});

describe("storeUpload: refusals", () => {
  it("a file named .png whose contents are garbage is corrupt", async () => {
    const e = await refused(storeUpload(storage, new TextEncoder().encode("definitely not a png"), { filename: "bad.png", expectedKind: "image" }));
    expect(e.code).toBe("corrupt");
    expect(e.message).toMatch(/^bad\.png claims to be PNG but its contents are not a recognised image \(it looks like a text file\)/);
  });

  it("PNG magic then garbage, or a truncated PNG, is corrupt and not stored", async () => {
    const png = await makeImage("png", 200, 150);
    const half = png.subarray(0, Math.floor(png.length / 2));
    const e = await refused(storeUpload(storage, half, { filename: "half.png", expectedKind: "image" }));
    expect(e.code).toBe("corrupt");
    expect(e.message).toMatch(/^half\.png is not a readable PNG image: /);
    const e2 = await refused(storeUpload(storage, Buffer.concat([png.subarray(0, 8), Buffer.alloc(100, 7)]), { filename: "junk.png" }));
    expect(e2.code).toBe("corrupt");
    const { createHash } = await import("node:crypto");
    expect(await storage.exists(`${createHash("sha256").update(half).digest("hex")}.png`)).toBe(false);
  });

  it("decodePixels false checks the header and the pixel limit only (for a caller that decodes every pixel next)", async () => {
    const jpeg = await makeImage("jpeg", 200, 150);
    const cut = jpeg.subarray(0, Math.floor(jpeg.length * 0.6)); // header intact, pixel data cut
    const e = await refused(inspectMedia(cut, { name: "cut.jpg", expectedKind: "image" }));
    expect(e.code).toBe("corrupt");
    expect(e.message).toMatch(/^cut\.jpg is not a readable JPEG image: /);
    expect(await inspectMedia(cut, { name: "cut.jpg", expectedKind: "image", decodePixels: false })).toMatchObject({ kind: "image", meta: { width: 200, height: 150 } });
    const big = await refused(inspectMedia(jpeg, { name: "big.jpg", decodePixels: false, limits: { maxImagePixels: 100 * 100 } }));
    expect(big.code).toBe("too-large");
    const png = await makeImage("png", 200, 150);
    expect((await refused(inspectMedia(png.subarray(0, png.length >> 1), { name: "half.png", decodePixels: false }))).message).toMatch(/^half\.png is not a readable PNG image: /);
  });

  it("the wrong kind is refused with what the file looks like", async () => {
    const wav = makeWav({ channels: [sine(100, 440)], bits: 16, format: "pcm" });
    const e = await refused(storeUpload(storage, wav, { filename: "image.png", expectedKind: "image" }));
    expect(e.code).toBe("wrong-kind");
    expect(e.message).toBe("image.png is not an image: it looks like a WAV audio file");
    const e2 = await refused(storeUpload(storage, await makeImage("png"), { filename: "x.mp4", expectedKind: "video" }));
    expect(e2.message).toBe("x.mp4 is not a video: it looks like a PNG image");
  });

  it("too large for its kind (small limits in the test)", async () => {
    const png = await makeImage("png", 64, 48);
    const e = await refused(storeUpload(storage, png, { filename: "big.png", limits: { maxBytes: { image: 1000 } } }));
    expect(e.code).toBe("too-large");
    expect(e.message).toMatch(/^big\.png is too large: .* the limit for image files is 1000 bytes/);
    // The audio limit does not apply to images.
    await expect(storeUpload(storage, png, { filename: "ok.png", limits: { maxBytes: { audio: 10 } } })).resolves.toBeTruthy();
  });

  it("too many pixels", async () => {
    const e = await refused(storeUpload(storage, await makeImage("png", 200, 150), { filename: "wide.png", limits: { maxImagePixels: 1000 } }));
    expect(e.code).toBe("too-large");
  });

  it("unsupported formats and empty files", async () => {
    const pdf = await refused(storeUpload(storage, heads.pdf(), { filename: "paper.pdf" }));
    expect(pdf.code).toBe("unsupported");
    expect(pdf.message).toMatch(/^paper\.pdf is not a supported file: it looks like a PDF document\. Supported: images/);
    const empty = await refused(storeUpload(storage, new Uint8Array(), { filename: "nothing.wav" }));
    expect(empty.message).toBe("nothing.wav is empty");
    const alaw = await refused(storeUpload(storage, makeWav({ channels: [sine(10, 1)], bits: 8, format: "pcm", codecOverride: 6 }), { filename: "phone.wav" }));
    expect(alaw.code).toBe("unsupported");
    const cut = makeWav({ channels: [sine(1000, 1)], bits: 16, format: "pcm" });
    const trunc = await refused(storeUpload(storage, cut.subarray(0, 500), { filename: "cut.wav" }));
    expect(trunc.code).toBe("corrupt");
    expect(trunc.message).toMatch(/^cut\.wav is not a readable WAV audio file: the audio data is truncated/);
  });
});

describe("upload limits from STUDIO_MAX_UPLOAD_MB", () => {
  it("defaults: image 50 MB, audio 200 MB, video 1 GB", () => {
    delete process.env.STUDIO_MAX_UPLOAD_MB;
    expect(uploadLimitBytes("image")).toBe(50 * 1024 * 1024);
    expect(uploadLimitBytes("audio")).toBe(200 * 1024 * 1024);
    expect(uploadLimitBytes("video")).toBe(1024 * 1024 * 1024);
    expect(uploadLimitBytes()).toBe(1024 * 1024 * 1024);
  });
  it("one number for every kind, or per kind; explicit limits win", () => {
    process.env.STUDIO_MAX_UPLOAD_MB = "10";
    expect(uploadLimitBytes("video")).toBe(10 * 1024 * 1024);
    process.env.STUDIO_MAX_UPLOAD_MB = "image=1, video=2048";
    expect(uploadLimitBytes("image")).toBe(1024 * 1024);
    expect(uploadLimitBytes("audio")).toBe(200 * 1024 * 1024);
    expect(uploadLimitBytes("image", { maxBytes: { image: 5 } })).toBe(5);
  });
  it("a bad value is a loud configuration error", () => {
    expect(() => envUploadLimits("lots")).toThrow(/not a positive number/);
    expect(() => envUploadLimits("pictures=3")).toThrow(/unknown kind/);
  });
  it("the env limit applies to storeUpload", async () => {
    process.env.STUDIO_MAX_UPLOAD_MB = "image=0.001";
    const e = await refused(storeUpload(storage, await makeImage("png", 64, 48), { filename: "a.png" }));
    expect(e.code).toBe("too-large");
  });
});

describe("inspectStored", () => {
  it("reads only the head of a video but reports its full size", async () => {
    const big = new Uint8Array(100_000);
    big.set(heads.mp4());
    const id = await storage.write(big, "mp4");
    expect((await stat(storage.pathOf(id))).size).toBe(100_000);
    expect(await inspectStored(storage, id, { expectedKind: "video" })).toMatchObject({ kind: "video", bytes: 100_000, mime: "video/mp4" });
  });
  it("a missing file and a wrong kind are clear errors", async () => {
    await expect(inspectStored(storage, "0".repeat(64) + ".png")).rejects.toThrow(/missing/);
    const id = await storage.write(await makeImage("png"), "png");
    await expect(inspectStored(storage, id, { expectedKind: "audio" })).rejects.toThrow(/^the chosen file is not an audio file: it looks like a PNG image$/);
  });
});

describe("uploads received as a stream", () => {
  /** A body that arrives in chunks of `chunk` bytes, `count` of them, counting how many were pulled. */
  function body(bytes: Uint8Array, chunk: number): { stream: ReadableStream<Uint8Array>; pulled: () => number } {
    let at = 0;
    let n = 0;
    const stream = new ReadableStream<Uint8Array>({
      pull(c) {
        if (at >= bytes.length) return c.close();
        n++;
        c.enqueue(bytes.subarray(at, (at += chunk)));
      },
    });
    return { stream, pulled: () => n };
  }

  it("go to a file in the store's folder, hashed on the way, and are moved into the store whole", async () => {
    const png = await makeImage("png", 300, 200);
    const file = storage.incomingPath();
    const received = await receiveToFile(body(png, 1000).stream, file, 1 << 20, "a.png");
    expect(received).toEqual({ bytes: png.length, sha256: createHash("sha256").update(png).digest("hex") });
    const stored = await storeUploadedFile(storage, file, { filename: "a.png", expectedKind: "image", ...received });
    expect(stored.id).toBe(`${received.sha256}.png`);
    expect(stored.meta).toMatchObject({ width: 300, height: 200 });
    expect((await readFile(storage.pathOf(stored.id))).equals(Buffer.from(png))).toBe(true);
    await expect(stat(file)).rejects.toThrow(); // moved, not copied
  });

  it("past the limit they are refused at once (too-large), without reading the rest", async () => {
    const big = new Uint8Array(4 << 20);
    const b = body(big, 64 * 1024);
    const file = storage.incomingPath();
    const e = await refused(receiveToFile(b.stream, file, 1 << 20, "big.mp4"));
    expect(e.code).toBe("too-large");
    expect(e.message).toMatch(/^big\.mp4 is larger than the 1 MB limit/);
    expect(b.pulled()).toBeLessThanOrEqual(18);
    await rm(file, { force: true });
  });

  it("a damaged upload is refused from the file like one in memory", async () => {
    const png = Buffer.from(await makeImage("png", 64, 64));
    const file = storage.incomingPath();
    const received = await receiveToFile(body(png.subarray(0, png.length - 40), 512).stream, file, 1 << 20, "cut.png");
    const e = await refused(storeUploadedFile(storage, file, { filename: "cut.png", expectedKind: "image", ...received }));
    expect(e.code).toBe("corrupt");
    await rm(file, { force: true });
  });
});
