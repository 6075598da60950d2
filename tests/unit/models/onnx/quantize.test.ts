/**
 * Weight-only quantisation (models/onnx/quantize.ts) against the plain-TS MatMulNBits reference
 * (tests/reference/matmul-nbits.ts) on seeded random weights: per-block error bounds of quantise → dequantise, ONNX
 * Runtime's MatMulNBits against an fp32 product with the reference-dequantised weights, and the graph transform on small
 * graphs and on the decoder the builder emits.
 */
import { afterAll, describe, expect, it } from "vitest";
import * as ort from "onnxruntime-node";
import { onnx } from "onnx-proto";
import { paramNames } from "@/models/moe-llm/config";
import { buildMoeLlmGraph, type MoeGraphOptions } from "@/models/moe-llm/moe-llm-graph";
import { MoeLlmRunner } from "@/models/moe-llm/moe-llm-session";
import { GraphBuilder } from "@/models/onnx/builder";
import { f32ToBf16Bits } from "@/models/io/safetensors";
import { planQuantization, quantizeMatrix, quantizeModelBytes, inlineFloatValues, type QuantScheme, type QuantBits, type QuantBlockSize } from "@/models/onnx/quantize";
import { refDequantNBits, refLinear } from "../../../reference/matmul-nbits";
import { prng, randomConfig, randomIds, randomWeights } from "../../../reference/random";

const SCHEMES: QuantScheme[] = ([4, 8] as QuantBits[]).flatMap((bits) => ([32, 128] as QuantBlockSize[]).flatMap((blockSize) => [true, false].map((symmetric) => ({ bits, blockSize, symmetric }))));
const name = (s: QuantScheme) => `int${s.bits} block ${s.blockSize} ${s.symmetric ? "sym" : "asym"}`;

function randomMatrix(seed: number, N: number, K: number): Float32Array {
  const r = prng(seed);
  // rows of different magnitudes, some blocks all positive or all zero, outliers: what real weights have
  const w = new Float32Array(N * K);
  for (let n = 0; n < N; n++) {
    const scale = 0.01 + r() * 0.2, shift = n % 5 === 1 ? scale : 0;
    for (let k = 0; k < K; k++) w[n * K + k] = n % 7 === 3 && k < 40 ? 0 : shift + scale * (r() * 2 - 1) * (r() < 0.01 ? 8 : 1);
  }
  return w;
}

const relMax = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let d = 0, m = 0;
  for (let i = 0; i < a.length; i++) {
    d = Math.max(d, Math.abs(a[i]! - b[i]!));
    m = Math.max(m, Math.abs(b[i]!));
  }
  return d / m;
};

describe("quantise → dequantise (reference dequantiser)", () => {
  it.each(SCHEMES.map((s, i) => [name(s), s, i] as const))("%s: every block within its bound", (_, scheme, i) => {
    // K not a multiple of the block size for half of the cases (the last block is padded)
    const N = 24, K = i % 2 === 0 ? 256 : 200;
    const w = randomMatrix(100 + i, N, K);
    for (const layout of ["nk", "kn"] as const) {
      const input = layout === "nk" ? w : Float32Array.from({ length: N * K }, (_, j) => w[(j % N) * K + Math.floor(j / N)]!);
      const q = quantizeMatrix(input, N, K, scheme, layout);
      const deq = refDequantNBits({ N, K, bits: scheme.bits, blockSize: scheme.blockSize, b: q.b, scales: q.scales, zeroPoints: q.zeroPoints });
      const levels = 2 ** scheme.bits - 1;
      let worst = 0;
      for (let n = 0; n < N; n++)
        for (let blk = 0; blk < q.nBlocks; blk++) {
          const k0 = blk * scheme.blockSize, k1 = Math.min(K, k0 + scheme.blockSize);
          let lo = 0, hi = 0, amax = 0, err = 0;
          for (let k = k0; k < k1; k++) {
            const v = w[n * K + k]!;
            lo = Math.min(lo, v);
            hi = Math.max(hi, v);
            amax = Math.max(amax, Math.abs(v));
            err = Math.max(err, Math.abs(v - deq[n * K + k]!));
          }
          // symmetric: step amax / 2^(bits-1), half a step of rounding error (the one value that may clamp is -amax' mirror: one step);
          // asymmetric: step (max - min) / (2^bits - 1) over the range widened to 0, half a step (a clamped end: one step)
          const step = scheme.symmetric ? amax / 2 ** (scheme.bits - 1) : (hi - lo) / levels;
          expect(Math.abs(q.scales[n * q.nBlocks + blk]!)).toBeCloseTo(step, 6);
          expect(err).toBeLessThanOrEqual(step * (1 + 1e-5) + 1e-12);
          // half a step everywhere but at a clamped end: symmetric, the values opposite in sign to the largest one and beyond
          // (2^(bits-1) - 0.5) steps; asymmetric, none (min and max land within half a step of the first and last level)
          const scale = q.scales[n * q.nBlocks + blk]!;
          for (let k = k0; k < k1; k++) {
            const v = w[n * K + k]!;
            const clampable = scheme.symmetric && v / scale > 2 ** (scheme.bits - 1) - 0.5;
            if (!clampable) expect(Math.abs(v - deq[n * K + k]!)).toBeLessThanOrEqual(step * (0.5 + 1e-5) + 1e-12);
          }
          if (step > 0) worst = Math.max(worst, err / step);
          if (amax === 0) expect(err).toBe(0);
        }
      // rounding error is at most half a step except where a value clamps at the end of the range
      console.log(`${name(scheme)} ${layout} K=${K}: max error ${worst.toFixed(3)} steps`);
      expect(worst).toBeGreaterThan(0.4);
    }
  });

  it("a symmetric block's largest-magnitude value and an asymmetric block's 0 are exact", () => {
    const N = 8, K = 64;
    const w = randomMatrix(7, N, K);
    for (const bits of [4, 8] as const) {
      const sym = refDequantNBits({ bits, blockSize: 32, ...quantizeMatrix(w, N, K, { bits, blockSize: 32, symmetric: true }) });
      const asym = refDequantNBits({ bits, blockSize: 32, ...quantizeMatrix(w, N, K, { bits, blockSize: 32, symmetric: false }) });
      for (let n = 0; n < N; n++)
        for (let b = 0; b < 2; b++) {
          let at = b * 32;
          for (let k = b * 32; k < b * 32 + 32; k++) if (Math.abs(w[n * K + k]!) > Math.abs(w[n * K + at]!)) at = k;
          expect(sym[n * K + at]).toBeCloseTo(w[n * K + at]!, 6);
          for (let k = b * 32; k < b * 32 + 32; k++) if (w[n * K + k] === 0) expect(asym[n * K + k]).toBe(0);
        }
    }
  });
});

const sessions: ort.InferenceSession[] = [];
afterAll(async () => {
  for (const s of sessions) await s.release();
});
async function session(bytes: Uint8Array): Promise<ort.InferenceSession> {
  const s = await ort.InferenceSession.create(bytes, { intraOpNumThreads: 1, graphOptimizationLevel: "all", logSeverityLevel: 3 });
  sessions.push(s);
  return s;
}

/** x [M, K] → Gemm(transB=1, bias) with W [N, K] → y; quantised by the transform. */
function linearGraph(w: Float32Array, bias: Float32Array, M: number, N: number, K: number): Uint8Array {
  const g = new GraphBuilder("linear");
  const x = g.input("x", "float", [M, K]);
  g.output(g.op("Gemm", [x, g.initializer("w", w, [N, K]), g.initializer("bias", bias, [N])], { transB: 1 }), "y", "float", [M, N]);
  return g.toBytes();
}

function nbitsTensors(model: onnx.IModelProto, node: onnx.INodeProto) {
  const init = new Map((model.graph!.initializer ?? []).map((t) => [t.name!, t]));
  const at = (n: string) => Number(node.attribute!.find((a) => a.name === n)!.i);
  const raw = (i: number) => {
    const t = init.get(node.input![i] ?? "");
    return t ? Uint8Array.from(t.rawData!) : undefined;
  };
  return { N: at("N"), K: at("K"), bits: at("bits") as 4 | 8, blockSize: at("block_size"), b: raw(1)!, scales: inlineFloatValues(init.get(node.input![2]!)!), zeroPoints: raw(3) };
}

describe("MatMulNBits in ONNX Runtime vs fp32 on the reference-dequantised weights", () => {
  it.each(SCHEMES.map((s, i) => [name(s), s, i] as const))("%s: ≤ 1e-4 relative (accuracy level 0)", async (_, scheme, i) => {
    const M = 5, N = 48, K = i % 2 === 0 ? 256 : 160;
    const w = randomMatrix(200 + i, N, K);
    const bias = Float32Array.from({ length: N }, (_, n) => 0.1 * Math.sin(n));
    const { bytes, summary } = quantizeModelBytes(linearGraph(w, bias, M, N, K), { scheme });
    expect(summary.matrices).toBe(1);
    const model = onnx.ModelProto.decode(bytes);
    const node = model.graph!.node!.find((n) => n.opType === "MatMulNBits")!;
    const deq = refDequantNBits(nbitsTensors(model, node));
    const x = Float32Array.from({ length: M * K }, (_, j) => Math.cos(j * 0.37 + i));
    const ref = refLinear(x, M, deq, N, K, bias);
    const y = (await (await session(bytes)).run({ x: new ort.Tensor("float32", x, [M, K]) })).y!.data as Float32Array;
    const rel = relMax(y, ref);
    console.log(`${name(scheme)}: MatMulNBits vs fp32 on dequantised weights: ${rel.toExponential(2)} relative`);
    expect(rel).toBeLessThan(1e-4);
  });

  it("accuracy level 4 (A quantised to int8 per block by the CPU kernel) stays within 2e-2 relative", async () => {
    const M = 4, N = 64, K = 256;
    const w = randomMatrix(300, N, K);
    const bias = new Float32Array(N);
    for (const bits of [4, 8] as const) {
      const { bytes } = quantizeModelBytes(linearGraph(w, bias, M, N, K), { scheme: { bits, blockSize: 32, symmetric: true, accuracyLevel: 4 } });
      const model = onnx.ModelProto.decode(bytes);
      const deq = refDequantNBits(nbitsTensors(model, model.graph!.node!.find((n) => n.opType === "MatMulNBits")!));
      const x = Float32Array.from({ length: M * K }, (_, j) => Math.cos(j * 0.11));
      const y = (await (await session(bytes)).run({ x: new ort.Tensor("float32", x, [M, K]) })).y!.data as Float32Array;
      const rel = relMax(y, refLinear(x, M, deq, N, K));
      console.log(`int${bits} accuracy level 4: ${rel.toExponential(2)} relative`);
      expect(rel).toBeLessThan(2e-2);
    }
  });
});

describe("the graph transform", () => {
  it("quantises Gemm and MatMul weights (also through a bf16 Cast), keeps routers, the LM head, shared and non-2D weights", async () => {
    const M = 3, K = 64, N = 32;
    const r = prng(5);
    const rnd = (n: number) => Float32Array.from({ length: n }, () => (r() * 2 - 1) * 0.2);
    const g = new GraphBuilder("mixed");
    const x = g.input("x", "float", [M, K]);
    const a = g.op("Gemm", [x, g.initializer("w_nk", rnd(N * K), [N, K])], { transB: 1 }); // [M,N]
    const b = g.op("MatMul", [a, g.initializer("w_kn", rnd(N * K), [N, K])]); // [M,K]
    // a bf16-stored weight read through Cast (what an import with --dtype bf16 writes)
    const bf = rnd(N * K);
    const bfBytes = new Uint8Array(N * K * 2);
    const dv = new DataView(bfBytes.buffer);
    bf.forEach((v, j) => dv.setUint16(j * 2, f32ToBf16Bits(v), true));
    const c = g.op("Gemm", [b, g.op("Cast", ["w_bf16"], { to: onnx.TensorProto.DataType.FLOAT })], { transB: 1 });
    const router = g.op("Gemm", [x, g.initializer(paramNames.router(0), rnd(8 * K), [8, K])], { transB: 1 });
    const head = g.op("Gemm", [x, g.initializer(paramNames.lmHead, rnd(16 * K), [16, K])], { transB: 1 });
    const tiedW = g.initializer("tied", rnd(N * K), [N, K]);
    // read by a Gemm and a Gather (a tied embedding): kept
    const tied = g.op("Add", [g.op("Gemm", [x, tiedW], { transB: 1 }), g.op("ReduceSum", [g.op("Gather", [tiedW, g.ints([0, 1, 2])]), g.ints([1])], { keepdims: 1 })]);
    g.output(c, "c", "float", [M, N]);
    g.output(router, "router", "float", [M, 8]);
    g.output(head, "head", "float", [M, 16]);
    g.output(tied, "tied_out", "float", [M, N]);
    const proto = onnx.ModelProto.decode(g.toBytes());
    proto.graph!.initializer!.push(onnx.TensorProto.create({ name: "w_bf16", dataType: onnx.TensorProto.DataType.BFLOAT16, dims: [N, K], rawData: bfBytes }));
    const src = onnx.ModelProto.encode(proto).finish();

    const plan = planQuantization(proto, { scheme: { bits: 4, blockSize: 32, symmetric: false } });
    expect(plan.jobs.map((j) => `${j.source.name}:${j.layout}`).sort()).toEqual(["w_bf16:nk", "w_kn:kn", "w_nk:nk"]);
    expect(plan.model.graph!.node!.filter((n) => n.opType === "Cast")).toHaveLength(0);
    const withHead = planQuantization(proto, { scheme: { bits: 4, blockSize: 32, symmetric: false }, lmHead: true });
    expect(withHead.jobs.map((j) => j.source.name)).toContain(paramNames.lmHead);

    // the quantised graph equals the original graph with each weight replaced by its reference dequantisation
    const { bytes } = quantizeModelBytes(src, { scheme: { bits: 4, blockSize: 32, symmetric: false } });
    const qModel = onnx.ModelProto.decode(bytes);
    const twin = onnx.ModelProto.decode(src);
    for (const job of plan.jobs) {
      const node = qModel.graph!.node!.find((n) => n.opType === "MatMulNBits" && n.input![1] === job.b.name)!;
      const deq = refDequantNBits(nbitsTensors(qModel, node));
      const t = twin.graph!.initializer!.find((i) => i.name === job.source.name)!;
      const f = job.layout === "nk" ? Float32Array.from(deq) : Float32Array.from({ length: job.N * job.K }, (_, j) => deq[(j % job.N) * job.K + Math.floor(j / job.N)]!);
      t.dataType = onnx.TensorProto.DataType.FLOAT;
      t.rawData = new Uint8Array(f.buffer);
    }
    twin.graph!.node = twin.graph!.node!.map((n) => (n.opType === "Cast" && n.input![0] === "w_bf16" ? { ...n, opType: "Identity", attribute: [] } : n));
    const feeds = { x: new ort.Tensor("float32", Float32Array.from({ length: M * K }, (_, j) => Math.sin(j)), [M, K]) };
    const got = await (await session(bytes)).run(feeds);
    const want = await (await session(onnx.ModelProto.encode(twin).finish())).run(feeds);
    const orig = await (await session(src)).run(feeds);
    for (const out of ["c", "router", "head", "tied_out"]) {
      const rel = relMax(got[out]!.data as Float32Array, want[out]!.data as Float32Array);
      console.log(`output ${out}: ${rel.toExponential(2)} relative to the dequantised twin`);
      expect(rel).toBeLessThan(1e-4);
    }
    // what was kept is bit-identical to the unquantised graph
    for (const out of ["router", "head", "tied_out"]) expect(Array.from(got[out]!.data as Float32Array)).toEqual(Array.from(orig[out]!.data as Float32Array));
  });

  const GRAPH: MoeGraphOptions = { moe: "sparse", trace: true, kvCache: false };
  it("a tied embedding stays in full precision in every graph of the model, also where the head is its only reader (inputs_embeds)", () => {
    const c = randomConfig(4, { hidden_size: 64, tie_word_embeddings: true });
    const w = randomWeights(c, 4);
    for (const embeds of [false, true])
      for (const lmHead of [false, true]) {
        const plan = planQuantization(onnx.ModelProto.decode(buildMoeLlmGraph(c, w, { ...GRAPH, embeds })), { scheme: { bits: 4, blockSize: 32, symmetric: true }, lmHead });
        expect(plan.jobs.length).toBeGreaterThan(0);
        expect(plan.jobs.map((j) => j.source.name), `embeds ${embeds}, lmHead ${lmHead}`).not.toContain(paramNames.embed);
      }
  });
  it.each([1, 2, 3])("seed %i: the decoder the builder emits, quantised int4/int8, equals its dequantised fp32 twin (logits ≤ 1e-4 rel., routing exact)", async (seed) => {
    const c = randomConfig(seed, { hidden_size: 64 });
    const w = randomWeights(c, seed);
    const src = buildMoeLlmGraph(c, w, GRAPH);
    const ids = randomIds(12, c.vocab_size, seed);
    const positions = Array.from({ length: 3 * ids.length }, (_, q) => q % ids.length);
    for (const scheme of [{ bits: 4, blockSize: 32, symmetric: true }, { bits: 8, blockSize: 128, symmetric: false }] as QuantScheme[]) {
      const plan = planQuantization(onnx.ModelProto.decode(src), { scheme });
      const kinds = plan.jobs.map((j) => j.source.name!);
      expect(kinds.some((n) => n.includes("routed"))).toBe(true);
      expect(kinds.some((n) => n.includes("shared"))).toBe(true);
      expect(kinds.some((n) => /self_attn\.o_proj|qkv/.test(n))).toBe(true);
      expect(kinds.some((n) => /mlp\.gate\.weight|lm_head|embed/.test(n))).toBe(false);
      expect(kinds.some((n) => /spread|down_bias/.test(n)), "the fused graph's routing constants stay fp32").toBe(false);
      const { bytes, summary } = quantizeModelBytes(src, { scheme });
      const qModel = onnx.ModelProto.decode(bytes);
      const twin = onnx.ModelProto.decode(src);
      for (const job of plan.jobs) {
        const deq = refDequantNBits(nbitsTensors(qModel, qModel.graph!.node!.find((n) => n.opType === "MatMulNBits" && n.input![1] === job.b.name)!));
        const f = job.layout === "nk" ? Float32Array.from(deq) : Float32Array.from({ length: job.N * job.K }, (_, j) => deq[(j % job.N) * job.K + Math.floor(j / job.N)]!);
        const t = twin.graph!.initializer!.find((i) => i.name === job.source.name)!;
        t.rawData = new Uint8Array(f.buffer);
        t.floatData = [];
      }
      const run = async (b: Uint8Array) => MoeLlmRunner.fromSession(c, GRAPH, await session(b)).forward({ batch: 1, seq: ids.length, ids, positions });
      const [q, t] = [await run(bytes), await run(onnx.ModelProto.encode(twin).finish())];
      const rel = relMax(q.logits, t.logits);
      q.trace!.forEach((l, i) => expect(Array.from(l.mask), `layer ${i} mask`).toEqual(Array.from(t.trace![i]!.mask)));
      console.log(`seed ${seed} ${name(scheme)}: ${summary.matrices} matrices, logits ${rel.toExponential(2)} relative to the dequantised twin`);
      expect(rel).toBeLessThan(1e-4);
    }
  });
});
