import { describe, expect, it } from "vitest";
import { claimedFormat, describeType, sniff } from "../../../engine/media/sniff";
import { heads, makeImage, makeWav, sine } from "../../fixtures/media/make";

const ok = (b: Uint8Array) => {
  const r = sniff(b);
  if (!r.ok) throw new Error(`expected a match, got: ${r.reason}`);
  return r;
};
const reason = (b: Uint8Array) => {
  const r = sniff(b);
  if (r.ok) throw new Error(`expected no match, got ${r.mime}`);
  return r.reason;
};

describe("sniff: images", () => {
  it.each([
    ["png", "image/png", "png"],
    ["jpeg", "image/jpeg", "jpg"],
    ["webp", "image/webp", "webp"],
    ["gif", "image/gif", "gif"],
  ] as const)("recognises %s made by sharp", async (format, mime, ext) => {
    const r = ok(await makeImage(format));
    expect(r).toMatchObject({ kind: "image", mime, ext });
  });
});

describe("sniff: audio", () => {
  it("recognises WAV (RIFF/WAVE)", () => {
    expect(ok(makeWav({ channels: [sine(10, 440)], bits: 16, format: "pcm" }))).toMatchObject({ kind: "audio", mime: "audio/wav", ext: "wav" });
  });
  it("recognises MP3 by its ID3 tag and by a bare frame header", () => {
    expect(ok(heads.mp3Id3())).toMatchObject({ kind: "audio", mime: "audio/mpeg", ext: "mp3" });
    expect(ok(heads.mp3Frame())).toMatchObject({ kind: "audio", mime: "audio/mpeg", ext: "mp3" });
  });
  it("recognises OGG, FLAC and M4A", () => {
    expect(ok(heads.ogg())).toMatchObject({ kind: "audio", mime: "audio/ogg" });
    expect(ok(heads.flac())).toMatchObject({ kind: "audio", mime: "audio/flac" });
    expect(ok(heads.m4a())).toMatchObject({ kind: "audio", mime: "audio/mp4", ext: "m4a" });
  });
  it("does not take raw AAC (ADTS) for MP3, and says what it is", () => {
    expect(reason(heads.aacAdts())).toMatch(/AAC/);
  });
});

describe("sniff: video", () => {
  it("recognises MP4 and MOV by the ftyp box", () => {
    expect(ok(heads.mp4())).toMatchObject({ kind: "video", mime: "video/mp4", ext: "mp4" });
    expect(ok(heads.mov())).toMatchObject({ kind: "video", mime: "video/quicktime", ext: "mov" });
  });
  it("tells WebM from MKV by the EBML DocType", () => {
    expect(ok(heads.webm())).toMatchObject({ kind: "video", mime: "video/webm", ext: "webm" });
    expect(ok(heads.mkv())).toMatchObject({ kind: "video", mime: "video/x-matroska", ext: "mkv" });
  });
  it("recognises AVI (RIFF/AVI)", () => {
    expect(ok(heads.avi())).toMatchObject({ kind: "video", mime: "video/x-msvideo", ext: "avi" });
  });
});

describe("sniff: refusals name what the file is", () => {
  it("explains empty, text, PDF, HEIC and unknown bytes", () => {
    expect(reason(new Uint8Array())).toMatch(/empty/);
    expect(reason(new TextEncoder().encode("hello, this is not a picture\n"))).toMatch(/text file/);
    expect(reason(heads.pdf())).toMatch(/PDF/);
    expect(reason(heads.heic())).toMatch(/HEIF\/AVIF/);
    expect(reason(Uint8Array.from([0x00, 0x13, 0x37, 0x00, 0x99, 0x01, 0x02, 0x03]))).toMatch(/no supported/);
  });
  it("a JPEG is never read as an MP3 frame", async () => {
    expect(ok(await makeImage("jpeg")).format).toBe("JPEG");
  });
});

describe("claimedFormat and describeType", () => {
  it("maps extensions, ignoring case, and describes types with the right article", () => {
    expect(claimedFormat("Photo.JPG")?.format).toBe("JPEG");
    expect(claimedFormat("clip.webm")?.kind).toBe("video");
    expect(claimedFormat("notes.txt")).toBeUndefined();
    expect(describeType(ok(makeWav({ channels: [sine(4, 1)], bits: 16, format: "pcm" })))).toBe("a WAV audio file");
    expect(describeType(ok(heads.mp4()))).toBe("an MP4 video");
  });
});
