/**
 * Peak RSS and time of building the fp16 compute graph of an imported model (models/import/fp16.ts), the figure in
 * the README:
 *   npx tsx tests/unit/import/generate-checkpoint.ts mixtral /tmp/large --large
 *   npx tsx tests/unit/import/measure-import-rss.ts ... (or any import of it, e.g. `npm run cli -- import /tmp/large`)
 *   npx tsx tests/unit/import/measure-fp16-rss.ts <imported model dir>
 * Removes an fp16 graph built before, converts, and prints the sizes, time and the process's peak RSS (getrusage
 * ru_maxrss, which includes the Node runtime itself). Exits 1 when the peak reaches 1 GB.
 */
import { existsSync, rmSync, statSync } from "node:fs";
import path from "node:path";
import { ensureFp16Graph, fp16GraphPath } from "@/models/import/fp16";
import { DATA_FILE, GRAPH_FILE } from "@/models/import/import";

function main(): void {
  const [dir] = process.argv.slice(2).filter((a) => a !== "--");
  if (!dir) throw new Error("usage: measure-fp16-rss.ts <imported model dir>");
  const graph = path.join(dir, GRAPH_FILE);
  const target = fp16GraphPath(graph);
  for (const f of [target, `${target}.data`]) rmSync(f, { force: true });
  const mb = (b: number) => `${(b / 1e6).toFixed(0)} MB`;
  const baseline = process.memoryUsage().rss;
  const t0 = performance.now();
  ensureFp16Graph(graph);
  const secs = (performance.now() - t0) / 1000;
  const peak = process.resourceUsage().maxRSS * 1024;
  const data = existsSync(`${target}.data`) ? statSync(`${target}.data`).size : 0;
  console.log(`${DATA_FILE} ${(statSync(path.join(dir, DATA_FILE)).size / 1e9).toFixed(2)} GB -> ${path.basename(target)} ${(statSync(target).size / 1e3).toFixed(0)} kB` + (data ? ` + ${path.basename(target)}.data ${(data / 1e9).toFixed(2)} GB` : " (reads the same data file)") + ` in ${secs.toFixed(1)} s`);
  console.log(`RSS before ${mb(baseline)}, process peak (ru_maxrss) ${mb(peak)}`);
  if (peak >= 1e9) process.exitCode = 1;
}

main();
