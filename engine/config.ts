/**
 * Every setting MoE Studio reads from the environment, parsed by one zod schema. Entry points (web via
 * instrumentation.ts, CLI, worker, `npm run setup`) load `.env` files the way Next does and call
 * `checkConfig()` at start-up, so a bad value stops the process with a message naming the variable.
 * Code reads settings through `config()` (parsed again only when the environment changed, so tests may
 * set variables at run time). The configuration tables of docs/ (configuration, security, scaling-and-deploy) are rendered from `CONFIG` (`configTable`).
 */
import os from "node:os";
import path from "node:path";
import { z } from "zod";

export type ConfigSection = "general" | "accounts" | "scale";

interface Doc {
  section: ConfigSection;
  /** The default as the docs show it. */
  default: string;
  meaning: string;
}

interface Entry<T> {
  schema: z.ZodType<T | undefined>;
  fallback: T | undefined;
  doc: Doc;
}

const blank = (v: unknown) => (typeof v === "string" && v.trim() === "" ? undefined : v);

function entry<T>(schema: z.ZodType<T, string>, doc: Doc): Entry<T>;
function entry<T>(schema: z.ZodType<T, string>, doc: Doc, fallback: T): Entry<T> & { fallback: T };
function entry<T>(schema: z.ZodType<T, string>, doc: Doc, fallback?: T): Entry<T> {
  return { schema: z.preprocess(blank, schema.optional()) as z.ZodType<T | undefined>, fallback, doc };
}

function numberOf(what: string, ok: (n: number) => boolean) {
  return z.string().transform((raw, ctx) => {
    const n = Number(raw.trim());
    if (!ok(n)) {
      ctx.addIssue({ code: "custom", message: `"${raw}" is not ${what}` });
      return z.NEVER;
    }
    return n;
  });
}
const positiveInt = numberOf("a positive integer", (n) => Number.isInteger(n) && n >= 1);
const positiveNumber = numberOf("a positive number", (n) => Number.isFinite(n) && n > 0);
const nonNegativeInt = numberOf("a whole number ≥ 0", (n) => Number.isInteger(n) && n >= 0);

function oneOf<const V extends readonly [string, ...string[]]>(values: V, aliases: Record<string, V[number]> = {}) {
  return z.string().transform((raw, ctx) => {
    const v = raw.trim().toLowerCase();
    const hit = (values as readonly string[]).includes(v) ? (v as V[number]) : aliases[v];
    if (hit === undefined) {
      ctx.addIssue({ code: "custom", message: `"${raw}" is not one of ${values.join(", ")}` });
      return z.NEVER;
    }
    return hit;
  });
}

const text = z.string().transform((s) => s.trim());
const url = (protocols: RegExp, what: string) =>
  z.string().transform((raw, ctx) => {
    const v = raw.trim();
    if (!protocols.test(v)) {
      ctx.addIssue({ code: "custom", message: `"${raw}" is not ${what}` });
      return z.NEVER;
    }
    return v;
  });

export type MediaLimitKind = "image" | "audio" | "video";
const MB = 1024 * 1024;

/** STUDIO_MAX_UPLOAD_MB: one number for every kind ("300") or per kind ("image=50,video=2048"), in bytes. */
const uploadLimits = z.string().transform((raw, ctx): Partial<Record<MediaLimitKind, number>> => {
  const bad = (message: string) => {
    ctx.addIssue({ code: "custom", message });
    return z.NEVER;
  };
  const mb = (s: string): number | undefined => {
    const n = Number(s.trim());
    return Number.isFinite(n) && n > 0 && s.trim() !== "" ? Math.floor(n * MB) : undefined;
  };
  if (!raw.includes("=")) {
    const n = mb(raw);
    return n === undefined ? bad(`"${raw.trim()}" is not a positive number of megabytes`) : { image: n, audio: n, video: n };
  }
  const out: Partial<Record<MediaLimitKind, number>> = {};
  for (const part of raw.split(",")) {
    const [k = "", v = ""] = part.split("=");
    const kind = k.trim();
    if (kind !== "image" && kind !== "audio" && kind !== "video") return bad(`unknown kind "${kind}" (use image, audio or video)`);
    const n = mb(v);
    if (n === undefined) return bad(`"${v.trim()}" is not a positive number of megabytes`);
    out[kind] = n;
  }
  return out;
});

const onOff = oneOf(["on", "off"], { "1": "on", true: "on", yes: "on", "0": "off", false: "off", no: "off" });

/** The schema: one entry per variable, in the order the docs list them. */
export const CONFIG = {
  // --- general ---
  STUDIO_DATA_DIR: entry(text, { section: "general", default: "`./data`", meaning: "SQLite file, uploads and artifacts" }),
  DATABASE_URL: entry(url(/^(file:|postgres(ql)?:\/\/)/, "a file:… (SQLite) or postgresql://… URL"), { section: "general", default: "`file:<data dir>/studio.db`", meaning: "database" }),
  HOST: entry(text, { section: "general", default: "`127.0.0.1`", meaning: "where `npm start` listens (any other address turns accounts on)" }),
  PORT: entry(numberOf("a port number (1–65535)", (n) => Number.isInteger(n) && n >= 1 && n <= 65535), { section: "general", default: "`3000`", meaning: "the port `npm start` listens on" }),
  STUDIO_EP: entry(oneOf(["auto", "cuda", "webgpu", "cpu"]), { section: "general", default: "`auto`", meaning: "ONNX Runtime provider: `auto` (CUDA if it loads, else WebGPU on a hardware adapter, else CPU), `cuda`, `webgpu` (any adapter, software ones included), `cpu`" }, "auto"),
  STUDIO_THREADS: entry(numberOf("a positive integer (at most 1024)", (n) => Number.isInteger(n) && n >= 1 && n <= 1024), { section: "general", default: "CPU count", meaning: "ONNX Runtime intra-op threads" }),
  STUDIO_COMPUTE_DTYPE: entry(oneOf(["auto", "fp32", "fp16"]), { section: "general", default: "`auto`", meaning: "what imported models compute in: `auto` = fp16 on CUDA and on WebGPU adapters with `shader-f16`, else fp32" }, "auto"),
  STUDIO_CACHE_MB: entry(positiveNumber, { section: "general", default: "`512`", meaning: "output cache bound (LRU by bytes; large values spill to disk)" }, 512),
  STUDIO_NODE_CONCURRENCY: entry(positiveInt, { section: "general", default: "`2`", meaning: "nodes of one run executing at once" }, 2),
  STUDIO_RUN_OUTPUT_MB: entry(positiveNumber, { section: "general", default: "`2048`", meaning: "what the outputs of one run's nodes may hold together (a run keeps them until it ends); past it the node that makes more fails with a message" }, 2048),
  STUDIO_RUN_FILES_MB: entry(positiveNumber, { section: "general", default: "`4096`", meaning: "what one run's nodes may write to storage together (images, audio, exports); past it the node that writes more fails with a message" }, 4096),
  STUDIO_MAX_RUN_MINUTES: entry(positiveNumber, { section: "general", default: "`240`", meaning: "how long one run may take; past it the run is stopped and recorded as failed, saying why (runs of all users share the queue)" }, 240),
  STUDIO_MAX_RUNS: entry(positiveInt, { section: "general", default: "`1`", meaning: "runs executing at once (others wait in the queue)" }, 1),
  STUDIO_SCRIPT_WORKERS: entry(positiveInt, { section: "general", default: "`2`", meaning: "Script nodes running at once (one worker thread each)" }, 2),
  STUDIO_DECODE_TWIN: entry(onOff, { section: "general", default: "`on`", meaning: "`off`: decode steps on the CPU run the same (sparse) decoder graph as the prefill instead of its decode twin (docs/benchmarks.md)" }, "on"),
  STUDIO_MODELS_DIR: entry(text, { section: "general", default: "`<data dir>/models`", meaning: "where model directories live (graphs are cached in `.graphs` there)" }),
  STUDIO_CHECKPOINTS_DIR: entry(text, { section: "general", default: "`<data dir>/checkpoints`", meaning: "folders the Models page may import from" }),
  STUDIO_IMPORT_ROOTS: entry(
    z.string().transform((s) => s.split(":").map((p) => p.trim()).filter(Boolean)),
    { section: "general", default: "–", meaning: "more folders the Models page may import from (`:`-separated)" },
  ),
  HF_HUB_CACHE: entry(text, { section: "general", default: "`$HF_HOME/hub`", meaning: "the Hugging Face hub cache whose snapshots the Models page and `cli import` list (read only, never downloaded to)" }),
  HF_HOME: entry(text, { section: "general", default: "`~/.cache/huggingface`", meaning: "Hugging Face's home (its `hub/` is the cache when `HF_HUB_CACHE` is unset)" }),
  STUDIO_HF_CACHE: entry(onOff, { section: "general", default: "`on`", meaning: "`off` stops listing the Hugging Face cache" }, "on"),
  STUDIO_DATASETS_DIR: entry(text, { section: "general", default: "`<data dir>/datasets`", meaning: "where a Dataset node's source may point (besides `examples/…`)" }),
  STUDIO_EXAMPLE_DATASETS_DIR: entry(text, { section: "general", default: "`app/examples/datasets`", meaning: "the shipped sample datasets (`examples/…`)" }),
  STUDIO_FFMPEG: entry(text, { section: "general", default: "`auto`", meaning: "ffmpeg for video and compressed audio: `auto` = `ffmpeg` on `PATH`, else the npm-shipped build; `bundled`; or a path" }, "auto"),
  STUDIO_FFPROBE: entry(text, { section: "general", default: "`auto`", meaning: "ffprobe for video probing: `auto` = `ffprobe` on `PATH`, else the npm-shipped build; `bundled`; or a path" }, "auto"),
  LOG_FORMAT: entry(oneOf(["pretty", "json"]), { section: "general", default: "`pretty` in a terminal, else `json`", meaning: "server and worker logs: readable lines, or one JSON object per line (pino)" }),
  LOG_LEVEL: entry(oneOf(["trace", "debug", "info", "warn", "error", "fatal", "silent"]), { section: "general", default: "`info`", meaning: "the lowest log level written" }, "info"),
  // --- accounts and limits ---
  STUDIO_AUTH: entry(onOff, { section: "accounts", default: "off on 127.0.0.1, else on", meaning: "`on` / `off` forces the mode" }),
  STUDIO_SIGNUP: entry(oneOf(["open", "closed"]), { section: "accounts", default: "closed after the first account", meaning: "`open`: anyone may create an account on `/login`" }, "closed"),
  STUDIO_SESSION_DAYS: entry(positiveNumber, { section: "accounts", default: "`30`", meaning: "how long a login lasts" }, 30),
  STUDIO_MAX_RUNS_PER_USER: entry(positiveInt, { section: "accounts", default: "`4`", meaning: 'runs one user may have queued or running; more → "you have 4 run(s) queued or running…" (429)' }, 4),
  STUDIO_MAX_BODY_MB: entry(positiveNumber, { section: "accounts", default: "`16`", meaning: "tRPC and API request bodies (413 before anything is parsed)" }, 16),
  STUDIO_MAX_MEDIA_BODY_MB: entry(positiveNumber, { section: "accounts", default: "`96`", meaning: "the one procedure that carries a whole PNG/WAV (reading an embedded workflow)" }, 96),
  STUDIO_MAX_UPLOAD_MB: entry(uploadLimits, { section: "accounts", default: "image 50, audio 200, video 1024", meaning: "per upload (`300`, or `image=50,video=2048`; 413 naming the file and the limit, counted while streaming)" }),
  STUDIO_MAX_UPLOADS_PER_HOUR: entry(positiveInt, { section: "accounts", default: "`300`", meaning: "uploads per user per hour (one raw file per request; 429)" }, 300),
  STUDIO_MAX_CONTEXT_TOKENS: entry(positiveInt, { section: "accounts", default: "`8192`", meaning: "tokens one MoE-LLM sequence may hold (prompt and generated; the model's `max_position_embeddings` too): a longer prompt is refused before anything is allocated" }, 8192),
  STUDIO_METRICS_TOKEN: entry(text, { section: "accounts", default: "–", meaning: "when set, `/metrics` answers only `Authorization: Bearer <this>`; unset with accounts on, only an admin's login" }),
  // --- scaling out ---
  STUDIO_QUEUE: entry(url(/^(memory$|redis:\/\/|rediss:\/\/|postgres(ql)?:\/\/)/, "memory, redis://… or postgresql://…"), { section: "scale", default: "unset (in-process queue)", meaning: "`redis://host:6379` (BullMQ on Redis) or `postgresql://…` (BullMQ's PostgreSQL backend)" }),
  STUDIO_ARTIFACTS: entry(text, { section: "scale", default: "`<data dir>/files`", meaning: "a directory every host mounts (`/mnt/shared/studio`) or `s3://bucket/prefix`" }),
  STUDIO_S3_ENDPOINT: entry(url(/^https?:\/\//, "an http(s):// URL"), { section: "scale", default: "–", meaning: "for `s3://`: an S3-compatible endpoint (credentials and region: the AWS SDK's usual `AWS_*` variables)" }),
  STUDIO_WORKER_CONCURRENCY: entry(positiveInt, { section: "scale", default: "`1`", meaning: "runs one worker executes at once" }, 1),
  STUDIO_WORKER_LOCK_MS: entry(positiveInt, { section: "scale", default: "`30000`", meaning: "a worker's lock on a run (renewed at half); a worker silent for longer loses the run" }, 30_000),
  STUDIO_WORKER_STALLED_CHECK_MS: entry(positiveInt, { section: "scale", default: "BullMQ's", meaning: "how often workers look for runs whose worker went silent" }),
  STUDIO_WORKER_HANDOFF_MS: entry(nonNegativeInt, { section: "scale", default: "BullMQ worker's", meaning: "how long a worker without a run's warm models waits for one holding them (0 = never hand off)" }),
} as const;

export type ConfigName = keyof typeof CONFIG;
type ValueOf<E> = E extends Entry<infer T> ? (E extends { fallback: undefined } ? T | undefined : undefined extends E["fallback"] ? T | undefined : Exclude<T, undefined>) : never;
export type StudioConfig = { [K in ConfigName]: ValueOf<(typeof CONFIG)[K]> };

/** Names MoE Studio itself sets, and the STUDIO_TEST_* family only its tests and CI read: not typos. */
const INTERNAL = new Set(["STUDIO_PRISMA_TARGET"]);
const isInternal = (k: string) => INTERNAL.has(k) || k.startsWith("STUDIO_TEST_");
const NAMES = Object.keys(CONFIG) as ConfigName[];

export class ConfigError extends Error {
  constructor(readonly problems: { name: string; message: string }[]) {
    super(`bad configuration: ${problems.map((p) => `${p.name}: ${p.message}`).join("; ")}`);
    this.name = "ConfigError";
  }
}

/** Parses `env` (default process.env); throws ConfigError naming every bad variable. */
export function parseConfig(env: Record<string, string | undefined> = process.env): StudioConfig {
  const out: Record<string, unknown> = {};
  const problems: { name: string; message: string }[] = [];
  for (const name of NAMES) {
    const e = CONFIG[name] as Entry<unknown>;
    const r = e.schema.safeParse(env[name]);
    if (r.success) out[name] = r.data ?? e.fallback;
    else problems.push({ name, message: r.error.issues.map((i) => i.message).join(", ") });
  }
  if (problems.length) throw new ConfigError(problems);
  return out as StudioConfig;
}

/** One variable's value from a string (callers that take a setting as an argument); throws a ConfigError naming it. */
export function parseSetting<K extends ConfigName>(name: K, raw: string | undefined): StudioConfig[K] {
  const e = CONFIG[name] as Entry<unknown>;
  const r = e.schema.safeParse(raw);
  if (!r.success) throw new ConfigError([{ name, message: r.error.issues.map((i) => i.message).join(", ") }]);
  return (r.data ?? e.fallback) as StudioConfig[K];
}

let cached: { key: string; value: StudioConfig } | undefined;

/** The parsed settings of the current environment (re-parsed when a variable changed). */
export function config(): StudioConfig {
  let key = "";
  for (const name of NAMES) key += `${process.env[name] ?? "\u0000"}\u0001`;
  if (cached?.key !== key) cached = { key, value: parseConfig(process.env) };
  return cached.value;
}

/** STUDIO_* variables that are set but that no part of MoE Studio reads (most likely typos). */
export function unknownStudioVariables(env: Record<string, string | undefined> = process.env): string[] {
  return Object.keys(env).filter((k) => k.startsWith("STUDIO_") && !(k in CONFIG) && !isInternal(k)).sort();
}

/**
 * The start-up check: the configuration parses (else a ConfigError) and unknown STUDIO_* names are
 * returned as warnings, for the caller to print.
 */
export function checkConfig(env: Record<string, string | undefined> = process.env): { config: StudioConfig; warnings: string[] } {
  const value = parseConfig(env);
  const warnings = unknownStudioVariables(env).map((k) => `${k} is set but MoE Studio does not read it (a typo?)`);
  return { config: value, warnings };
}

/** The data directory (database file, uploads, artifacts, datasets): STUDIO_DATA_DIR, else ./data; absolute, not created. */
export function dataDir(): string {
  return path.resolve(/*turbopackIgnore: true*/ config().STUDIO_DATA_DIR ?? "data");
}

/** Where model directories live (graphs are cached in its `.graphs`): STUDIO_MODELS_DIR, else <data dir>/models; absolute. */
export function modelsDir(): string {
  const dir = config().STUDIO_MODELS_DIR;
  return dir !== undefined ? path.resolve(/*turbopackIgnore: true*/ dir) : path.join(dataDir(), "models");
}

/** Intra-op threads: STUDIO_THREADS, else the machine's available parallelism. */
export function intraOpThreads(): number {
  return config().STUDIO_THREADS ?? Math.max(1, os.availableParallelism());
}

/** The docs' table of one section, rendered from CONFIG (tests/unit/config/config.test.ts keeps them equal). */
export function configTable(section: ConfigSection): string {
  const rows = NAMES.filter((n) => CONFIG[n].doc.section === section).map((n) => `| \`${n}\` | ${CONFIG[n].doc.default} | ${CONFIG[n].doc.meaning} |`);
  return ["| variable | default | meaning |", "|---|---|---|", ...rows].join("\n");
}

/** The start-up check of an entry point: prints the warnings; a bad value prints the error and exits with status 2. */
export function checkConfigOrExit(): void {
  try {
    const { config: value, warnings } = checkConfig();
    // As the logger would print them (engine/log.ts imports this module, so not through it): JSON lines stay parseable.
    const json = (value.LOG_FORMAT ?? (process.stderr.isTTY ? "pretty" : "json")) === "json";
    for (const warning of warnings) console.error(json ? JSON.stringify({ level: 40, time: new Date().toISOString(), pid: process.pid, msg: warning }) : `warning: ${warning}`);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    console.error(`error: ${err.message}`);
    process.exit(2);
  }
}
