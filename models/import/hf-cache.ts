/**
 * Checkpoints already downloaded into the Hugging Face hub cache, found without downloading anything:
 *   <cache>/models--<org>--<name>/refs/<branch>           the commit a branch points at
 *   <cache>/models--<org>--<name>/snapshots/<commit>/…    the files, as symlinks into ../../blobs/
 *   <cache>/models--<org>--<name>/blobs/<etag>            the bytes; an LFS file's etag is its sha256
 * The cache is HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub (as huggingface_hub reads it).
 */
import { createHash } from "node:crypto";
import { closeSync, existsSync, lstatSync, openSync, readdirSync, readFileSync, readlinkSync, readSync, statSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { config } from "@/engine/config";
import { hashFilesWithProgress } from "../io/model-dir";

export interface CachedCheckpoint {
  /** "org/name". */
  repoId: string;
  /** The snapshot's commit hash. */
  revision: string;
  /** Branches and tags pointing at this commit (e.g. ["main"]). */
  refs: string[];
  dir: string;
  modelType: string | null;
  /** Files of the snapshot whose blob is missing (an interrupted download). */
  missing: string[];
  bytes: number;
}

/** The hub cache directory huggingface_hub would use. */
export function hfCacheDir(): string {
  const c = config();
  if (c.HF_HUB_CACHE) return path.resolve(/*turbopackIgnore: true*/ c.HF_HUB_CACHE);
  if (c.HF_HOME) return path.join(path.resolve(/*turbopackIgnore: true*/ c.HF_HOME), "hub");
  return path.join(os.homedir(), ".cache", "huggingface", "hub");
}

const REPO_DIR = /^models--(.+?)--(.+)$/;
const COMMIT = /^[0-9a-f]{40}$/;
const SHA256 = /^[0-9a-f]{64}$/;

function readRefs(repoDir: string): Map<string, string[]> {
  const byCommit = new Map<string, string[]>();
  const walk = (dir: string, prefix: string) => {
    let entries;
    try {
      entries = readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      if (e.isDirectory()) walk(path.join(dir, e.name), `${prefix}${e.name}/`);
      else {
        const commit = readFileSync(path.join(dir, e.name), "utf8").trim();
        byCommit.set(commit, [...(byCommit.get(commit) ?? []), `${prefix}${e.name}`]);
      }
    }
  };
  walk(path.join(repoDir, "refs"), "");
  return byCommit;
}

function snapshotFiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (rel: string) => {
    for (const e of readdirSync(path.join(dir, rel), { withFileTypes: true })) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) walk(r);
      else out.push(r);
    }
  };
  walk("");
  return out.sort();
}

/** Every model snapshot in the cache that holds a config.json, by repo id; `main` first, then other refs, then the rest. */
export function listHfCache(root = hfCacheDir()): CachedCheckpoint[] {
  if (config().STUDIO_HF_CACHE === "off" || !existsSync(/*turbopackIgnore: true*/ root)) return [];
  const out: CachedCheckpoint[] = [];
  for (const repo of readdirSync(/*turbopackIgnore: true*/ root, { withFileTypes: true })) {
    const m = REPO_DIR.exec(repo.name);
    if (!m || !repo.isDirectory()) continue;
    const repoDir = path.join(root, repo.name);
    const refs = readRefs(repoDir);
    let revisions: string[];
    try {
      revisions = readdirSync(path.join(repoDir, "snapshots"));
    } catch {
      continue;
    }
    for (const revision of revisions.sort()) {
      const dir = path.join(repoDir, "snapshots", revision);
      if (!existsSync(path.join(dir, "config.json"))) continue;
      let modelType: string | null = null;
      try {
        modelType = String((JSON.parse(readFileSync(path.join(dir, "config.json"), "utf8")) as { model_type?: unknown }).model_type ?? "") || null;
      } catch {
        // unreadable config.json: listed, inspecting it says why
      }
      const missing: string[] = [];
      let bytes = 0;
      for (const f of snapshotFiles(dir)) {
        try {
          bytes += statSync(path.join(dir, f)).size;
        } catch {
          missing.push(f);
        }
      }
      out.push({ repoId: `${m[1]}/${m[2]}`, revision, refs: refs.get(revision) ?? [], dir, modelType, missing, bytes });
    }
  }
  const rank = (c: CachedCheckpoint) => (c.refs.includes("main") ? 0 : c.refs.length ? 1 : 2);
  return out.sort((a, b) => a.repoId.localeCompare(b.repoId) || rank(a) - rank(b) || a.revision.localeCompare(b.revision));
}

/**
 * The snapshot a repo id names: "org/name" (the commit `main` points at, else the only snapshot),
 * "org/name@<branch>" or "org/name@<commit or its prefix>". Throws naming what the cache has.
 */
export function findCachedCheckpoint(spec: string, root = hfCacheDir()): CachedCheckpoint {
  const [repoId, rev] = spec.split("@") as [string, string | undefined];
  const all = listHfCache(root).filter((c) => c.repoId === repoId);
  if (!all.length) throw new Error(`${repoId} is not in the Hugging Face cache (${root}); \`npm run cli -- import --list\` shows what is`);
  const pick = rev === undefined ? (all.find((c) => c.refs.includes("main")) ?? (all.length === 1 ? all[0] : undefined)) : all.find((c) => c.refs.includes(rev) || (rev.length >= 7 && c.revision.startsWith(rev)));
  if (!pick) throw new Error(`${spec}: choose a revision of ${repoId}: ${all.map((c) => `${c.revision.slice(0, 12)}${c.refs.length ? ` (${c.refs.join(", ")})` : ""}`).join(", ")}`);
  if (pick.missing.length) throw new Error(`${repoId}@${pick.revision.slice(0, 12)} is incomplete in the cache: ${pick.missing.slice(0, 5).join(", ")} missing (an interrupted download)`);
  return pick;
}

/** The repo and revision of a folder inside the cache (…/models--org--name/snapshots/<commit>), else null. */
export function snapshotOf(dir: string): { repoId: string; revision: string } | null {
  const abs = path.resolve(dir);
  const revision = path.basename(abs);
  const snapshots = path.dirname(abs);
  const m = REPO_DIR.exec(path.basename(path.dirname(snapshots)));
  if (!m || path.basename(snapshots) !== "snapshots" || !COMMIT.test(revision)) return null;
  return { repoId: `${m[1]}/${m[2]}`, revision };
}

/**
 * The sha256 of a snapshot file without reading it, when that is sound: the file is a symlink straight
 * into its repo's blobs/ whose name is 64 hex digits (an LFS object, named by its content's sha256) and
 * the blob is a regular file. Anything else (small git files, named by their git sha1, or copies) → null.
 */
export function blobSha256(dir: string, file: string): string | null {
  const p = path.join(dir, file);
  let link: string;
  try {
    if (!lstatSync(p).isSymbolicLink()) return null;
    link = readlinkSync(p);
  } catch {
    return null;
  }
  const target = path.resolve(path.dirname(p), link);
  const name = path.basename(target);
  if (!SHA256.test(name) || path.basename(path.dirname(target)) !== "blobs") return null;
  try {
    if (!lstatSync(target).isFile()) return null;
  } catch {
    return null;
  }
  return name;
}

/**
 * A checkpoint's content hash. A plain folder: sha256 over each file's name and bytes, in name order
 * (models/io/model-dir.ts hashFilesWithProgress). A cache snapshot whose weights are LFS blobs: sha256 over
 * each file's name and sha256, taking the sha256 from the blob's name instead of reading gigabytes again
 * (only the small files are read). `onBytes` reports the bytes actually read.
 */
export function checkpointHash(dir: string, files: readonly string[], onBytes?: (read: number, total: number) => void): { hash: string; reusedBlobs: number } | null {
  const sorted = [...files].sort();
  const known = sorted.map((f) => blobSha256(dir, f));
  const reusedBlobs = known.filter(Boolean).length;
  if (reusedBlobs === 0) return null;
  const toRead = sorted.filter((_, i) => !known[i]);
  const total = toRead.reduce((a, f) => a + statSync(path.join(dir, f)).size, 0);
  let read = 0;
  const h = createHash("sha256");
  const buf = Buffer.alloc(1 << 20);
  sorted.forEach((f, i) => {
    let digest = known[i];
    if (!digest) {
      const fh = createHash("sha256");
      const fd = openSync(path.join(dir, f), "r");
      try {
        for (let pos = 0, n; (n = readSync(fd, buf, 0, buf.length, pos)) > 0; pos += n) {
          fh.update(buf.subarray(0, n));
          read += n;
        }
      } finally {
        closeSync(fd);
      }
      digest = fh.digest("hex");
    }
    h.update(`${f}\0sha256:${digest}\n`);
  });
  onBytes?.(read, total);
  return { hash: h.digest("hex"), reusedBlobs };
}

/** The content hash an import names its build by (checkpointHash for cache snapshots, else every byte). */
export function sourceHash(dir: string, files: readonly string[], onBytes?: (read: number, total: number) => void): string {
  return checkpointHash(dir, files, onBytes)?.hash ?? hashFilesWithProgress(dir, files, onBytes);
}
