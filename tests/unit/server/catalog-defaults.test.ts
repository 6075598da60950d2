import { mkdtempSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, expect, test } from "vitest";
import { catalogInfo } from "@/app/server/catalog";

const saved = process.env.STUDIO_MODELS_DIR;
afterEach(() => {
  if (saved === undefined) delete process.env.STUDIO_MODELS_DIR;
  else process.env.STUDIO_MODELS_DIR = saved;
});

function llmDefaults() {
  return catalogInfo().nodes.find((n) => n.type === "model.moe-llm")!.defaults;
}

test("a new MoE-LLM node starts on the model set as default on the Models page, and on the built-in one otherwise", () => {
  process.env.STUDIO_MODELS_DIR = mkdtempSync(path.join(os.tmpdir(), "catalog-defaults-"));
  expect(llmDefaults().model).toBe("uni-moe-tiny/tiny");
  writeFileSync(path.join(process.env.STUDIO_MODELS_DIR, "defaults.json"), JSON.stringify({ "model.moe-llm": "imported/my-qwen" }));
  expect(llmDefaults().model).toBe("imported/my-qwen");
  // node types without a model param are untouched
  expect(catalogInfo().nodes.find((n) => n.type === "input.text")?.defaults).not.toHaveProperty("model");
});
