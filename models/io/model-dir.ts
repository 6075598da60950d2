import { createHash } from "node:crypto";
import fs from "node:fs";
import path from "node:path";

const hashCache = new Map<string, { stamp: string; hash: string }>();

/**
 * sha256 over the named files of a model directory (each name, then its bytes read in 4 MB pieces, in
 * name order). Cached per (dir, files) until a file's size or modification time changes.
 */
export function hashModelFiles(dir: string, files: readonly string[]): string {
  const sorted = [...files].sort();
  const stamp = sorted
    .map((f) => {
      const s = fs.statSync(path.join(dir, f));
      return `${f}:${s.size}:${s.mtimeMs}`;
    })
    .join("|");
  const key = `${dir}|${sorted.join(",")}`;
  const hit = hashCache.get(key);
  if (hit?.stamp === stamp) return hit.hash;
  const hash = hashFilesWithProgress(dir, sorted);
  hashCache.set(key, { stamp, hash });
  return hash;
}

/**
 * sha256 over the named files of a folder, as hashModelFiles computes it (each name then its bytes,
 * in name order) but uncached, reporting bytes read so an import of a large checkpoint shows hashing progress.
 */
export function hashFilesWithProgress(dir: string, files: readonly string[], onBytes?: (read: number, total: number) => void): string {
  const sorted = [...files].sort();
  const total = sorted.reduce((a, f) => a + fs.statSync(path.join(dir, f)).size, 0);
  const h = createHash("sha256");
  const buf = Buffer.alloc(4 << 20);
  let read = 0, reported = 0;
  for (const f of sorted) {
    h.update(`${f}\0`);
    const fd = fs.openSync(path.join(dir, f), "r");
    try {
      for (let pos = 0, n; (n = fs.readSync(fd, buf, 0, buf.length, pos)) > 0; pos += n) {
        h.update(buf.subarray(0, n));
        read += n;
        if (read - reported >= 64 << 20) {
          reported = read;
          onBytes?.(read, total);
        }
      }
    } finally {
      fs.closeSync(fd);
    }
  }
  onBytes?.(read, total);
  return h.digest("hex");
}

/** Whether a process with this pid exists (EPERM: it exists but is not ours). */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * Removes `.<name>.tmp-<pid>-…` / `.<name>.old-<pid>-…` siblings left by interrupted atomic builds
 * whose process is gone (a running build of another process is left alone).
 */
export function removeStaleBuilds(parent: string, name: string): void {
  let entries: string[];
  try {
    entries = fs.readdirSync(parent);
  } catch {
    return;
  }
  const re = new RegExp(`^\\.${name.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}\\.(tmp|old)-(\\d+)-`);
  for (const e of entries) {
    const m = re.exec(e);
    if (m && !pidAlive(Number(m[2]))) fs.rmSync(path.join(parent, e), { recursive: true, force: true });
  }
}

/**
 * Moves a finished build `tmp` (a sibling of `target`) into place, setting any existing `target` aside as
 * `.<name>.old-<pid>-…` until the rename succeeds. If the rename fails (another process got there first), the
 * old directory is put back when nothing took its place, and a `target` that `accept()` approves is kept:
 * returns false then. Returns true when `tmp` is now `target`; rethrows otherwise.
 */
export function swapIntoPlace(tmp: string, target: string, accept: () => boolean): boolean {
  let old: string | null = null;
  if (fs.existsSync(target)) {
    old = path.join(path.dirname(target), `.${path.basename(target)}.old-${process.pid}-${Date.now()}`);
    fs.renameSync(target, old);
  }
  try {
    fs.renameSync(tmp, target);
  } catch (e) {
    if (old && !fs.existsSync(target)) fs.renameSync(old, target);
    if (fs.existsSync(target) && accept()) {
      if (old) fs.rmSync(old, { recursive: true, force: true });
      return false;
    }
    throw e;
  }
  if (old) fs.rmSync(old, { recursive: true, force: true });
  return true;
}
