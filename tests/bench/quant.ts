/**
 * `npm run bench -- quant` (only when named: it writes ~14 GB and takes tens of minutes): a full-size OLMoE-1B-7B-shaped
 * checkpoint with seeded random bf16 weights (tests/bench/quant-checkpoint.ts) imported as int4 and as int8, each then
 * loaded in its own process: import time and peak RSS, size on disk, load time, peak RSS while running, decode tokens/s
 * (greedy, KV cache, default ORT threads = this machine's cores) and a teacher-forced pass over the first 320 tokens of
 * README.md (the byte tokenizer: the generated checkpoint has no tokenizer.json). Routing agreement and logit
 * differences int8 vs int4 over those tokens come from Compare Traces' own code (engine/routing/compare.ts).
 * BENCH_QUANT_DIR (default <tmp>/moe-studio-quant-bench) holds the checkpoint and the imports; it is not deleted.
 */
import { spawnSync } from "node:child_process";
import { mkdirSync, readFileSync, statfsSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import v8 from "node:v8";
import { compareTraces } from "../../engine/routing/compare";
import type { RoutingTrace } from "../../engine/trace";
import { ensureOlmoe7b } from "./quant-checkpoint";

const gb = (b: number) => `${(b / 1e9).toFixed(2)} GB`;

function child(args: string[], modelsDir: string): Record<string, unknown> {
  const r = spawnSync(process.execPath, ["--import", "tsx", path.join("tests", "bench", "quant-run.ts"), ...args], {
    encoding: "utf8",
    env: { ...process.env, STUDIO_MODELS_DIR: modelsDir },
    maxBuffer: 64 << 20,
  });
  if (r.status !== 0) throw new Error(`quant-run ${args.join(" ")} failed: ${r.stderr.slice(-2000)}`);
  return JSON.parse(r.stdout.trim().split("\n").pop()!) as Record<string, unknown>;
}

export async function benchQuant(): Promise<Record<string, unknown>> {
  const root = process.env.BENCH_QUANT_DIR ?? path.join(os.tmpdir(), "moe-studio-quant-bench");
  mkdirSync(root, { recursive: true });
  const fs = statfsSync(root);
  const freeDisk = fs.bavail * fs.bsize;
  console.log(`quant bench in ${root}: ${gb(freeDisk)} free on disk, ${gb(os.freemem())} of ${gb(os.totalmem())} memory free, ${os.cpus().length} cores`);
  if (freeDisk < 40e9) throw new Error(`the quantisation bench needs ~40 GB of free disk in ${root} (13.8 GB checkpoint + 13.8 GB build of each import before quantisation + the imports); ${gb(freeDisk)} free`);
  const src = path.join(root, "olmoe-7b");
  const genSeconds = await ensureOlmoe7b(src);
  const modelsDir = path.join(root, "models");
  const out: Record<string, unknown> = { checkpoint: src, generateSeconds: genSeconds, fp32TwinBytes: 6.92e9 * 4, machineMemoryBytes: os.totalmem() };
  const traces: Record<string, RoutingTrace> = {};
  for (const kind of ["int4", "int8"] as const) {
    console.log(`importing as ${kind} …`);
    const imp = child(["import", src, `olmoe7b-${kind}`, kind], modelsDir);
    console.log(`  ${kind}: imported in ${(imp.seconds as number).toFixed(0)} s, peak RSS ${gb(imp.peakRssBytes as number)}, ${gb(imp.bytesOnDisk as number)} on disk`);
    const traceFile = path.join(root, `${kind}.trace.v8`);
    const run = child(["run", `olmoe/olmoe7b-${kind}`, "README.md", traceFile], modelsDir);
    console.log(`  ${kind}: load ${((run.loadMs as number) / 1000).toFixed(1)} s, peak RSS ${gb(run.peakRssBytes as number)}, decode ${(run.decodeTokensPerSecond as number).toFixed(2)} tokens/s, ${run.scoredTokens} tokens scored in ${((run.scoreMs as number) / 1000).toFixed(1)} s`);
    traces[kind] = v8.deserialize(readFileSync(traceFile)) as RoutingTrace;
    out[kind] = { import: imp, run };
  }
  const c = compareTraces(traces.int8!, traces.int4!);
  const agreement = { perLayer: c.setAgreement!.perLayer, mean: c.setAgreement!.mean, topExpertMean: c.agreement!.mean, tokens: c.agreement!.commonPrefix, logits: c.logits };
  console.log(`routing agreement int4 vs int8 over ${agreement.tokens} tokens: identical expert set ${(agreement.mean! * 100).toFixed(1)} % (per layer ${agreement.perLayer.map((x) => (x * 100).toFixed(0)).join(" ")} %), top expert ${(agreement.topExpertMean! * 100).toFixed(1)} %; max |Δ logit| ${c.logits?.maxAbsLogit.toFixed(3)}, argmax agreement ${((c.logits?.top1Agreement ?? 0) * 100).toFixed(1)} %`);
  console.log(`the bf16→fp32 twin needs ~${gb(6.92e9 * 4)} of weights; this machine has ${gb(os.totalmem())}: not compared against it`);
  out.int4VsInt8 = agreement;
  return out;
}
