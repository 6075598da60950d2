import { describe, expect, it } from "vitest";
import { argmax, sampleToken, samplingDistribution } from "@/models/text/sampling";
import { SeededRandom } from "@/models/io/seeded-random";

/** Independent reference: the same filtering written with sorted [p, id] pairs. */
function reference(logits: number[], T: number, topK: number, topP: number): Map<number, number> {
  const z = logits.map((l) => l / T);
  const m = Math.max(...z);
  const e = z.map((x) => Math.exp(x - m));
  const s = e.reduce((a, b) => a + b, 0);
  let pairs = e.map((x, id) => [x / s, id] as [number, number]).sort((a, b) => b[0] - a[0] || a[1] - b[1]);
  if (topK > 0) pairs = pairs.slice(0, topK);
  if (topP < 1) {
    const kept: [number, number][] = [];
    let c = 0;
    for (const p of pairs) {
      kept.push(p);
      c += p[0];
      if (c >= topP) break;
    }
    pairs = kept;
  }
  const total = pairs.reduce((a, p) => a + p[0], 0);
  return new Map(pairs.map(([p, id]) => [id, p / total]));
}

describe("sampling", () => {
  it("greedy is argmax", () => {
    const rng = new SeededRandom(1);
    const logits = [0.1, 2.5, -1, 2.4];
    expect(argmax(logits)).toBe(1);
    expect(sampleToken(logits, { temperature: 0, topK: 0, topP: 1 }, rng)).toBe(1);
  });

  it("the filtered distribution matches an independent reference on seeded random logits", () => {
    const rng = new SeededRandom(7);
    let maxDiff = 0;
    for (let trial = 0; trial < 200; trial++) {
      const n = 2 + rng.int(60);
      const logits = Array.from({ length: n }, () => rng.normal() * 3);
      const T = 0.2 + rng.uniform() * 2;
      const topK = rng.int(3) === 0 ? 0 : 1 + rng.int(n);
      const topP = rng.int(3) === 0 ? 1 : 0.05 + rng.uniform() * 0.95;
      const dist = samplingDistribution(logits, { temperature: T, topK, topP });
      const ref = reference(logits, T, topK, topP);
      for (let i = 0; i < n; i++) maxDiff = Math.max(maxDiff, Math.abs(dist[i]! - (ref.get(i) ?? 0)));
    }
    expect(maxDiff).toBeLessThan(1e-12);
  });

  it("draws follow the distribution (seeded, 40k draws) and never leave the kept set", () => {
    const logits = [1, 0.5, 0, -0.5, -3, 2];
    const o = { temperature: 0.8, topK: 4, topP: 0.9 };
    const dist = samplingDistribution(logits, o);
    const rng = new SeededRandom(123);
    const counts = new Array(logits.length).fill(0);
    const N = 40_000;
    for (let i = 0; i < N; i++) counts[sampleToken(logits, o, rng)]++;
    for (let i = 0; i < logits.length; i++) {
      if (dist[i] === 0) expect(counts[i]).toBe(0);
      else expect(Math.abs(counts[i] / N - dist[i]!)).toBeLessThan(4 * Math.sqrt((dist[i]! * (1 - dist[i]!)) / N) + 1e-3);
    }
  });

  it("the same seed gives the same tokens; another seed differs", () => {
    const logits = Array.from({ length: 50 }, (_, i) => Math.sin(i));
    const draw = (seed: number) => {
      const rng = new SeededRandom(seed);
      return Array.from({ length: 30 }, () => sampleToken(logits, { temperature: 1, topK: 0, topP: 1 }, rng));
    };
    expect(draw(5)).toEqual(draw(5));
    expect(draw(5)).not.toEqual(draw(6));
  });
});
