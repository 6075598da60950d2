import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, expect, test } from "vitest";
import { readDefaults, writeDefaults } from "@/models/defaults";

const saved = process.env.STUDIO_MODELS_DIR;
let root: string;
beforeEach(() => {
  root = mkdtempSync(path.join(os.tmpdir(), "model-defaults-"));
  process.env.STUDIO_MODELS_DIR = path.join(root, "models"); // not created yet
});
afterEach(() => {
  if (saved === undefined) delete process.env.STUDIO_MODELS_DIR;
  else process.env.STUDIO_MODELS_DIR = saved;
});

test("no defaults until one is written; written defaults read back from <models dir>/defaults.json", () => {
  expect(readDefaults()).toEqual({});
  writeDefaults({ "model.moe-llm": "imported/my-qwen" });
  expect(JSON.parse(readFileSync(path.join(root, "models", "defaults.json"), "utf8"))).toEqual({ "model.moe-llm": "imported/my-qwen" });
  expect(readDefaults()).toEqual({ "model.moe-llm": "imported/my-qwen" });
});

test("an unreadable defaults file counts as no defaults", () => {
  writeDefaults({});
  writeFileSync(path.join(root, "models", "defaults.json"), "{not json");
  expect(readDefaults()).toEqual({});
});
