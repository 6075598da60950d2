import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import type { MoeLlmConfig } from "@/models/moe-llm/config";
import { architectureOf } from "@/models/families/conventions";
import { mapCheckpoint, MappedWeights } from "@/models/import/checkpoint";
import type { MoeGraphOptions } from "@/models/moe-llm/moe-llm-graph";
import { type ForwardOutput, type KvCache, MoeLlmRunner } from "@/models/moe-llm/moe-llm-session";
import { SafetensorsWeights } from "@/models/io/safetensors";
import type { WeightSource } from "@/models/io/weights";
import { randomConfig, randomIds, randomWeights } from "../../reference/random";
import { writeFamilyCheckpoint, type Family } from "../import/family-checkpoints";

/**
 * The fused decoder graph (the default, models/moe-llm/decoder/fused.ts) against the unfused reference graph of plain ONNX ops
 * (`unfused: true`, itself tested against the plain-TS references): on seeded configs of every family, a prefill of a
 * 2-sequence batch then decode steps with the KV cache; logits and last hidden within 1e-4, routing exact (router
 * logits and weights within 1e-4, masks, k and drops identical), residual streams (lens) within 1e-4.
 */
const runners: MoeLlmRunner[] = [];
const closers: (() => void)[] = [];
const tmp = mkdtempSync(path.join(os.tmpdir(), "fused-decoder-"));
afterAll(async () => {
  for (const r of runners) await r.release();
  for (const c of closers) c();
  rmSync(tmp, { recursive: true, force: true });
});

const maxAbs = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Number.isNaN(a[i]!) && Number.isNaN(b[i]!) ? m : Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
};

async function pair(c: MoeLlmConfig, w: WeightSource, o: Partial<MoeGraphOptions> = {}) {
  const make = async (unfused: boolean) => {
    const r = await MoeLlmRunner.create(c, w, { moe: "sparse", trace: true, kvCache: true, lens: true, ...o, unfused }, { intraOpNumThreads: 1 });
    runners.push(r);
    return r;
  };
  return { fused: await make(false), unfused: await make(true) };
}

interface Diff {
  logits: number;
  hidden: number;
  routing: number;
}

function compare(a: ForwardOutput, b: ForwardOutput, d: Diff, what: string) {
  d.logits = Math.max(d.logits, maxAbs(a.logits, b.logits), maxAbs(a.lastHidden, b.lastHidden));
  a.hidden?.forEach((h, i) => (d.hidden = Math.max(d.hidden, maxAbs(h, b.hidden![i]!))));
  expect(a.trace!.map((t) => t.layer)).toEqual(b.trace!.map((t) => t.layer));
  a.trace!.forEach((t, l) => {
    const u = b.trace![l]!;
    expect(Array.from(t.mask), `${what}: mask of layer ${t.layer}`).toEqual(Array.from(u.mask));
    expect(Array.from(t.k), `${what}: k of layer ${t.layer}`).toEqual(Array.from(u.k));
    if (u.dropped) expect(Array.from(t.dropped!), `${what}: dropped of layer ${t.layer}`).toEqual(Array.from(u.dropped));
    d.routing = Math.max(d.routing, maxAbs(t.routerLogits, u.routerLogits), maxAbs(t.weights, u.weights), u.scores ? maxAbs(t.scores!, u.scores) : 0);
  });
  expect(a.present!.length).toBe(b.present!.length);
  a.present!.keys.forEach((k, i) => (d.hidden = Math.max(d.hidden, maxAbs(k, b.present!.keys[i]!), maxAbs(a.present!.values[i]!, b.present!.values[i]!))));
}

/** Prefill of B sequences of S tokens (positions: t/h/w apart when 3D), then `steps` decode steps; returns the diffs. */
async function prefillAndDecode(c: MoeLlmConfig, w: WeightSource, seed: number, o: Partial<MoeGraphOptions> = {}, B = 2, S = 6, steps = 3, threeD = true): Promise<Diff> {
  const { fused, unfused } = await pair(c, w, o);
  const ids = randomIds(B * S, c.vocab_size, seed + 100);
  const positions: number[] = [];
  for (let a = 0; a < 3; a++) for (let b = 0; b < B; b++) for (let s = 0; s < S; s++) positions.push(threeD ? (a === 0 ? s : a === 1 ? 2 * s + b : 7 - s) : s);
  const d: Diff = { logits: 0, hidden: 0, routing: 0 };
  let a = await fused.forward({ batch: B, seq: S, ids, positions });
  let b = await unfused.forward({ batch: B, seq: S, ids, positions });
  compare(a, b, d, "prefill");
  let pa: KvCache = a.present!, pb: KvCache = b.present!;
  for (let step = 0; step < steps; step++) {
    const next = randomIds(B, c.vocab_size, seed + 200 + step);
    const p = Array.from({ length: 3 * B }, () => S + 3 + step);
    a = await fused.forward({ batch: B, seq: 1, ids: next, positions: p, past: pa });
    b = await unfused.forward({ batch: B, seq: 1, ids: next, positions: p, past: pb });
    compare(a, b, d, `decode ${step}`);
    pa = a.present!;
    pb = b.present!;
  }
  // a continued prompt: S' > 1 new tokens after a cache (one sequence: GroupQueryAttention's rule, see MoeLlmRunner)
  if (B > 1) {
    if (architectureOf(c).attention !== "mla")
      await expect(fused.forward({ batch: B, seq: 2, ids: randomIds(2 * B, c.vocab_size, 1), positions: Array(6 * B).fill(20), past: pa })).rejects.toThrow("one sequence at a time");
    return check(d);
  }
  const more = randomIds(B * 3, c.vocab_size, seed + 300);
  const p3 = Array.from({ length: 3 * B * 3 }, (_, q) => S + 3 + steps + (q % 3));
  compare(await fused.forward({ batch: B, seq: 3, ids: more, positions: p3, past: pa }), await unfused.forward({ batch: B, seq: 3, ids: more, positions: p3, past: pb }), d, "continued prompt");
  return check(d);
}

function check(d: Diff): Diff {
  expect(d.logits).toBeLessThan(1e-4);
  expect(d.hidden).toBeLessThan(1e-4);
  expect(d.routing).toBeLessThan(1e-4);
  return d;
}

const fmt = (d: Diff) => `|Δlogits| ${d.logits.toExponential(2)}, |Δhidden/kv| ${d.hidden.toExponential(2)}, |Δrouting| ${d.routing.toExponential(2)}`;

describe("fused decoder graph vs the unfused reference graph", () => {
  it.each([1, 2, 3, 4, 5, 6])("Uni-MoE seed %i: sparse and dense dispatch, fp32 routing", async (seed) => {
    const c = randomConfig(seed);
    const w = randomWeights(c, seed);
    const sparse = await prefillAndDecode(c, w, seed, { moe: "sparse" });
    const single = await prefillAndDecode(c, w, seed, { moe: "sparse" }, 1);
    const dense = await prefillAndDecode(c, w, seed, { moe: "dense" });
    console.log(`uni-moe seed ${seed}: sparse ${fmt(sparse)}; one sequence ${fmt(single)}; dense ${fmt(dense)}`);
  });

  it.each([7, 8])("Uni-MoE seed %i: token drop (capacity 2), routing in bf16 as released and in fp32", async (seed) => {
    const c = randomConfig(seed, { token_drop: true, capacity_factor: 1, min_capacity: 2 } as Partial<MoeLlmConfig>);
    const w = randomWeights(c, seed);
    const bf16 = await prefillAndDecode(c, w, seed, { routingPrecision: "bf16" });
    const fp32 = await prefillAndDecode(c, w, seed, { moe: "dense" });
    console.log(`uni-moe seed ${seed} token drop: bf16 ${fmt(bf16)}; fp32 dense ${fmt(fp32)}`);
  });

  const families: Family[] = ["qwen2_moe", "qwen3_moe", "olmoe", "mixtral", "deepseek_v2", "deepseek_v3", "phimoe", "gpt_oss"];
  it.each(families)("%s (seeded checkpoint with near-tied routers)", async (family) => {
    const src = path.join(tmp, family);
    await writeFamilyCheckpoint(src, family, { seed: 61, nearTies: true });
    const st = new SafetensorsWeights(src);
    closers.push(() => st.close());
    const map = mapCheckpoint(src, st, family);
    const w = new MappedWeights(st, map);
    const sparse = await prefillAndDecode(map.config, w, 61, { moe: "sparse" }, 2, 7, 3, false);
    const single = await prefillAndDecode(map.config, w, 62, { moe: "sparse" }, 1, 9, 2, false);
    const dense = await prefillAndDecode(map.config, w, 61, { moe: "dense" }, 2, 7, 3, false);
    console.log(`${family}: sparse ${fmt(sparse)}; one sequence ${fmt(single)}; dense ${fmt(dense)}`);
  });
});
