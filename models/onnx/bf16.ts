import { bf16BitsToF32, f32ToBf16Bits } from "../io/safetensors";
import type { Ops } from "./ops";

/**
 * bf16 arithmetic inside float32 graphs, for emulating code that runs in bf16 (the released Uni-MoE routing,
 * RELEASED.md §5.1). A value "in bf16" is a float tensor whose values are all exactly representable in bf16; an op
 * "in bf16" computes in float from such operands and rounds its result once to the nearest bf16 (ties to even), as a
 * GPU kernel with float accumulation does.
 *
 * The rounding is a Cast to BFLOAT16 and back (ONNX Runtime's CPU and CUDA Cast kernels round to nearest even; checked
 * against bit-level rounding in tests/unit/models/moe-llm/grin-routing.test.ts). The pair is not folded away by ORT's graph
 * optimisations: its lossy CastChainElimination is off unless a session option turns it on.
 */
export type RoutingPrecision = "fp32" | "bf16";
export const ROUTING_PRECISIONS: readonly RoutingPrecision[] = ["fp32", "bf16"];

const BFLOAT16 = 16; // onnx.TensorProto.DataType.BFLOAT16

/** x rounded to the nearest bf16, as float: x any float tensor → same shape. */
export function roundBf16(o: Ops, x: string): string {
  return o.cast(o.g.op("Cast", [x], { to: BFLOAT16 }), "float");
}

/** The rounding after each op at a precision: bf16 rounds, fp32 is the identity (float ops already round to fp32). */
export function rounding(o: Ops, precision: RoutingPrecision): (x: string) => string {
  return precision === "bf16" ? (x) => roundBf16(o, x) : (x) => x;
}

/** A number as a tensor of that precision holds it (a Python scalar meeting a bf16 tensor is cast to bf16 first). */
export function scalarAt(v: number, precision: RoutingPrecision): number {
  return precision === "bf16" ? bf16BitsToF32(f32ToBf16Bits(v)) : Math.fround(v);
}

/** Host-side rounding of a weight to bf16 (values already in bf16, as in a bf16 checkpoint, are unchanged). */
export function bf16Values(data: Float32Array): Float32Array {
  return Float32Array.from(data, (v) => bf16BitsToF32(f32ToBf16Bits(v)));
}

/** The largest row PyTorch's CUDA scan treats as one block whatever the row count (2 × its minimum 16 threads). */
export const MAX_SCAN_COLUMNS = 32;

/**
 * Inclusive cumulative sum along axis 1 of x [N, D] (bf16 values) with every partial sum rounded to bf16, in the order
 * PyTorch's CUDA `cumsum` adds on the last dim of a bf16 tensor (ATen ScanUtils.cuh):
 * - N = 1 (the tensor is one row): `cuda::cub::inclusive_scan`, sequential, c_i = bf16(c_{i-1} + x_i).
 * - N > 1: `tensor_kernel_scan_innermost_dim`, one block of 2 × num_threads_x ≥ 32 columns scanned with the Sklansky
 *   network: at level s (2^s < D), column t with bit s set adds column a = (t with its low s + 1 bits cleared) + 2^s − 1.
 *   For D = 5: c1 = bf16(x0 + x1), c2 = bf16(x2 + c1), c3 = bf16(bf16(x2 + x3) + c1), c4 = bf16(x4 + c3).
 * D is at most MAX_SCAN_COLUMNS (wider rows span several blocks whose layout depends on N).
 */
export function cumsumBf16(o: Ops, x: string, D: number): string {
  if (D > MAX_SCAN_COLUMNS) throw new Error(`bf16 cumsum: ${D} columns exceed the ${MAX_SCAN_COLUMNS} PyTorch's CUDA scan handles in one block`);
  if (D === 1) return x;
  const rb = (v: string) => roundBf16(o, v);
  const cols = o.split(x, Array<number>(D).fill(1), 1); // D × [N,1]
  const sequential = [cols[0]!];
  for (let t = 1; t < D; t++) sequential.push(rb(o.add(sequential[t - 1]!, cols[t]!)));
  let sk = cols;
  for (let s = 0; 1 << s < D; s++) {
    const level = sk;
    sk = level.map((v, t) => (((t >> s) & 1) === 1 ? rb(o.add(v, level[((t >> (s + 1)) << (s + 1)) + (1 << s) - 1]!)) : v));
  }
  const oneRow = o.equal(o.shape(x, 0, 1), o.g.ints([1])); // bool [1]
  return o.where(oneRow, o.concat(sequential, 1), o.concat(sk, 1));
}
