import { MemoryWeights } from "@/models/weights";
import { referenceConfig, seedWeights } from "@/models/uni-moe-tiny";
import { MoeLlmRunner } from "@/models/moe-llm-session";
async function main() {

const name = (process.argv[2] ?? "tiny") as "tiny";
const S = Number(process.argv[3] ?? 64);
const c = referenceConfig(name);
const w = new MemoryWeights(seedWeights(c, 2511));
const opts = { moe: "sparse" as const, trace: true, kvCache: false };
const ids = Array.from({ length: S }, (_, i) => (i * 37 + 11) % 300);
const pos = Array.from({ length: 3 * S }, (_, q) => q % S);
const t0 = performance.now();
const cpu = await MoeLlmRunner.create(c, w, opts, { executionProviders: ["cpu"] });
const rc = await cpu.forward({ batch: 1, seq: S, ids, positions: pos });
const t1 = performance.now();
const gpu = await MoeLlmRunner.create(c, w, opts, { executionProviders: ["webgpu"], logSeverityLevel: Number(process.env.SEV ?? 3) });
const t2 = performance.now();
const rg = await gpu.forward({ batch: 1, seq: S, ids, positions: pos });
const t3 = performance.now();
const rg2 = await gpu.forward({ batch: 1, seq: S, ids, positions: pos });
const t4 = performance.now();
let m = 0; for (let i = 0; i < rc.logits.length; i++) m = Math.max(m, Math.abs(rc.logits[i]! - rg.logits[i]!));
let maskSame = true, kSame = true;
rc.trace!.forEach((l, i) => { const g = rg.trace![i]!; if (l.mask.some((v, j) => v !== g.mask[j])) maskSame = false; if (l.k.some((v, j) => v !== g.k[j])) kSame = false; });
console.error(JSON.stringify({ name, S, maxLogitDiff: m, maskSame, kSame, cpuMs: t1 - t0, gpuCreateMs: t2 - t1, gpuRun1Ms: t3 - t2, gpuRun2Ms: t4 - t3 }));

}
void main();
