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

export interface PrecisionBenchRow {
  precision: "fp32" | "bf16";
  prefillMs: number;
  decodeMsPerToken: number;
}

/**
 * Routing in bf16 (as released) vs fp32 on `tiny`: prefill of 512 tokens and KV-cache decode, the two graphs run
 * interleaved in one process so the ratio is side by side.
 */
export async function benchRoutingPrecision(log: (s: string) => void = console.log): Promise<PrecisionBenchRow[]> {
  const pool = new SessionPool({ executionProvider: process.env.STUDIO_EP ?? "cpu" });
  const model = await resolveModel("uni-moe-tiny/tiny");
  const P = 512;
  const ids = Array.from({ length: P }, (_, i) => (i * 37) % 256);
  const positions = [...ids.keys(), ...ids.keys(), ...ids.keys()];
  const times = { fp32: { prefill: [] as number[], decode: [] as number[] }, bf16: { prefill: [] as number[], decode: [] as number[] } };
  await withMoeLlm(model, { moe: "sparse", trace: true, kvCache: true, routingPrecision: "fp32" }, pool, ({ runner: fp32 }) =>
    withMoeLlm(model, { moe: "sparse", trace: true, kvCache: true, routingPrecision: "bf16" }, pool, async ({ runner: bf16 }) => {
      for (let r = 0; r < 7; r++) {
        for (const [name, runner] of [["fp32", fp32], ["bf16", bf16]] as const) {
          let t = performance.now();
          let cache = (await runner.forward({ batch: 1, seq: P, ids, positions })).present!;
          if (r >= 2) times[name].prefill.push(performance.now() - t);
          for (let step = 0; step < 12; step++) {
            const p = P + step;
            t = performance.now();
            cache = (await runner.forward({ batch: 1, seq: 1, ids: [step % 256], positions: [p, p, p], past: cache })).present!;
            if (step >= 2) times[name].decode.push(performance.now() - t);
          }
        }
      }
    }),
  );
  await pool.close();
  const rows = (["fp32", "bf16"] as const).map((precision) => ({ precision, prefillMs: median(times[precision].prefill), decodeMsPerToken: median(times[precision].decode) }));
  log(`  tiny routing bf16 / fp32 (interleaved): prefill ${rows[1]!.prefillMs.toFixed(1)} / ${rows[0]!.prefillMs.toFixed(1)} ms = ${(rows[1]!.prefillMs / rows[0]!.prefillMs).toFixed(2)}, decode ${rows[1]!.decodeMsPerToken.toFixed(2)} / ${rows[0]!.decodeMsPerToken.toFixed(2)} ms = ${(rows[1]!.decodeMsPerToken / rows[0]!.decodeMsPerToken).toFixed(2)}`);
  return rows;
}
