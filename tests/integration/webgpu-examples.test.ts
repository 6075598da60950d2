/**
 * Every example workflow of the start page (app/examples/index.ts) run headless on a `webgpu` runtime and on a
 * `cpu` runtime, and the outputs compared node by node. The path is the CLI's (`cli run`, app/server/cli*.ts): the
 * app's catalogue (nodes/index.ts), an Executor over a SessionPool with the provider preference, `--set`-style
 * overrides (app/server/overrides.ts) and, for the dataset examples, the batch runner that `cli run --dataset` uses.
 * In CI the adapter is SwiftShader's Vulkan driver (a software GPU; see tests/integration/webgpu.test.ts).
 *
 * What is compared (each output value walked in full, including the JSON files the nodes write):
 *   integer data exactly: routing masks and k, token ids, generated text, counts of the routing aggregates;
 *   float data (logits, router logits, weights, hidden states, metrics, NLLs) within the tolerances of
 *   webgpu.test.ts: outputs of a node at or downstream of a decoder (MoE-LLM, MoE-TTS) max |Δ| ≤ 2e-3 · max(1, peak)
 *   of the array (or of the number), all other nodes (encoders, Prompt Builder) 1e-4 · max(1, peak);
 *   audio (16-bit WAV): the same 2e-3 · max(1, peak) plus one quantisation step (1/32768);
 *   images (8-bit PNG): every channel within 2 levels of 255 (a float difference of 2e-3 can move a rounding by one
 *   level; the DiT's conditioning comes from the decoder's hidden states);
 *   timings (keys ending in "ms"/"Ms") and wall-clock stamps (createdAt) are not compared.
 * Cut for CI time (SwiftShader is slow; this is correctness, not speed):
 *   omni: MoE-LLM maxNewTokens 16 → 4, MoE-TTS maxSeconds 2 → 0.5, DiT sampler "released" (59 steps × 3 branches) →
 *     "paper" with 2 steps; moe-llm-routing, ban-and-compare, routing-precision: maxNewTokens → 4;
 *   dataset-routing: the first 3 records (runBatch maxRecords, as `cli run --dataset` runs it), maxNewTokens 4 as shipped;
 *   dataset-ablation: the Expert Ablation node's own limits, maxRecords 2 and maxAblations 2 (baseline + *.E1, *.E2).
 * The webgpu pool is asked for `webgpu` only (no CPU fallback exists for that preference); the test also checks that
 * every session it loaded ran on WebGPU.
 *
 * KNOWN BUG (found by this suite; every shipped example hits it, so those cases are `it.fails` until it is fixed, and
 * turn red when it is): on WebGPU (ONNX Runtime 1.30, SwiftShader) a decoder prefill of 32 or more tokens of
 * uni-moe-tiny/tiny diverges from the CPU provider from position 4 on (logits Δ ≈ 0.1 at peak ≈ 0.6, router logits
 * Δ up to 0.9 in layer 0, masks and k differ), in the device-resident graph and in the sparse graph alike; 24
 * tokens or fewer match within 2e-6 (positions 0–3 always match). Not a near-tie: the first layer's router logits
 * already differ by 0.5. The shipped prompts are 56 tokens (moe-llm-routing) to 307 (omni). The two short-prompt
 * cases below run the same workflows end to end under that length and must match.
 * Without an adapter the suite is skipped with the reason printed; in CI (CI=true) a missing adapter fails.
 */
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import sharp from "sharp";
import { afterAll, describe, expect, it } from "vitest";
import { EXAMPLES, type Example } from "@/app/examples";
import { storeSampleMedia } from "@/app/examples/media";
import { applyOverrides } from "@/app/server/overrides";
import { resolveDatasetSource } from "@/engine/batch/dataset";
import { batchCatalogue } from "@/engine/batch/feeder";
import { findCollectTarget, runBatch } from "@/engine/batch/runner";
import { aggregateExport, batchExportMeta } from "@/engine/batch/summary";
import { modelsDir } from "@/engine/config";
import { Executor } from "@/engine/executor";
import { decodeWavMono } from "@/engine/media/wav";
import { SessionPool } from "@/engine/runtime";
import { adapterLabel, noAdapterHelp, probeWebGpu } from "@/engine/runtime/webgpu";
import { BLOB_ID, DiskStorage } from "@/engine/storage";
import type { Workflow } from "@/engine/workflow/schema";
import { catalogue } from "@/nodes";

// Opt-in (STUDIO_TEST_WEBGPU_EXAMPLES=1) until the long-prefill divergence below is fixed: today it documents that bug
// with it.fails cases and costs ~4.5 min of SwiftShader time, and an it.fails that depends on the host CPU's rounding
// must not decide CI. The per-family suite (webgpu.test.ts) runs in CI.
const OPT_IN = process.env.STUDIO_TEST_WEBGPU_EXAMPLES === "1";
const probe = OPT_IN ? await probeWebGpu() : { ok: false as const, reason: "opt-in: set STUDIO_TEST_WEBGPU_EXAMPLES=1" };
if (!OPT_IN) console.log("WebGPU example suite skipped (opt-in: STUDIO_TEST_WEBGPU_EXAMPLES=1)");
else if (!probe.ok) {
  const why = `WebGPU example suite skipped: no WebGPU adapter could be created (${probe.reason}). ${noAdapterHelp()}`;
  if (process.env.CI === "true") throw new Error(`${why} — CI must run it (.ci/run installs libvulkan1 and chromium)`);
  console.warn(why);
} else console.log(`WebGPU example suite on ${adapterLabel(probe.adapter)}`);

type Ep = "cpu" | "webgpu";
const EPS: Ep[] = ["cpu", "webgpu"];
const DECODER_TOL = 2e-3;
const OTHER_TOL = 1e-4;
const SLOW = 900_000;
/** Keys that differ between any two runs: wall-clock stamps. */
const UNCOMPARED = new Set(["createdAt"]);

const tmp = mkdtempSync(path.join(os.tmpdir(), "webgpu-examples-"));
const storage = new DiskStorage(path.join(tmp, "files"));
const pools: SessionPool[] = [];
afterAll(async () => {
  for (const p of pools) await p.close();
  rmSync(tmp, { recursive: true, force: true });
});

function pool(ep: Ep): SessionPool {
  const p = new SessionPool({ executionProvider: ep, modelsDir: modelsDir() });
  pools.push(p);
  return p;
}

/** Every session the pool loaded ran on the provider asked for. */
function expectAllOn(p: SessionPool, ep: Ep) {
  const s = p.stats();
  expect(s.loads, "sessions loaded").toBeGreaterThan(0);
  expect(s.fallbacks).toBe(0);
  expect(s.byProvider[ep]).toBe(s.loads);
}

// ---------------------------------------------------------------------------------------------------------------
// The comparison: walks two output values in step; collects the worst float difference per (node, path).

interface Stat {
  path: string;
  delta: number;
  peak: number;
  tol: number;
}
class Diff {
  readonly floats: Stat[] = [];
  readonly failures: string[] = [];
  constructor(private readonly tol: number) {}

  private floatsClose(p: string, a: ArrayLike<number>, b: ArrayLike<number>, extra = 0) {
    let d = 0, peak = 0;
    for (let i = 0; i < a.length; i++) {
      peak = Math.max(peak, Math.abs(a[i]!));
      const x = Math.abs(a[i]! - b[i]!);
      d = Number.isNaN(x) ? (Number.isNaN(a[i]!) && Number.isNaN(b[i]!) ? d : Infinity) : Math.max(d, x);
    }
    const tol = this.tol * Math.max(1, peak) + extra;
    this.floats.push({ path: p, delta: d, peak, tol });
    if (!(d <= tol)) this.failures.push(`${p}: max |Δ| ${d.toExponential(2)} > ${tol.toExponential(2)} (peak ${peak.toPrecision(3)})`);
  }

  private exact(p: string, a: ArrayLike<number>, b: ArrayLike<number>) {
    for (let i = 0; i < a.length; i++) {
      if (a[i] !== b[i]) {
        this.failures.push(`${p}[${i}]: ${a[i]} (cpu) ≠ ${b[i]} (webgpu)${a.length > 1 ? ` (first of the differing elements of ${a.length})` : ""}`);
        return;
      }
    }
  }

  async walk(p: string, a: unknown, b: unknown): Promise<void> {
    if (ArrayBuffer.isView(a) || ArrayBuffer.isView(b)) {
      if (!ArrayBuffer.isView(a) || !ArrayBuffer.isView(b) || a.constructor !== b.constructor) return void this.failures.push(`${p}: different kinds of array`);
      const x = a as unknown as ArrayLike<number>, y = b as unknown as ArrayLike<number>;
      if (x.length !== y.length) return void this.failures.push(`${p}: length ${x.length} (cpu) ≠ ${y.length} (webgpu)`);
      if (a instanceof Float32Array || a instanceof Float64Array) this.floatsClose(p, x, y);
      else this.exact(p, x, y);
      return;
    }
    if (Array.isArray(a) && a.every((v) => typeof v === "number")) {
      if (!Array.isArray(b) || !b.every((v) => typeof v === "number") || a.length !== b.length) return void this.failures.push(`${p}: ${JSON.stringify(a).slice(0, 80)} (cpu) vs ${JSON.stringify(b).slice(0, 80)} (webgpu)`);
      // a list of integers on both sides (ids, masks, k, counts) is integer data; otherwise floats
      if (a.every(Number.isInteger) && b.every(Number.isInteger)) this.exact(p, a, b as number[]);
      else this.floatsClose(p, a, b as number[]);
      return;
    }
    if (Array.isArray(a)) {
      if (!Array.isArray(b) || a.length !== b.length) return void this.failures.push(`${p}: array of ${a.length} (cpu) vs ${Array.isArray(b) ? b.length : typeof b} (webgpu)`);
      for (let i = 0; i < a.length; i++) await this.walk(`${p}[${i}]`, a[i], b[i]);
      return;
    }
    if (a && typeof a === "object") {
      if (!b || typeof b !== "object" || Array.isArray(b)) return void this.failures.push(`${p}: object (cpu) vs ${typeof b} (webgpu)`);
      const ka = Object.keys(a).sort(), kb = Object.keys(b).sort();
      if (ka.join() !== kb.join()) this.failures.push(`${p}: keys ${ka.join(",")} (cpu) ≠ ${kb.join(",")} (webgpu)`);
      for (const k of ka) if (k in b && !UNCOMPARED.has(k)) await this.walk(`${p}.${k}`, (a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]);
      return;
    }
    if (typeof a === "number" && typeof b === "number") {
      if (/(^|[a-z])(ms|Ms)$/.test(p.slice(p.lastIndexOf(".") + 1))) return; // timings
      if (Number.isInteger(a) && Number.isInteger(b)) this.exact(p, [a], [b]);
      else this.floatsClose(p, [a], [b]);
      return;
    }
    if (typeof a === "string" && typeof b === "string" && a !== b && BLOB_ID.test(a) && BLOB_ID.test(b) && a.slice(a.indexOf(".")) === b.slice(b.indexOf("."))) return this.file(p, a, b);
    if (a !== b) this.failures.push(`${p}: ${JSON.stringify(a)?.slice(0, 120)} (cpu) ≠ ${JSON.stringify(b)?.slice(0, 120)} (webgpu)`);
  }

  /** Two stored files with different content: compared by what they hold. */
  private async file(p: string, a: string, b: string) {
    const ext = a.slice(a.indexOf(".") + 1);
    const [x, y] = await Promise.all([storage.read(a), storage.read(b)]);
    if (ext === "json") return this.walk(`${p}<json>`, JSON.parse(x.toString("utf8")), JSON.parse(y.toString("utf8")));
    if (ext === "wav") {
      const [wa, wb] = [decodeWavMono(x), decodeWavMono(y)];
      if (wa.info.sampleRate !== wb.info.sampleRate || wa.samples.length !== wb.samples.length) return void this.failures.push(`${p}<wav>: ${wa.samples.length} samples at ${wa.info.sampleRate} Hz (cpu) vs ${wb.samples.length} at ${wb.info.sampleRate} Hz (webgpu)`);
      return this.floatsClose(`${p}<wav>`, wa.samples, wb.samples, 1 / 32768);
    }
    if (ext === "png") {
      const [ia, ib] = await Promise.all([x, y].map((buf) => sharp(buf).raw().toBuffer({ resolveWithObject: true })));
      if (ia!.info.width !== ib!.info.width || ia!.info.height !== ib!.info.height || ia!.info.channels !== ib!.info.channels) return void this.failures.push(`${p}<png>: different sizes`);
      let d = 0;
      for (let i = 0; i < ia!.data.length; i++) d = Math.max(d, Math.abs(ia!.data[i]! - ib!.data[i]!));
      this.floats.push({ path: `${p}<png levels>`, delta: d, peak: 255, tol: 2 });
      if (d > 2) this.failures.push(`${p}<png>: a channel differs by ${d} levels of 255 (> 2)`);
      return;
    }
    this.failures.push(`${p}: files ${a} and ${b} differ (no comparison for .${ext})`);
  }

  /** Prints the worst float differences and fails with every mismatch. */
  report(what: string) {
    const worst = [...this.floats].sort((u, v) => v.delta / v.tol - u.delta / u.tol).slice(0, 6);
    console.log(`${what}: ${this.floats.length} float arrays/values compared; worst (Δ / tolerance):\n${worst.map((s) => `  ${s.path}: Δ ${s.delta.toExponential(2)}, peak ${s.peak.toPrecision(3)}, tol ${s.tol.toExponential(2)}`).join("\n")}`);
    expect(this.failures, `${what}: webgpu differs from cpu`).toEqual([]);
  }
}

// ---------------------------------------------------------------------------------------------------------------

/** The nodes at or downstream of a decoder (MoE-LLM, MoE-TTS): compared at the decoder tolerance. */
function decoderDownstream(doc: Workflow): Set<string> {
  const out = new Set(doc.nodes.filter((n) => n.type === "model.moe-llm" || n.type === "generate.tts").map((n) => n.id));
  for (let grew = true; grew; ) {
    grew = false;
    for (const e of doc.edges) if (out.has(e.source) && !out.has(e.target)) out.add(e.target), (grew = true);
  }
  return out;
}

async function exampleDoc(id: string, sets: Record<string, unknown>): Promise<Workflow> {
  const ex: Example | undefined = EXAMPLES.find((e) => e.id === id);
  expect(ex, `example ${id}`).toBeDefined();
  let doc = structuredClone(ex!.document) as Workflow;
  if (ex!.sampleMedia) {
    const media = await storeSampleMedia(storage);
    doc = applyOverrides(doc, ex!.sampleMedia.map((m) => ({ nodeId: m.node, param: m.param, value: media[m.media] })));
  }
  return applyOverrides(doc, Object.entries(sets).map(([k, value]) => ({ nodeId: k.slice(0, k.indexOf(".")), param: k.slice(k.indexOf(".") + 1), value })));
}

/** `cli run <workflow>` without --dataset: one Executor run per provider, every node's outputs compared. */
async function runBoth(id: string, sets: Record<string, unknown>) {
  const doc = await exampleDoc(id, sets);
  const results = [];
  for (const ep of EPS) {
    const p = pool(ep);
    const t0 = performance.now();
    const r = await new Executor({ catalogue, storage, runtime: p, concurrency: 1, memoryProbe: false }).run(doc, { runId: `${id}-${ep}` });
    console.log(`${id} on ${ep}: ${r.status} in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    expect(r.status, `${id} on ${ep}: ${r.error}`).toBe("finished");
    expectAllOn(p, ep);
    results.push(r);
    await p.close();
  }
  const downstream = decoderDownstream(doc);
  const failures: string[] = [];
  for (const n of doc.nodes) {
    const d = new Diff(downstream.has(n.id) ? DECODER_TOL : OTHER_TOL);
    const [a, b] = results.map((r) => r.outputs.get(n.id));
    expect(a, `${id}: outputs of ${n.id}`).toBeDefined();
    await d.walk(n.id, a, b);
    try {
      d.report(`${id} ${n.id} (${n.type}, tolerance ${downstream.has(n.id) ? DECODER_TOL : OTHER_TOL} of peak)`);
    } catch {
      failures.push(...d.failures);
    }
  }
  expect(failures, `${id}: webgpu differs from cpu`).toEqual([]);
  return results;
}

/** Set to false when the long-prefill bug above is fixed: the shipped examples must then match as they are. */
const LONG_PREFILL_BUG = true;
const shipped = LONG_PREFILL_BUG ? it.fails : it;

const COVERED = ["omni", "moe-llm-routing", "ban-and-compare", "routing-precision", "dataset-routing", "dataset-ablation"];
it("this suite has a case for every example of the start page", () => {
  expect(EXAMPLES.map((e) => e.id).sort()).toEqual([...COVERED].sort());
});

describe.skipIf(!probe.ok)("every example workflow on WebGPU matches the CPU provider", () => {
  shipped("omni: image + audio → encoders → Prompt Builder → MoE-LLM → Routing/RoPE Inspectors, MoE-TTS, DiT", { timeout: SLOW }, async () => {
    const [cpu] = await runBoth("omni", { "llm.maxNewTokens": 4, "tts.maxSeconds": 0.5, "dit.sampler": "paper", "dit.steps": 2 });
    // not an empty comparison: the run generated tokens, speech and an image
    const out = cpu!.outputs;
    expect((out.get("llm")!.output as { ids: number[] }).ids.length).toBeGreaterThan(0);
    expect((out.get("tts")!.speech as { file: string }).file).toMatch(/\.wav$/);
    expect((out.get("dit")!.image as { file: string }).file).toMatch(/\.png$/);
  });

  shipped("moe-llm-routing: text → MoE-LLM → routing", { timeout: SLOW }, () => runBoth("moe-llm-routing", { "llm.maxNewTokens": 4 }));
  shipped("ban-and-compare: baseline and E1 banned, Compare Traces", { timeout: SLOW }, () => runBoth("ban-and-compare", { "base.maxNewTokens": 4, "banned.maxNewTokens": 4 }));
  // the same workflows with a prompt short enough (≤ 24 tokens with the chat template) to stay clear of the bug
  it("moe-llm-routing with a short prompt: the whole workflow matches", { timeout: SLOW }, () => runBoth("moe-llm-routing", { "prompt.text": "Hi.", "llm.maxNewTokens": 4 }));
  it("ban-and-compare with a short prompt: the whole workflow matches", { timeout: SLOW }, () => runBoth("ban-and-compare", { "prompt.text": "Sea.", "base.maxNewTokens": 4, "banned.maxNewTokens": 4 }));
  shipped("routing-precision: fp32 and bf16 routing, Compare Traces", { timeout: SLOW }, () => runBoth("routing-precision", { "fp32.maxNewTokens": 4, "bf16.maxNewTokens": 4 }));

  shipped("dataset-routing: the batch runner (as `cli run --dataset`) over the first 3 records; aggregates compared", { timeout: SLOW }, async () => {
    const doc = await exampleDoc("dataset-routing", {});
    const dataNode = doc.nodes.find((n) => n.type === "input.dataset")!;
    const source = resolveDatasetSource((dataNode.params as { source: string }).source);
    const out = [];
    for (const ep of EPS) {
      const p = pool(ep);
      const executor = new Executor({ catalogue: batchCatalogue(catalogue), storage, runtime: p, concurrency: 1, memoryProbe: false });
      const b = await runBatch({ doc, executor, catalogue, storage, source, storeDir: path.join(tmp, `batch-${ep}`), collect: findCollectTarget(doc), concurrency: 1, vocabulary: true, runId: `dataset-${ep}`, maxRecords: 3 });
      console.log(`dataset-routing on ${ep}: ${b.status}, ran ${b.ran} of ${b.total} records in ${(b.ms / 1000).toFixed(1)} s`);
      expect(b.status, b.error).toBe("finished");
      expect(b.ran).toBe(3);
      expect(b.failed).toBe(0);
      expectAllOn(p, ep);
      out.push(b);
      await p.close();
    }
    const d = new Diff(DECODER_TOL);
    // the export `cli run --dataset` writes (aggregate.json): per task, layer and expert the selection counts and k
    // histograms (exact), weight sums and metrics (floats), the NLLs; its fingerprints must agree too
    const exported = out.map((b) => aggregateExport(b.aggregate!, batchExportMeta(b, { workflow: doc })));
    await d.walk("aggregate.json", exported[0], exported[1]);
    d.report("dataset-routing aggregate (3 records)");
    expect(out[0]!.aggregate!.counts().tokens).toBeGreaterThan(0);
  });

  shipped("dataset-ablation: Expert Ablation over 2 records, baseline + 2 ablations; ΔNLL table and routing shares compared", { timeout: SLOW }, async () => {
    const [cpu] = await runBoth("dataset-ablation", { "ablation.maxRecords": 2, "ablation.maxAblations": 2 });
    expect(JSON.stringify(cpu!.outputs.get("ablation"))).toContain("E1");
  });
});
