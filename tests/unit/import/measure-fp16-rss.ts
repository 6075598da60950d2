/**
 * Peak RSS and time of building the fp16 compute graph of an imported model (models/import/fp16.ts), the figure in
 * the README:
 *   npx tsx tests/unit/import/generate-checkpoint.ts mixtral /tmp/large --large
 *   npx tsx tests/unit/import/measure-import-rss.ts ... (or any import of it, e.g. `npm run cli -- import /tmp/large`)
 *   npx tsx tests/unit/import/measure-fp16-rss.ts <imported model dir> [--compare]
 * Removes an fp16 graph built before, converts, and prints the sizes, time and the process's peak RSS (getrusage
 * ru_maxrss, which includes the Node runtime itself). Exits 1 when the peak reaches 1 GB.
 * --compare (after the measurement): loads the fp32 and the fp16 graph on CPU, runs 8 tokens through both and
 * prints load times and the relative logits difference.
 */
import { existsSync, readFileSync, rmSync, statSync } from "node:fs";
import path from "node:path";
import * as ort from "onnxruntime-node";
import { zMoeLlmConfig } from "@/models/moe-llm/config";
import { MoeLlmRunner } from "@/models/moe-llm/moe-llm-session";
import { ensureFp16Graph, fp16GraphPath } from "@/models/import/fp16";
import { DATA_FILE, GRAPH_FILE, IMPORT_GRAPH } from "@/models/import/import";

async function main(): Promise<void> {
  const [dir, ...rest] = process.argv.slice(2).filter((a) => a !== "--");
  if (!dir) throw new Error("usage: measure-fp16-rss.ts <imported model dir>");
  const graph = path.join(dir, GRAPH_FILE);
  const target = fp16GraphPath(graph);
  for (const f of [target, `${target}.data`]) rmSync(f, { force: true });
  const mb = (b: number) => `${(b / 1e6).toFixed(0)} MB`;
  const baseline = process.memoryUsage().rss;
  const t0 = performance.now();
  await ensureFp16Graph(graph);
  const secs = (performance.now() - t0) / 1000;
  const peak = process.resourceUsage().maxRSS * 1024;
  const data = existsSync(`${target}.data`) ? statSync(`${target}.data`).size : 0;
  console.log(`${DATA_FILE} ${(statSync(path.join(dir, DATA_FILE)).size / 1e9).toFixed(2)} GB -> ${path.basename(target)} ${(statSync(target).size / 1e3).toFixed(0)} kB` + (data ? ` + ${path.basename(target)}.data ${(data / 1e9).toFixed(2)} GB` : " (reads the same data file)") + ` in ${secs.toFixed(1)} s`);
  console.log(`RSS before ${mb(baseline)}, process peak (ru_maxrss) ${mb(peak)}`);
  if (peak >= 1e9) process.exitCode = 1;
  if (!rest.includes("--compare")) return;
  const config = zMoeLlmConfig.parse(JSON.parse(readFileSync(path.join(dir, "config.json"), "utf8")));
  const S = 8;
  const ids = Array.from({ length: S }, (_, i) => (i * 7919 + 13) % config.vocab_size);
  const logits: Float32Array[] = [];
  const masks: Float32Array[][] = [];
  for (const file of [graph, target]) {
    const l0 = performance.now();
    const session = await ort.InferenceSession.create(file, { graphOptimizationLevel: "all", logSeverityLevel: 3 });
    const loadS = (performance.now() - l0) / 1000;
    const r0 = performance.now();
    const out = await MoeLlmRunner.fromSession(config, IMPORT_GRAPH, session).forward({ batch: 1, seq: S, ids, positions: Array.from({ length: 3 * S }, (_, q) => q % S) });
    console.log(`${path.basename(file)}: loaded in ${loadS.toFixed(1)} s, ${S} tokens in ${((performance.now() - r0) / 1000).toFixed(2)} s, RSS ${mb(process.memoryUsage().rss)}`);
    logits.push(out.logits);
    masks.push(out.trace!.map((t) => t.mask));
    await session.release();
  }
  // a token whose routing differs (and every later token, which attends to it) is reported apart
  const E = masks[0]![0]!.length / S, V = config.vocab_size;
  let firstFlip = S, flips = 0;
  masks[0]!.forEach((m, l) => {
    for (let s = 0; s < S; s++)
      if (m.subarray(s * E, (s + 1) * E).join() !== masks[1]![l]!.subarray(s * E, (s + 1) * E).join()) {
        flips++;
        firstFlip = Math.min(firstFlip, s);
      }
  });
  const diff = (from: number, to: number) => {
    let d = 0, scale = 0;
    for (let i = from * V; i < to * V; i++) {
      d = Math.max(d, Math.abs(logits[0]![i]! - logits[1]![i]!));
      scale = Math.max(scale, Math.abs(logits[0]![i]!));
    }
    return `max |Δlogits| ${d.toExponential(2)} of max |logit| ${scale.toFixed(2)} (${(d / scale).toExponential(2)})`;
  };
  console.log(`fp16 vs fp32 graph: ${flips} (layer, token) routing differences; tokens before the first: ${diff(0, firstFlip)}; all ${S} tokens: ${diff(0, S)}`);
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
