import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import * as ort from "onnxruntime-node";
import { afterAll, describe, expect, it } from "vitest";
import { kvCacheDims } from "@/models/moe-llm/decoder/attention";
import type { KvCache } from "@/models/moe-llm/moe-llm-session";
import { familyReference } from "../../reference/families";
import { randomIds } from "../../reference/random";
import { maxAbs, openImported } from "./compare-imported";
import type { Family, WriteOptions } from "./family-checkpoints";

/**
 * KV-cache generation of the new families: prefill, then one token per call, every step's logits and routing vs the
 * family reference run on the whole sequence so far. DeepSeek's cache holds MLA's latent and rope key
 * (decoder/attention.ts), gpt-oss's sliding layers see only their window (4 of 10 tokens) and its sinks, Phi-3.5-MoE's
 * LongRoPE refuses contexts past original_max_position_embeddings.
 */
const tmp = mkdtempSync(path.join(os.tmpdir(), "import-new-cache-"));
const root = path.join(tmp, "models");
const sessions: ort.InferenceSession[] = [];
afterAll(async () => {
  for (const s of sessions) await s.release();
  rmSync(tmp, { recursive: true, force: true });
});

const positions = (from: number, count: number) => Array.from({ length: 3 * count }, (_, q) => from + (q % count));

const imported = (family: Family, label: string, opts: WriteOptions) => openImported(tmp, root, family, label, opts, sessions);

async function generate(family: Family, opts: WriteOptions, total = 10, prompt = 4) {
  const m = await imported(family, `${family}-gen`, opts);
  const V = m.canonical.vocab_size;
  const ids = randomIds(prompt, V, 5);
  let out = await m.runner.forward({ batch: 1, seq: ids.length, ids, positions: positions(0, ids.length) });
  let past: KvCache = out.present!;
  let worst = 0;
  while (ids.length < total) {
    const last = out.logits.subarray(out.logits.length - V);
    ids.push(last.indexOf(Math.max(...last)));
    out = await m.runner.forward({ batch: 1, seq: 1, ids: [ids.at(-1)!], positions: positions(ids.length - 1, 1), past });
    past = out.present!;
    const ref = familyReference(family, m.config, m.tensors, ids);
    worst = Math.max(worst, maxAbs(out.logits, ref.logits.at(-1)!));
    ref.layers.forEach((layer, l) => {
      expect(out.trace![l]!.layer).toBe(layer.layer);
      expect(Array.from(out.trace![l]!.mask)).toEqual(layer.mask.at(-1));
      worst = Math.max(worst, maxAbs(out.trace![l]!.weights, layer.weights.at(-1)!));
    });
  }
  const { key, value } = kvCacheDims(m.canonical);
  expect(past.length).toBe(total);
  expect(past.keys[0]!.length).toBe(total * key[0] * key[1]);
  expect(past.values[0]!.length).toBe(total * value[0] * value[1]);
  console.log(`${family}: KV-cache generation ${prompt} → ${total} tokens, cache per token and layer ${key[0] * key[1] + value[0] * value[1]} floats, max |Δ| per step ${worst.toExponential(2)}`);
  expect(worst).toBeLessThan(1e-4);
  return m;
}

describe("KV-cache generation of the new families vs their references", () => {
  it("deepseek_v3: the cache holds MLA's normalised latent (kv_lora_rank) and rotated rope key, not expanded k/v", async () => {
    const m = await generate("deepseek_v3", { seed: 61 });
    expect(kvCacheDims(m.canonical)).toEqual({ key: [1, 16], value: [1, 8] });
  });
  it("deepseek_v2 (q_proj, pair-rotated rope)", async () => {
    await generate("deepseek_v2", { seed: 62 });
  });
  it("gpt_oss: a sliding layer of window 4 and a full layer, with sinks, past the window", async () => {
    await generate("gpt_oss", { seed: 63 });
  });
  it("phimoe", async () => {
    await generate("phimoe", { seed: 64 });
  });
});

describe("Phi-3.5-MoE's LongRoPE: only the short factors are implemented", () => {
  it("a context past original_max_position_embeddings is refused with the reason, in prefill and in decode", async () => {
    const rope = { type: "longrope", short_factor: [1, 1.2, 2.5, 7], long_factor: [1.1, 1.6, 4, 20], short_mscale: 1.2, long_mscale: 1.2, original_max_position_embeddings: 6 };
    const m = await imported("phimoe", "phimoe-long", { seed: 65, configOverride: { rope_scaling: rope, original_max_position_embeddings: 6 } });
    await expect(m.runner.forward({ batch: 1, seq: 7, ids: randomIds(7, 64, 1), positions: positions(0, 7) })).rejects.toThrow(
      "phimoe: 7 tokens exceed the 6 its RoPE is built for (LongRoPE's short factors; the long factors, used past original_max_position_embeddings, are not implemented)",
    );
    const first = await m.runner.forward({ batch: 1, seq: 6, ids: randomIds(6, 64, 2), positions: positions(0, 6) });
    await expect(m.runner.forward({ batch: 1, seq: 1, ids: [3], positions: positions(6, 1), past: first.present! })).rejects.toThrow("7 tokens exceed the 6");
  });
});
