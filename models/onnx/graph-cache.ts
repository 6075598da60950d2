/**
 * The on-disk cache of built ONNX graphs: `<models dir>/.graphs/<sha256 of the key>.onnx`. A key names everything
 * the graph depends on (the model's content hash, the graph options, the builder's version), so a changed model or
 * builder gets a new file and an unchanged one is built once. Every graph model code builds from a model directory
 * goes through here (imported models keep theirs beside the import: models/import/runtime.ts).
 */
import { randomBytes, createHash } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { modelsDir } from "@/engine/config";

/** `<models dir>/.graphs`. */
export function graphsDir(): string {
  return path.join(modelsDir(), ".graphs");
}

/** The file name the graph of `key` has in the cache (sha256 of its JSON). */
export function graphCacheFile(key: unknown): string {
  return path.join(graphsDir(), `${createHash("sha256").update(JSON.stringify(key)).digest("hex")}.onnx`);
}

/**
 * The cached graph of `key`, built by `build()` when there is none: written to a temporary sibling and renamed into
 * place, so a reader (or a concurrent builder) never sees half a graph.
 */
export function cachedGraphFile(key: unknown, build: () => Uint8Array): string {
  const file = graphCacheFile(key);
  if (fs.existsSync(file) && fs.statSync(file).size > 0) return file;
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const bytes = build();
  const tmp = `${file}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`;
  try {
    fs.writeFileSync(tmp, bytes);
    fs.renameSync(tmp, file);
  } finally {
    fs.rmSync(tmp, { force: true });
  }
  return file;
}
