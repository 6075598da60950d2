/**
 * The store of seeded models (uni-moe-tiny's LLMs, its TTS, DiT and encoders): each is a directory
 * `<models dir>/uni-moe-tiny/<name>` holding a config file, safetensors weights generated from a seed, and
 * `manifest.json` (written last; its `contentHash` names the config, seed and generator version it was made from).
 *
 * `ensureSeededModel` makes sure the directory holds that model: nothing happens when the manifest's hash, the config
 * file and every weights file (size and tensor count) check out; otherwise the model is written into a temporary
 * sibling `.<name>.tmp-<pid>-…` and renamed into place, so a build that fails or whose process dies never leaves
 * half a model under the name (a dead process's temporary dirs are removed by the next build). Concurrent calls
 * in one process share one build; a build that loses a race with another process keeps that process's model when
 * it checks out.
 */
import fs from "node:fs";
import path from "node:path";
import { canonicalJson } from "../../engine/hash";
import { KeyedCache } from "./keyed-cache";
import { removeStaleBuilds, swapIntoPlace } from "./model-dir";
import { readSafetensorsHeader } from "./safetensors";

/** What the store reads from every seeded model's manifest.json. */
export interface SeededManifest {
  contentHash: string;
  /** Bytes of each weights file. */
  files: Record<string, number>;
}

/** The manifest.json of a seeded `uni-moe-tiny/<name>` model (decoder, encoders, TTS): who it is and how it was made. */
export interface SeededModelManifest<Name extends string, Parameters = number> extends SeededManifest {
  family: "uni-moe-tiny";
  name: Name;
  seed: number;
  generatorVersion: number;
  label: "seeded, untrained";
  parameters: Parameters;
  createdAt: string;
}

export interface SeededOutcome<M extends SeededManifest> {
  dir: string;
  /** false when a matching model was already there (or another process built it meanwhile). */
  built: boolean;
  manifest: M;
  /** Why it was (re)built. */
  reason?: string;
}

export interface SeededModelSpec<M extends SeededManifest, R> {
  /** The model directory. */
  dir: string;
  /** Hash of what determines the files (config, seed, generator version); a manifest with another is stale. */
  contentHash: string;
  /** The config file's name and content (written by the store; a file that differs is stale). */
  configFile: string;
  config: unknown;
  /** Each weights file the model has → its tensor count. */
  weights: Record<string, () => number>;
  /** Other files a complete model has (written by `write`). */
  otherFiles?: readonly string[];
  /** Writes the weights and other files into the temporary directory; returns the manifest (the store writes it, last). */
  write: (tmp: string) => Promise<M>;
  /** The caller's result (concurrent callers for one directory get the same object). */
  result: (outcome: SeededOutcome<M>) => R;
}

const building = new KeyedCache<string, unknown>({ keep: false });

const json = (v: unknown) => `${JSON.stringify(v, null, 2)}\n`;
const readJson = (file: string): unknown => JSON.parse(fs.readFileSync(file, "utf8"));

/** Why `dir` does not hold the model `spec` describes, or null if it does. */
export function seededStaleReason(dir: string, spec: Pick<SeededModelSpec<SeededManifest, unknown>, "contentHash" | "configFile" | "config" | "weights" | "otherFiles">): string | null {
  let manifest: SeededManifest;
  try {
    manifest = readJson(path.join(dir, "manifest.json")) as SeededManifest;
  } catch {
    return "no readable manifest.json";
  }
  if (manifest.contentHash !== spec.contentHash) return "manifest is for another config, seed or generator version";
  try {
    if (canonicalJson(readJson(path.join(dir, spec.configFile))) !== canonicalJson(spec.config)) return `${spec.configFile} was changed`;
  } catch {
    return `no readable ${spec.configFile}`;
  }
  for (const [name, count] of Object.entries(spec.weights)) {
    const file = path.join(dir, name);
    try {
      if (fs.statSync(file).size !== manifest.files?.[name]) return `${name} has the wrong size`;
      if (readSafetensorsHeader(file).tensors.size !== count()) return `${name} has the wrong tensors`;
    } catch (e) {
      return `${name} is unreadable (${(e as Error).message})`;
    }
  }
  for (const name of spec.otherFiles ?? []) if (!fs.existsSync(path.join(dir, name))) return `no ${name}`;
  return null;
}

/** Makes sure `spec.dir` holds the seeded model (see the file comment); resolves to `spec.result` of what happened. */
export function ensureSeededModel<M extends SeededManifest, R>(spec: SeededModelSpec<M, R>): Promise<R> {
  const target = path.resolve(/*turbopackIgnore: true*/ spec.dir);
  return building.get(target, () => ensureUncached({ ...spec, dir: target })) as Promise<R>;
}

/**
 * The files' identities (size, mtime, ctime, inode) when a directory last checked out, by directory: a model is
 * resolved once per run and per dataset record, and re-reading its manifest, config and weights headers each time
 * cost more than the tiny model's forward. Any rewrite, replacement or removal of one of these files changes its
 * stamp, so the full check runs again.
 */
const checkedOut = new Map<string, { contentHash: string; stamp: string; manifest: SeededManifest }>();

function filesStamp(dir: string, spec: Pick<SeededModelSpec<SeededManifest, unknown>, "configFile" | "weights" | "otherFiles">): string | null {
  const names = ["manifest.json", spec.configFile, ...Object.keys(spec.weights), ...(spec.otherFiles ?? [])];
  try {
    return names.map((name) => {
      const st = fs.statSync(path.join(dir, name), { bigint: true });
      return `${name}:${st.size}:${st.mtimeNs}:${st.ctimeNs}:${st.ino}`;
    }).join("|");
  } catch {
    return null;
  }
}

async function ensureUncached<M extends SeededManifest, R>(spec: SeededModelSpec<M, R>): Promise<R> {
  const target = spec.dir;
  const readManifest = () => readJson(path.join(target, "manifest.json")) as M;
  const stamp = filesStamp(target, spec);
  const known = checkedOut.get(target);
  if (stamp !== null && known && known.stamp === stamp && known.contentHash === spec.contentHash) return spec.result({ dir: target, built: false, manifest: known.manifest as M });
  const reason = fs.existsSync(target) ? seededStaleReason(target, spec) : "not built yet";
  if (reason === null) {
    const manifest = readManifest();
    if (stamp !== null) checkedOut.set(target, { contentHash: spec.contentHash, stamp, manifest });
    return spec.result({ dir: target, built: false, manifest });
  }
  checkedOut.delete(target);

  const parent = path.dirname(target);
  const base = path.basename(target);
  fs.mkdirSync(parent, { recursive: true });
  removeStaleBuilds(parent, base);
  const tmp = fs.mkdtempSync(path.join(parent, `.${base}.tmp-${process.pid}-`));
  fs.chmodSync(tmp, 0o755); // mkdtemp makes it private; the model dir should not be
  try {
    const manifest = await spec.write(tmp);
    if (manifest.contentHash !== spec.contentHash) throw new Error(`internal: the manifest's content hash is not the model's`);
    fs.writeFileSync(path.join(tmp, spec.configFile), json(spec.config));
    fs.writeFileSync(path.join(tmp, "manifest.json"), json(manifest)); // last: its presence marks a complete build
    // Another process may have put a complete model in place meanwhile; accept it if it matches.
    if (!swapIntoPlace(tmp, target, () => seededStaleReason(target, spec) === null)) return spec.result({ dir: target, built: false, manifest: readManifest() });
    return spec.result({ dir: target, built: true, manifest, reason });
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}
