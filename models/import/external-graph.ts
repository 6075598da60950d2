import { createHash } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { onnx } from "onnx-proto";
import { GraphBuilder } from "../onnx/builder";
import { encodeFromF32 } from "../io/safetensors";

export type StorageDtype = "fp32" | "fp16" | "bf16";

const T = onnx.TensorProto.DataType;
const ELEM: Record<StorageDtype, number> = { fp32: T.FLOAT, fp16: T.FLOAT16, bf16: T.BFLOAT16 };
const SAFETENSORS_DTYPE = { fp32: "F32", fp16: "F16", bf16: "BF16" } as const;
const BYTES_PER: Record<StorageDtype, number> = { fp32: 4, fp16: 2, bf16: 2 };
/** Offsets of external tensors are aligned so ORT can map them directly. */
const ALIGN = 64;

/**
 * The journal of a data file (`<data file>.journal`): one JSON line per tensor written, in write order.
 * A line is appended only after the data file has been fsync'd past the tensor's bytes, so the journal never
 * claims bytes that are not on disk (a crash loses at most the lines of the last unsynced batch, which are
 * written again on resume).
 */
export interface JournalEntry {
  name: string;
  dims: number[];
  offset: number;
  length: number;
  /** sha256 of the tensor's stored bytes (checked on resume, see recoverJournal). */
  sha256: string;
}

export const journalFile = (dataFile: string) => `${dataFile}.journal`;

/** A batch of written tensors is synced and journaled when it reaches this many bytes or this age. */
const SYNC_BYTES = 16 << 20;
const SYNC_MS = 1000;
/**
 * On resume, the journaled tensors ending in the last VERIFY_TAIL_BYTES of the data file are re-hashed; earlier
 * ones are checked by length only. With the fsync ordering above, only storage that loses acknowledged writes
 * (or someone editing the file) can make journaled bytes wrong, and then it is the most recently written ones:
 * hashing the tail catches that for the cost of reading 256 MB, where hashing everything would re-read the whole
 * data file (tens of GB for a real model, as long as writing it) on every resume.
 */
const VERIFY_TAIL_BYTES = 256 << 20;

export interface RecoveredJournal {
  entries: JournalEntry[];
  /** End of the last kept tensor (the data file is truncated to it). */
  bytes: number;
  /** Journaled tensors dropped because their bytes were missing or did not match their hash (written again). */
  torn: number;
}

function isEntry(v: unknown): v is JournalEntry {
  const e = v as JournalEntry;
  return (
    !!e && typeof e.name === "string" && Array.isArray(e.dims) && e.dims.every((d) => Number.isInteger(d) && d >= 0) &&
    Number.isSafeInteger(e.offset) && Number.isSafeInteger(e.length) && e.length >= 0 && typeof e.sha256 === "string"
  );
}

function hashRange(fd: number, offset: number, length: number): string {
  const h = createHash("sha256");
  const buf = Buffer.alloc(Math.min(length, 4 << 20));
  for (let done = 0; done < length; ) {
    const n = fs.readSync(fd, buf, 0, Math.min(buf.length, length - done), offset + done);
    if (n === 0) break;
    h.update(buf.subarray(0, n));
    done += n;
  }
  return h.digest("hex");
}

/**
 * Reads the journal of `dataFile` left by an interrupted build and makes the pair consistent: a torn last line,
 * entries out of order, entries past the end of the data file, and (in the last VERIFY_TAIL_BYTES) entries whose
 * bytes do not hash to their journaled sha256 end the kept prefix. The data file is truncated to the end of the
 * kept prefix and the journal to its lines. No journal (or no data file) → nothing to resume.
 */
export function recoverJournal(dataFile: string): RecoveredJournal {
  const jf = journalFile(dataFile);
  if (!fs.existsSync(jf) || !fs.existsSync(dataFile)) return { entries: [], bytes: 0, torn: 0 };
  const text = fs.readFileSync(jf, "utf8");
  const entries: JournalEntry[] = [];
  const lineEnds: number[] = [];
  let pos = 0, end = 0, parsed = 0;
  for (let nl; (nl = text.indexOf("\n", pos)) >= 0; pos = nl + 1) {
    let e: unknown;
    try {
      e = JSON.parse(text.slice(pos, nl));
    } catch {
      break;
    }
    if (!isEntry(e) || e.offset !== Math.ceil(end / ALIGN) * ALIGN) break; // the layout a clean build has
    entries.push(e);
    end = e.offset + e.length;
    parsed += Buffer.byteLength(text.slice(pos, nl + 1));
    lineEnds.push(parsed);
  }
  const size = fs.statSync(dataFile).size;
  let keep = entries.findIndex((e) => e.offset + e.length > size);
  if (keep < 0) keep = entries.length;
  let from = keep;
  for (let tail = 0; from > 0 && tail < VERIFY_TAIL_BYTES; ) tail += entries[--from]!.length;
  const fd = fs.openSync(dataFile, "r+");
  try {
    for (let i = from; i < keep; i++) {
      const e = entries[i]!;
      if (hashRange(fd, e.offset, e.length) !== e.sha256) {
        keep = i;
        break;
      }
    }
    const kept = entries.slice(0, keep);
    const bytes = keep === 0 ? 0 : kept[keep - 1]!.offset + kept[keep - 1]!.length;
    fs.ftruncateSync(fd, bytes);
    fs.fsyncSync(fd);
    fs.truncateSync(jf, keep === 0 ? 0 : lineEnds[keep - 1]!);
    return { entries: kept, bytes, torn: entries.length - keep };
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * A GraphBuilder whose weights go straight to a sibling `.data` file as ONNX external data
 * (TensorProto data_location EXTERNAL, external_data location/offset/length), written as they are added:
 * the graph in memory keeps only references, so a model of any size is built with one tensor in memory at a time.
 * With fp16/bf16 storage each weight is followed by a Cast to float (the graph computes in fp32).
 * ORT loads the result from the .onnx file's path (the data file is resolved next to it).
 *
 * Resumable: every tensor written is journaled (see JournalEntry). Given the entries recovered from an interrupted
 * build of the same graph (`done`), the first `done.length` external tensors are not written again: their
 * references are taken from the journal. The graph asks for tensors in a fixed order, so while `replaying` is
 * true the next tensor is one already on disk and its weights need not be read (see import.ts SkipWrittenWeights).
 */
export class ExternalDataGraphBuilder extends GraphBuilder {
  private readonly external: onnx.ITensorProto[] = [];
  private readonly fd: number;
  private readonly journalFd: number;
  private offset = 0;
  private readonly location: string;
  private next = 0;
  private pending: string[] = [];
  private pendingBytes = 0;
  private lastSync = performance.now();
  private closed = false;
  /** Bytes written by this builder (not counting the resumed ones). */
  newBytes = 0;

  constructor(
    name: string,
    private readonly dataFile: string,
    readonly dtype: StorageDtype = "fp32",
    private readonly onWrite?: (bytes: number) => void,
    private readonly done: readonly JournalEntry[] = [],
  ) {
    super(name);
    this.location = path.basename(dataFile);
    // resuming: recoverJournal already truncated both files to the kept prefix
    this.fd = fs.openSync(dataFile, done.length > 0 ? "r+" : "w");
    this.journalFd = fs.openSync(journalFile(dataFile), done.length > 0 ? "a" : "w");
  }

  /** Bytes of the data file so far (resumed + written). */
  get bytesWritten(): number {
    return this.offset;
  }

  /** True while the next external tensor is one an interrupted build already wrote (its weights are not needed). */
  get replaying(): boolean {
    return this.next < this.done.length;
  }

  override initializer(name: string, data: Float32Array | BigInt64Array | Int32Array, dims: number[]): string {
    if (!(data instanceof Float32Array)) return super.initializer(name, data, dims);
    const count = dims.reduce((a, b) => a * b, 1);
    if (count !== data.length) throw new Error(`tensor "${name}": dims [${dims}] hold ${count} values, data has ${data.length}`);
    const scope = this.scope;
    this.scope = "";
    const stored = this.fresh(name);
    this.scope = scope;
    let offset: number, length: number;
    if (this.replaying) {
      const e = this.done[this.next]!;
      length = count * BYTES_PER[this.dtype];
      if (e.name !== stored || e.dims.join() !== dims.join() || e.length !== length)
        throw new ResumeMismatchError(`${this.dataFile}: tensor ${this.next} of the interrupted build is "${e.name}" [${e.dims}] (${e.length} bytes), this build's is "${stored}" [${dims}] (${length} bytes)`);
      offset = e.offset;
    } else {
      const bytes = encodeFromF32(data, SAFETENSORS_DTYPE[this.dtype]);
      length = bytes.byteLength;
      offset = Math.ceil(this.offset / ALIGN) * ALIGN;
      for (let done = 0; done < length; ) done += fs.writeSync(this.fd, bytes, done, Math.min(1 << 30, length - done), offset + done);
      const sha256 = createHash("sha256").update(bytes).digest("hex");
      this.pending.push(`${JSON.stringify({ name: stored, dims, offset, length, sha256 } satisfies JournalEntry)}\n`);
      this.pendingBytes += length;
      this.newBytes += length;
    }
    this.next++;
    this.external.push({
      name: stored,
      dataType: ELEM[this.dtype],
      dims,
      dataLocation: onnx.TensorProto.DataLocation.EXTERNAL,
      externalData: [
        { key: "location", value: this.location },
        { key: "offset", value: String(offset) },
        { key: "length", value: String(length) },
      ],
    });
    this.offset = offset + length;
    if (!this.replaying) {
      if (this.pendingBytes >= SYNC_BYTES || performance.now() - this.lastSync >= SYNC_MS) this.sync();
      this.onWrite?.(this.offset);
    }
    return this.dtype === "fp32" ? stored : this.op("Cast", [stored], { to: T.FLOAT });
  }

  /** Makes the written tensors durable, then journals them (in that order: see JournalEntry). */
  private sync(): void {
    this.lastSync = performance.now();
    if (this.pending.length === 0) return;
    fs.fdatasyncSync(this.fd);
    fs.writeSync(this.journalFd, this.pending.join(""));
    this.pending = [];
    this.pendingBytes = 0;
  }

  private close(): void {
    if (this.closed) return;
    this.closed = true;
    try {
      this.sync();
    } finally {
      fs.closeSync(this.fd);
      fs.closeSync(this.journalFd);
    }
  }

  /** The ModelProto with the external initializers added; syncs and closes the data file. */
  override toBytes(): Uint8Array {
    if (this.next < this.done.length)
      throw new ResumeMismatchError(`${this.dataFile}: the interrupted build journaled ${this.done.length} tensors, this build has only ${this.next}`);
    this.close();
    const model = onnx.ModelProto.decode(super.toBytes());
    const graph = model.graph!;
    graph.initializer = [...(graph.initializer ?? []), ...this.external.map((t) => onnx.TensorProto.create(t))];
    return onnx.ModelProto.encode(model).finish();
  }

  /** After a failure: journals what was written (a later import resumes from it) and closes the files. */
  abort(): void {
    try {
      this.close();
    } catch {
      // the failure being reported matters more than a failed sync (the journal stays consistent either way)
    }
  }
}

/** An interrupted build's journal does not describe the graph being built (a bug, or a changed builder). */
export class ResumeMismatchError extends Error {}

/** Where an external initializer's bytes are: its data file (relative to the graph's folder), offset and length. */
export function externalInfo(t: onnx.ITensorProto): { location: string; offset: number; length: number } {
  const kv = Object.fromEntries((t.externalData ?? []).map((e) => [e.key, e.value]));
  if (!kv.location) throw new Error(`initializer "${t.name}" has external data without a location`);
  const count = (t.dims ?? []).reduce<number>((a, b) => a * Number(b), 1);
  const width = t.dataType === onnx.TensorProto.DataType.FLOAT ? 4 : t.dataType === onnx.TensorProto.DataType.UINT8 ? 1 : 2;
  return { location: String(kv.location), offset: Number(kv.offset ?? 0), length: kv.length !== undefined ? Number(kv.length) : count * width };
}

export const externalLocation = (t: onnx.ITensorProto) => externalInfo(t).location;

/** The stored bytes of an external initializer of a graph in `dir` (its data file must be inside `dir`). */
export function readExternalBytes(dir: string, t: onnx.ITensorProto): Uint8Array {
  const { location, offset, length } = externalInfo(t);
  const file = path.resolve(dir, location);
  if (!file.startsWith(path.resolve(dir) + path.sep)) throw new Error(`tensor "${t.name}": external data location "${location}" is outside the model folder`);
  const bytes = Buffer.alloc(length);
  const fd = fs.openSync(file, "r");
  try {
    for (let done = 0; done < length; ) {
      const n = fs.readSync(fd, bytes, done, length - done, offset + done);
      if (n === 0) throw new Error(`tensor "${t.name}": ${location} ends before its data (offset ${offset}, length ${length})`);
      done += n;
    }
  } finally {
    fs.closeSync(fd);
  }
  return new Uint8Array(bytes.buffer, bytes.byteOffset, length);
}
