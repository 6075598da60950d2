import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { hashFilesWithProgress } from "@/models/io/model-dir";
import { blobSha256, checkpointHash, findCachedCheckpoint, hfCacheDir, listHfCache, snapshotOf, sourceHash } from "@/models/import/hf-cache";
import { checkpointFiles } from "@/models/import/checkpoint";
import { writeFamilyCheckpoint } from "./family-checkpoints";
import { cliEntry } from "../../cli-bundle";

const tmp = mkdtempSync(path.join(os.tmpdir(), "hf-cache-"));
const cache = path.join(tmp, "hub");
const REV = "0123456789abcdef0123456789abcdef01234567";
const OLD = "89abcdef0123456789abcdef0123456789abcdef";
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/**
 * Lays a folder out as huggingface_hub's cache does: blobs named by etag (sha256 for LFS files — here the
 * .safetensors —, the git blob sha1 for small files), snapshot entries as relative symlinks into blobs/.
 */
function cacheRepo(src: string, repoId: string, revision: string, refs: string[] = []): string {
  const repo = path.join(cache, `models--${repoId.replace("/", "--")}`);
  const snap = path.join(repo, "snapshots", revision);
  mkdirSync(path.join(repo, "blobs"), { recursive: true });
  mkdirSync(snap, { recursive: true });
  for (const f of readdirSync(src)) {
    const bytes = readFileSync(path.join(src, f));
    const etag = f.endsWith(".safetensors") ? createHash("sha256").update(bytes).digest("hex") : createHash("sha1").update(`blob ${bytes.length}\0`).update(bytes).digest("hex");
    writeFileSync(path.join(repo, "blobs", etag), bytes);
    symlinkSync(`../../blobs/${etag}`, path.join(snap, f));
  }
  for (const r of refs) {
    mkdirSync(path.dirname(path.join(repo, "refs", r)), { recursive: true });
    writeFileSync(path.join(repo, "refs", r), revision);
  }
  return snap;
}

let src: string;
let snap: string;
beforeAll(async () => {
  src = path.join(tmp, "src");
  await writeFamilyCheckpoint(src, "mixtral");
  writeFileSync(path.join(src, "tokenizer_config.json"), JSON.stringify({ eos_token: "</s>" }));
  snap = cacheRepo(src, "acme/tiny-moe", REV, ["main"]);
  cacheRepo(src, "acme/tiny-moe", OLD, ["v0.1"]);
  // An interrupted download: a snapshot entry whose blob never arrived.
  const broken = cacheRepo(src, "acme/half", REV, ["main"]);
  const st = readdirSync(broken).find((f) => f.endsWith(".safetensors"))!;
  rmSync(path.join(path.dirname(path.dirname(broken)), "blobs", createHash("sha256").update(readFileSync(path.join(src, st))).digest("hex")));
  // Not a model repo, and a dataset repo: ignored.
  mkdirSync(path.join(cache, "datasets--acme--stuff", "snapshots", REV), { recursive: true });
  mkdirSync(path.join(cache, ".locks"), { recursive: true });
});

describe("the Hugging Face cache", () => {
  it("is HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub", () => {
    const saved = { HF_HUB_CACHE: process.env.HF_HUB_CACHE, HF_HOME: process.env.HF_HOME };
    try {
      delete process.env.HF_HUB_CACHE;
      delete process.env.HF_HOME;
      expect(hfCacheDir()).toBe(path.join(os.homedir(), ".cache", "huggingface", "hub"));
      process.env.HF_HOME = "/srv/hf";
      expect(hfCacheDir()).toBe(path.join("/srv/hf", "hub"));
      process.env.HF_HUB_CACHE = cache;
      expect(hfCacheDir()).toBe(cache);
    } finally {
      for (const [k, v] of Object.entries(saved)) if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  });

  it("lists snapshots by repo id and revision with their refs, and flags incomplete ones", () => {
    const found = listHfCache(cache);
    expect(found.map((c) => [c.repoId, c.revision, c.refs, c.modelType, c.missing.length > 0])).toEqual([
      ["acme/half", REV, ["main"], "mixtral", true],
      ["acme/tiny-moe", REV, ["main"], "mixtral", false],
      ["acme/tiny-moe", OLD, ["v0.1"], "mixtral", false],
    ]);
    expect(findCachedCheckpoint("acme/tiny-moe", cache).revision).toBe(REV);
    expect(findCachedCheckpoint("acme/tiny-moe@v0.1", cache).revision).toBe(OLD);
    expect(findCachedCheckpoint(`acme/tiny-moe@${OLD.slice(0, 8)}`, cache).revision).toBe(OLD);
    expect(() => findCachedCheckpoint("acme/none", cache)).toThrow(/is not in the Hugging Face cache/);
    expect(() => findCachedCheckpoint("acme/half", cache)).toThrow(/incomplete in the cache: model.*safetensors missing/);
    expect(snapshotOf(snap)).toEqual({ repoId: "acme/tiny-moe", revision: REV });
    expect(snapshotOf(src)).toBeNull();
  });

  it("takes an LFS file's sha256 from its blob name (only the small files are read) and gives the hash a plain copy would get from its bytes only when no blob is reusable", () => {
    const files = checkpointFiles(snap);
    const weights = files.filter((f) => f.endsWith(".safetensors"));
    for (const f of weights) expect(blobSha256(snap, f)).toBe(createHash("sha256").update(readFileSync(path.join(snap, f))).digest("hex"));
    for (const f of files.filter((x) => !x.endsWith(".safetensors"))) expect(blobSha256(snap, f)).toBeNull(); // git sha1 names: read instead
    let read = 0;
    const r = checkpointHash(snap, files, (n) => (read = n))!;
    expect(r.reusedBlobs).toBe(weights.length);
    const small = files.filter((f) => !f.endsWith(".safetensors")).reduce((a, f) => a + readFileSync(path.join(snap, f)).length, 0);
    expect(read).toBe(small);
    // The same hash computed the slow way from every file's bytes (independent of the blob names).
    const slow = createHash("sha256");
    for (const f of [...files].sort()) slow.update(`${f}\0sha256:${createHash("sha256").update(readFileSync(path.join(snap, f))).digest("hex")}\n`);
    expect(r.hash).toBe(slow.digest("hex"));
    // A plain folder (no blobs) keeps the byte hash, so imports made before stay "unchanged".
    expect(checkpointHash(src, files)).toBeNull();
    expect(sourceHash(src, files)).toBe(hashFilesWithProgress(src, files));
    // A blob renamed to a wrong name is no longer trusted as a sha256 (the symlink dangles).
    const copy = path.join(tmp, "copy");
    cpSync(snap, copy, { dereference: true, recursive: true });
    expect(sourceHash(copy, files)).toBe(hashFilesWithProgress(copy, files));
  });

  it("cli import --list shows the cache; import <org/name> imports the snapshot under the repo's name", () => {
    const env = { ...process.env, HF_HUB_CACHE: cache, STUDIO_MODELS_DIR: path.join(tmp, "models") };
    const cli = (...args: string[]) => spawnSync(process.execPath, [...cliEntry(), ...args], { encoding: "utf8", env, timeout: 120_000 });
    const list = cli("import", "--list");
    expect(list.status).toBe(0);
    expect(list.stdout).toContain(`acme/tiny-moe@${REV.slice(0, 12)} (main)  mixtral`);
    expect(list.stdout).toContain(`acme/half@${REV.slice(0, 12)} (main)  mixtral`);
    expect(list.stdout).toMatch(/acme\/half.*INCOMPLETE/);
    const imp = cli("import", "acme/tiny-moe", "--dtype", "fp16");
    expect(imp.status, imp.stderr).toBe(0);
    expect(imp.stdout).toMatch(/^mixtral\/tiny-moe: imported in/m);
    const manifest = JSON.parse(readFileSync(path.join(tmp, "models", "mixtral", "tiny-moe", "import.json"), "utf8"));
    expect(manifest.sourceDir).toBe(snap);
    expect(manifest.sourceHash).toBe(checkpointHash(snap, manifest.sourceFiles)!.hash);
    expect(cli("import", "--from", snap, "--dtype", "fp16").stdout).toContain("mixtral/tiny-moe: already imported from these files");
    const half = cli("import", "acme/half");
    expect(half.status).toBe(1);
    expect(half.stderr).toContain("is incomplete in the cache");
    // A moved snapshot is no longer the cache's: the next import is named by its folder again.
    const moved = path.join(tmp, "moved");
    renameSync(path.join(tmp, "copy"), moved);
    expect(cli("inspect-checkpoint", moved).stdout).toContain("family: mixtral");
  });
});
