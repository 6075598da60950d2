import * as ort from "onnxruntime-node";
import { onnx } from "onnx-proto";
import { describe, expect, it } from "vitest";
import { GraphBuilder } from "@/models/onnx/builder";
import { Ops } from "@/models/onnx/ops";

describe("GraphBuilder", () => {
  it("builds a runnable model: Linear + RMSNorm + SwiGLU agree with plain loops", async () => {
    const N = 3, H = 4, I = 6;
    const g = new GraphBuilder("t");
    const o = new Ops(g);
    const x = g.input("x", "float", ["n", H]);
    const rnd = (n: number, s: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(i * 1.7 + s));
    const wg = rnd(I * H, 1), wu = rnd(I * H, 2), wd = rnd(H * I, 3), nw = rnd(H, 4);
    const h = o.rmsNorm(x, g.initializer("norm", nw, [H]), 1e-6);
    g.output(o.swiglu(h, g.initializer("gate", wg, [I, H]), g.initializer("up", wu, [I, H]), g.initializer("down", wd, [H, I])), "y", "float", ["n", H]);
    const xs = rnd(N * H, 5);
    const s = await ort.InferenceSession.create(g.toBytes(), { logSeverityLevel: 3 });
    const y = (await s.run({ x: new ort.Tensor("float32", xs, [N, H]) })).y!.data as Float32Array;
    let maxDiff = 0;
    for (let n = 0; n < N; n++) {
      let ss = 0;
      for (let i = 0; i < H; i++) ss += xs[n * H + i]! ** 2;
      const hn = Array.from({ length: H }, (_, i) => (xs[n * H + i]! / Math.sqrt(ss / H + 1e-6)) * nw[i]!);
      const a = Array.from({ length: I }, (_, j) => {
        let gs = 0, us = 0;
        for (let i = 0; i < H; i++) { gs += hn[i]! * wg[j * H + i]!; us += hn[i]! * wu[j * H + i]!; }
        return (gs / (1 + Math.exp(-gs))) * us;
      });
      for (let k = 0; k < H; k++) {
        let v = 0;
        for (let j = 0; j < I; j++) v += a[j]! * wd[k * I + j]!;
        maxDiff = Math.max(maxDiff, Math.abs(v - y[n * H + k]!));
      }
    }
    console.log(`builder swiglu(rmsnorm(x)): max |Δ| = ${maxDiff.toExponential(2)}`);
    expect(maxDiff).toBeLessThan(1e-5);
    await s.release();
  });

  it("generates unique names, refuses duplicates, and adds com.microsoft only when a contrib op is used", () => {
    const g = new GraphBuilder();
    g.scope = "l0/";
    expect(g.fresh("a")).toBe("l0/a");
    expect(g.fresh("a")).toBe("l0/a_1");
    g.input("x", "float", [2]);
    expect(() => g.input("x", "float", [2])).toThrow(/already used/);
    expect(() => g.initializer("w", new Float32Array(3), [2, 2])).toThrow(/hold 4 values/);
    const plain = onnx.ModelProto.decode(g.toBytes());
    expect(plain.opsetImport!.map((o) => o.domain)).toEqual([""]);
    g.op("Gelu", ["x"], {}, "com.microsoft");
    const contrib = onnx.ModelProto.decode(g.toBytes());
    expect(contrib.opsetImport!.map((o) => `${o.domain}:${o.version}`)).toEqual([":17", "com.microsoft:1"]);
  });
});
