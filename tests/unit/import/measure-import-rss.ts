/**
 * Peak RSS of one import (the figure reported in the README):
 *   npx tsx tests/unit/import/generate-checkpoint.ts mixtral /tmp/large --large
 *   npx tsx tests/unit/import/measure-import-rss.ts /tmp/large [--dtype fp16]
 * Imports into a temporary models dir and prints the checkpoint size, time and the process's peak RSS
 * (getrusage ru_maxrss, which includes the Node runtime itself).
 */
import { mkdtempSync, readdirSync, rmSync, statSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import type { StorageDtype } from "@/models/import/external-graph";
import { importCheckpoint } from "@/models/import/import";

async function main(): Promise<void> {
  const [src, ...rest] = process.argv.slice(2).filter((a) => a !== "--");
  if (!src) throw new Error("usage: measure-import-rss.ts <checkpoint dir> [--dtype fp16]");
  const di = rest.indexOf("--dtype");
  const dtype = (di >= 0 ? rest[di + 1] : "fp32") as StorageDtype;
  const root = mkdtempSync(path.join(os.tmpdir(), "import-rss-"));
  const size = readdirSync(src).reduce((a, f) => a + statSync(path.join(src, f)).size, 0);
  const baseline = process.memoryUsage().rss;
  let sampled = 0;
  const t0 = performance.now();
  try {
    const r = await importCheckpoint(src, { root, name: "rss", dtype, onProgress: () => void (sampled = Math.max(sampled, process.memoryUsage().rss)) });
    const secs = (performance.now() - t0) / 1000;
    const peak = process.resourceUsage().maxRSS * 1024;
    const mb = (b: number) => `${(b / 1e6).toFixed(0)} MB`;
    console.log(`checkpoint ${(size / 1e9).toFixed(2)} GB (${r.manifest.parameters / 1e6}M params) -> ${dtype} graph ${(r.manifest.bytesOnDisk / 1e9).toFixed(2)} GB in ${secs.toFixed(1)} s`);
    console.log(`RSS before ${mb(baseline)}, peak sampled during the import ${mb(sampled)}, process peak (ru_maxrss) ${mb(peak)}`);
    if (peak >= 1e9) process.exitCode = 1;
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
