/**
 * What makes an interrupted import resumable (used by import.ts):
 *   - the build folder is named from what is built (`.<name>.partial-<key>`, key = hash of name, source content
 *     hash, dtype, family, IMPORT_VERSION and the quantisation), so the next import of the same files finds it and anything else
 *     removes it;
 *   - a lock file `.<name>.lock` (pid, host, process start time) keeps two imports of one model out of one folder;
 *   - SkipWrittenWeights hands the graph builder placeholders instead of reading weights the journal says are
 *     already written (external-graph.ts ExternalDataGraphBuilder.replaying).
 */
import { createHash, randomBytes } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { pidAlive } from "../io/model-dir";
import type { Tensor32, WeightSource } from "../io/weights";
import type { MappedWeights } from "./checkpoint";
import type { ExternalDataGraphBuilder } from "./external-graph";

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

/** The build folder for one (name, source hash, dtype, family, builder version): the same inputs give the same folder. */
export function partialDir(familyDir: string, name: string, parts: { sourceHash: string; dtype: string; family: string; version: number; quant?: string }): string {
  const key = createHash("sha256").update(JSON.stringify([name, parts.sourceHash, parts.dtype, parts.family, parts.version, ...(parts.quant ? [parts.quant] : [])])).digest("hex").slice(0, 16);
  return path.join(familyDir, `.${name}.partial-${key}`);
}

/** Removes `.<name>.partial-*` build folders other than `keep` (another source, dtype or version: never mixed). */
export function removeOtherPartials(familyDir: string, name: string, keep: string): void {
  const re = new RegExp(`^\\.${escape(name)}\\.partial-[0-9a-f]+$`);
  for (const e of fs.readdirSync(familyDir))
    if (re.test(e) && path.join(familyDir, e) !== keep) fs.rmSync(path.join(familyDir, e), { recursive: true, force: true });
}

// ---------------------------------------------------------------------------------------------
// Lock

interface LockInfo {
  pid: number;
  host: string;
  /** /proc/<pid>/stat start time: a recycled pid is not mistaken for the import that held the lock. */
  start?: string;
  nonce: string;
  at: string;
}

function processStart(pid: number): string | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19];
  } catch {
    return undefined;
  }
}

/** A lock from another host cannot be checked and counts as held. */
function holderAlive(h: LockInfo): boolean {
  if (h.host !== os.hostname()) return true;
  if (!Number.isInteger(h.pid) || h.pid <= 0 || !pidAlive(h.pid)) return false;
  const start = processStart(h.pid);
  return h.start === undefined || start === undefined || start === h.start;
}

function readText(file: string): string | null {
  try {
    return fs.readFileSync(file, "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw e;
  }
}

function parseLock(text: string): LockInfo | undefined {
  try {
    const v = JSON.parse(text) as LockInfo;
    return typeof v.pid === "number" && typeof v.host === "string" ? v : undefined;
  } catch {
    return undefined; // unreadable: no one can be holding it (locks are created whole, see acquireImportLock)
  }
}

export class ImportLock {
  constructor(
    readonly file: string,
    private readonly text: string,
  ) {}

  release(): void {
    if (readText(this.file) === this.text) fs.rmSync(this.file, { force: true });
  }
}

function heldError(label: string, file: string, h: LockInfo): Error {
  const where = h.host === os.hostname() ? "" : ` on ${h.host}`;
  return new Error(`an import of ${label} is already running (pid ${h.pid}${where}); wait for it to finish${where ? `, or remove ${file} if it is not running` : ""}`);
}

/**
 * Takes `file` for this process: created whole (written aside, then hard-linked into place, which fails if it
 * exists). A lock whose process is dead (same host) is taken over; a live one → "an import of <label> is already
 * running (pid N)".
 */
export function acquireImportLock(file: string, label: string): ImportLock {
  const nonce = randomBytes(8).toString("hex");
  const text = JSON.stringify({ pid: process.pid, host: os.hostname(), start: processStart(process.pid), nonce, at: new Date().toISOString() } satisfies LockInfo);
  const aside = `${file}.${process.pid}-${nonce}`;
  for (let attempt = 0; attempt < 10; attempt++) {
    fs.writeFileSync(aside, text);
    try {
      fs.linkSync(aside, file);
      return new ImportLock(file, text);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
    } finally {
      fs.rmSync(aside, { force: true });
    }
    const held = readText(file);
    if (held === null) continue; // released meanwhile
    const holder = parseLock(held);
    if (holder && holderAlive(holder)) throw heldError(label, file, holder);
    // stale: move it aside, then make sure what we moved is the stale lock and not one taken over meanwhile
    const stale = `${file}.stale-${process.pid}-${nonce}`;
    try {
      fs.renameSync(file, stale);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") continue;
      throw e;
    }
    const moved = readText(stale);
    if (moved !== held) {
      try {
        fs.linkSync(stale, file);
      } catch {
        // someone else holds it now; their lock stands
      }
      fs.rmSync(stale, { force: true });
      const other = moved === null ? undefined : parseLock(moved);
      if (other) throw heldError(label, file, other);
      continue;
    }
    fs.rmSync(stale, { force: true });
  }
  throw new Error(`could not take the import lock ${file} (it keeps changing hands)`);
}

// ---------------------------------------------------------------------------------------------
// Weights

/**
 * The checkpoint's weights for a build that may resume: while the builder in use replays tensors an interrupted
 * build already wrote, a weight is a zero placeholder of its header shape (nothing read or converted). Every
 * weight the graph code reads for tensor k is read while the builder is at tensor k (it reads, transforms, then
 * adds the initializer), so placeholders only ever feed tensors that are not written again.
 */
export class SkipWrittenWeights implements WeightSource {
  /** The builder the graph being built writes to. */
  builder?: ExternalDataGraphBuilder;
  skipped = 0;

  constructor(private readonly source: MappedWeights) {}

  names(): string[] {
    return this.source.names();
  }

  has(name: string): boolean {
    return this.source.has(name);
  }

  get(name: string): Tensor32 {
    if (!this.builder?.replaying) return this.source.get(name);
    const shape = this.source.shape(name);
    this.skipped++;
    return { shape, data: new Float32Array(shape.reduce((a, b) => a * b, 1)) };
  }
}
