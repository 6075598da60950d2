import { createHash } from "node:crypto";
import fs from "node:fs";
import path from "node:path";

/**
 * sha256 over the named files of a folder, exactly as models/model-dir.ts hashModelFiles computes it (each name
 * then its bytes, in name order), reporting bytes read so an import of a large checkpoint shows hashing progress.
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
