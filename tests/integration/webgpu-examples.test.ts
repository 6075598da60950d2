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
 * Routing near-ties (routingDivergence below): where the two runs route a token differently, that decision must be a
 * near-tie (both providers' router logits of the token within NEAR_TIE · max(1, peak) of each other, or for bf16 routing
 * one bf16 rounding step apart), and everything not downstream of it must match as above; what depends on it is printed,
 * not asserted. Any other divergence fails.
 * History: this suite found that a decoder prefill of 32+ tokens on WebGPU diverged from the CPU from position 4 on
 * (ONNX Runtime 1.30's WebGPU GroupQueryAttention flash path on SwiftShader; graphs for WebGPU now avoid it: see
 * docs/gpu-providers.md), that the top expert of equal GRIN weights was decided by float noise (engine/routing/core.ts
 * TOP_TIE), and that the Expert Ablation's record cache made the second run reuse the first's results (withDataDir).
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
import { holdWebGpuContext } from "./webgpu-context";

// Runs in CI (CI=true) and when STUDIO_TEST_WEBGPU_EXAMPLES=1; a local `npm test` skips it unless asked: it costs
// 5-10 min of SwiftShader time (omni alone ~4.5 min on 2 loaded cores). STUDIO_TEST_WEBGPU_EXAMPLES=0 skips it in CI.
const OPT_IN = process.env.STUDIO_TEST_WEBGPU_EXAMPLES === "1" || (process.env.CI === "true" && process.env.STUDIO_TEST_WEBGPU_EXAMPLES !== "0");
const probe = OPT_IN ? await probeWebGpu() : { ok: false as const, reason: "outside CI it is opt-in: set STUDIO_TEST_WEBGPU_EXAMPLES=1" };
if (!OPT_IN) console.log("WebGPU example suite skipped (outside CI it is opt-in: STUDIO_TEST_WEBGPU_EXAMPLES=1)");
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

// one WebGPU session held for the file keeps the compiled shader pipelines between the cases (each closes its pool)
const releaseContext = probe.ok ? await holdWebGpuContext() : undefined;

afterAll(async () => {
  for (const p of pools) await p.close();
  await releaseContext?.();
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
      if (Number.isFinite(a[i]!)) peak = Math.max(peak, Math.abs(a[i]!)); // NaN marks "none" in some tables
      if (a[i] === b[i]) continue;
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
    if (ext === "csv") {
      // numeric cells column by column as floats (integers exact), every other cell exactly
      const [ra, rb] = [x, y].map((buf) => buf.toString("utf8").trimEnd().split("\n").map((line) => line.split(",")));
      if (ra!.length !== rb!.length || ra!.some((r, i) => r.length !== rb![i]!.length)) return void this.failures.push(`${p}<csv>: different shapes`);
      const columns = new Map<number, [number[], number[]]>();
      ra!.forEach((r, i) => r.forEach((cell, j) => {
        const other = rb![i]![j]!;
        const [u, v] = [Number(cell), Number(other)];
        if (cell.trim() !== "" && other.trim() !== "" && Number.isFinite(u) && Number.isFinite(v)) {
          const col = columns.get(j) ?? [[], []];
          col[0].push(u);
          col[1].push(v);
          columns.set(j, col);
        } else if (cell !== other) this.failures.push(`${p}<csv>[${i}][${j}]: ${JSON.stringify(cell).slice(0, 60)} (cpu) ≠ ${JSON.stringify(other).slice(0, 60)} (webgpu)`);
      }));
      for (const [j, [u, v]] of columns) await this.walk(`${p}<csv column ${j}>`, u, v);
      return;
    }
    if (ext === "st") {
      // safetensors: the same header (names, dtypes, shapes, metadata); F32 tensors as floats, others byte for byte
      const parse = (buf: Buffer) => {
        const n = Number(buf.readBigUInt64LE(0));
        return { header: JSON.parse(buf.subarray(8, 8 + n).toString("utf8")) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>, data: buf.subarray(8 + n) };
      };
      const [sa, sb] = [parse(x), parse(y)];
      const names = Object.keys(sa.header).sort();
      if (names.join() !== Object.keys(sb.header).sort().join()) return void this.failures.push(`${p}<st>: different tensors`);
      for (const name of names) {
        const [ta, tb] = [sa.header[name]!, sb.header[name]!];
        if (name === "__metadata__") {
          await this.walk(`${p}<st ${name}>`, ta, tb);
          continue;
        }
        if (ta.dtype !== tb.dtype || ta.shape.join() !== tb.shape.join()) {
          this.failures.push(`${p}<st ${name}>: ${ta.dtype} [${ta.shape}] (cpu) vs ${tb.dtype} [${tb.shape}] (webgpu)`);
          continue;
        }
        const [da, db] = [sa.data.subarray(ta.data_offsets[0], ta.data_offsets[1]), sb.data.subarray(tb.data_offsets[0], tb.data_offsets[1])];
        if (ta.dtype === "F32") this.floatsClose(`${p}<st ${name}>`, new Float32Array(Uint8Array.from(da).buffer), new Float32Array(Uint8Array.from(db).buffer));
        else if (!da.equals(db)) this.failures.push(`${p}<st ${name}>: ${ta.dtype} data differs`);
      }
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

// ---------------------------------------------------------------------------------------------------------------
// Routing near-ties. A routing decision (a token's chosen experts and k in one layer) is a step function of that
// token's router logits; two providers whose logits agree to float noise can still decide differently where the logits
// sit on a decision boundary (two experts' logits equal to 1e-6, a Top-P cumsum on P, GRIN's 2·jitter ratio). Such a
// flip then changes everything that depends on that token's layer output: later layers of the same and later tokens.
// So where the decisions of the two runs differ, the comparison is: every ROOT flip (a differing decision that is not
// downstream of another one) must be a near-tie, i.e. the two providers' router logits of that token differ by at most
// NEAR_TIE · max(1, peak |logit| of the row) — a flip under so small a change of its input proves the CPU's logits lie
// that close to a decision boundary; and every decision and value NOT downstream of a root flip must match as usual
// (masks and k exactly, router logits and weights within the decoder tolerance). Downstream of (layer l, token t):
// layers > l at tokens >= t, and every token after the first whose id differs. Any other divergence fails.

/** Router logits of a flipped token may differ by at most this · max(1, peak) (20× under the decoder tolerance). */
const NEAR_TIE = 1e-4;

/** One bf16 rounding step (ulp) at magnitude x: 8 significant bits. */
const bf16Step = (x: number) => (x === 0 ? 0 : 2 ** (Math.floor(Math.log2(x)) - 7));

interface TraceLike {
  routingPrecision?: "fp32" | "bf16";
  tokens: { id: number }[];
  layers: { layer?: number; routerLogits: Float32Array; mask: Uint8Array; weights: Float32Array; k: Int32Array }[];
}
interface RootFlip {
  /** index in `layers`, and the decoder layer it is */
  index: number;
  layer: number;
  token: number;
  /** max |Δ router logit| of the token's row between the providers, and the row's peak |logit| */
  delta: number;
  peak: number;
  cpu: number[];
  webgpu: number[];
  /** k on each provider and the row's max |Δ weight| */
  k: [number, number];
  weightDelta: number;
}

function routingDivergence(what: string, a: TraceLike, b: TraceLike) {
  const failures: string[] = [];
  const bf16 = a.routingPrecision === "bf16";
  const N = Math.min(a.tokens.length, b.tokens.length);
  if (a.tokens.length !== b.tokens.length || a.layers.length !== b.layers.length) failures.push(`${what}: ${a.tokens.length} tokens × ${a.layers.length} layers (cpu) vs ${b.tokens.length} × ${b.layers.length} (webgpu)`);
  let firstId = N;
  for (let t = 0; t < N; t++) if (a.tokens[t]!.id !== b.tokens[t]!.id) (firstId = Math.min(firstId, t));
  const roots: RootFlip[] = [];
  const downstream = (l: number, t: number) => t >= firstId || roots.some((r) => l > r.index && t >= r.token);
  const E = (l: number) => a.layers[l]!.mask.length / a.tokens.length;
  const row = <T extends ArrayLike<number>>(x: T, l: number, t: number) => Array.from(x as ArrayLike<number>).slice(t * E(l), (t + 1) * E(l));
  const L = Math.min(a.layers.length, b.layers.length);
  const tolOf = (l: number, key: "routerLogits" | "weights") => DECODER_TOL * (a.layers[l]![key] as Float32Array).reduce((m, v) => Math.max(m, Math.abs(v)), 1);
  const maxDiff = (l: number, key: "routerLogits" | "weights", t: number) => row(a.layers[l]![key], l, t).reduce((m, v, e) => Math.max(m, Math.abs(v - b.layers[l]![key][t * E(l) + e]!)), 0);
  for (let l = 0; l < L; l++) {
    const [x, y] = [a.layers[l]!, b.layers[l]!];
    const [tolZ, tolW] = [tolOf(l, "routerLogits"), tolOf(l, "weights")];
    for (let t = 0; t < N; t++) {
      const same = row(x.mask, l, t).every((v, e) => v === y.mask[t * E(l) + e]) && x.k[t] === y.k[t] && maxDiff(l, "routerLogits", t) <= tolZ && maxDiff(l, "weights", t) <= tolW;
      if (same || downstream(l, t)) continue;
      const za = row(x.routerLogits, l, t), zb = row(y.routerLogits, l, t);
      const delta = za.reduce((m, v, e) => Math.max(m, Math.abs(v - zb[e]!)), 0);
      const peak = za.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
      // bf16 routing: a logit within float noise of a bf16 rounding boundary rounds one bf16 step apart
      const tie = (v: number, e: number) => Math.abs(v - zb[e]!) <= Math.max(NEAR_TIE * Math.max(1, peak), bf16 ? bf16Step(Math.max(Math.abs(v), Math.abs(zb[e]!))) : 0);
      const chosen = (m: Uint8Array) => row(m, l, t).flatMap((v, e) => (v ? [e] : []));
      roots.push({ index: l, layer: x.layer ?? l, token: t, delta, peak, cpu: chosen(x.mask), webgpu: chosen(y.mask), k: [x.k[t]!, y.k[t]!], weightDelta: maxDiff(l, "weights", t) });
      if (!za.every(tie)) failures.push(`${what}: layer ${x.layer ?? l} token ${t}: routing differs (experts ${chosen(x.mask)} k ${x.k[t]} on cpu, ${chosen(y.mask)} k ${y.k[t]} on webgpu; router logits Δ ${delta.toExponential(2)}, weights Δ ${maxDiff(l, "weights", t).toExponential(2)}) and the router logits are not within ${NEAR_TIE} · max(1, ${peak.toFixed(2)})${bf16 ? " or one bf16 step" : ""} of each other: not a near-tie`);
    }
  }
  if (firstId < N && !roots.some((r) => r.token < firstId)) failures.push(`${what}: token ${firstId} differs (${a.tokens[firstId]!.id} on cpu, ${b.tokens[firstId]!.id} on webgpu) with no routing near-tie before it`);
  // everything not downstream of a root flip: router logits and weights within the decoder tolerance (masks and k are
  // equal there by construction)
  let worst = 0;
  for (let l = 0; l < L; l++) {
    const x = a.layers[l]!;
    for (const key of ["routerLogits", "weights"] as const) {
      const tol = tolOf(l, key);
      for (let t = 0; t < N; t++) {
        if (downstream(l, t) || roots.some((r) => r.index === l && r.token === t)) continue;
        const d = maxDiff(l, key, t);
        worst = Math.max(worst, d / tol);
        if (!(d <= tol)) failures.push(`${what}: layer ${x.layer ?? l} token ${t} ${key}: max |Δ| ${d.toExponential(2)} > ${tol.toExponential(2)}, not downstream of a near-tie`);
      }
    }
  }
  const report = roots.length === 0 ? `${what}: routing identical in ${a.layers.length} layers × ${N} tokens` : `${what}: ${roots.length} routing near-tie(s)${bf16 ? " (bf16 routing)" : ""}: ${roots.slice(0, 8).map((r) => `layer ${r.layer} token ${r.token} (experts ${r.cpu} k ${r.k[0]} on cpu, ${r.webgpu} k ${r.k[1]} on webgpu, weights Δ ${r.weightDelta.toExponential(2)}; router logits Δ ${r.delta.toExponential(2)} at peak ${r.peak.toFixed(2)})`).join("; ")}${roots.length > 8 ? "; …" : ""}; everything not downstream of them within tolerance (worst Δ/tol ${worst.toFixed(3)})`;
  return { roots, failures, report };
}

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

/** Runs `fn` with STUDIO_DATA_DIR = dir (the models dir stays where it is). */
async function withDataDir<T>(dir: string, fn: () => Promise<T>): Promise<T> {
  const saved = { data: process.env.STUDIO_DATA_DIR, models: process.env.STUDIO_MODELS_DIR };
  process.env.STUDIO_MODELS_DIR = modelsDir();
  process.env.STUDIO_DATA_DIR = dir;
  try {
    return await fn();
  } finally {
    for (const [k, v] of [["STUDIO_DATA_DIR", saved.data], ["STUDIO_MODELS_DIR", saved.models]] as const) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}

/** `cli run <workflow>` without --dataset: one Executor run per provider, every node's outputs compared. */
async function runBoth(id: string, sets: Record<string, unknown>) {
  const doc = await exampleDoc(id, sets);
  const results = [];
  for (const ep of EPS) {
    const p = pool(ep);
    const t0 = performance.now();
    // a data dir per provider: the Expert Ablation node's per-record results (<data dir>/batch) would otherwise be
    // found cached by the second run, which would compare the CPU's results with themselves
    const r = await withDataDir(path.join(tmp, `data-${id}-${ep}`), () => new Executor({ catalogue, storage, runtime: p, concurrency: 1, memoryProbe: false }).run(doc, { runId: `${id}-${ep}` }));
    console.log(`${id} on ${ep}: ${r.status} in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    expect(r.status, `${id} on ${ep}: ${r.error}`).toBe("finished");
    expectAllOn(p, ep);
    results.push(r);
    await p.close();
  }
  const downstream = decoderDownstream(doc);
  const failures: string[] = [];
  // each MoE-LLM's routing: near-tie roots and everything before them (see routingDivergence)
  let nearTies = 0;
  for (const n of doc.nodes.filter((x) => x.type === "model.moe-llm")) {
    const [a, b] = results.map((r) => r.outputs.get(n.id)?.trace as TraceLike | undefined);
    if (!a || !b) continue;
    const r = routingDivergence(`${id} ${n.id}`, a, b);
    console.log(r.report);
    nearTies += r.roots.length;
    failures.push(...r.failures);
  }
  const notAsserted: string[] = [];
  for (const n of doc.nodes) {
    const d = new Diff(downstream.has(n.id) ? DECODER_TOL : OTHER_TOL);
    const [a, b] = results.map((r) => r.outputs.get(n.id));
    expect(a, `${id}: outputs of ${n.id}`).toBeDefined();
    await d.walk(n.id, a, b);
    try {
      d.report(`${id} ${n.id} (${n.type}, tolerance ${downstream.has(n.id) ? DECODER_TOL : OTHER_TOL} of peak)`);
    } catch {
      // with a routing near-tie (checked above), what depends on the decoder may differ: reported, not asserted
      (nearTies > 0 && downstream.has(n.id) ? notAsserted : failures).push(...d.failures);
    }
  }
  if (notAsserted.length > 0) console.log(`${id}: ${notAsserted.length} differences downstream of the routing near-tie(s) above (not asserted):\n${notAsserted.map((f) => `  ${f.slice(0, 240)}`).join("\n")}`);
  expect(failures, `${id}: webgpu differs from cpu`).toEqual([]);
  return results;
}


const COVERED = ["omni", "moe-llm-routing", "ban-and-compare", "routing-precision", "dataset-routing", "dataset-ablation"];
it("this suite has a case for every example of the start page", () => {
  expect(EXAMPLES.map((e) => e.id).sort()).toEqual([...COVERED].sort());
});

describe.skipIf(!probe.ok)("every example workflow on WebGPU matches the CPU provider", () => {
  it("omni: image + audio → encoders → Prompt Builder → MoE-LLM → Routing/RoPE Inspectors, MoE-TTS, DiT", { timeout: SLOW }, async () => {
    const [cpu] = await runBoth("omni", { "llm.maxNewTokens": 4, "tts.maxSeconds": 0.5, "dit.sampler": "paper", "dit.steps": 2 });
    // not an empty comparison: the run generated tokens, speech and an image
    const out = cpu!.outputs;
    expect((out.get("llm")!.output as { ids: number[] }).ids.length).toBeGreaterThan(0);
    expect((out.get("tts")!.speech as { file: string }).file).toMatch(/\.wav$/);
    expect((out.get("dit")!.image as { file: string }).file).toMatch(/\.png$/);
  });

  it("moe-llm-routing: text → MoE-LLM → routing", { timeout: SLOW }, () => runBoth("moe-llm-routing", { "llm.maxNewTokens": 4 }));
  it("ban-and-compare: baseline and E1 banned, Compare Traces", { timeout: SLOW }, () => runBoth("ban-and-compare", { "base.maxNewTokens": 4, "banned.maxNewTokens": 4 }));
  // the same workflows with a short prompt (≤ 24 tokens with the chat template: WebGPU's attention took another path
  // there before the flash path was avoided)
  it("moe-llm-routing with a short prompt: the whole workflow matches", { timeout: SLOW }, () => runBoth("moe-llm-routing", { "prompt.text": "Hi.", "llm.maxNewTokens": 4 }));
  it("ban-and-compare with a short prompt: the whole workflow matches", { timeout: SLOW }, () => runBoth("ban-and-compare", { "prompt.text": "Sea.", "base.maxNewTokens": 4, "banned.maxNewTokens": 4 }));
  it("routing-precision: fp32 and bf16 routing, Compare Traces", { timeout: SLOW }, () => runBoth("routing-precision", { "fp32.maxNewTokens": 4, "bf16.maxNewTokens": 4 }));

  it("dataset-routing: the batch runner (as `cli run --dataset`) over the first 3 records; aggregates compared", { timeout: SLOW }, async () => {
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

  it("dataset-ablation: Expert Ablation over 2 records, baseline + 2 ablations; ΔNLL table and routing shares compared", { timeout: SLOW }, async () => {
    const results = await runBoth("dataset-ablation", { "ablation.maxRecords": 2, "ablation.maxAblations": 2 });
    // not an empty comparison: each provider ran (not read from a cache) the baseline and 2 ablations over 2 records
    for (const r of results) {
      const report = JSON.parse((await storage.read((r.outputs.get("ablation")!.ablation as { file: string }).file)).toString("utf8")) as { rows: { records: { ran: number } }[]; baseline: { records: { ran: number } } };
      expect(report.rows).toHaveLength(2);
      for (const row of [report.baseline, ...report.rows]) expect(row.records.ran).toBe(2);
    }
  });
});
