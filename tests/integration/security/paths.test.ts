import { mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { PathEscapeError, resolveInside } from "@/engine/paths";
import { freshDataDir } from "../fresh-db";

// Every path that comes from a request or a workflow param stays inside its directory.
const data = freshDataDir();
process.env.STUDIO_DATA_DIR = data;
process.env.STUDIO_MODELS_DIR = path.join(data, "models");
process.env.STUDIO_DATASETS_DIR = path.join(data, "datasets");
const { resolveModel } = await import("@/models/moe-llm/moe-llm-model");
const { resolveDatasetSource, DatasetError } = await import("@/engine/batch/dataset");
const { fileStorage } = await import("@/app/server/storage");

const TRAVERSALS = ["../secret", "a/../../secret", "..", "/etc/passwd", "C:\\Windows\\win.ini", "a\\..\\..\\secret", "ok/\0/x", ""];

describe("resolveInside", () => {
  const root = mkdtempSync(path.join(os.tmpdir(), "inside-"));
  const outside = mkdtempSync(path.join(os.tmpdir(), "outside-"));
  writeFileSync(path.join(outside, "secret.txt"), "secret");
  mkdirSync(path.join(root, "models/m1"), { recursive: true });
  symlinkSync(outside, path.join(root, "escape"));
  symlinkSync(path.join(root, "models"), path.join(root, "alias"));

  it("resolves plain relative paths inside, existing or not", () => {
    expect(resolveInside(root, "models/m1")).toBe(path.join(root, "models/m1"));
    expect(resolveInside(root, "models/not-yet/config.json")).toBe(path.join(root, "models/not-yet/config.json"));
    expect(resolveInside(root, "./models")).toBe(path.join(root, "models"));
    expect(resolveInside(root, "..foo")).toBe(path.join(root, "..foo"));
    // A symlink that stays inside is fine.
    expect(resolveInside(root, "alias/m1")).toBe(path.join(root, "alias/m1"));
  });

  it("refuses .., absolute paths, NUL bytes, empty paths and symlinks that lead out", () => {
    for (const bad of TRAVERSALS) expect(() => resolveInside(root, bad), bad).toThrow(PathEscapeError);
    expect(() => resolveInside(root, "escape/secret.txt")).toThrow(/symbolic link/);
    expect(() => resolveInside(root, "escape")).toThrow(/symbolic link/);
    expect(() => resolveInside(root, "escape/new-file")).toThrow(/symbolic link/);
    expect(() => resolveInside(root, "../secret", "model", "the models directory")).toThrow('model "../secret" is outside the models directory: ".." is not allowed');
  });
});

describe("path parameters", () => {
  it("model refs (workflow params, models.info) cannot leave the models dir", async () => {
    mkdirSync(path.join(data, "models"), { recursive: true });
    const outside = mkdtempSync(path.join(os.tmpdir(), "model-out-"));
    writeFileSync(path.join(outside, "config.json"), "{}");
    symlinkSync(outside, path.join(data, "models", "linked"));
    for (const bad of ["../studio.db", "/etc", "family/../../x", "linked"]) {
      await expect(resolveModel(bad), bad).rejects.toThrow(/outside the models directory/);
    }
  });

  it("dataset sources cannot leave the datasets dir", () => {
    for (const bad of ["../studio.db", "/etc/passwd", "x/../../studio.db", "examples/../../../package.json"]) {
      expect(() => resolveDatasetSource(bad), bad).toThrow(DatasetError);
    }
    expect(resolveDatasetSource("mine/rows.jsonl")).toBe(path.join(data, "datasets", "mine/rows.jsonl"));
  });

  it("stored file ids never become paths outside the store", async () => {
    for (const bad of ["../studio.db", "../../etc/passwd", `${"a".repeat(64)}/../x`, `${"A".repeat(64)}.png`, "a".repeat(63)]) {
      await expect(fileStorage().read(bad), bad).rejects.toThrow(/not a valid file id/);
    }
  });
});
