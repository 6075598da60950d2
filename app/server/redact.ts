import { existsSync, realpathSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { config } from "@/engine/config";
import { hfCacheDir } from "@/models/import/hf-cache";
import { modelsDir } from "@/engine/config";
import { dataDir } from "@/prisma/url";

/**
 * The server's folders an import may read from, each with the short name the browser sees instead of
 * its path: <data dir>/checkpoints (STUDIO_CHECKPOINTS_DIR), each STUDIO_IMPORT_ROOTS entry and the
 * Hugging Face cache (unless STUDIO_HF_CACHE=off), named by their folder names ("checkpoints", "ckpts",
 * "ckpts-2" for a second folder of that name, "hub").
 */
export function importRoots(): { label: string; dir: string }[] {
  const c = config();
  const hf = c.STUDIO_HF_CACHE === "on" && existsSync(hfCacheDir()) ? [hfCacheDir()] : [];
  const dirs = [c.STUDIO_CHECKPOINTS_DIR ?? path.join(dataDir(), "checkpoints"), ...(c.STUDIO_IMPORT_ROOTS ?? []), ...hf];
  const unique = [...new Set(dirs.map((r) => (existsSync(r) ? realpathSync(r) : path.resolve(r))))];
  const used = new Map<string, number>();
  return unique.map((dir) => {
    const base = path.basename(dir) || "root";
    const n = (used.get(base) ?? 0) + 1;
    used.set(base, n);
    return { label: n === 1 ? base : `${base}-${n}`, dir };
  });
}

/** A path as the browser may see it: `<root label>/<relative>` inside an import folder, else its last part. */
export function displayPath(dir: string): string {
  const abs = existsSync(dir) ? realpathSync(dir) : dir;
  for (const r of importRoots()) {
    if (abs === r.dir) return r.label;
    if (abs.startsWith(r.dir + path.sep)) return `${r.label}/${path.relative(r.dir, abs).split(path.sep).join("/")}`;
  }
  return `…/${path.basename(abs)}`;
}

/** Absolute paths under these top-level folders are taken for server paths when no known folder matched. */
const SERVER_PATH = /(?<![\w.~-])\/(?:home|root|tmp|var|usr|opt|srv|mnt|media|etc|work|data|Users|private|run|proc|nix|snap|lib|lib64|bin|sbin|dev|sys|app|workspace)(?:\/[^\s"'`<>()[\]{},;]*)?/g;

/**
 * A message for a browser with the server's absolute paths taken out: known folders become their names
 * (<data dir>, <models dir>, an import folder's label, <app>, <home>, <tmp>), any other absolute path
 * under a system folder its last part. For tRPC errors, run events and route errors.
 */
export function redactPaths(text: string): string {
  const known: [string, string][] = [
    ...importRoots().map((r): [string, string] => [r.dir, r.label]),
    [safeResolve(modelsDir()), "<models dir>"],
    [safeResolve(dataDir()), "<data dir>"],
    [process.cwd(), "<app>"],
    [os.tmpdir(), "<tmp>"],
    [os.homedir(), "<home>"],
  ];
  const variants = known.flatMap(([dir, label]): [string, string][] => [[dir, label], ...(existsSync(dir) ? [[realpathSync(dir), label] as [string, string]] : [])]);
  variants.sort((a, b) => b[0].length - a[0].length);
  let out = text;
  for (const [dir, label] of variants) if (dir.length > 1) out = out.split(dir).join(label);
  return out.replace(SERVER_PATH, (p) => `…/${path.basename(p)}`);
}

/** redactPaths over every string of a JSON-like value (status objects whose notes may name install paths). */
export function redactStrings<T>(value: T): T {
  if (typeof value === "string") return redactPaths(value) as T;
  if (Array.isArray(value)) return value.map(redactStrings) as T;
  if (value && typeof value === "object" && Object.getPrototypeOf(value) === Object.prototype) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, redactStrings(v)])) as T;
  }
  return value;
}

function safeResolve(p: string): string {
  return path.resolve(/*turbopackIgnore: true*/ p);
}
