/**
 * The shared attention blocks (models/onnx/attention.ts) against plain loops: the grouped-query core with a bias
 * and with its own probs, and half-split RoPE, on seeded random inputs.
 */
import * as ort from "onnxruntime-node";
import { describe, expect, it } from "vitest";
import { groupedQueryAttention, halfSplitRope } from "@/models/onnx/attention";
import { GraphBuilder } from "@/models/onnx/builder";
import { Ops } from "@/models/onnx/ops";
import { SeededRandom } from "@/models/io/seeded-random";

const B = 2, NH = 4, KVH = 2, S = 3, T = 5, Dh = 4, G = NH / KVH;

/** softmax(q·k/√Dh + bias[s,t]) · v per query head h reading KV head ⌊h/G⌋; out [B·S, NH·Dh]. */
function reference(q: Float32Array, k: Float32Array, v: Float32Array, bias: Float32Array): Float32Array {
  const out = new Float32Array(B * S * NH * Dh);
  for (let b = 0; b < B; b++)
    for (let h = 0; h < NH; h++) {
      const kv = Math.floor(h / G);
      for (let s = 0; s < S; s++) {
        const scores = Array.from({ length: T }, (_, t) => {
          let d = 0;
          for (let j = 0; j < Dh; j++) d += q[((b * NH + h) * S + s) * Dh + j]! * k[((b * KVH + kv) * T + t) * Dh + j]!;
          return d / Math.sqrt(Dh) + bias[s * T + t]!;
        });
        const m = Math.max(...scores);
        const e = scores.map((x) => Math.exp(x - m));
        const z = e.reduce((a, x) => a + x, 0);
        for (let j = 0; j < Dh; j++) {
          let acc = 0;
          for (let t = 0; t < T; t++) acc += (e[t]! / z) * v[((b * KVH + kv) * T + t) * Dh + j]!;
          out[(b * S + s) * NH * Dh + h * Dh + j] = acc;
        }
      }
    }
  return out;
}

const maxDiff = (a: Float32Array, b: Float32Array) => a.reduce((m, x, i) => Math.max(m, Math.abs(x - b[i]!)), 0);

describe("models/onnx/attention.ts", () => {
  it("groupedQueryAttention equals plain loops (bias, and a probs function given instead)", async () => {
    const r = new SeededRandom(21);
    const fill = (n: number) => Float32Array.from({ length: n }, () => r.normal());
    const q = fill(B * NH * S * Dh), k = fill(B * KVH * T * Dh), v = fill(B * KVH * T * Dh);
    const bias = Float32Array.from({ length: S * T }, (_, i) => ((i % T) > 2 + Math.floor(i / T) ? -Infinity : 0.1 * (i % 3)));
    const g = new GraphBuilder("attn");
    const o = new Ops(g);
    const qi = g.input("q", "float", [B, NH, S, Dh]), ki = g.input("k", "float", [B, KVH, T, Dh]), vi = g.input("v", "float", [B, KVH, T, Dh]);
    const bi = g.input("bias", "float", [S, T]);
    g.output(groupedQueryAttention(o, { q: qi, k: ki, v: vi, NH, KVH, Dh, bias: bi }), "y", "float", [B * S, NH * Dh]);
    g.output(groupedQueryAttention(o, { q: qi, k: ki, v: vi, NH, KVH, Dh, probs: (s) => o.softmax(o.add(s, bi), -1) }), "y2", "float", [B * S, NH * Dh]);
    const sess = await ort.InferenceSession.create(g.toBytes(), { logSeverityLevel: 3 });
    const t = (d: Float32Array, dims: number[]) => new ort.Tensor("float32", d, dims);
    const res = await sess.run({ q: t(q, [B, NH, S, Dh]), k: t(k, [B, KVH, T, Dh]), v: t(v, [B, KVH, T, Dh]), bias: t(bias, [S, T]) });
    const want = reference(q, k, v, bias);
    const d1 = maxDiff(res.y!.data as Float32Array, want), d2 = maxDiff(res.y2!.data as Float32Array, want);
    console.log(`groupedQueryAttention vs loops: max |Δ| ${d1.toExponential(2)} (bias), ${d2.toExponential(2)} (probs)`);
    expect(d1).toBeLessThan(1e-5);
    expect(d2).toBeLessThan(1e-5);
    await sess.release();
  });

  it("halfSplitRope rotates (x_j, x_{j+Dh/2}) by pos·θ^(-2j/Dh)", async () => {
    const r = new SeededRandom(7);
    const x = Float32Array.from({ length: B * NH * S * Dh }, () => r.normal());
    const pos = BigInt64Array.from({ length: B * S }, (_, i) => BigInt(3 * i + 1));
    const g = new GraphBuilder("rope");
    const o = new Ops(g);
    const rope = halfSplitRope(o, g.input("pos", "int64", [B, S]), Dh, 10000);
    g.output(rope(g.input("x", "float", [B, NH, S, Dh])), "y", "float", [B, NH, S, Dh]);
    const sess = await ort.InferenceSession.create(g.toBytes(), { logSeverityLevel: 3 });
    const y = (await sess.run({ x: new ort.Tensor("float32", x, [B, NH, S, Dh]), pos: new ort.Tensor("int64", pos, [B, S]) })).y!.data as Float32Array;
    const want = new Float32Array(x.length);
    const half = Dh / 2;
    for (let b = 0; b < B; b++)
      for (let h = 0; h < NH; h++)
        for (let s = 0; s < S; s++) {
          const base = ((b * NH + h) * S + s) * Dh;
          for (let j = 0; j < half; j++) {
            const a = Number(pos[b * S + s]!) / Math.pow(10000, (2 * j) / Dh);
            const x1 = x[base + j]!, x2 = x[base + j + half]!;
            want[base + j] = x1 * Math.cos(a) - x2 * Math.sin(a);
            want[base + j + half] = x2 * Math.cos(a) + x1 * Math.sin(a);
          }
        }
    const d = maxDiff(y, want);
    console.log(`halfSplitRope vs loops: max |Δ| ${d.toExponential(2)}`);
    expect(d).toBeLessThan(1e-5);
    await sess.release();
  });
});
