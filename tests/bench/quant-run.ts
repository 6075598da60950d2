/**
 * One measurement of the quantisation bench (tests/bench/quant.ts) in its own process, so its peak RSS is its own:
 *   quant-run.ts import <checkpoint dir> <name> <int4|int8> [compute]   → JSON { seconds, peakRssBytes, bytesOnDisk, quant }
 *   quant-run.ts run <family/name> <text file> <trace out file>          → JSON { loadMs, peakRssBytes, decode…, score… }
 * STUDIO_MODELS_DIR says where the models are.
 */
import { readFileSync, writeFileSync } from "node:fs";
import v8 from "node:v8";
import { SessionPool } from "@/engine/runtime";
import { generate } from "@/models/moe-llm/generate";
import { importCheckpoint } from "@/models/import/import";
import { resolveModel, withMoeLlm } from "@/models/moe-llm/moe-llm-model";
import { scoreSequence } from "@/models/moe-llm/scoring";

const peakRss = () => process.resourceUsage().maxRSS * 1024;

async function runImport(src: string, name: string, kind: "int4" | "int8", compute?: "fp32" | "int8") {
  const t0 = performance.now();
  const r = await importCheckpoint(src, { name, dtype: "bf16", quant: { kind, ...(compute ? { compute } : {}) } });
  return { seconds: (performance.now() - t0) / 1000, peakRssBytes: peakRss(), bytesOnDisk: r.manifest.bytesOnDisk, quant: r.manifest.quant, ref: r.ref };
}

/** Load, decode 32 tokens after a short prompt (greedy, KV cache), then score `textFile`'s first 320 tokens teacher-forced. */
async function runModel(ref: string, textFile: string, traceOut: string) {
  const pool = new SessionPool({ executionProvider: "cpu" });
  const rss0 = process.memoryUsage().rss;
  const t0 = performance.now();
  const model = await resolveModel(ref);
  return withMoeLlm(model, { moe: "sparse", trace: true, kvCache: true }, pool, async ({ runner, tokenizer, handle }) => {
    const loadMs = performance.now() - t0;
    const rssLoaded = process.memoryUsage().rss;
    const prompt = tokenizer.encode("The Mixture-of-Experts layer routes each token to");
    const g = await generate(runner, tokenizer, { ids: prompt, modelName: ref }, { maxNewTokens: 32, temperature: 0, topK: 0, topP: 1, seed: 0, stopTokens: [] });
    const text = readFileSync(textFile, "utf8");
    const ids = tokenizer.encode(text).slice(0, 320);
    const s = await scoreSequence(runner, tokenizer, { ids, scoreFrom: 1, modelName: ref });
    writeFileSync(traceOut, v8.serialize({ ...s.trace, quantization: model.quantization }));
    return {
      ref,
      loadMs,
      sessionLoadMs: (handle as { loadMs?: number }).loadMs,
      rssAfterLoadBytes: rssLoaded,
      rssBeforeBytes: rss0,
      peakRssBytes: peakRss(),
      prefillMs: g.prefillMs,
      promptTokens: prompt.length,
      decodeTokens: g.newIds.length,
      decodeMs: g.decodeMs,
      decodeTokensPerSecond: g.newIds.length / (g.decodeMs / 1000),
      scoredTokens: ids.length,
      scoreMs: s.ms,
      meanNll: s.summary.mean,
    };
  });
}

const [mode, ...args] = process.argv.slice(2);
const job = mode === "import" ? runImport(args[0]!, args[1]!, args[2] as "int4" | "int8", args[3] as "fp32" | "int8" | undefined) : runModel(args[0]!, args[1]!, args[2]!);
job.then(
  (r) => {
    console.log(JSON.stringify(r));
    process.exit(0);
  },
  (e: unknown) => {
    console.error(e);
    process.exit(1);
  },
);
