import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { expertColumns } from "@/models/moe-llm/config";
import { importCheckpoint } from "@/models/import/import";
import { SafetensorsWeights } from "@/models/io/safetensors";
import { ensureReferenceModel } from "@/models/moe-llm/uni-moe-tiny";
import { familyReference } from "../reference/families";
import { get } from "../reference/families/ops";
import { referenceLens } from "../reference/lens";
import { referenceForward } from "../reference/moe-llm";
import { writeFamilyCheckpoint } from "../unit/import/family-checkpoints";
import { cliEntry } from "../cli-bundle";

// `cli forward` is a scripting contract: exact shape, and numbers that agree with the plain-TS reference.
const root = path.join(__dirname, "../..");
const tmp = mkdtempSync(path.join(os.tmpdir(), "studio-fwd-"));

function cli(...args: string[]) {
  const r = spawnSync(process.execPath, [...cliEntry(), ...args], {
    cwd: root,
    env: { ...process.env, STUDIO_MODELS_DIR: path.join(tmp, "models") },
    encoding: "utf8",
    timeout: 120_000,
  });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

type LensJson = { layer: number; top_ids: number[][]; top_logprobs: number[][] }[];

/**
 * `cli forward` with and without --logit-lens: the lens output is the plain one plus `lens` (one entry per decoder
 * layer, a row of 5 descending log-probabilities per position); returns both and how far the last layer's lens at the
 * last position is from the log-softmax of the logits (whose top-5 ids it must be).
 */
function forwardWithLens(dir: string, ids: number[], layers: number, label: string) {
  const n = ids.length;
  const plainFile = path.join(tmp, `${label}-plain.json`);
  const lensFile = path.join(tmp, `${label}-lens.json`);
  expect(cli("forward", "--model", dir, "--ids", ids.join(","), "--out", plainFile).code).toBe(0);
  const r = cli("forward", "--model", dir, "--ids", ids.join(","), "--logit-lens", "--out", lensFile);
  expect(r.err).toBe("");
  expect(r.code).toBe(0);
  const plain = JSON.parse(readFileSync(plainFile, "utf8"));
  const { lens, ...rest } = JSON.parse(readFileSync(lensFile, "utf8")) as { lens: LensJson };
  expect(rest).toEqual(plain);
  expect(Object.keys(plain).sort()).toEqual(["layers", "logits"]);
  expect(lens).toHaveLength(layers);
  lens.forEach((l, i) => {
    expect(Object.keys(l).sort()).toEqual(["layer", "top_ids", "top_logprobs"]);
    expect(l.layer).toBe(i);
    expect(l.top_ids).toHaveLength(n);
    expect(l.top_logprobs).toHaveLength(n);
    for (const row of l.top_logprobs) {
      expect(row).toHaveLength(5);
      for (let j = 1; j < 5; j++) expect(row[j]!).toBeLessThanOrEqual(row[j - 1]!);
    }
  });
  // logits are the last position's: the last layer's lens at that position is their log-softmax top-5
  const logits: number[] = plain.logits;
  const mx = Math.max(...logits);
  const lse = mx + Math.log(logits.reduce((a, v) => a + Math.exp(v - mx), 0));
  const top = [...logits.keys()].sort((a, b) => logits[b]! - logits[a]!).slice(0, 5);
  const last = lens[layers - 1]!;
  expect(last.top_ids[n - 1]).toEqual(top);
  return { plain, lens, dLast: Math.max(...top.map((v, j) => Math.abs(logits[v]! - lse - last.top_logprobs[n - 1]![j]!))) };
}

describe("cli forward on uni-moe-tiny/tiny", () => {
  it("writes exactly { logits, layers[{layer, router_logits, k, mask, weights}] } matching the reference", async () => {
    const { dir, config } = await ensureReferenceModel("tiny", path.join(tmp, "models", "uni-moe-tiny", "tiny"));
    const ids = [256, 72, 105, 33, 257, 300, 10];
    const n = ids.length;
    // A small image-like span: distinct t, h, w.
    const positions = { t: [0, 1, 2, 2, 2, 2, 5], h: [0, 1, 2, 2, 3, 3, 5], w: [0, 1, 2, 3, 2, 3, 5] };
    writeFileSync(path.join(tmp, "pos.json"), JSON.stringify(positions));
    const out = path.join(tmp, "result.json");
    const r = cli("forward", "--model", dir, "--ids", ids.join(","), "--positions", path.join(tmp, "pos.json"), "--out", out);
    expect(r.err).toBe("");
    expect(r.code).toBe(0);
    const result = JSON.parse(readFileSync(out, "utf8"));
    expect(Object.keys(result).sort()).toEqual(["layers", "logits"]);
    const E = expertColumns(config).length;
    expect(result.logits).toHaveLength(config.vocab_size);
    expect(result.layers).toHaveLength(config.num_hidden_layers);
    for (const [i, l] of result.layers.entries()) {
      // issue 20 added `layer` (the decoder index; every layer of uni-moe-tiny is an MoE layer)
      expect(Object.keys(l).sort()).toEqual(["k", "layer", "mask", "router_logits", "weights"]);
      expect(l.layer).toBe(i);
      expect(l.router_logits).toHaveLength(n);
      expect(l.router_logits[0]).toHaveLength(E);
      expect(l.k).toHaveLength(n);
      expect(l.mask.flat().every((v: number) => v === 0 || v === 1)).toBe(true);
    }

    const weights = new SafetensorsWeights(dir);
    const ref = referenceForward(config, weights, { batch: 1, seq: n, ids, positions: [...positions.t, ...positions.h, ...positions.w] });
    weights.close();
    const V = config.vocab_size;
    let maxLogit = 0;
    for (let v = 0; v < V; v++) maxLogit = Math.max(maxLogit, Math.abs(result.logits[v] - ref.logits[(n - 1) * V + v]!));
    let maxWeight = 0;
    result.layers.forEach((l: { k: number[]; mask: number[][]; weights: number[][]; router_logits: number[][] }, i: number) => {
      const rl = ref.trace[i]!;
      expect(l.k).toEqual(Array.from(rl.k, Number));
      expect(l.mask.flat()).toEqual(Array.from(rl.mask, Number));
      l.weights.flat().forEach((w, j) => (maxWeight = Math.max(maxWeight, Math.abs(w - rl.weights[j]!))));
    });
    console.log(`cli forward vs reference: max |Δlogit| ${maxLogit.toExponential(2)}, max |Δweight| ${maxWeight.toExponential(2)}`);
    expect(maxLogit).toBeLessThan(1e-4);
    expect(maxWeight).toBeLessThan(1e-4);

    // --dense gives the same numbers; --top-p 1 selects every dynamic expert.
    const dense = path.join(tmp, "dense.json");
    expect(cli("forward", "--model", dir, "--ids", ids.join(","), "--positions", path.join(tmp, "pos.json"), "--dense", "--out", dense).code).toBe(0);
    const d = JSON.parse(readFileSync(dense, "utf8"));
    expect(Math.max(...d.logits.map((v: number, i: number) => Math.abs(v - result.logits[i])))).toBeLessThan(1e-5);
    const all = path.join(tmp, "all.json");
    expect(cli("forward", "--model", dir, "--ids", ids.join(","), "--top-p", "1", "--out", all).code).toBe(0);
    const D = config.mlp_dynamic_expert_num + config.mlp_dynamic_null_expert_num;
    for (const l of JSON.parse(readFileSync(all, "utf8")).layers) expect(l.k.every((k: number) => k === D)).toBe(true);
  }, 180_000);

  it("--logit-lens adds lens: [{ layer, top_ids, top_logprobs }] (rows per position) and changes no existing field; the last layer's lens is the model's own prediction", async () => {
    const { dir, config } = await ensureReferenceModel("tiny", path.join(tmp, "models", "uni-moe-tiny", "tiny"));
    const { dLast } = forwardWithLens(dir, [256, 72, 105, 33, 257, 300, 10], config.num_hidden_layers, "tiny");
    console.log(`cli forward --logit-lens: last layer vs the model's own log-probabilities max |Δ| ${dLast.toExponential(2)}`);
    expect(dLast).toBeLessThan(1e-5);
  }, 180_000);

  it("--routing-precision bf16 routes as the release (reference in bf16), same output shape; k before drops, mask and weights after", async () => {
    const { dir, config } = await ensureReferenceModel("tiny", path.join(tmp, "models", "uni-moe-tiny", "tiny"));
    const ids = [256, 72, 105, 33, 257, 300, 10, 44, 45];
    const n = ids.length;
    const out = path.join(tmp, "bf16.json");
    const r = cli("forward", "--model", dir, "--ids", ids.join(","), "--routing-precision", "bf16", "--out", out);
    expect(r.err).toBe("");
    expect(r.code).toBe(0);
    const result = JSON.parse(readFileSync(out, "utf8"));
    expect(Object.keys(result).sort()).toEqual(["layers", "logits"]);
    for (const l of result.layers) expect(Object.keys(l).sort()).toEqual(["k", "layer", "mask", "router_logits", "weights"]);
    const weights = new SafetensorsWeights(dir);
    const positions = [...ids.keys(), ...ids.keys(), ...ids.keys()];
    const ref = referenceForward(config, weights, { batch: 1, seq: n, ids, positions, routingPrecision: "bf16" });
    // the same model with token drop (probs) and a capacity that drops
    const dropDir = path.join(tmp, "models", "local", "tiny-drop");
    const { cpSync } = await import("node:fs");
    cpSync(dir, dropDir, { recursive: true });
    const dropConfig = { ...config, token_drop: true, drop_policy: "probs", capacity_factor: 0.5, min_capacity: 1 };
    writeFileSync(path.join(dropDir, "config.json"), JSON.stringify(dropConfig));
    const refDrop = referenceForward(dropConfig, weights, { batch: 1, seq: n, ids, positions, routingPrecision: "bf16" });
    weights.close();
    const V = config.vocab_size;
    const check = (res: typeof result, rf: typeof ref) => {
      let dl = 0;
      for (let v = 0; v < V; v++) dl = Math.max(dl, Math.abs(res.logits[v] - rf.logits[(n - 1) * V + v]!));
      res.layers.forEach((l: { k: number[]; mask: number[][]; router_logits: number[][] }, i: number) => {
        expect(l.k).toEqual(rf.trace[i]!.k);
        expect(l.mask.flat()).toEqual(rf.trace[i]!.mask);
        expect(l.router_logits.flat()).toEqual(rf.trace[i]!.routerLogits);
      });
      expect(dl).toBeLessThan(1e-4);
      return dl;
    };
    const dl = check(result, ref);
    const dropOut = path.join(tmp, "bf16-drop.json");
    expect(cli("forward", "--model", dropDir, "--ids", ids.join(","), "--routing-precision", "bf16", "--out", dropOut).code).toBe(0);
    const drop = JSON.parse(readFileSync(dropOut, "utf8"));
    const dlDrop = check(drop, refDrop);
    const dropped = refDrop.trace.reduce((a, t) => a + t.dropped.reduce((x, y) => x + y, 0), 0);
    // k counts the dropped selections: the mask holds fewer dynamic experts than k
    const D = config.mlp_dynamic_expert_num + config.mlp_dynamic_null_expert_num;
    const shortfall = drop.layers.reduce((a: number, l: { k: number[]; mask: number[][] }) => a + l.k.reduce((x, k, t) => x + k - l.mask[t]!.slice(0, D).reduce((p, q) => p + q, 0), 0), 0);
    console.log(`cli forward --routing-precision bf16 vs reference: |Δlogit| ${dl.toExponential(2)}; with token drop ${dlDrop.toExponential(2)}, ${dropped} dropped = ${shortfall} (k − selected)`);
    expect(dropped).toBeGreaterThan(0);
    expect(shortfall).toBe(dropped);
    const bad = cli("forward", "--model", dir, "--ids", "1", "--routing-precision", "fp16", "--out", path.join(tmp, "x.json"));
    expect(bad.code).toBe(2);
    expect(bad.err).toContain('--routing-precision must be fp32 or bf16 (got "fp16")');
  });

  it("bad input is exit 2 with the cause", { timeout: 120_000 }, () => { // five CLI processes, one after another
    expect(cli("forward", "--model", path.join(tmp, "nope"), "--ids", "1", "--out", path.join(tmp, "x.json"))).toMatchObject({ code: 2 });
    const r = cli("forward", "--model", path.join(tmp, "models", "uni-moe-tiny", "tiny"), "--ids", "1,99999", "--out", path.join(tmp, "x.json"));
    expect(r.code).toBe(2);
    expect(r.err).toContain("outside the vocabulary");
    const tiny = path.join(tmp, "models", "uni-moe-tiny", "tiny");
    for (const ids of ["0x10", "=-1"]) {
      const odd = cli("forward", "--model", tiny, `--ids${ids.startsWith("=") ? ids : `=${ids}`}`, "--out", path.join(tmp, "x.json"));
      expect(odd.code, ids).toBe(2);
      expect(odd.err).toContain("--ids must be comma-separated token ids");
    }
    // positions past int32 (they wrapped silently in the int64 tensor) or below 0
    for (const t of [-5, 1e300]) {
      const file = path.join(tmp, "pos-range.json");
      writeFileSync(file, JSON.stringify({ t: [0, t], h: [0, 1], w: [0, 1] }));
      const far = cli("forward", "--model", tiny, "--ids", "1,2", "--positions", file, "--out", path.join(tmp, "x.json"));
      expect(far.code, String(t)).toBe(2);
      expect(far.err).toContain("positions.t must be 2 integers in 0…2147483647");
    }
    // a positions file that is not exactly {t, h, w} (null ran with the default positions; extra keys passed)
    for (const body of ["null", "[]", JSON.stringify({ t: [0, 1], h: [0, 1], w: [0, 1], x: 5 })]) {
      const file = path.join(tmp, "pos-shape.json");
      writeFileSync(file, body);
      const bad = cli("forward", "--model", tiny, "--ids", "1,2", "--positions", file, "--out", path.join(tmp, "x.json"));
      expect(bad.code, body).toBe(2);
      expect(bad.err).toContain('must hold exactly {"t": [...], "h": [...], "w": [...]}');
    }
  });
});

describe("cli forward --logit-lens on an imported model", () => {
  it("phimoe (LayerNorm with bias, lm_head bias): the same contract; the last layer is the model's prediction, an intermediate layer the plain-TS lens of the reference's residual stream", async () => {
    const src = path.join(tmp, "phimoe-src");
    const { config, tensors } = await writeFamilyCheckpoint(src, "phimoe", { seed: 41 });
    const { dir } = await importCheckpoint(src, { root: path.join(tmp, "models"), name: "phi" });
    const ids = [3, 17, 60, 2, 41, 9];
    const n = ids.length, V = config.vocab_size as number, H = config.hidden_size as number;
    const { lens, dLast } = forwardWithLens(dir, ids, config.num_hidden_layers as number, "phi");
    // layer 0 through LayerNorm(model.norm) and lm_head with its bias, in float64 on the reference's residual stream
    const ref = familyReference("phimoe", config, tensors, ids);
    const want = referenceLens(
      { norm: get(tensors, "model.norm.weight"), normBias: get(tensors, "model.norm.bias"), eps: config.rms_norm_eps as number, head: get(tensors, "lm_head.weight"), headBias: get(tensors, "lm_head.bias") },
      ref.hidden.map((h) => h.flat()),
      n, H, V, 5,
    );
    let dMid = 0;
    want[0]!.forEach((cell, t) => {
      expect(lens[0]!.top_ids[t]).toEqual(cell.ids);
      cell.logprobs.forEach((v, j) => (dMid = Math.max(dMid, Math.abs(v - lens[0]!.top_logprobs[t]![j]!))));
    });
    console.log(`cli forward --logit-lens, imported phimoe: last layer vs its own log-probabilities max |Δ| ${dLast.toExponential(2)}; layer 0 vs the plain-TS lens max |Δ| ${dMid.toExponential(2)}`);
    expect(dLast).toBeLessThan(1e-4);
    expect(dMid).toBeLessThan(1e-4);
  }, 180_000);
});
