import { existsSync, readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunContext } from "@/engine/node";
import { SessionPool } from "@/engine/runtime/pool";
import { DiskStorage } from "@/engine/storage";
import { ditReferenceConfig, ensureDitModel, withDit, DIT_LABEL } from "@/models/dit/dit-tiny";
import { initialNoise, latentSize, seededConditioning } from "@/models/dit/dit";
import { SeededRandom } from "@/models/io/seeded-random";
import { generateImage, pickConditioning, type GenerateImageInfo } from "@/nodes/dit";
import type { LlmOutputValue } from "@/nodes/moe-llm";

let root: string;
let storage: DiskStorage;
let pool: SessionPool;

beforeAll(async () => {
  root = await mkdtemp(path.join(tmpdir(), "moe-dit-"));
  process.env.STUDIO_MODELS_DIR = path.join(root, "models"); // read at call time by modelsDir()
  storage = new DiskStorage(path.join(root, "blobs"));
  pool = new SessionPool({ executionProvider: "cpu", intraOpNumThreads: 2 });
});
afterAll(async () => {
  await pool?.close();
  if (root) await rm(root, { recursive: true, force: true });
});

function llmOutput(text: string, special: LlmOutputValue["specialHidden"] = []): LlmOutputValue {
  return { kind: "llm-output", model: "uni-moe-tiny/tiny", text, promptIds: [1, 2], ids: [3, 4, 5], stopReason: "eos", specialHidden: special, prefillMs: 1, decodeMs: 1 };
}

/** 32 [IMG*] + 3 [TASK*] entries with seeded 128-dim hidden states, as a trained LLM would emit them. */
function withTokens(seed: number): LlmOutputValue["specialHidden"] {
  const rng = new SeededRandom(seed);
  const names = [...Array.from({ length: 3 }, (_, i) => `[TASK${i}]`), ...Array.from({ length: 32 }, (_, i) => `[IMG${i}]`)];
  return names.map((token, index) => ({ token, id: 1000 + index, index, hidden: rng.fillNormal(new Float32Array(128)) }));
}

function ctxWith(over: Partial<RunContext> = {}): RunContext & { events: [number, string | undefined][] } {
  const events: [number, string | undefined][] = [];
  return { runId: "r", nodeId: "dit", signal: new AbortController().signal, progress: (f, m) => events.push([f, m]), storage, log: () => {}, runtime: pool, events, ...over };
}

type Params = Parameters<typeof generateImage.execute>[0]["params"];
const params = (p: Partial<Params> = {}): Params => ({ ...generateImage.params.parse({ sampler: "paper", llmStates: "tokens" }), ...p });

async function run(inputs: Record<string, unknown>, p: Partial<Params> = {}, ctx = ctxWith()) {
  const out = await generateImage.execute({ inputs, params: params(p), ctx });
  return { image: out.image as { kind: string; file: string; mime: string; width: number; height: number }, info: out.info as GenerateImageInfo, out, ctx };
}

describe("generate.image (task-aware DiT node)", () => {
  it("builds uni-moe-tiny/dit on first use (manifest, dit_config.json, labelled seeded, untrained) and reuses it", async () => {
    const first = await ensureDitModel();
    expect(first.dir).toBe(path.join(root, "models", "uni-moe-tiny", "dit"));
    expect(first.manifest.label).toBe(DIT_LABEL);
    expect(existsSync(path.join(first.dir, "dit_config.json"))).toBe(true);
    expect(existsSync(path.join(first.dir, "config.json"))).toBe(false); // not listed as an LLM
    expect(JSON.parse(readFileSync(path.join(first.dir, "dit_config.json"), "utf8"))).toEqual(ditReferenceConfig());
    const again = await ensureDitModel();
    expect(again.built).toBe(false);
    expect(again.manifest.contentHash).toBe(first.manifest.contentHash);
  });

  it("writes a 256×256 PNG, reports progress per step, and says the conditioning was seeded", async () => {
    const { image, info, out, ctx } = await run({ llm: llmOutput("draw a red cat") }, { steps: 5 });
    expect(image).toMatchObject({ kind: "image", mime: "image/png", width: 256, height: 256 });
    const meta = await sharp(await storage.read(image.file)).metadata();
    expect([meta.format, meta.width, meta.height, meta.channels]).toEqual(["png", 256, 256, 3]);
    expect(info).toMatchObject({ mode: "text-to-image", conditioning: "seeded-from-text", steps: 5, guidance: 4, seed: 0, label: "seeded, untrained" });
    const steps = ctx.events.map(([, m]) => m).filter((m) => /^step [1-9]/.test(m ?? ""));
    expect(steps).toEqual(["step 1/5", "step 2/5", "step 3/5", "step 4/5", "step 5/5"]);
    expect(ctx.events.at(-1)![0]).toBe(1);
    const summary = generateImage.summarize!(out);
    console.log(`summary: ${summary}`);
    expect(summary).toMatch(/256×256 PNG.*seeded, untrained.*seeded from a hash of the LLM text/);
  });

  it("same seed → identical PNG bytes; different seed → different image", async () => {
    const llm = llmOutput("same prompt");
    const a = await run({ llm }, { steps: 3, seed: 11 });
    const b = await run({ llm }, { steps: 3, seed: 11 });
    const c = await run({ llm }, { steps: 3, seed: 12 });
    const [ba, bb, bc] = await Promise.all([storage.read(a.image.file), storage.read(b.image.file), storage.read(c.image.file)]);
    expect(ba.equals(bb)).toBe(true);
    expect(ba.equals(bc)).toBe(false);
    const [ra, rc] = await Promise.all([sharp(ba).raw().toBuffer(), sharp(bc).raw().toBuffer()]);
    let differ = 0;
    for (let i = 0; i < ra.length; i++) if (ra[i] !== rc[i]) differ++;
    expect(differ / ra.length).toBeGreaterThan(0.5);
  });

  it("uses the LLM's [IMG*]/[TASK*] hidden states when present; conditioning 'llm' refuses to fall back", async () => {
    const special = withTokens(5);
    const withLlm = await run({ llm: llmOutput("x", special) }, { steps: 2, conditioning: "llm" });
    expect(withLlm.info.conditioning).toBe("llm");
    expect(generateImage.summarize!(withLlm.out)).toMatch(/conditioned on the LLM's \[IMG\*\]\/\[TASK\*\] hidden states/);
    const seeded = await run({ llm: llmOutput("x") }, { steps: 2 });
    expect(withLlm.image.file).not.toBe(seeded.image.file);
    await expect(run({ llm: llmOutput("x", special.slice(0, 20)) }, { conditioning: "llm" })).rejects.toThrow(/generated 20 of the 35 tokens.*llm-or-seeded/);
    await expect(run({ llm: "not an llm output" })).rejects.toThrow(/connect an LLM output/);
    const fallback = pickConditioning(llmOutput("x", special.slice(0, 20)), "llm-or-seeded");
    expect(fallback.source).toBe("seeded-from-text");
  });

  it("CFG with g = 1 equals the conditional velocity (batch-2 conditional row), g = 4 differs", async () => {
    const cond = seededConditioning(ditReferenceConfig().dit, "cfg", [1], "test");
    await withDit(pool, { withEncoder: false }, async (runner) => {
      const c = runner.config.dit;
      const n = latentSize(c);
      const x = initialNoise(c, 3);
      const two = (a: Float32Array, b: Float32Array) => Float32Array.from([...a, ...b]);
      const batch = await runner.forward({ x: two(x, x), source: new Float32Array(2 * n), t: Float32Array.of(0.6, 0.6), img: two(cond.img, new Float32Array(cond.img.length)), task: two(cond.task, new Float32Array(cond.task.length)), batch: 2 });
      const vc = batch.subarray(0, n), vu = batch.subarray(n);
      const g1 = await runner.guidedVelocity(x, 0.6, cond, 1);
      const g4 = await runner.guidedVelocity(x, 0.6, cond, 4);
      let d1 = 0, d4 = 0, du = 0;
      for (let i = 0; i < n; i++) {
        d1 = Math.max(d1, Math.abs(g1[i]! - vc[i]!));
        d4 = Math.max(d4, Math.abs(g4[i]! - (vu[i]! + 4 * (vc[i]! - vu[i]!))));
        du = Math.max(du, Math.abs(vc[i]! - vu[i]!));
      }
      console.log(`CFG: |v(g=1) − v_c| ${d1.toExponential(2)}, |v(g=4) − (v_u + 4(v_c − v_u))| ${d4.toExponential(2)}, |v_c − v_u| ${du.toFixed(3)}`);
      expect(d1).toBeLessThan(1e-5);
      expect(d4).toBeLessThan(1e-4);
      expect(du).toBeGreaterThan(0.01); // the conditioning matters
    });
  });

  it("cancels between steps: aborting during step 3 stops the run with the signal's reason", async () => {
    const ac = new AbortController();
    const events: string[] = [];
    const ctx = ctxWith({
      signal: ac.signal,
      progress: (_f, m) => {
        events.push(m ?? "");
        if (m === "step 3/20") ac.abort(new Error("cancelled by the user"));
      },
    });
    await expect(run({ llm: llmOutput("cancel me") }, { steps: 20 }, ctx)).rejects.toThrow("cancelled by the user");
    expect(events.filter((m) => /^step [1-9]/.test(m))).toEqual(["step 1/20", "step 2/20", "step 3/20"]);
  });

  it("edits a source image (VAE-encoded latent concatenated on channels): 256×256 PNG, differs from text-to-image", async () => {
    const src = await sharp({ create: { width: 320, height: 200, channels: 3, background: { r: 200, g: 40, b: 90 } } }).png().toBuffer();
    const file = await storage.write(src, "png");
    const llm = llmOutput("make it blue");
    const edit = await run({ llm, source: { kind: "image", file, mime: "image/png", width: 320, height: 200 } }, { steps: 3, seed: 4 });
    const plain = await run({ llm }, { steps: 3, seed: 4 });
    expect(edit.info.mode).toBe("edit");
    expect(edit.image).toMatchObject({ width: 256, height: 256, mime: "image/png" });
    const meta = await sharp(await storage.read(edit.image.file)).metadata();
    expect([meta.width, meta.height]).toEqual([256, 256]);
    expect(edit.image.file).not.toBe(plain.image.file);
    expect(generateImage.summarize!(edit.out)).toMatch(/^edited 256×256/);
    await expect(run({ llm, source: { kind: "audio", file } })).rejects.toThrow(/not an image/);
  });
});
