import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import * as ort from "onnxruntime-node";
import { afterAll, describe, expect, it } from "vitest";
import type { MoeLlmConfig } from "@/models/moe-llm/config";
import { conventionText, SLIDING_WINDOW_KEY } from "@/models/families/conventions";
import { importCheckpoint } from "@/models/import/import";
import { buildMoeLlmGraph } from "@/models/moe-llm/moe-llm-graph";
import type { KvCache, MoeLlmRunner } from "@/models/moe-llm/moe-llm-session";
import { referenceConfig, seedWeights } from "@/models/moe-llm/uni-moe-tiny";
import { MemoryWeights } from "@/models/io/weights";
import { referenceForward, type Family, type RefResult } from "../../reference/families/topk-moe";
import { randomIds } from "../../reference/random";
import { openImported } from "./compare-imported";
import { writeFamilyCheckpoint, type WriteOptions } from "./family-checkpoints";

/**
 * Sliding-window attention (Mixtral, Qwen2-MoE, Qwen3-MoE) with a window smaller than the sequence: the imported graph
 * vs the plain-TS family reference (tests/reference/families/topk-moe.ts), full forward and KV-cache generation past
 * the window.
 */
const tmp = mkdtempSync(path.join(os.tmpdir(), "import-window-"));
const root = path.join(tmp, "models");
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const S = 9;
const W = 3;

const maxAbs = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
};

interface Imported {
  config: Record<string, unknown>;
  tensors: Awaited<ReturnType<typeof writeFamilyCheckpoint>>["tensors"];
  canonical: MoeLlmConfig;
  runner: MoeLlmRunner;
}

const sessions: ort.InferenceSession[] = [];
afterAll(async () => {
  for (const s of sessions) await s.release();
});

const importFamily = (family: Family, label: string, opts: WriteOptions): Promise<Imported> => openImported(tmp, root, family, label, opts, sessions);

const positions = (from: number, count: number) => Array.from({ length: 3 * count }, (_, q) => from + (q % count));

/** The whole sequence in one call (empty past): logits and routing vs the reference; returns the reference. */
async function compareFull(m: Imported, family: Family, ids: number[]): Promise<RefResult> {
  const out = await m.runner.forward({ batch: 1, seq: ids.length, ids, positions: positions(0, ids.length) });
  const ref = referenceForward(family, m.config, m.tensors, ids);
  const logitDiff = maxAbs(out.logits, ref.logits.flat());
  let routeDiff = 0;
  ref.layers.forEach((layer, l) => {
    const t = out.trace![l]!;
    routeDiff = Math.max(routeDiff, maxAbs(t.routerLogits, layer.routerLogits.flat()), maxAbs(t.weights, layer.weights.flat()));
    expect(Array.from(t.mask)).toEqual(layer.mask.flat());
  });
  console.log(`${family} window ${JSON.stringify((m.canonical as Record<string, unknown>)[SLIDING_WINDOW_KEY] ?? null)}, S=${ids.length}: max |Δlogits| ${logitDiff.toExponential(2)}, max |Δrouting| ${routeDiff.toExponential(2)}`);
  expect(logitDiff).toBeLessThan(1e-4);
  expect(routeDiff).toBeLessThan(1e-4);
  return ref;
}

/**
 * Greedy generation with the KV cache (prefill `prompt`, then one token per call until S tokens): every step's logits
 * and routing vs the reference run on the whole sequence so far (its last row).
 */
async function compareGeneration(m: Imported, family: Family, prompt: number[]) {
  const ids = [...prompt];
  let out = await m.runner.forward({ batch: 1, seq: ids.length, ids, positions: positions(0, ids.length) });
  let past: KvCache = out.present!;
  let worst = 0;
  const V = m.canonical.vocab_size;
  while (ids.length < S) {
    const last = out.logits.subarray(out.logits.length - V);
    const next = last.indexOf(Math.max(...last));
    ids.push(next);
    out = await m.runner.forward({ batch: 1, seq: 1, ids: [next], positions: positions(ids.length - 1, 1), past });
    past = out.present!;
    expect(past.length).toBe(ids.length); // the cache keeps every key, not only the window
    const ref = referenceForward(family, m.config, m.tensors, ids);
    worst = Math.max(worst, maxAbs(out.logits, ref.logits.at(-1)!));
    ref.layers.forEach((layer, l) => {
      expect(Array.from(out.trace![l]!.mask)).toEqual(layer.mask.at(-1));
      worst = Math.max(worst, maxAbs(out.trace![l]!.weights, layer.weights.at(-1)!));
    });
  }
  console.log(`${family} generation ${prompt.length} → ${S} tokens with the KV cache, window ${W}: max |Δ| per step ${worst.toExponential(2)}`);
  expect(worst).toBeLessThan(1e-4);
}

/** The window changes the result past it (so the comparisons above can fail) and nothing inside it. */
function expectWindowMatters(family: Family, m: Imported, ids: number[], windowed: RefResult) {
  const noWindow = { ...m.config, sliding_window: null, use_sliding_window: false };
  const full = referenceForward(family, noWindow, m.tensors, ids);
  const rowDiff = (r: number) => maxAbs(windowed.logits[r]!, full.logits[r]!);
  for (let r = 0; r < W; r++) expect(rowDiff(r)).toBe(0);
  expect(Math.max(...ids.slice(W).map((_, k) => rowDiff(W + k)))).toBeGreaterThan(1e-3);
}

describe(`sliding-window attention, window ${W} < sequence ${S}, imported graph vs the family reference (fp32, 1e-4)`, () => {
  it("mixtral: sliding_window on every layer; full forward, then KV-cache generation past the window", async () => {
    const m = await importFamily("mixtral", "mixtral-w3", { seed: 21, slidingWindow: { size: W } });
    expect((m.canonical as Record<string, unknown>)[SLIDING_WINDOW_KEY]).toEqual([W, W]);
    expect(conventionText(m.canonical)).toContain(`W = ${W} in all 2 layers`);
    const ids = randomIds(S, 64, 5);
    const ref = await compareFull(m, "mixtral", ids);
    expectWindowMatters("mixtral", m, ids, ref);
    await compareGeneration(m, "mixtral", ids.slice(0, 2));
  });

  it("qwen2_moe: use_sliding_window with max_window_layers 3 of 4 layers windows only the even layers below it (0, 2)", async () => {
    const m = await importFamily("qwen2_moe", "qwen2-w3", { seed: 22, slidingWindow: { size: W, maxWindowLayers: 3 }, configOverride: { num_hidden_layers: 4 } });
    expect((m.canonical as Record<string, unknown>)[SLIDING_WINDOW_KEY]).toEqual([W, null, W, null]);
    expect(conventionText(m.canonical)).toContain(`W = ${W} in layers 0, 2 of 4; full causal attention in the other layers`);
    const ids = randomIds(S, 64, 6);
    const ref = await compareFull(m, "qwen2_moe", ids);
    expectWindowMatters("qwen2_moe", m, ids, ref);
    await compareGeneration(m, "qwen2_moe", ids.slice(0, 4));
  });

  it("qwen2_moe: explicit layer_types in config.json choose the windowed layers", async () => {
    const layerTypes = ["full_attention", "sliding_attention"];
    const m = await importFamily("qwen2_moe", "qwen2-types", { seed: 23, slidingWindow: { size: W }, configOverride: { layer_types: layerTypes } });
    expect((m.canonical as Record<string, unknown>)[SLIDING_WINDOW_KEY]).toEqual([null, W]);
    await compareFull(m, "qwen2_moe", randomIds(S, 64, 7));
  });

  it("qwen3_moe: use_sliding_window windows every layer", async () => {
    const m = await importFamily("qwen3_moe", "qwen3-w3", { seed: 24, slidingWindow: { size: W } });
    expect((m.canonical as Record<string, unknown>)[SLIDING_WINDOW_KEY]).toEqual([W, W]);
    const ids = randomIds(S, 64, 8);
    const ref = await compareFull(m, "qwen3_moe", ids);
    expectWindowMatters("qwen3_moe", m, ids, ref);
  });

  it("a window >= the sequence gives exactly the result without a window", async () => {
    const windowed = await importFamily("mixtral", "mixtral-w9", { seed: 25, slidingWindow: { size: S } });
    const plain = await importFamily("mixtral", "mixtral-none", { seed: 25 });
    expect((plain.canonical as Record<string, unknown>)[SLIDING_WINDOW_KEY]).toBeUndefined();
    const ids = randomIds(S, 64, 9);
    await compareFull(windowed, "mixtral", ids);
    const run = (m: Imported) => m.runner.forward({ batch: 1, seq: S, ids, positions: positions(0, S) });
    const [a, b] = [await run(windowed), await run(plain)];
    expect(maxAbs(a.logits, b.logits)).toBe(0);
  });

  it("a config without windows (or with all-null windows) builds the same graph bytes; a window adds nodes", () => {
    const c = referenceConfig("tiny");
    const weights = new MemoryWeights(seedWeights(c, 1));
    const options = { moe: "sparse", trace: true, kvCache: true } as const;
    const plain = Buffer.from(buildMoeLlmGraph(c, weights, options));
    const withWindows = (windows: (number | null)[]) => Buffer.from(buildMoeLlmGraph({ ...c, [SLIDING_WINDOW_KEY]: windows } as MoeLlmConfig, weights, options));
    expect(withWindows(Array(c.num_hidden_layers).fill(null)).equals(plain)).toBe(true);
    expect(withWindows([4, ...Array(c.num_hidden_layers - 1).fill(null)]).length).toBeGreaterThan(plain.length);
  });
});

describe("bad windows in config.json are refused, naming the key", () => {
  const cases: { family: Family; label: string; opts: WriteOptions; error: RegExp }[] = [
    { family: "mixtral", label: "mixtral-zero", opts: { configOverride: { sliding_window: 0 } }, error: /mixtral: config.json "sliding_window" must be a positive integer .*got 0/ },
    { family: "qwen2_moe", label: "qwen2-negative", opts: { slidingWindow: { size: -4 } }, error: /qwen2_moe: config.json "sliding_window" must be a positive integer .*got -4/ },
    { family: "qwen3_moe", label: "qwen3-fraction", opts: { slidingWindow: { size: 2.5 } }, error: /qwen3_moe: config.json "sliding_window" must be a positive integer .*got 2.5/ },
    { family: "qwen2_moe", label: "qwen2-types", opts: { configOverride: { layer_types: ["sliding_attention"] } }, error: /qwen2_moe: config.json "layer_types" must list .* 2 layers/ },
  ];
  for (const c of cases)
    it(`${c.label}`, async () => {
      const src = path.join(tmp, `bad-${c.label}`);
      await writeFamilyCheckpoint(src, c.family, c.opts);
      await expect(importCheckpoint(src, { root, name: `bad-${c.label}` })).rejects.toThrow(c.error);
    });
  it("the canonical key itself is checked when a graph is built", () => {
    const c = { hidden_size: 8, num_hidden_layers: 2, [SLIDING_WINDOW_KEY]: [3] } as unknown as MoeLlmConfig;
    expect(() => conventionText(c)).toThrow(`config ${SLIDING_WINDOW_KEY} must list one window per layer (2), each a positive integer or null (got [3])`);
  });
});
