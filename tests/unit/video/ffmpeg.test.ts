import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { decodeAudio, extractAudio, ffmpegPath, onPath, parseProbe, planFrames, probeVideo, sampleFrames, toolPath } from "@/engine/media/ffmpeg";

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "video-ffmpeg-"));
const at = (name: string) => path.join(dir, name);

/** Makes a clip with ffmpeg itself (lavfi test sources). */
export function makeClip(out: string, seconds: number, opts: { audio?: boolean; vcodec?: string } = {}): string {
  const args = ["-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=10"];
  if (opts.audio !== false) args.push("-f", "lavfi", "-i", "sine=frequency=440:sample_rate=16000");
  args.push("-t", String(seconds), "-c:v", opts.vcodec ?? "mpeg4");
  if (opts.audio !== false) args.push("-c:a", "aac");
  args.push(out);
  execFileSync(ffmpegPath(), args);
  return out;
}

/** Dominant frequency from the zero-crossing rate. */
function zeroCrossingHz(x: Float32Array, rate: number): number {
  let crossings = 0;
  for (let i = 1; i < x.length; i++) if ((x[i - 1]! < 0) !== (x[i]! < 0)) crossings++;
  return crossings / 2 / (x.length / rate);
}

beforeAll(() => {
  makeClip(at("v5.mp4"), 5);
  makeClip(at("v20.mp4"), 20, { audio: false });
  fs.writeFileSync(at("empty.mp4"), new Uint8Array(0));
  fs.writeFileSync(at("garbage.mp4"), Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 7919 + 13) & 255)));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe("ffmpeg binary", () => {
  it("runs -version", () => {
    expect(execFileSync(ffmpegPath(), ["-version"]).toString()).toMatch(/^ffmpeg version/);
  });
});

describe("planFrames (1 fps, 8..max, even)", () => {
  it("short clips get 8 evenly spaced frames", () => {
    const p = planFrames(5, { maxFrames: 32 });
    expect(p.count).toBe(8);
    expect(p.secondsPerFrame).toBeCloseTo(0.625, 9);
    expect(p.times[7]).toBeCloseTo(4.375, 9);
  });
  it("1 fps in range; odd counts drop the last frame", () => {
    expect(planFrames(12).count).toBe(12);
    expect(planFrames(13.4)).toMatchObject({ count: 12, secondsPerFrame: 1 });
  });
  it("long clips are capped at maxFrames, spread over the clip", () => {
    const p = planFrames(20, { maxFrames: 16 });
    expect(p.count).toBe(16);
    expect(p.secondsPerFrame).toBeCloseTo(1.25, 9);
    expect(planFrames(16, { maxFrames: 16 })).toMatchObject({ count: 16, secondsPerFrame: 1 });
  });
});

describe("probeVideo", () => {
  it("finds duration ~5 s, size and the audio track", async () => {
    const p = await probeVideo(at("v5.mp4"));
    expect(p.durationSec).toBeGreaterThan(4.9);
    expect(p.durationSec).toBeLessThan(5.2);
    expect(p).toMatchObject({ width: 320, height: 240, hasAudio: true });
    expect((await probeVideo(at("v20.mp4"))).hasAudio).toBe(false);
  });
  it("a file that states no duration (Matroska written to a pipe): the end of its last packet, read as ffprobe streams it", async () => {
    // a 2-s segment looped 4 times, both written to a pipe (the attack36 B6 recipe, made small)
    const ff = (args: string[]) => execFileSync(ffmpegPath(), ["-hide_banner", "-loglevel", "error", ...args, "-f", "matroska", "-"], { maxBuffer: 64 << 20 });
    fs.writeFileSync(at("segment.mkv"), ff(["-f", "lavfi", "-i", "color=c=black:size=64x48:rate=100", "-t", "2", "-c:v", "mpeg4", "-q:v", "31"]));
    fs.writeFileSync(at("piped.mkv"), ff(["-stream_loop", "3", "-i", at("segment.mkv"), "-c", "copy"]));
    const described = JSON.parse(execFileSync(toolPath("ffprobe"), ["-v", "error", "-print_format", "json", "-show_format", "-show_streams", at("piped.mkv")]).toString("utf8"));
    expect(parseProbe(described).durationSec).toBeNull(); // so the packets are read
    const p = await probeVideo(at("piped.mkv"));
    expect(p.durationSec).toBeCloseTo(8, 1);
    expect(p).toMatchObject({ width: 64, height: 48, hasAudio: false });
  });
  it("reads ffprobe's JSON: a cover picture is not the video stream; the video stream's duration, else the container's", () => {
    const p = parseProbe({
      format: { duration: "62.500000" },
      streams: [
        { codec_type: "video", width: 600, height: 600, disposition: { attached_pic: 1 } },
        { codec_type: "video", width: 640, height: 360, disposition: { attached_pic: 0 } },
        { codec_type: "audio" },
      ],
    });
    expect(p).toEqual({ durationSec: 62.5, width: 640, height: 360, hasVideo: true, hasAudio: true });
    expect(parseProbe({ format: {}, streams: [{ codec_type: "video", width: 2, height: 2, duration: "1.5" }] })).toMatchObject({ durationSec: 1.5, hasAudio: false });
    expect(parseProbe({ format: { duration: "N/A" }, streams: [{ codec_type: "audio" }] })).toMatchObject({ durationSec: null, hasVideo: false });
    // an audio track longer than the frames makes the container longer: the frames' own length counts
    expect(parseProbe({ format: { duration: "3700.0" }, streams: [{ codec_type: "video", width: 2, height: 2, duration: "2.0" }, { codec_type: "audio", duration: "3700.0" }] })).toMatchObject({ durationSec: 2 });
  });
  it("STUDIO_FFMPEG / STUDIO_FFPROBE: auto prefers the tool on PATH, bundled takes the npm build, a path is taken as it is", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "tools-"));
    const fake = path.join(dir, "ffprobe");
    fs.writeFileSync(fake, "#!/bin/sh\necho fake\n");
    fs.chmodSync(fake, 0o755);
    const saved = { PATH: process.env.PATH, STUDIO_FFPROBE: process.env.STUDIO_FFPROBE };
    try {
      process.env.PATH = `${dir}${path.delimiter}${saved.PATH}`;
      delete process.env.STUDIO_FFPROBE;
      expect(toolPath("ffprobe")).toBe(fake);
      process.env.STUDIO_FFPROBE = "bundled";
      expect(toolPath("ffprobe")).toMatch(/@ffprobe-installer\/linux-x64\/ffprobe$/);
      process.env.STUDIO_FFPROBE = "/opt/ffmpeg/bin/ffprobe";
      expect(toolPath("ffprobe")).toBe("/opt/ffmpeg/bin/ffprobe");
      process.env.PATH = dir.replace(/.*/, "/nonexistent");
      delete process.env.STUDIO_FFPROBE;
      expect(toolPath("ffprobe")).toMatch(/@ffprobe-installer/); // nothing on PATH: the npm build
      expect(onPath("ffprobe", `/nonexistent${path.delimiter}${dir}`)).toBe(fake);
    } finally {
      process.env.PATH = saved.PATH;
      if (saved.STUDIO_FFPROBE === undefined) delete process.env.STUDIO_FFPROBE;
      else process.env.STUDIO_FFPROBE = saved.STUDIO_FFPROBE;
    }
  });
  it("zero-length and garbage files → clear errors", async () => {
    await expect(probeVideo(at("empty.mp4"))).rejects.toThrow(/the video could not be decoded: the file is empty/);
    await expect(probeVideo(at("garbage.mp4"))).rejects.toThrow(/the video could not be decoded: .*invalid data/i);
    await expect(sampleFrames(at("garbage.mp4"))).rejects.toThrow(/the video could not be decoded/);
    await expect(probeVideo(at("missing.mp4"))).rejects.toThrow(/the video could not be decoded: the file is missing/);
  });
});

describe("sampleFrames", () => {
  it("5-s clip at 1 fps → 8 frames of 384×384 RGB, 0.625 s apart", async () => {
    const s = await sampleFrames(at("v5.mp4"), { fps: 1, minFrames: 8, maxFrames: 32, size: 384 });
    expect(s.frames).toHaveLength(8);
    expect(s.count).toBe(8);
    expect(s.secondsPerFrame).toBeCloseTo(0.625, 1);
    for (const f of s.frames) expect(f.length).toBe(384 * 384 * 3);
    // testsrc moves: frames differ.
    expect(Buffer.compare(Buffer.from(s.frames[0]!), Buffer.from(s.frames[7]!))).not.toBe(0);
  });
  it("20-s clip with maxFrames 16 → 16 frames, 1.25 s apart", async () => {
    const s = await sampleFrames(at("v20.mp4"), { maxFrames: 16, size: 64 });
    expect(s.frames).toHaveLength(16);
    expect(s.secondsPerFrame).toBeCloseTo(1.25, 6);
    expect(s.frames[0]!.length).toBe(64 * 64 * 3);
  });
  it("cancellation kills ffmpeg", async () => {
    const ac = new AbortController();
    const p = sampleFrames(at("v20.mp4"), { maxFrames: 16, signal: ac.signal });
    ac.abort(new Error("stop"));
    await expect(p).rejects.toThrow(/stop/);
  });
});

describe("audio", () => {
  it("extractAudio → ~5 s of 440 Hz at 16 kHz; null without a track", async () => {
    const pcm = await extractAudio(at("v5.mp4"));
    expect(pcm).not.toBeNull();
    expect(pcm!.length / 16000).toBeGreaterThan(4.8);
    expect(pcm!.length / 16000).toBeLessThan(5.2);
    expect(zeroCrossingHz(pcm!.subarray(8000, 72000), 16000)).toBeGreaterThan(430);
    expect(zeroCrossingHz(pcm!.subarray(8000, 72000), 16000)).toBeLessThan(450);
    expect(await extractAudio(at("v20.mp4"))).toBeNull();
  });
  it("decodeAudio: garbage → clear error", async () => {
    await expect(decodeAudio(at("garbage.mp4"), { what: "audio" })).rejects.toThrow(/the audio could not be decoded/);
    await expect(decodeAudio(at("v20.mp4"))).rejects.toThrow(/could not be decoded/);
  });
});

describe("only media demuxers read an input (an upload must not make ffmpeg open other files)", () => {
  // An HLS playlist behind an ID3 tag: sniffed as MP3 at upload; ffmpeg's probe skips the tag, finds #EXTM3U and
  // (without a demuxer whitelist) opens every file the playlist lists, e.g. another user's stored audio.
  const victim = at("victim.wav");
  const playlist = (tag: boolean) => Buffer.concat([tag ? Buffer.from([0x49, 0x44, 0x33, 4, 0, 0, 0, 0, 0, 0]) : Buffer.alloc(0), Buffer.from(`#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1,\n${victim}\n#EXT-X-ENDLIST\n`)]);
  beforeAll(() => {
    execFileSync(ffmpegPath(), ["-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=16000", "-t", "1", victim]);
    fs.writeFileSync(at("playlist.mp3"), playlist(true));
    fs.writeFileSync(at("playlist.mp4"), playlist(false));
  });
  it("decodeAudio refuses a playlist dressed as MP3 (the listed file decodes on its own)", async () => {
    expect((await decodeAudio(victim)).length).toBe(16000);
    await expect(decodeAudio(at("playlist.mp3"), { what: "input audio (mp3)" })).rejects.toThrow(/the input audio \(mp3\) could not be decoded/);
  });
  it("probeVideo and sampleFrames refuse a playlist", async () => {
    await expect(probeVideo(at("playlist.mp4"))).rejects.toThrow(/the video could not be decoded/);
    const probe = { durationSec: 1, width: 320, height: 240, hasAudio: true };
    await expect(sampleFrames(at("playlist.mp4"), { probe, size: 32 })).rejects.toThrow(/the video could not be decoded/);
    await expect(extractAudio(at("playlist.mp4"), { probe })).rejects.toThrow(/could not be decoded/);
  });
});
