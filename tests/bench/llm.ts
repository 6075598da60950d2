/**
 * Reference-model throughput: prefill of 512 tokens and KV-cache decode per token for uni-moe-tiny
 * `tiny` and `small` (seeded, untrained; built on first use), through the same graph cache and session
 * pool the MoE-LLM node uses.
 */
import { SessionPool } from "../../engine/runtime";
import { resolveModel, withMoeLlm } from "../../models/moe-llm-model";

export interface LlmBenchRow {
  model: string;
  prefillTokens: number;
  prefillMs: number;
  prefillTokPerS: number;
  decodeMsPerToken: number;
  decodeTokPerS: number;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

export async function benchLlm(names: ("tiny" | "small")[] = ["tiny", "small"], log: (s: string) => void = console.log): Promise<LlmBenchRow[]> {
  const pool = new SessionPool({ executionProvider: process.env.STUDIO_EP ?? "cpu" });
  const rows: LlmBenchRow[] = [];
  const P = 512;
  for (const name of names) {
    const t0 = performance.now();
    const model = await resolveModel(`uni-moe-tiny/${name}`);
    await withMoeLlm(model, { moe: "sparse", trace: true, kvCache: true }, pool, async ({ runner }) => {
      log(`  ${name}: model + graph + session ready in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
      const ids = Array.from({ length: P }, (_, i) => (i * 37) % 256);
      const pos = [...ids.keys()];
      const positions = [...pos, ...pos, ...pos];
      const prefill: number[] = [];
      let cache = runner.emptyCache(1);
      for (let r = 0; r < 7; r++) {
        const t = performance.now();
        const out = await runner.forward({ batch: 1, seq: P, ids, positions });
        prefill.push(performance.now() - t);
        cache = out.present!;
      }
      const decode: number[] = [];
      for (let step = 0; step < 64; step++) {
        const p = P + step;
        const t = performance.now();
        const out = await runner.forward({ batch: 1, seq: 1, ids: [step % 256], positions: [p, p, p], past: cache });
        decode.push(performance.now() - t);
        cache = out.present!;
      }
      const prefillMs = median(prefill.slice(2));
      const decodeMs = median(decode.slice(4));
      rows.push({ model: name, prefillTokens: P, prefillMs, prefillTokPerS: (P / prefillMs) * 1000, decodeMsPerToken: decodeMs, decodeTokPerS: 1000 / decodeMs });
    });
  }
  await pool.close();
  return rows;
}
