import { createHash } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cachedGraphFile, graphCacheFile, graphsDir } from "@/models/onnx/graph-cache";

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "graph-cache-test-"));
const saved = process.env.STUDIO_MODELS_DIR;
beforeAll(() => (process.env.STUDIO_MODELS_DIR = path.join(tmp, "models")));
afterAll(() => {
  if (saved === undefined) delete process.env.STUDIO_MODELS_DIR;
  else process.env.STUDIO_MODELS_DIR = saved;
  fs.rmSync(tmp, { recursive: true, force: true });
});

describe("graph cache (models/onnx/graph-cache.ts)", () => {
  it("builds a key's graph once, into <models dir>/.graphs/<sha256 of the key's JSON>.onnx", () => {
    let builds = 0;
    const build = () => (builds++, new Uint8Array([1, 2, 3]));
    const key = { kind: "x", hash: "abc", v: 1 };
    const file = cachedGraphFile(key, build);
    expect(path.dirname(file)).toBe(path.join(tmp, "models", ".graphs"));
    expect(graphsDir()).toBe(path.dirname(file));
    // the name existing caches have: sha256 over JSON.stringify(key)
    expect(path.basename(file)).toBe(`${createHash("sha256").update('{"kind":"x","hash":"abc","v":1}').digest("hex")}.onnx`);
    expect([...fs.readFileSync(file)]).toEqual([1, 2, 3]);
    expect(cachedGraphFile(key, build)).toBe(file);
    expect(builds).toBe(1);
    expect(cachedGraphFile({ ...key, v: 2 }, build)).not.toBe(file);
    expect(builds).toBe(2);
  });

  it("a build that throws leaves no file and no temporary file; an empty file is rebuilt", () => {
    const key = { kind: "fails" };
    const failing = () => {
      throw new Error("no weights");
    };
    expect(() => cachedGraphFile(key, failing)).toThrow("no weights");
    expect(fs.existsSync(graphCacheFile(key))).toBe(false);
    expect(fs.readdirSync(graphsDir()).filter((f) => f.endsWith(".tmp"))).toEqual([]);
    fs.writeFileSync(graphCacheFile(key), "");
    expect([...fs.readFileSync(cachedGraphFile(key, () => new Uint8Array([9])))]).toEqual([9]);
  });
});
