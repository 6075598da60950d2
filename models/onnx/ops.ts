import type { DType, GraphBuilder } from "./builder";

/**
 * One helper per ONNX op (opset 17), each with its shapes. Values are tensor names.
 * Letters: N tokens, K/H/I/O feature sizes, "..." any leading dims (numpy broadcasting for elementwise ops).
 */
export class Ops {
  constructor(readonly g: GraphBuilder) {}

  // ---- elementwise (numpy broadcasting) ----
  /** a + b */
  add(a: string, b: string): string { return this.g.op("Add", [a, b]); }
  /** a - b */
  sub(a: string, b: string): string { return this.g.op("Sub", [a, b]); }
  /** a * b */
  mul(a: string, b: string): string { return this.g.op("Mul", [a, b]); }
  /** a / b */
  div(a: string, b: string): string { return this.g.op("Div", [a, b]); }
  /** max(a, b) */
  max(a: string, b: string): string { return this.g.op("Max", [a, b]); }
  /** min(a, b) */
  min(a: string, b: string): string { return this.g.op("Min", [a, b]); }
  /** -x */
  neg(x: string): string { return this.g.op("Neg", [x]); }
  /** |x| */
  abs(x: string): string { return this.g.op("Abs", [x]); }
  /** e^x */
  exp(x: string): string { return this.g.op("Exp", [x]); }
  /** sqrt(x) */
  sqrt(x: string): string { return this.g.op("Sqrt", [x]); }
  /** cos(x) */
  cos(x: string): string { return this.g.op("Cos", [x]); }
  /** sin(x) */
  sin(x: string): string { return this.g.op("Sin", [x]); }
  /** 1 / (1 + e^-x) */
  sigmoid(x: string): string { return this.g.op("Sigmoid", [x]); }
  /** x * sigmoid(x) */
  silu(x: string): string { return this.mul(x, this.sigmoid(x)); }
  /** cond ? a : b (bool cond) */
  where(cond: string, a: string, b: string): string { return this.g.op("Where", [cond, a, b]); }
  /** a == b → bool */
  equal(a: string, b: string): string { return this.g.op("Equal", [a, b]); }
  /** a > b → bool */
  greater(a: string, b: string): string { return this.g.op("Greater", [a, b]); }
  /** a < b → bool */
  less(a: string, b: string): string { return this.g.op("Less", [a, b]); }
  /** a >= b → bool */
  greaterOrEqual(a: string, b: string): string { return this.g.op("GreaterOrEqual", [a, b]); }
  /** !x (bool) */
  not(x: string): string { return this.g.op("Not", [x]); }
  /** a && b (bool) */
  and(a: string, b: string): string { return this.g.op("And", [a, b]); }
  /** a xor b (bool) */
  xor(a: string, b: string): string { return this.g.op("Xor", [a, b]); }
  /** a || b (bool) */
  or(a: string, b: string): string { return this.g.op("Or", [a, b]); }
  /** x cast to dtype */
  cast(x: string, to: DType): string {
    const code = { float: 1, int32: 6, int64: 7, bool: 9 }[to];
    return this.g.op("Cast", [x], { to: code });
  }

  // ---- linear algebra ----
  /** a: [..., N, K], b: [..., K, O] → [..., N, O] (batch dims broadcast) */
  matmul(a: string, b: string): string { return this.g.op("MatMul", [a, b]); }
  /** x: [N, K], w: [O, K] (PyTorch Linear layout), bias?: [O] → [N, O] */
  linear(x: string, w: string, bias?: string): string {
    return this.g.op("Gemm", bias ? [x, w, bias] : [x, w], { transB: 1 });
  }

  // ---- shape ----
  /** x → same data with shape `shape` (an int64 [R] value; 0 copies, -1 infers) */
  reshape(x: string, shape: string): string { return this.g.op("Reshape", [x, shape]); }
  /** x: [d0..dr] → [d_perm0..d_permr] */
  transpose(x: string, perm: number[]): string { return this.g.op("Transpose", [x], { perm }); }
  /** xs joined along axis */
  concat(xs: string[], axis: number): string { return this.g.op("Concat", xs, { axis }); }
  /** x split along axis into parts of the given sizes */
  split(x: string, sizes: number[], axis: number): string[] {
    return this.g.node("Split", [x, this.g.ints(sizes)], { axis }, { nOutputs: sizes.length });
  }
  /** x[starts:ends] along axes (int64 [A] values or constants) */
  slice(x: string, starts: number[] | string, ends: number[] | string, axes: number[]): string {
    const s = typeof starts === "string" ? starts : this.g.ints(starts);
    const e = typeof ends === "string" ? ends : this.g.ints(ends);
    return this.g.op("Slice", [x, s, e, this.g.ints(axes)]);
  }
  /** x: [..] → [.., 1 inserted at axes] */
  unsqueeze(x: string, axes: number[]): string { return this.g.op("Unsqueeze", [x, this.g.ints(axes)]); }
  /** x: [.., 1 at axes] → [..] */
  squeeze(x: string, axes: number[]): string { return this.g.op("Squeeze", [x, this.g.ints(axes)]); }
  /** x → int64 [rank] shape (optionally dims start..end) */
  shape(x: string, start?: number, end?: number): string {
    const attrs: Record<string, number> = {};
    if (start !== undefined) attrs.start = start;
    if (end !== undefined) attrs.end = end;
    return this.g.op("Shape", [x], attrs);
  }
  /** x broadcast to shape (int64 [R]) */
  expand(x: string, shape: string): string { return this.g.op("Expand", [x, shape]); }
  /** int64 scalars start, limit, delta → [ceil((limit-start)/delta)] */
  range(start: string, limit: string, delta: string): string { return this.g.op("Range", [start, limit, delta]); }

  // ---- gather / scatter ----
  /** data: [V, ...], idx: [...I] int64 → [...I, ...] (axis 0 by default) */
  gather(data: string, idx: string, axis = 0): string { return this.g.op("Gather", [data, idx], { axis }); }
  /** data: [N, D], idx: [N, J] int64 → [N, J] (data[n, idx[n, j]]) */
  gatherElements(data: string, idx: string, axis: number): string { return this.g.op("GatherElements", [data, idx], { axis }); }
  /** data: [N, D], idx: [N, J] int64, upd: [N, J] → data with data[n, idx[n, j]] = upd[n, j] */
  scatterElements(data: string, idx: string, upd: string, axis: number): string { return this.g.op("ScatterElements", [data, idx, upd], { axis }); }
  /** x: [...] → int64 [rank, nnz] coordinates of nonzero entries */
  nonzero(x: string): string { return this.g.op("NonZero", [x]); }
  /** data: [N, H], idx: [M, 1] int64, upd: [M, H] → data with rows idx[m] += upd[m] */
  scatterAddRows(data: string, idx: string, upd: string): string {
    return this.g.op("ScatterND", [data, idx, upd], { reduction: "add" });
  }

  // ---- reductions ----
  /** sum over axes (keepdims 1 by default) */
  reduceSum(x: string, axes: number[], keepdims = 1): string { return this.g.op("ReduceSum", [x, this.g.ints(axes)], { keepdims }); }
  /** max over axes (opset 17: axes is an attribute) */
  reduceMax(x: string, axes: number[], keepdims = 1): string { return this.g.op("ReduceMax", [x], { axes, keepdims }); }
  /** mean over axes (opset 17: axes is an attribute) */
  reduceMean(x: string, axes: number[], keepdims = 1): string { return this.g.op("ReduceMean", [x], { axes, keepdims }); }
  /** softmax along axis */
  softmax(x: string, axis = -1): string { return this.g.op("Softmax", [x], { axis }); }
  /** log softmax along axis */
  logSoftmax(x: string, axis = -1): string { return this.g.op("LogSoftmax", [x], { axis }); }
  /** x: [N, D] → int64 [N, 1] index of the first maximum along axis */
  argmax(x: string, axis = -1): string { return this.g.op("ArgMax", [x], { axis, keepdims: 1, select_last_index: 0 }); }
  /** x: [N, D], k: int64 [1] → values [N, k], indices [N, k] (largest, sorted) */
  topk(x: string, k: string, axis = -1): [string, string] {
    const [v, i] = this.g.node("TopK", [x, k], { axis, largest: 1, sorted: 1 }, { nOutputs: 2 });
    return [v!, i!];
  }
  /** running sum along axis (axis: int64 scalar constant) */
  cumsum(x: string, axis: number): string { return this.g.op("CumSum", [x, this.g.const([axis], [], "int64")]); }

  // ---- composites ----
  /** x: [..., H], w: [H] → x / sqrt(mean(x², -1) + eps) * w (the pattern ORT fuses into SimplifiedLayerNormalization) */
  rmsNorm(x: string, w: string, eps: number): string {
    const ms = this.reduceMean(this.g.op("Pow", [x, this.g.scalar(2)]), [-1]);
    return this.mul(this.div(x, this.sqrt(this.add(ms, this.g.scalar(eps)))), w);
  }
  /** LayerNormalization over the last axis: (x - mean) / sqrt(var + eps) * w + b; x: [..., H], w, b: [H] */
  layerNormalization(x: string, w: string, b: string, eps: number): string {
    return this.g.op("LayerNormalization", [x, w, b], { axis: -1, epsilon: { f: eps } });
  }
  /** x: [N, H], gate/up: [I, H], down: [H, I] → [N, H] = down(silu(gate x) * up x) */
  swiglu(x: string, gate: string, up: string, down: string): string {
    return this.linear(this.mul(this.silu(this.linear(x, gate)), this.linear(x, up)), down);
  }
}
