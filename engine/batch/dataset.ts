/**
 * Datasets: a set of inputs from a local folder or from a JSONL/CSV file, read as a stream of records.
 *
 * JSONL: one object per line. CSV: a header row, then one record per row (RFC 4180 quoting, engine/csv-read.ts);
 * either may start with a UTF-8 BOM. Columns:
 *   text (or prompt)      the prompt text
 *   image, audio, video   media paths relative to the file (never absolute, never outside its folder)
 *   task, label           optional grouping values
 *   answer                optional reference answer (teacher-forced scoring: its NLL given the prompt)
 *   id                    optional record id (default: the row number)
 * A record needs text or at least one media path.
 *
 * Folder: every file is an input; files with the same name stem in the same folder form one record
 * (q1.txt + q1.png = the text and its image); a first-level subfolder's name is the records' task.
 *
 * A bad row is reported with its line number and skipped; it never stops the others.
 */
import { createHash } from "node:crypto";
import { createReadStream, statSync } from "node:fs";
import { readdir, readFile, stat } from "node:fs/promises";
import path from "node:path";
import { createInterface } from "node:readline";
import { config, dataDir } from "../config";
import { readCSV } from "../csv-read";
import { hashValue } from "../hash";
import { PathEscapeError, resolveInside } from "../paths";
import type { Storage } from "../node";
import type { AudioValue, ImageValue, VideoValue } from "../media/values";
import { storeUpload, type MediaKind } from "../uploads";

export type MediaField = "image" | "audio" | "video";
export const MEDIA_FIELDS: readonly MediaField[] = ["image", "audio", "video"];

export interface DatasetRecord {
  /** 0-based position among all rows (valid or not), stable while rows are only appended. */
  index: number;
  /** 1-based line of the file (row number for CSV, file order for folders). */
  line: number;
  id: string;
  text: string;
  /** Absolute paths of the record's media files. */
  media: Partial<Record<MediaField, string>>;
  task: string;
  label: string;
  /** Reference answer ("" when the row has none). */
  answer: string;
}

export interface RowError {
  index: number;
  line: number;
  message: string;
}

export type RowResult = { ok: true; record: DatasetRecord } | { ok: false; error: RowError };

export type DatasetKind = "jsonl" | "csv" | "folder";

/** A record as shown in a preview: media paths relative to the dataset. */
export interface PreviewRow {
  index: number;
  id: string;
  text: string;
  task: string;
  label: string;
  media: Partial<Record<MediaField, string>>;
  answer?: string;
}

export interface DatasetScan {
  kind: DatasetKind;
  source: string;
  /** Valid records. */
  count: number;
  /** Rows with an error (all of them counted; the first `MAX_ERRORS_KEPT` listed). */
  errorCount: number;
  errors: RowError[];
  preview: PreviewRow[];
  /** Valid records per task and per modality present (text, image, audio, video). */
  tasks: Record<string, number>;
  modalities: Record<string, number>;
  /** sha256 over the dataset's bytes (the file, or every file of the folder with its relative path). */
  fingerprint: string;
}

export const MAX_ERRORS_KEPT = 50;
export const PREVIEW_ROWS = 10;

const EXT_KIND: Record<string, MediaField | "text"> = {
  ".txt": "text", ".md": "text",
  ".png": "image", ".jpg": "image", ".jpeg": "image", ".webp": "image", ".gif": "image",
  ".wav": "audio", ".mp3": "audio", ".ogg": "audio", ".flac": "audio", ".m4a": "audio",
  ".mp4": "video", ".webm": "video", ".mov": "video", ".mkv": "video",
};

export class DatasetError extends Error {}

export function datasetKind(source: string): DatasetKind {
  let st;
  try {
    st = statSync(source);
  } catch {
    throw new DatasetError(`the dataset ${source} does not exist`);
  }
  if (st.isDirectory()) return "folder";
  const ext = path.extname(source).toLowerCase();
  if (ext === ".jsonl" || ext === ".ndjson") return "jsonl";
  if (ext === ".csv") return "csv";
  throw new DatasetError(`the dataset ${source} is neither a folder nor a .jsonl/.csv file`);
}

/** Streams the rows of a dataset (valid records and row errors) in order. */
export async function* readRows(source: string): AsyncGenerator<RowResult> {
  const kind = datasetKind(source);
  if (kind === "folder") yield* folderRows(source);
  else if (kind === "jsonl") yield* jsonlRows(source);
  else yield* csvRows(source);
}

/** Only the valid records. */
export async function* readRecords(source: string): AsyncGenerator<DatasetRecord> {
  for await (const r of readRows(source)) if (r.ok) yield r.record;
}

/** One pass over the dataset: counts, errors, a preview and the fingerprint (memory bounded). */
export async function scanDataset(source: string, previewRows = PREVIEW_ROWS): Promise<DatasetScan> {
  return scanRows(source, readRows(source), await fingerprintDataset(source), previewRows);
}

/** scanDataset over `rows` of `source` being read by the caller, with the fingerprint it already has. */
export async function scanRows(source: string, rows: AsyncIterable<RowResult>, fingerprint: string, previewRows = PREVIEW_ROWS): Promise<DatasetScan> {
  const kind = datasetKind(source);
  const root = kind === "folder" ? path.resolve(source) : path.dirname(path.resolve(source));
  const scan: DatasetScan = { kind, source, count: 0, errorCount: 0, errors: [], preview: [], tasks: {}, modalities: {}, fingerprint };
  for await (const r of rows) {
    if (!r.ok) {
      scan.errorCount++;
      if (scan.errors.length < MAX_ERRORS_KEPT) scan.errors.push(r.error);
      continue;
    }
    const rec = r.record;
    scan.count++;
    scan.tasks[rec.task] = (scan.tasks[rec.task] ?? 0) + 1;
    if (rec.text) scan.modalities.text = (scan.modalities.text ?? 0) + 1;
    for (const m of MEDIA_FIELDS) if (rec.media[m]) scan.modalities[m] = (scan.modalities[m] ?? 0) + 1;
    if (scan.preview.length < previewRows) scan.preview.push(previewOf(rec, root));
  }
  return scan;
}

export function previewOf(rec: DatasetRecord, root: string): PreviewRow {
  const media: PreviewRow["media"] = {};
  for (const m of MEDIA_FIELDS) if (rec.media[m]) media[m] = path.relative(root, rec.media[m]!);
  const clip = (s: string) => (s.length > 200 ? `${s.slice(0, 199)}…` : s);
  return { index: rec.index, id: rec.id, text: clip(rec.text), task: rec.task, label: rec.label, media, ...(rec.answer ? { answer: clip(rec.answer) } : {}) };
}

export async function fingerprintDataset(source: string): Promise<string> {
  const h = createHash("sha256");
  if (datasetKind(source) !== "folder") {
    for await (const chunk of createReadStream(source)) h.update(chunk as Buffer);
    return h.digest("hex");
  }
  for (const rel of (await listFiles(path.resolve(source))).files) {
    h.update(`${rel}\0`);
    for await (const chunk of createReadStream(path.join(source, rel))) h.update(chunk as Buffer);
    h.update("\0");
  }
  return h.digest("hex");
}

/**
 * Relative paths of the files under `root` (two levels: root and task subfolders), sorted; hidden entries skipped.
 * `skipped`: the other entries at those levels that are neither files nor folders read (symbolic links, deeper
 * folders, sockets …), which a folder dataset reports rather than reading.
 */
async function listFiles(root: string): Promise<{ files: string[]; skipped: string[] }> {
  const files: string[] = [];
  const skipped: string[] = [];
  for (const e of await readdir(root, { withFileTypes: true })) {
    if (e.name.startsWith(".")) continue;
    if (e.isFile()) files.push(e.name);
    else if (e.isDirectory()) {
      for (const f of await readdir(path.join(root, e.name), { withFileTypes: true })) {
        if (f.name.startsWith(".")) continue;
        (f.isFile() ? files : skipped).push(`${e.name}/${f.name}`);
      }
    } else skipped.push(e.name);
  }
  return { files: files.sort(), skipped: skipped.sort() };
}

async function* folderRows(source: string): AsyncGenerator<RowResult> {
  const root = path.resolve(source);
  // Group by (folder, stem), in sorted order: one record per group.
  const groups = new Map<string, string[]>();
  const { files: all, skipped } = await listFiles(root);
  for (const rel of all) {
    const stem = rel.slice(0, rel.length - path.extname(rel).length);
    let g = groups.get(stem);
    if (!g) groups.set(stem, (g = []));
    g.push(rel);
  }
  let index = 0;
  for (const [stem, files] of groups) {
    const line = index + 1;
    const where = `${stem} (files ${files.join(", ")})`;
    const fail = (message: string): RowResult => ({ ok: false, error: { index, line, message: `${where}: ${message}` } });
    const media: DatasetRecord["media"] = {};
    let text = "";
    let bad: string | undefined;
    for (const rel of files) {
      const kind = EXT_KIND[path.extname(rel).toLowerCase()];
      if (!kind) {
        bad = `${rel} is not a dataset file (text .txt/.md, images, audio or video)`;
        break;
      }
      if (kind === "text") {
        text = (await readFile(path.join(root, rel), "utf8")).trim();
        continue;
      }
      if (media[kind]) {
        bad = `two ${kind} files share the name ${stem}`;
        break;
      }
      media[kind] = path.join(root, rel);
    }
    const slash = stem.indexOf("/");
    yield bad ? fail(bad) : { ok: true, record: { index, line, id: stem, text, media, task: slash > 0 ? stem.slice(0, slash) : "", label: "", answer: "" } };
    index++;
  }
  // after the records, so that the records' indexes do not depend on them
  for (const rel of skipped) {
    yield { ok: false, error: { index, line: index + 1, message: `${rel}: not read: a folder dataset reads only regular files in the folder and its task subfolders (this is a symbolic link, a deeper folder or another kind of entry)` } };
    index++;
  }
}

/** Turns one parsed row (JSONL object or CSV row by header) into a record, or says what is wrong. */
export function recordFromFields(fields: Record<string, unknown>, index: number, line: number, baseDir: string): RowResult {
  const fail = (message: string): RowResult => ({ ok: false, error: { index, line, message: `line ${line}: ${message}` } });
  const str = (name: string): string | undefined | Error => {
    const v = fields[name];
    if (v === undefined || v === null || v === "") return undefined;
    if (typeof v === "string") return v;
    if (typeof v === "number" || typeof v === "boolean") return String(v);
    return new Error(`"${name}" must be text, got ${Array.isArray(v) ? "a list" : typeof v}`);
  };
  const values: Record<string, string | undefined> = {};
  for (const name of ["text", "prompt", "image", "audio", "video", "task", "label", "id", "answer"]) {
    const v = str(name);
    if (v instanceof Error) return fail(v.message);
    values[name] = v;
  }
  if (values.text !== undefined && values.prompt !== undefined) return fail('give "text" or "prompt", not both');
  const text = values.text ?? values.prompt ?? "";
  const media: DatasetRecord["media"] = {};
  for (const m of MEDIA_FIELDS) {
    const rel = values[m];
    if (rel === undefined) continue;
    if (path.isAbsolute(rel) || /^[a-z]+:/i.test(rel)) return fail(`${m} path "${rel}" must be relative to the dataset file`);
    let abs: string;
    try {
      abs = resolveInside(baseDir, rel, `${m} path`, "the dataset's folder");
    } catch (err) {
      if (err instanceof PathEscapeError) return fail(err.message);
      throw err;
    }
    let st;
    try {
      st = statSync(abs);
    } catch {
      return fail(`${m} file "${rel}" does not exist`);
    }
    if (!st.isFile()) return fail(`${m} path "${rel}" is not a file`);
    media[m] = abs;
  }
  if (text.trim() === "" && Object.keys(media).length === 0) return fail("the record has no text and no media");
  return { ok: true, record: { index, line, id: values.id ?? String(index + 1), text, media, task: values.task ?? "", label: values.label ?? "", answer: values.answer ?? "" } };
}

async function* jsonlRows(source: string): AsyncGenerator<RowResult> {
  const baseDir = path.dirname(path.resolve(source));
  const lines = createInterface({ input: createReadStream(source, "utf8"), crlfDelay: Infinity });
  let line = 0;
  let index = 0;
  for await (const text of lines) {
    line++;
    const raw = line === 1 ? text.replace(/^\uFEFF/, "") : text; // a UTF-8 BOM (Windows editors write one)
    if (raw.trim() === "") continue;
    let value: unknown;
    try {
      value = JSON.parse(raw);
    } catch (err) {
      yield { ok: false, error: { index: index++, line, message: `line ${line}: not JSON (${(err as Error).message})` } };
      continue;
    }
    if (typeof value !== "object" || value === null || Array.isArray(value)) {
      yield { ok: false, error: { index: index++, line, message: `line ${line}: expected an object like {"text": …}` } };
      continue;
    }
    yield recordFromFields(value as Record<string, unknown>, index++, line, baseDir);
  }
}

async function* csvRows(source: string): AsyncGenerator<RowResult> {
  const baseDir = path.dirname(path.resolve(source));
  let header: string[] | undefined;
  let index = 0;
  for await (const row of readCSV(source)) {
    if (!header) {
      if (row.error) throw new DatasetError(`${source}: the header row is malformed (${row.error})`);
      header = row.cells.map((c) => c.trim().toLowerCase());
      if (!header.some((h) => ["text", "prompt", "image", "audio", "video"].includes(h))) throw new DatasetError(`${source}: the header row needs a text/prompt, image, audio or video column (got ${header.join(", ")})`);
      continue;
    }
    if (row.error) {
      yield { ok: false, error: { index: index++, line: row.line, message: `line ${row.line}: ${row.error}` } };
      continue;
    }
    if (row.cells.length !== header.length) {
      yield { ok: false, error: { index: index++, line: row.line, message: `line ${row.line}: ${row.cells.length} fields, the header has ${header.length}` } };
      continue;
    }
    const fields: Record<string, unknown> = {};
    header.forEach((h, i) => (fields[h] = row.cells[i]));
    yield recordFromFields(fields, index++, row.line, baseDir);
  }
}

/** A record with its media stored (content-addressed) and turned into the values input nodes emit. */
export interface ResolvedRecord {
  index: number;
  id: string;
  text: string;
  task: string;
  label: string;
  /** Reference answer ("" when none). */
  answer: string;
  image?: ImageValue;
  audio?: AudioValue;
  video?: VideoValue;
  /** Hash of what the record feeds into a workflow (text, media contents, task, label). */
  hash: string;
}

const KIND_OF: Record<MediaField, MediaKind> = { image: "image", audio: "audio", video: "video" };

/** Stores the record's media and checks it decodes; throws a message naming the record on bad media. */
export async function resolveRecord(rec: DatasetRecord, storage: Storage): Promise<ResolvedRecord> {
  const out: ResolvedRecord = { index: rec.index, id: rec.id, text: rec.text, task: rec.task, label: rec.label, answer: rec.answer, hash: "" };
  for (const m of MEDIA_FIELDS) {
    const file = rec.media[m];
    if (!file) continue;
    const size = (await stat(file)).size;
    if (size > 1024 * 1024 * 1024) throw new Error(`record ${rec.id}: ${m} ${path.basename(file)} is larger than 1 GB`);
    let stored;
    try {
      stored = await storeUpload(storage, await readFile(file), { filename: path.basename(file), expectedKind: KIND_OF[m] });
    } catch (err) {
      throw new Error(`record ${rec.id}: ${(err as Error).message}`);
    }
    if (stored.kind === "image") out.image = { kind: "image", file: stored.id, mime: stored.mime, width: stored.meta.width, height: stored.meta.height };
    else if (stored.kind === "audio") {
      const meta = stored.meta as { sampleRate?: number; channels?: number; durationSec?: number };
      out.audio = { kind: "audio", file: stored.id, mime: stored.mime, ...(meta.sampleRate ? { sampleRate: meta.sampleRate, channels: meta.channels, durationSec: meta.durationSec } : {}) };
    } else out.video = { kind: "video", file: stored.id, mime: stored.mime, bytes: stored.bytes };
  }
  // The answer is hashed only when there is one, so records without answers keep the hashes they had before answers existed.
  out.hash = hashValue({ text: out.text, task: out.task, label: out.label, image: out.image?.file ?? null, audio: out.audio?.file ?? null, video: out.video?.file ?? null, ...(out.answer ? { answer: out.answer } : {}) });
  return out;
}

/** <STUDIO_DATA_DIR or ./data>: where user datasets (`datasets/`) and batch results (`batch/`) live. */
export function studioDataDir(): string {
  return dataDir();
}

/**
 * Where the batch RecordStore keeps per-record results: <data dir>/batch for the CLI, a folder of its own per cache
 * scope (RunContext.cacheScope: the app's run owner), so one user's finished records are never another's cache hits
 * (a hit would tell that someone ran the same workflow over the same dataset).
 */
export function batchStoreDir(cacheScope?: string): string {
  const base = path.join(studioDataDir(), "batch");
  return cacheScope === undefined ? base : path.join(base, "scopes", hashValue(cacheScope).slice(0, 24));
}

export const EXAMPLES_PREFIX = "examples/";

/** Roots a workflow's Dataset node may read: the shipped samples and <data dir>/datasets (STUDIO_DATASETS_DIR). */
export function datasetRoots(): { examples: string; user: string } {
  return {
    examples: path.resolve(/*turbopackIgnore: true*/ config().STUDIO_EXAMPLE_DATASETS_DIR ?? "app/examples/datasets"),
    user: path.resolve(/*turbopackIgnore: true*/ config().STUDIO_DATASETS_DIR ?? path.join(studioDataDir(), "datasets")),
  };
}

/**
 * A Dataset node's `source` as a path: "examples/…" names a shipped sample, anything else is relative
 * to <data dir>/datasets. A shared workflow is untrusted, so the path may not leave its root.
 */
export function resolveDatasetSource(source: string, roots = datasetRoots()): string {
  const s = source.trim();
  if (s === "") throw new DatasetError("choose a dataset: a .jsonl/.csv file or a folder (examples/… for the shipped samples)");
  const [root, rel] = s.startsWith(EXAMPLES_PREFIX) ? [roots.examples, s.slice(EXAMPLES_PREFIX.length)] : [roots.user, s];
  try {
    return resolveInside(root, rel, "dataset", root);
  } catch (err) {
    if (err instanceof PathEscapeError) throw new DatasetError(err.message);
    throw err;
  }
}
