/**
 * Benchmark of computeMetrics (not a timed test). `npx tsx engine/routing/bench.ts` prints the median;
 * default size: 28 layers × 4,096 tokens × 64 routed experts (+ 1 null + 2 shared = 67 columns).
 */
import { computeMetrics } from "./metrics";
import { syntheticTrace } from "./synthetic";

export interface BenchOptions {
  layers?: number;
  tokens?: number;
  routed?: number;
  nulls?: number;
  shared?: number;
  repeats?: number;
  seed?: number;
}

/** Median wall time (ms) of one computeMetrics over the whole trace (trace generation excluded). */
export function benchMetrics(o: BenchOptions = {}): number {
  const trace = syntheticTrace({
    seed: o.seed ?? 7,
    layers: o.layers ?? 28,
    tokens: o.tokens ?? 4096,
    routed: o.routed ?? 64,
    nulls: o.nulls ?? 1,
    shared: o.shared ?? 2,
    scale: 1.5,
  });
  const repeats = o.repeats ?? 7;
  computeMetrics(trace); // warm-up
  const times: number[] = [];
  for (let i = 0; i < repeats; i++) {
    const t0 = performance.now();
    computeMetrics(trace);
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)]!;
}

if (typeof process !== "undefined" && process.argv[1] && /engine[\\/]routing[\\/]bench\.ts$/.test(process.argv[1])) {
  const ms = benchMetrics();
  console.log(`computeMetrics 28 layers × 4096 tokens × 64 routed (+1 null, +2 shared): median ${ms.toFixed(1)} ms`);
}
