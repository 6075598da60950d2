/**
 * ffmpeg as a subprocess: audio decoding to 16 kHz mono float32, video probing and 1-fps frame sampling
 * (PAPER.md §3–4); probing with ffprobe's JSON output. The binaries are the system's on PATH when there,
 * else the static builds shipped inside @ffmpeg-installer/ffmpeg and @ffprobe-installer/ffprobe (no
 * download at install time); STUDIO_FFMPEG / STUDIO_FFPROBE choose (toolPath). Always spawned with an argument array (never a shell),
 * with a timeout, stderr captured into the error, and killed when the AbortSignal fires.
 */
import { spawn } from "node:child_process";
import { createRequire } from "node:module";
import { accessSync, constants, statSync } from "node:fs";
import { stat } from "node:fs/promises";
import path from "node:path";
import { config } from "../config";

export class MediaDecodeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "MediaDecodeError";
  }
}

export type MediaTool = "ffmpeg" | "ffprobe";

const PACKAGE: Record<MediaTool, string> = { ffmpeg: "@ffmpeg-installer/ffmpeg", ffprobe: "@ffprobe-installer/ffprobe" };
const resolved = new Map<string, string>();

/** An executable named `name` on PATH, or undefined. */
export function onPath(name: string, pathVar = process.env.PATH ?? ""): string | undefined {
  for (const dir of pathVar.split(path.delimiter)) {
    if (!dir) continue;
    const file = path.join(dir, name);
    try {
      accessSync(file, constants.X_OK);
      if (statSync(file).isFile()) return file;
    } catch {
      // not here
    }
  }
  return undefined;
}

function bundled(tool: MediaTool): string {
  try {
    // Resolved from the project root at run time (as engine/runtime/pool.ts does), not through the bundler.
    const req = createRequire(path.join(process.cwd(), "index.js"));
    return (req(PACKAGE[tool]) as { path: string }).path;
  } catch (err) {
    throw new Error(`${tool} is not available: install it (e.g. apt-get install ffmpeg) or ${PACKAGE[tool]}, or set STUDIO_${tool.toUpperCase()} (${err instanceof Error ? err.message : String(err)})`);
  }
}

/**
 * The executable for `tool`, from STUDIO_FFMPEG / STUDIO_FFPROBE: `auto` (default) = the system's on
 * PATH (a current build, with the system's codecs), else the one shipped in the npm package (a static
 * build, always there); `bundled` = the npm one; anything else = that path.
 */
export function toolPath(tool: MediaTool): string {
  const setting = tool === "ffmpeg" ? config().STUDIO_FFMPEG : config().STUDIO_FFPROBE;
  if (setting !== "auto" && setting !== "bundled") return setting;
  const key = `${tool}|${setting}|${process.env.PATH ?? ""}`;
  let found = resolved.get(key);
  if (!found) resolved.set(key, (found = (setting === "auto" ? onPath(tool) : undefined) ?? bundled(tool)));
  return found;
}

/** The ffmpeg executable (see toolPath). */
export function ffmpegPath(): string {
  return toolPath("ffmpeg");
}

export interface RunOptions {
  signal?: AbortSignal;
  /** Kill ffmpeg after this many ms (default 120 000). */
  timeoutMs?: number;
  /** Refuse (kill) when stdout grows past this many bytes (default 1 GiB). */
  maxStdoutBytes?: number;
}

interface RunResult {
  stdout: Buffer;
  stderr: string;
  code: number | null;
}

const STDERR_KEEP = 64 * 1024;

/** Runs ffmpeg with `args`; resolves whatever the exit code (callers judge), rejects on spawn failure, timeout or abort. */
export function runFfmpeg(args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  return runTool("ffmpeg", ["-nostdin", "-hide_banner", ...args], opts);
}

/** `onStdout`: each chunk of stdout goes there as it arrives and none is kept (RunResult.stdout is empty). */
function runTool(tool: MediaTool, args: readonly string[], opts: RunOptions & { onStdout?: (chunk: Buffer) => void }): Promise<RunResult> {
  const { signal, timeoutMs = 120_000, maxStdoutBytes = 1 << 30 } = opts;
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason instanceof Error ? signal.reason : new Error("cancelled"));
      return;
    }
    const bin = toolPath(tool);
    const child = spawn(/*turbopackIgnore: true*/ bin, args, { stdio: ["ignore", "pipe", "pipe"], windowsHide: true });
    const out: Buffer[] = [];
    let outBytes = 0;
    let stderr = "";
    let failure: Error | undefined;
    let settled = false;
    const kill = (why: Error) => {
      if (!failure) failure = why;
      child.kill("SIGKILL");
    };
    const timer = setTimeout(() => kill(new MediaDecodeError(`${tool} took longer than ${Math.round(timeoutMs / 1000)} s and was stopped`)), timeoutMs);
    const onAbort = () => kill(signal!.reason instanceof Error ? signal!.reason : new Error("cancelled"));
    signal?.addEventListener("abort", onAbort, { once: true });
    const finish = (fn: () => void) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
      fn();
    };
    child.stdout.on("data", (chunk: Buffer) => {
      if (opts.onStdout) return opts.onStdout(chunk);
      outBytes += chunk.length;
      if (outBytes > maxStdoutBytes) kill(new MediaDecodeError(`${tool} produced more than ${maxStdoutBytes} bytes; refusing`));
      else out.push(chunk);
    });
    child.stderr.on("data", (chunk: Buffer) => {
      stderr += chunk.toString("utf8");
      if (stderr.length > 2 * STDERR_KEEP) stderr = stderr.slice(-STDERR_KEEP);
    });
    child.on("error", (err: NodeJS.ErrnoException) => {
      finish(() =>
        reject(err.code === "ENOENT" ? new Error(`${tool} was not found at ${bin} (set STUDIO_${tool.toUpperCase()} or install ${PACKAGE[tool]})`) : err),
      );
    });
    child.on("close", (code) => {
      finish(() => (failure ? reject(failure) : resolve({ stdout: Buffer.concat(out), stderr, code })));
    });
  });
}

/** The useful tail of ffmpeg's stderr: error-looking lines, else the last lines. */
export function ffmpegReason(stderr: string): string {
  const lines = stderr
    .split(/\r?\n|\r/)
    .map((l) => l.trim())
    .filter((l) => l && !/^(frame|size)=/.test(l));
  const bad = lines.filter((l) => /invalid|error|could not|no such|does not contain|unknown|moov atom|not found|unsupported|failed|end of file/i.test(l));
  const pick = (bad.length ? bad : lines).slice(-3);
  return pick.join("; ").replace(/^\[[^\]]+\]\s*/, "") || "ffmpeg gave no reason";
}

async function checkFile(file: string, what: string): Promise<void> {
  let size: number;
  try {
    size = (await stat(file)).size;
  } catch {
    throw new MediaDecodeError(`the ${what} could not be decoded: the file is missing`);
  }
  if (size === 0) throw new MediaDecodeError(`the ${what} could not be decoded: the file is empty (0 bytes)`);
}

function toFloat32(buf: Buffer): Float32Array {
  const n = Math.floor(buf.length / 4);
  const out = new Float32Array(n);
  // Copy (the Buffer's offset need not be 4-aligned).
  new Uint8Array(out.buffer).set(buf.subarray(0, n * 4));
  return out;
}

export interface DecodeAudioOptions extends RunOptions {
  sampleRate?: number;
  /** Decode at most this many seconds (ffmpeg `-t`). */
  maxSeconds?: number;
  /** Used in error messages: "the audio could not be decoded: …". */
  what?: string;
}

/**
 * Input options of every read: only the demuxers of the formats uploads may have (engine/media/sniff.ts; mov covers
 * MP4/M4A, matroska WebM/MKV). Without them ffmpeg probes the content whatever the file claims, and a playlist (HLS,
 * concat) would make it open the files the upload lists, e.g. another user's stored audio.
 */
const MEDIA_DEMUXERS = ["-format_whitelist", "wav,mp3,ogg,flac,mov,matroska,avi"] as const;

/** Any audio (or the audio track of a video) → mono float32 PCM at `sampleRate` (default 16 kHz). */
export async function decodeAudio(file: string, opts: DecodeAudioOptions = {}): Promise<Float32Array> {
  const { sampleRate = 16_000, maxSeconds, what = "audio", ...run } = opts;
  await checkFile(file, what);
  const args = [...MEDIA_DEMUXERS, "-i", file, "-vn", "-sn", "-dn", "-map", "0:a:0"];
  if (maxSeconds !== undefined) args.push("-t", String(maxSeconds));
  args.push("-f", "f32le", "-acodec", "pcm_f32le", "-ac", "1", "-ar", String(sampleRate), "pipe:1");
  const r = await runFfmpeg(args, run);
  if (r.code !== 0) throw new MediaDecodeError(`the ${what} could not be decoded: ${ffmpegReason(r.stderr)}`);
  const samples = toFloat32(r.stdout);
  if (samples.length === 0) throw new MediaDecodeError(`the ${what} could not be decoded: it contains no audio samples`);
  return samples;
}

export interface VideoProbe {
  durationSec: number;
  width: number;
  height: number;
  hasAudio: boolean;
}

/** The parts of `ffprobe -print_format json -show_format -show_streams` read here. */
export interface FfprobeJson {
  format?: { duration?: string };
  streams?: { codec_type?: string; width?: number; height?: number; duration?: string; disposition?: { attached_pic?: number } }[];
}

/** Duration, size and audio presence from ffprobe's JSON (a cover picture is not a video stream). Exported for tests. */
export function parseProbe(json: FfprobeJson): { durationSec: number | null; width: number; height: number; hasVideo: boolean; hasAudio: boolean } {
  const streams = json.streams ?? [];
  const video = streams.find((st) => st.codec_type === "video" && !st.disposition?.attached_pic);
  const seconds = (v: string | undefined) => (v !== undefined && Number.isFinite(Number(v)) && Number(v) > 0 ? Number(v) : null);
  return {
    // the video stream's own length where it has one: a longer audio track makes the container longer than the frames
    durationSec: seconds(video?.duration) ?? seconds(json.format?.duration),
    width: video?.width ?? 0,
    height: video?.height ?? 0,
    hasVideo: !!video,
    hasAudio: streams.some((st) => st.codec_type === "audio"),
  };
}

/** A description (format and streams) is a few kB; more is not a description. */
const PROBE_MAX_BYTES = 16 << 20;

async function ffprobe(file: string, args: string[], opts: RunOptions): Promise<unknown> {
  const r = await runTool("ffprobe", ["-v", "error", "-print_format", "json", ...args, ...MEDIA_DEMUXERS, file], { timeoutMs: 30_000, maxStdoutBytes: PROBE_MAX_BYTES, ...opts });
  if (r.code !== 0) throw new MediaDecodeError(`the video could not be decoded: ${ffmpegReason(r.stderr)}`);
  try {
    return JSON.parse(r.stdout.toString("utf8"));
  } catch {
    throw new MediaDecodeError("the video could not be decoded: ffprobe gave no readable description");
  }
}

/** Duration, size and whether there is an audio track (ffprobe's JSON); clear error for corrupt or video-less files. */
export async function probeVideo(file: string, opts: RunOptions = {}): Promise<VideoProbe> {
  await checkFile(file, "video");
  const p = parseProbe((await ffprobe(file, ["-show_format", "-show_streams"], opts)) as FfprobeJson);
  if (!p.hasVideo) throw new MediaDecodeError("the video could not be decoded: it has no video stream");
  let durationSec = p.durationSec;
  if (durationSec === null) {
    // No duration in the container or stream (e.g. some WebM): the end of the last video packet.
    durationSec = await lastPacketEnd(file, opts);
  }
  if (!(durationSec > 0)) throw new MediaDecodeError("the video could not be decoded: it has zero length");
  if (!(p.width > 0 && p.height > 0)) throw new MediaDecodeError("the video could not be decoded: its frame size is unknown");
  return { durationSec, width: p.width, height: p.height, hasAudio: p.hasAudio };
}

/**
 * The end of the last video packet (pts + duration, seconds), read from ffprobe's one-line-per-packet output as it
 * streams: a file of millions of packets is never held, nor parsed, whole (its JSON listing was 117 MB for a 30 MB file).
 */
async function lastPacketEnd(file: string, opts: RunOptions): Promise<number> {
  let end = 0;
  let partial = "";
  const take = (line: string) => {
    const [pts, duration] = line.split(",");
    const at = Number(pts) + (Number(duration) || 0);
    if (at > end) end = at;
  };
  const r = await runTool("ffprobe", ["-v", "error", "-select_streams", "v:0", "-show_entries", "packet=pts_time,duration_time", "-of", "csv=p=0", ...MEDIA_DEMUXERS, file], {
    timeoutMs: 300_000,
    ...opts,
    onStdout: (chunk) => {
      const lines = (partial + chunk.toString("latin1")).split("\n");
      partial = lines.pop()!;
      for (const line of lines) take(line);
    },
  });
  if (r.code !== 0) throw new MediaDecodeError(`the video could not be decoded: ${ffmpegReason(r.stderr)}`);
  take(partial);
  return end;
}

export interface FramePlan {
  count: number;
  secondsPerFrame: number;
  /** Frame timestamps (s), i × secondsPerFrame. */
  times: number[];
}

/**
 * How many frames to sample (PAPER.md §3): at `fps`, at least `minFrames`, at most `maxFrames`, an even count.
 * Fewer than minFrames at fps → minFrames evenly over the clip (secondsPerFrame = duration/minFrames);
 * more than maxFrames → maxFrames evenly (secondsPerFrame = duration/maxFrames); an odd count drops the last.
 */
export function planFrames(durationSec: number, opts: { fps?: number; minFrames?: number; maxFrames?: number } = {}): FramePlan {
  const { fps = 1, minFrames = 8, maxFrames = 32 } = opts;
  if (!(durationSec > 0)) throw new Error("planFrames: duration must be positive");
  if (!(fps > 0)) throw new Error("planFrames: fps must be positive");
  if (minFrames < 2 || maxFrames < minFrames) throw new Error(`planFrames: need 2 ≤ minFrames ≤ maxFrames (got ${minFrames}, ${maxFrames})`);
  // 1e-6 absorbs container rounding (a 5.000 s clip that reports 4.999999).
  let count = Math.max(1, Math.floor(durationSec * fps + 1e-6));
  let secondsPerFrame = 1 / fps;
  if (count < minFrames) {
    count = minFrames;
    secondsPerFrame = durationSec / count;
  } else if (count > maxFrames) {
    count = maxFrames;
    secondsPerFrame = durationSec / count;
  }
  if (count % 2 === 1) count -= 1;
  return { count, secondsPerFrame, times: Array.from({ length: count }, (_, i) => i * secondsPerFrame) };
}

export interface SampleFramesOptions extends RunOptions {
  fps?: number;
  minFrames?: number;
  maxFrames?: number;
  /** Square side of each frame (stretched, like a single 384² tile). */
  size?: number;
  /** Skip probing when the caller already did. */
  probe?: VideoProbe;
}

export interface SampledFrames extends FramePlan {
  /** RGB24, size×size×3 each. */
  frames: Uint8Array[];
  size: number;
  durationSec: number;
}

/** Samples frames per `planFrames`, each scaled to size×size RGB24 (`-vf fps=…,scale=…`, rawvideo). */
export async function sampleFrames(file: string, opts: SampleFramesOptions = {}): Promise<SampledFrames> {
  const { fps = 1, minFrames = 8, maxFrames = 32, size = 384, probe, ...run } = opts;
  const info = probe ?? (await probeVideo(file, run));
  const plan = planFrames(info.durationSec, { fps, minFrames, maxFrames });
  const rate = 1 / plan.secondsPerFrame;
  const frameBytes = size * size * 3;
  const args = [
    ...MEDIA_DEMUXERS, "-i", file,
    "-map", "0:v:0", "-an", "-sn", "-dn",
    "-vf", `fps=${rate.toFixed(6)}:round=near,scale=${size}:${size}:flags=bicubic`,
    "-frames:v", String(plan.count),
    "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1",
  ];
  const r = await runFfmpeg(args, { timeoutMs: 300_000, maxStdoutBytes: frameBytes * (plan.count + 2), ...run });
  if (r.code !== 0) throw new MediaDecodeError(`the video could not be decoded: ${ffmpegReason(r.stderr)}`);
  const got = Math.floor(r.stdout.length / frameBytes);
  if (got === 0) throw new MediaDecodeError(`the video could not be decoded: no frames came out (${ffmpegReason(r.stderr)})`);
  const frames: Uint8Array[] = [];
  for (let i = 0; i < plan.count; i++) {
    // The fps filter can come up one frame short at the very end; repeat the last decoded frame.
    const k = Math.min(i, got - 1);
    frames.push(new Uint8Array(r.stdout.buffer, r.stdout.byteOffset + k * frameBytes, frameBytes).slice());
  }
  return { ...plan, frames, size, durationSec: info.durationSec };
}

/** The first audio track as 16 kHz mono float32, or null when the file has none. */
export async function extractAudio(file: string, opts: DecodeAudioOptions & { probe?: VideoProbe } = {}): Promise<Float32Array | null> {
  const { probe, ...rest } = opts;
  const info = probe ?? (await probeVideo(file, rest));
  if (!info.hasAudio) return null;
  return decodeAudio(file, { what: "video's audio track", ...rest });
}
