import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, expect, it } from "vitest";
import { deleteImportedModel, importCheckpoint, type ImportProgress } from "@/models/import/import";
import { writeFamilyCheckpoint } from "./family-checkpoints";

const tmp = mkdtempSync(path.join(os.tmpdir(), "import-life-"));
const root = path.join(tmp, "models");
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

it("an interrupted import's build folder (dead process) is removed by the next import; progress reports bytes up to the total", async () => {
  const src = path.join(tmp, "src");
  await writeFamilyCheckpoint(src, "mixtral", { seed: 3 });
  const stale = path.join(root, "mixtral", ".m.tmp-999999999-deadbeef");
  mkdirSync(stale, { recursive: true });
  writeFileSync(path.join(stale, "model.onnx.data"), "partial");
  const seen: ImportProgress[] = [];
  const r = await importCheckpoint(src, { root, name: "m", onProgress: (p) => seen.push(p) });
  expect(existsSync(stale)).toBe(false);
  expect(readdirSync(path.join(root, "mixtral"))).toEqual(["m"]);
  const writing = seen.filter((p) => p.phase === "writing");
  expect(writing.length).toBeGreaterThan(10);
  expect(writing.every((p, i) => i === 0 || p.bytes >= writing[i - 1]!.bytes)).toBe(true);
  expect(writing.at(-1)!.etaSeconds).toBeDefined();
  expect(seen.at(-1)!.phase).toBe("done");
  expect(writing.at(-1)!.bytes).toBeGreaterThanOrEqual(writing.at(-1)!.totalBytes); // data file ≥ the estimate (alignment)
  // changed source files → imported again (hash differs), replacing the old folder atomically
  await writeFamilyCheckpoint(src, "mixtral", { seed: 4 });
  const again = await importCheckpoint(src, { root, name: "m" });
  expect(again.status).toBe("imported");
  expect(again.manifest.sourceHash).not.toBe(r.manifest.sourceHash);
  expect(readdirSync(path.join(root, "mixtral"))).toEqual(["m"]);
  // the same files → a no-op; a changed chat template alone (copied with the model) → imported again
  expect((await importCheckpoint(src, { root, name: "m" })).status).toBe("unchanged");
  writeFileSync(path.join(src, "chat_template.jinja"), "{% for m in messages %}[{{ m.role }}] {{ m.content }}\n{% endfor %}");
  const templated = await importCheckpoint(src, { root, name: "m" });
  expect(templated.status).toBe("imported");
  expect(existsSync(path.join(templated.dir, "chat_template.jinja"))).toBe(true);
});

it("delete removes only imported models inside the models dir", async () => {
  mkdirSync(path.join(root, "uni-moe-tiny", "tiny"), { recursive: true });
  writeFileSync(path.join(root, "uni-moe-tiny", "tiny", "config.json"), "{}");
  expect(() => deleteImportedModel("uni-moe-tiny/tiny", root)).toThrow("not an imported model");
  expect(() => deleteImportedModel("../etc", root)).toThrow("not a model in the models directory");
  deleteImportedModel("mixtral/m", root);
  expect(existsSync(path.join(root, "mixtral", "m"))).toBe(false);
  expect(existsSync(path.join(root, "uni-moe-tiny", "tiny"))).toBe(true);
});

it("the import's content hash is the one models/io/model-dir.ts computes (variants check the source with it)", async () => {
  const { hashFilesWithProgress, hashModelFiles } = await import("@/models/io/model-dir");
  const { checkpointFiles } = await import("@/models/import/checkpoint");
  const src = path.join(tmp, "hash-src");
  await writeFamilyCheckpoint(src, "qwen2_moe", { shards: 2 });
  const files = checkpointFiles(src);
  const seen: number[] = [];
  expect(hashFilesWithProgress(src, files, (read) => seen.push(read))).toBe(hashModelFiles(src, files));
  expect(seen.at(-1)).toBeGreaterThan(0);
});
