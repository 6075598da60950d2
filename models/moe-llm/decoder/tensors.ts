import type { GraphBuilder } from "../../onnx/builder";
import type { Ops } from "../../onnx/ops";
import type { Tensor32, WeightSource } from "../../io/weights";
import { paramNames, type MoeLlmConfig } from "../config";
import type { ArchitectureOptions } from "../../families/conventions";

/** A finite stand-in for -inf in softmax inputs (keeps all-masked rows finite instead of NaN). */
export const NEG = -1e30;

/** Reads a weight and checks its shape against the table. */
export function weight(ws: WeightSource, shapes: Map<string, number[]>, name: string): Tensor32 {
  const t = ws.get(name);
  const want = shapes.get(name);
  if (want && (t.shape.length !== want.length || t.shape.some((d, i) => d !== want[i])))
    throw new Error(`weight "${name}" has shape [${t.shape}], expected [${want}]`);
  return t;
}

/** [rows, cols] row-major → [cols, rows]. */
export function transpose2(t: Tensor32): Float32Array {
  const [r, c] = t.shape as [number, number];
  const out = new Float32Array(r * c);
  for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) out[j * r + i] = t.data[i * c + j]!;
  return out;
}

/** Concatenates row-major matrices along rows (all [*, C]). */
export function catRows(ts: Float32Array[]): Float32Array {
  const out = new Float32Array(ts.reduce((a, t) => a + t.length, 0));
  let o = 0;
  for (const t of ts) { out.set(t, o); o += t.length; }
  return out;
}

/** What the per-layer builders (attention.ts, routers.ts, ffn.ts) share while one decoder graph is built. */
export interface DecoderContext {
  o: Ops;
  g: GraphBuilder;
  c: MoeLlmConfig;
  arch: ArchitectureOptions;
  shapes: Map<string, number[]>;
  ws: WeightSource;
  /** A canonical weight as an initializer (shape-checked; added once). */
  w(name: string): string;
}

/** RMSNorm or LayerNorm (with bias) of a canonical norm weight, as the family's architecture says. */
export function norm(ctx: DecoderContext, x: string, weightName: string, eps = ctx.c.rms_norm_eps): string {
  if (ctx.arch.norm === "layer") return ctx.o.layerNormalization(x, ctx.w(weightName), ctx.w(paramNames.normBias(weightName)), eps);
  return ctx.o.rmsNorm(x, ctx.w(weightName), eps);
}
