import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { zMoeLlmConfig, type MoeLlmConfig } from "@/models/moe-llm/config";
import { SafetensorsWeights } from "@/models/io/safetensors";
import { byteTokenizer } from "@/models/text/tokenizer";
import {
  DEFAULT_SEED,
  REFERENCE_VOCAB_SIZE,
  ensureReferenceModel,
  paramTable,
  referenceConfig,
  referenceModelDir,
  seedTensor,
  seedWeights,
} from "@/models/moe-llm/uni-moe-tiny";
import { SeededRandom } from "@/models/io/seeded-random";
import { modelsDir } from "@/engine/config";

const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), "uni-moe-tiny-test-"));
afterAll(() => fs.rmSync(tmpRoot, { recursive: true, force: true }));

/** Names and shapes written out from the config by hand (real Uni-MoE-2.0 layout), independent of paramTable. */
function expectedShapes(c: MoeLlmConfig): Map<string, number[]> {
  const H = c.hidden_size;
  const hd = c.head_dim ?? H / c.num_attention_heads;
  const m = new Map<string, number[]>();
  m.set("model.embed_tokens.weight", [c.vocab_size, H]);
  m.set("model.norm.weight", [H]);
  m.set("lm_head.weight", [c.vocab_size, H]);
  for (let i = 0; i < c.num_hidden_layers; i++) {
    const p = `model.layers.${i}`;
    m.set(`${p}.input_layernorm.weight`, [H]);
    m.set(`${p}.post_attention_layernorm.weight`, [H]);
    m.set(`${p}.self_attn.q_proj.weight`, [c.num_attention_heads * hd, H]);
    m.set(`${p}.self_attn.q_proj.bias`, [c.num_attention_heads * hd]);
    for (const kv of ["k", "v"]) {
      m.set(`${p}.self_attn.${kv}_proj.weight`, [c.num_key_value_heads * hd, H]);
      m.set(`${p}.self_attn.${kv}_proj.bias`, [c.num_key_value_heads * hd]);
    }
    m.set(`${p}.self_attn.o_proj.weight`, [H, c.num_attention_heads * hd]);
    m.set(`${p}.mlp.gate.weight`, [c.mlp_dynamic_expert_num + c.mlp_dynamic_null_expert_num + c.mlp_fixed_expert_num, H]);
    for (let s = 0; s < c.mlp_fixed_expert_num; s++) {
      m.set(`${p}.mlp.fixed_real_moe.${s}.gate_proj.weight`, [c.shared_intermediate_size, H]);
      m.set(`${p}.mlp.fixed_real_moe.${s}.up_proj.weight`, [c.shared_intermediate_size, H]);
      m.set(`${p}.mlp.fixed_real_moe.${s}.down_proj.weight`, [H, c.shared_intermediate_size]);
    }
    for (let e = 0; e < c.mlp_dynamic_expert_num; e++) {
      const q = `${p}.mlp.dynamic_real_moe.deepspeed_moe.experts.deepspeed_experts.${e}`;
      m.set(`${q}.gate_proj.weight`, [c.dynamic_intermediate_size, H]);
      m.set(`${q}.up_proj.weight`, [c.dynamic_intermediate_size, H]);
      m.set(`${q}.down_proj.weight`, [H, c.dynamic_intermediate_size]);
    }
  }
  return m;
}

/** Bitwise equality of two float arrays (vitest's deep equality is slow on millions of elements). */
function sameBits(a: Float32Array, b: Float32Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

function std(a: Float32Array, mean = 0): number {
  let s = 0;
  for (const v of a) s += (v - mean) ** 2;
  return Math.sqrt(s / a.length);
}

describe("uni-moe-tiny configs", () => {
  it("tiny and small are valid configs with the specified sizes", () => {
    const t = referenceConfig("tiny");
    const s = referenceConfig("small");
    for (const c of [t, s]) {
      expect(zMoeLlmConfig.safeParse(c).success).toBe(true);
      expect(c.head_dim).toBe(32);
      expect(c.rope_scaling.mrope_section).toEqual([4, 6, 6]);
      expect(c.rope_scaling.mrope_section.reduce((a, b) => a + b)).toBe(c.head_dim! / 2);
      expect(c.rope_theta).toBe(1e6);
      expect(c.vocab_size).toBe(REFERENCE_VOCAB_SIZE);
      expect(c.mlp_dynamic_null_expert_num).toBe(1);
      expect(c.mlp_fixed_expert_num).toBe(2);
      expect(c.mlp_dynamic_top_p).toBe(0.7);
      expect(c.router_jitter_noise).toBe(0.01);
      expect(c.tie_word_embeddings).toBe(false);
      expect(c.seeded_untrained).toBe(true);
    }
    expect(REFERENCE_VOCAB_SIZE % 64).toBe(0);
    expect(REFERENCE_VOCAB_SIZE).toBeGreaterThanOrEqual(byteTokenizer.vocabSize);
    expect(REFERENCE_VOCAB_SIZE - byteTokenizer.vocabSize).toBeLessThan(64);
    expect([t.num_hidden_layers, t.hidden_size, t.num_attention_heads, t.num_key_value_heads]).toEqual([8, 128, 4, 2]);
    expect([t.mlp_dynamic_expert_num, t.dynamic_intermediate_size, t.shared_intermediate_size]).toEqual([4, 256, 32]);
    expect([s.num_hidden_layers, s.hidden_size, s.num_attention_heads, s.num_key_value_heads]).toEqual([28, 256, 8, 4]);
    expect([s.mlp_dynamic_expert_num, s.dynamic_intermediate_size, s.shared_intermediate_size]).toEqual([8, 512, 64]);
  });
});

describe("seeded weights", () => {
  const tiny = referenceConfig("tiny");
  const w1 = seedWeights(tiny, 1);

  it("tiny: every expected parameter, with the right shape and nothing else", () => {
    const want = expectedShapes(tiny);
    expect(new Set(w1.keys())).toEqual(new Set(want.keys()));
    for (const [name, t] of w1) {
      expect(t.shape, name).toEqual(want.get(name));
      expect(t.data.length, name).toBe(t.shape.reduce((a, b) => a * b, 1));
    }
  });

  it("small: every expected parameter, with the right shape (table and generated tensors)", () => {
    const small = referenceConfig("small");
    const want = expectedShapes(small);
    const table = paramTable(small);
    expect(table.length).toBe(want.size);
    for (const p of table) expect(p.shape, p.name).toEqual(want.get(p.name));
    // generate each tensor (one at a time, to keep memory low) and check its size
    for (const p of table) {
      const t = seedTensor(small, p, 3);
      expect(t.shape, p.name).toEqual(want.get(p.name));
      expect(t.data.length, p.name).toBe(want.get(p.name)!.reduce((a, b) => a * b, 1));
    }
  });

  it("is deterministic per seed and differs across seeds", () => {
    const again = seedWeights(tiny, 1);
    const other = seedWeights(tiny, 2);
    for (const [name, t] of w1) {
      expect(sameBits(again.get(name)!.data, t.data), name).toBe(true);
      expect(sameBits(other.get(name)!.data, t.data), name).toBe(false);
    }
    // tensors are independent of each other: no two share values
    expect(w1.get("model.layers.0.self_attn.k_proj.weight")!.data.slice(0, 16)).not.toEqual(w1.get("model.layers.0.self_attn.v_proj.weight")!.data.slice(0, 16));
  });

  it("has the documented init: std 0.02, norms ≈ 1, routers with logit std 0.8–2", () => {
    expect(std(w1.get("model.embed_tokens.weight")!.data)).toBeCloseTo(0.02, 3);
    expect(std(w1.get("model.layers.2.mlp.dynamic_real_moe.deepspeed_moe.experts.deepspeed_experts.3.down_proj.weight")!.data)).toBeCloseTo(0.02, 3);
    expect(std(w1.get("model.layers.2.self_attn.q_proj.bias")!.data)).toBeGreaterThan(0.01); // non-zero biases exercise the bias path
    const norm = w1.get("model.layers.5.input_layernorm.weight")!.data;
    expect(norm.reduce((a, b) => a + b) / norm.length).toBeCloseTo(1, 2);
    for (let i = 0; i < tiny.num_hidden_layers; i++) {
      const logitStd = std(w1.get(`model.layers.${i}.mlp.gate.weight`)!.data) * Math.sqrt(tiny.hidden_size);
      expect(logitStd).toBeGreaterThan(0.6);
      expect(logitStd).toBeLessThan(2.3);
    }
  });

  it("routes non-uniformly: Top-P k varies across tokens and layers, every dynamic column gets used", () => {
    // Plain-TS Top-P routing (PAPER.md §2 steps 1–2) on RMS-normalised random hidden states.
    const c = tiny;
    const D = c.mlp_dynamic_expert_num + c.mlp_dynamic_null_expert_num;
    const H = c.hidden_size;
    const rng = new SeededRandom(5);
    const kCount = new Array<number>(D + 1).fill(0);
    const colUse = new Array<number>(D).fill(0);
    const meanK: number[] = [];
    const N = 400;
    for (let l = 0; l < c.num_hidden_layers; l++) {
      const W = w1.get(`model.layers.${l}.mlp.gate.weight`)!.data;
      const g = w1.get(`model.layers.${l}.post_attention_layernorm.weight`)!.data;
      let kSum = 0;
      for (let t = 0; t < N; t++) {
        const x = rng.fillNormal(new Float32Array(H));
        const rms = Math.sqrt(x.reduce((a, v) => a + v * v, 0) / H + c.rms_norm_eps);
        const z: number[] = [];
        for (let j = 0; j < D; j++) {
          let s = 0;
          for (let h = 0; h < H; h++) s += W[j * H + h]! * g[h]! * (x[h]! / rms);
          z.push(s);
        }
        const m = Math.max(...z);
        const e = z.map((v) => Math.exp(v - m));
        const sum = e.reduce((a, b) => a + b);
        const order = e.map((v, j) => [v / sum, j] as const).sort((a, b) => b[0] - a[0]);
        let k = 0;
        let cum = 0;
        while (cum < c.mlp_dynamic_top_p) cum += order[k++]![0];
        kCount[k]!++;
        kSum += k;
        for (let i = 0; i < k; i++) colUse[order[i]![1]]!++;
      }
      meanK.push(kSum / N);
    }
    const total = N * c.num_hidden_layers;
    const shares = kCount.map((n) => n / total);
    expect(shares.filter((s) => s >= 0.1).length).toBeGreaterThanOrEqual(2); // at least two common k values
    expect(Math.max(...shares)).toBeLessThan(0.8);
    for (const u of colUse) expect(u / total).toBeGreaterThan(0.1);
    expect(Math.max(...meanK) - Math.min(...meanK)).toBeGreaterThan(0.2); // layers differ
  });
});

describe("ensureReferenceModel", () => {
  it("writes config, fp32 safetensors, manifest and tokenizer config; then does nothing while they match", async () => {
    const dir = path.join(tmpRoot, "m1", "uni-moe-tiny", "tiny");
    const progress: [number, number][] = [];
    const r = await ensureReferenceModel("tiny", dir, { onProgress: (w, t) => progress.push([w, t]) });
    expect(r.built).toBe(true);
    expect(fs.readdirSync(dir).sort()).toEqual(["config.json", "manifest.json", "model.safetensors", "tokenizer_config.json"]);
    expect(fs.readdirSync(path.dirname(dir))).toEqual(["tiny"]); // no temp dirs left
    const config = JSON.parse(fs.readFileSync(path.join(dir, "config.json"), "utf8")) as unknown;
    expect(zMoeLlmConfig.parse(config)).toEqual(referenceConfig("tiny"));
    expect(r.manifest).toMatchObject({ family: "uni-moe-tiny", name: "tiny", seed: DEFAULT_SEED, generatorVersion: 1, label: "seeded, untrained" });
    const size = fs.statSync(path.join(dir, "model.safetensors")).size;
    expect(r.manifest.files["model.safetensors"]).toBe(size);
    expect(progress.at(-1)).toEqual([size, size]);
    const tokCfg = JSON.parse(fs.readFileSync(path.join(dir, "tokenizer_config.json"), "utf8")) as { additional_special_tokens: string[] };
    expect(tokCfg.additional_special_tokens).toContain("[TASK2]");

    const w = new SafetensorsWeights(dir);
    const seeded = seedWeights(referenceConfig("tiny"), DEFAULT_SEED);
    expect(new Set(w.names())).toEqual(new Set(seeded.keys()));
    for (const [name, t] of seeded) {
      const got = w.get(name);
      expect(got.shape, name).toEqual(t.shape);
      expect(sameBits(got.data, t.data), name).toBe(true);
    }
    expect(w.info("lm_head.weight").dtype).toBe("F32");
    w.close();

    const mtime = fs.statSync(path.join(dir, "model.safetensors")).mtimeMs;
    const again = await ensureReferenceModel("tiny", dir, { onProgress: () => { throw new Error("should not build"); } });
    expect(again.built).toBe(false);
    expect(fs.statSync(path.join(dir, "model.safetensors")).mtimeMs).toBe(mtime);
  });

  it("rebuilds when config.json, the seed or the weights file no longer match", async () => {
    const dir = path.join(tmpRoot, "m2", "tiny");
    await ensureReferenceModel("tiny", dir);
    const cfgPath = path.join(dir, "config.json");
    const cfg = JSON.parse(fs.readFileSync(cfgPath, "utf8")) as Record<string, unknown>;
    fs.writeFileSync(cfgPath, JSON.stringify({ ...cfg, hidden_size: 64 }));
    const r1 = await ensureReferenceModel("tiny", dir);
    expect(r1.built).toBe(true);
    expect(r1.reason).toBe("config.json was changed");
    const r2 = await ensureReferenceModel("tiny", dir, { seed: 7 });
    expect(r2.reason).toMatch(/another config, seed or generator version/);
    expect(r2.manifest.seed).toBe(7);
    fs.truncateSync(path.join(dir, "model.safetensors"), 1000);
    const r3 = await ensureReferenceModel("tiny", dir, { seed: 7 });
    expect(r3.reason).toBe("model.safetensors has the wrong size");
    expect(fs.readdirSync(path.dirname(dir))).toEqual(["tiny"]);
  });

  it("an interrupted build leaves no half model: a fresh dir stays absent, an existing model stays intact", async () => {
    const parent = path.join(tmpRoot, "m3");
    const dir = path.join(parent, "tiny");
    const interrupt = (w: number, t: number) => {
      if (w > t / 2) throw new Error("interrupted");
    };
    await expect(ensureReferenceModel("tiny", dir, { onProgress: interrupt })).rejects.toThrow("interrupted");
    expect(fs.existsSync(dir)).toBe(false);
    expect(fs.readdirSync(parent)).toEqual([]);

    const first = await ensureReferenceModel("tiny", dir);
    await expect(ensureReferenceModel("tiny", dir, { seed: 9, onProgress: interrupt })).rejects.toThrow("interrupted");
    const still = await ensureReferenceModel("tiny", dir);
    expect(still.built).toBe(false);
    expect(still.manifest.contentHash).toBe(first.manifest.contentHash);

    // a temp dir left by a killed process (dead pid) is cleaned up by the next build
    const stale = path.join(parent, ".tiny.tmp-999999999-abc");
    fs.mkdirSync(stale);
    fs.writeFileSync(path.join(stale, "model.safetensors"), "partial");
    await ensureReferenceModel("tiny", dir, { seed: 10 });
    expect(fs.readdirSync(parent)).toEqual(["tiny"]);
  });

  it("concurrent calls for the same dir share one build", async () => {
    const dir = path.join(tmpRoot, "m4", "tiny");
    const [a, b] = await Promise.all([ensureReferenceModel("tiny", dir), ensureReferenceModel("tiny", dir)]);
    expect(a).toBe(b);
    expect(a.built).toBe(true);
  });

  it("default location: STUDIO_MODELS_DIR, else <STUDIO_DATA_DIR or ./data>/models", () => {
    const saved = { m: process.env.STUDIO_MODELS_DIR, d: process.env.STUDIO_DATA_DIR };
    try {
      delete process.env.STUDIO_MODELS_DIR;
      delete process.env.STUDIO_DATA_DIR;
      expect(modelsDir()).toBe(path.resolve("data", "models"));
      process.env.STUDIO_DATA_DIR = "/srv/studio";
      expect(referenceModelDir("small")).toBe("/srv/studio/models/uni-moe-tiny/small");
      process.env.STUDIO_MODELS_DIR = "/m";
      expect(referenceModelDir("tiny")).toBe("/m/uni-moe-tiny/tiny");
    } finally {
      for (const [k, v] of [["STUDIO_MODELS_DIR", saved.m], ["STUDIO_DATA_DIR", saved.d]] as const) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    }
  });
});
