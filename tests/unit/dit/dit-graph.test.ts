import * as ort from "onnxruntime-node";
import { describe, expect, it } from "vitest";
import { ditParamTable, ditParameterCount, seedDitWeights, zDitConfig, type DitConfig } from "@/models/dit/dit";
import { buildDitGraph } from "@/models/dit/dit-graph";
import { ditReferenceConfig } from "@/models/dit/dit-tiny";
import { SeededRandom } from "@/models/io/seeded-random";
import { MemoryWeights } from "@/models/io/weights";
import { refDitForward } from "./reference";

function maxAbs(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

async function compare(c: DitConfig, seed: number, batch: number, zeroSource: boolean) {
  const weights = seedDitWeights(c, seed);
  const session = await ort.InferenceSession.create(buildDitGraph(c, new MemoryWeights(weights)), { intraOpNumThreads: 1, logSeverityLevel: 3 });
  const rng = new SeededRandom(seed + 1000);
  const C = c.latentChannels, S = c.latentSize;
  const n = (k: number) => rng.fillNormal(new Float32Array(k));
  const inp = {
    batch,
    x: n(batch * C * S * S),
    source: zeroSource ? new Float32Array(batch * C * S * S) : n(batch * C * S * S),
    t: Array.from({ length: batch }, () => rng.uniform()),
    img: n(batch * c.condTokens * c.llmHidden),
    task: n(batch * c.taskTokens * c.llmHidden),
  };
  const T = (d: Float32Array, dims: number[]) => new ort.Tensor("float32", d, dims);
  const out = await session.run({
    x: T(inp.x, [batch, C, S, S]),
    source: T(inp.source, [batch, C, S, S]),
    t: T(Float32Array.from(inp.t), [batch]),
    img: T(inp.img, [batch, c.condTokens, c.llmHidden]),
    task: T(inp.task, [batch, c.taskTokens, c.llmHidden]),
  });
  const got = out.v!.data as Float32Array;
  // the reference sees t as the float32 the graph got
  const ref = refDitForward(c, weights, { ...inp, t: Array.from(Float32Array.from(inp.t)) });
  await session.release();
  let scale = 0;
  for (const v of ref) scale = Math.max(scale, Math.abs(v));
  return { diff: maxAbs(got, ref), scale };
}

const small = [
  zDitConfig.parse({ latentChannels: 4, latentSize: 8, patchSize: 2, hidden: 32, depth: 2, heads: 4, mlpRatio: 2, condTokens: 5, taskTokens: 3, llmHidden: 12, freqDim: 16 }),
  zDitConfig.parse({ latentChannels: 3, latentSize: 12, patchSize: 3, hidden: 24, depth: 3, heads: 2, mlpRatio: 3, condTokens: 7, taskTokens: 2, llmHidden: 10, freqDim: 8 }),
];

describe("task-aware DiT graph vs the plain-TS reference", () => {
  it.each([
    [0, 1, 1, true],
    [0, 2, 2, false],
    [1, 3, 1, false],
    [1, 4, 3, true],
  ] as const)("small config %i, seed %i, batch %i (zero source: %s): |Δv| < 1e-4", async (ci, seed, batch, zeroSource) => {
    const { diff, scale } = await compare(small[ci]!, seed, batch, zeroSource);
    console.log(`DiT small config ${ci} seed ${seed} batch ${batch} zeroSource=${zeroSource}: max |Δv| = ${diff.toExponential(2)} (max |v| ${scale.toFixed(2)})`);
    expect(scale).toBeGreaterThan(0.1);
    expect(diff).toBeLessThan(1e-4);
  });

  it("reference config (4×32×32, patch 2, D 96, 3 blocks, 32 cond tokens, L 128), batch 2, edit mode: |Δv| < 1e-4", async () => {
    const c = ditReferenceConfig().dit;
    expect(c.latentSize / c.patchSize).toBe(16);
    const { diff, scale } = await compare(c, 2511, 2, false);
    console.log(`DiT reference config: max |Δv| = ${diff.toExponential(2)} (max |v| ${scale.toFixed(2)}), ${ditParameterCount(c)} parameters`);
    expect(diff).toBeLessThan(1e-4);
  });

  it("the parameter table names every tensor once and rejects missing weights", () => {
    const c = small[0]!;
    const names = ditParamTable(c).map((p) => p.name);
    expect(new Set(names).size).toBe(names.length);
    const w = seedDitWeights(c, 1);
    w.delete("blocks.1.cross_attn.kv.weight");
    expect(() => buildDitGraph(c, new MemoryWeights(w))).toThrow(/blocks\.1\.cross_attn\.kv\.weight/);
    expect(() => zDitConfig.parse({ hidden: 30, heads: 4 })).not.toThrow();
    expect(() => ditParamTable(zDitConfig.parse({ hidden: 30, heads: 4 }))).toThrow(/multiple of heads/);
  });

  it("a zero source latent equals a 4-channel patch embed (the source half of the weight is unused)", async () => {
    const c = small[0]!;
    const w = seedDitWeights(c, 7);
    const w2 = new Map(w);
    const pw = w.get("x_embedder.proj.weight")!;
    const data = Float32Array.from(pw.data);
    const C = c.latentChannels, p = c.patchSize;
    for (let d = 0; d < c.hidden; d++) for (let k = C * p * p; k < 2 * C * p * p; k++) data[d * 2 * C * p * p + k] = 123; // scramble source slices
    w2.set("x_embedder.proj.weight", { shape: pw.shape, data });
    const rng = new SeededRandom(9);
    const inp = { batch: 1, x: rng.fillNormal(new Float32Array(C * 64)), source: new Float32Array(C * 64), t: [0.5], img: rng.fillNormal(new Float32Array(5 * 12)), task: rng.fillNormal(new Float32Array(3 * 12)) };
    expect(maxAbs(refDitForward(c, w, inp), refDitForward(c, w2, inp))).toBe(0);
  });
});
