/**
 * `npm run bench -- gpu`: the reference models on each GPU provider that works here (WebGPU with the adapter it
 * found, CUDA where its libraries load) beside the CPU provider, in one process: prefill, KV-cache decode,
 * batched prefill throughput (the batch a dataset run could send at once) and one classifier-free DiT step.
 * On a software adapter (SwiftShader, lavapipe) the sizes are small and every figure is labelled "software": it
 * measures a CPU emulating a GPU, not a GPU.
 */
import { probeCuda } from "../../engine/runtime/select";
import { SessionPool } from "../../engine/runtime";
import type { ExecutionProvider } from "../../engine/runtime/types";
import { adapterLabel, probeWebGpu, type WebGpuAdapter } from "../../engine/runtime/webgpu";
import { initialNoise, seededConditioning } from "../../models/dit/dit";
import { ditReferenceConfig, withDit } from "../../models/dit/dit-tiny";
import { resolveModel, withMoeLlm } from "../../models/moe-llm/moe-llm-model";
import { median } from "./stats";

export interface GpuBenchRow {
  provider: ExecutionProvider;
  label: string;
  software: boolean;
  prefillTokens: number;
  prefillMs: number;
  decodeMsPerToken: number;
  batch: { sequences: number; tokens: number; tokPerS: number };
  ditStepMs: number;
}

export interface GpuBench {
  adapter: (WebGpuAdapter & { label: string }) | { unavailable: string };
  cuda: { available: boolean; reason?: string };
  rows: GpuBenchRow[];
}

export async function benchGpu(log: (s: string) => void = console.log): Promise<GpuBench> {
  const webgpu = await probeWebGpu();
  const cudaReason = await probeCuda();
  const adapter = webgpu.ok ? { ...webgpu.adapter, label: adapterLabel(webgpu.adapter) } : { unavailable: webgpu.reason };
  log(`WebGPU adapter: ${webgpu.ok ? adapterLabel(webgpu.adapter) : `none (${webgpu.reason})`}`);
  log(`CUDA: ${cudaReason ? `unavailable (${cudaReason})` : "available"}`);
  const software = webgpu.ok && webgpu.adapter.software;
  if (software) log("SOFTWARE GPU: the webgpu figures below measure a CPU emulating a GPU (correctness path), not GPU speed; sizes are reduced");
  const providers: ExecutionProvider[] = ["cpu", ...(webgpu.ok ? (["webgpu"] as const) : []), ...(cudaReason ? [] : (["cuda"] as const))];
  // one size for every provider so the figures compare side by side; small when a software adapter is among them
  const P = software ? 64 : 512, decodeSteps = software ? 8 : 64, repeats = software ? 3 : 7, B = 8, T = software ? 16 : 64;
  const rows: GpuBenchRow[] = [];
  for (const ep of providers) {
    const pool = new SessionPool({ executionProvider: ep });
    const label = ep === "webgpu" && webgpu.ok ? `webgpu · ${adapterLabel(webgpu.adapter)}` : ep;
    try {
      const model = await resolveModel("uni-moe-tiny/tiny");
      const t0 = performance.now();
      const llm = await withMoeLlm(model, { moe: "sparse", trace: true, kvCache: true }, pool, async ({ runner, handle }) => {
        if (handle.executionProvider !== ep) throw new Error(`the session ran on ${handle.executionProvider}, not ${ep}`);
        log(`${label}: tiny decoder ready in ${((performance.now() - t0) / 1000).toFixed(1)} s (graph build, session, first run compiles shaders on WebGPU)`);
        const ids = Array.from({ length: P }, (_, i) => (i * 37) % 256);
        const pos = [...ids.keys()];
        const prefill: number[] = [];
        let cache = runner.emptyCache(1);
        for (let r = 0; r < repeats + 1; r++) {
          const t = performance.now();
          const out = await runner.forward({ batch: 1, seq: P, ids, positions: [...pos, ...pos, ...pos] });
          if (r > 0) prefill.push(performance.now() - t); // the first run compiles (WebGPU shaders)
          cache = out.present!;
        }
        const decode: number[] = [];
        for (let step = 0; step < decodeSteps; step++) {
          const p = P + step;
          const t = performance.now();
          const out = await runner.forward({ batch: 1, seq: 1, ids: [step % 256], positions: [p, p, p], past: cache });
          if (step > 1) decode.push(performance.now() - t);
          cache = out.present!;
        }
        const bIds = Array.from({ length: B * T }, (_, i) => (i * 53 + 7) % 256);
        const bPos = Array.from({ length: 3 * B * T }, (_, q) => q % T);
        const batched: number[] = [];
        for (let r = 0; r < repeats + 1; r++) {
          const t = performance.now();
          await runner.forward({ batch: B, seq: T, ids: bIds, positions: bPos });
          if (r > 0) batched.push(performance.now() - t);
        }
        return { prefillMs: median(prefill), decodeMsPerToken: median(decode), batchMs: median(batched) };
      });
      const cfg = ditReferenceConfig();
      const ditStepMs = await withDit(pool, { withEncoder: false }, async (runner) => {
        const cond = seededConditioning(cfg.dit, "a red cube on a table", [], "benchmark");
        const x = initialNoise(cfg.dit, 1);
        const times: number[] = [];
        for (let r = 0; r < repeats + 1; r++) {
          const t = performance.now();
          await runner.guidedVelocity(x, 0.5, cond, 4);
          if (r > 0) times.push(performance.now() - t);
        }
        return median(times);
      });
      const row: GpuBenchRow = {
        provider: ep,
        label,
        software: ep === "webgpu" && software,
        prefillTokens: P,
        prefillMs: llm.prefillMs,
        decodeMsPerToken: llm.decodeMsPerToken,
        batch: { sequences: B, tokens: T, tokPerS: ((B * T) / llm.batchMs) * 1000 },
        ditStepMs,
      };
      rows.push(row);
      const sw = row.software ? " [software]" : "";
      log(`  ${label}${sw}: prefill ${P} tokens ${row.prefillMs.toFixed(1)} ms · decode ${row.decodeMsPerToken.toFixed(2)} ms/token · batched prefill ${B}×${T} ${row.batch.tokPerS.toFixed(0)} tok/s · DiT CFG step ${row.ditStepMs.toFixed(1)} ms`);
    } finally {
      await pool.close();
    }
  }
  const cpu = rows.find((r) => r.provider === "cpu")!;
  for (const r of rows.filter((x) => x.provider !== "cpu")) {
    const sw = r.software ? " [software: CPU emulating a GPU]" : "";
    log(`  ${r.provider} / cpu time ratios${sw}: prefill ${(r.prefillMs / cpu.prefillMs).toFixed(2)}, decode ${(r.decodeMsPerToken / cpu.decodeMsPerToken).toFixed(2)}, batched prefill ${(cpu.batch.tokPerS / r.batch.tokPerS).toFixed(2)}, DiT step ${(r.ditStepMs / cpu.ditStepMs).toFixed(2)}`);
  }
  return { adapter, cuda: cudaReason ? { available: false, reason: cudaReason } : { available: true }, rows };
}
