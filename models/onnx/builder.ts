import { onnx } from "onnx-proto";

/**
 * A small typed layer over onnx-proto: values are tensor names (strings), nodes are appended in order,
 * names are unique. `toBytes()` gives a serialized ModelProto for `InferenceSession.create(bytes)`.
 * Op helpers with shape comments live in `./ops.ts`.
 */

export type DType = "float" | "int64" | "int32" | "bool";
/** A symbolic (string) or fixed (number) dimension. */
export type Dim = number | string;
/** An attribute value: integers become INT, other numbers FLOAT; `{ f }` forces FLOAT, `{ floats }` FLOATS. */
export type AttrValue = number | string | number[] | { f: number } | { floats: number[] } | { tensor: onnx.ITensorProto };

const T = onnx.TensorProto.DataType;
export const ELEM: Record<DType, number> = { float: T.FLOAT, int64: T.INT64, int32: T.INT32, bool: T.BOOL };

function valueInfo(name: string, dtype: DType, dims: Dim[]): onnx.IValueInfoProto {
  return {
    name,
    type: { tensorType: { elemType: ELEM[dtype], shape: { dim: dims.map((d) => (typeof d === "number" ? { dimValue: d } : { dimParam: d })) } } },
  };
}

function attribute(name: string, v: AttrValue): onnx.IAttributeProto {
  const A = onnx.AttributeProto.AttributeType;
  if (typeof v === "number") return Number.isInteger(v) ? { name, type: A.INT, i: v } : { name, type: A.FLOAT, f: v };
  if (typeof v === "string") return { name, type: A.STRING, s: new TextEncoder().encode(v) };
  if (Array.isArray(v)) return { name, type: A.INTS, ints: v };
  if ("f" in v) return { name, type: A.FLOAT, f: v.f };
  if ("floats" in v) return { name, type: A.FLOATS, floats: v.floats };
  return { name, type: A.TENSOR, t: v.tensor };
}

/** TensorProto from a typed array (raw little-endian bytes: compact and fast to encode). */
export function tensorProto(name: string, data: Float32Array | BigInt64Array | Int32Array | Uint8Array, dims: number[], dtype?: DType): onnx.ITensorProto {
  const count = dims.reduce((a, b) => a * b, 1);
  if (count !== data.length) throw new Error(`tensor "${name}": dims [${dims}] hold ${count} values, data has ${data.length}`);
  const dt: DType = dtype ?? (data instanceof Float32Array ? "float" : data instanceof BigInt64Array ? "int64" : data instanceof Int32Array ? "int32" : "bool");
  const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  return { name, dataType: ELEM[dt], dims, rawData: bytes };
}

export class GraphBuilder {
  private readonly nodes: onnx.INodeProto[] = [];
  private readonly inits: onnx.ITensorProto[] = [];
  private readonly inputs: onnx.IValueInfoProto[] = [];
  private readonly outputs: onnx.IValueInfoProto[] = [];
  private readonly used = new Set<string>();
  private readonly counters = new Map<string, number>();
  private usesMicrosoft = false;
  /** Prefix added to generated names (e.g. "l3/") while building a layer. */
  scope = "";

  constructor(readonly name = "graph") {}

  /** A fresh unique value name built from `base` (and the current scope). */
  fresh(base: string): string {
    const stem = this.scope + base;
    let n = this.counters.get(stem) ?? 0;
    let name = n === 0 ? stem : `${stem}_${n}`;
    while (this.used.has(name)) name = `${stem}_${++n}`;
    this.counters.set(stem, n + 1);
    this.used.add(name);
    return name;
  }

  private claim(name: string): string {
    if (this.used.has(name)) throw new Error(`graph "${this.name}": name "${name}" is already used`);
    this.used.add(name);
    return name;
  }

  /** A graph input. */
  input(name: string, dtype: DType, dims: Dim[]): string {
    this.inputs.push(valueInfo(this.claim(name), dtype, dims));
    return name;
  }

  /** Marks `value` as the graph output `name` (an Identity node is added when the names differ). */
  output(value: string, name: string, dtype: DType, dims: Dim[]): string {
    if (value !== name) this.node("Identity", [value], {}, { outputs: [this.claim(name)] });
    this.outputs.push(valueInfo(name, dtype, dims));
    return name;
  }

  /** Declares `name`, the output of a node built with `opts.outputs`, as a graph output. */
  declareOutput(name: string, dtype: DType, dims: Dim[]): string {
    this.claim(name);
    this.outputs.push(valueInfo(name, dtype, dims));
    return name;
  }

  /** A named weight stored in the model. */
  initializer(name: string, data: Float32Array | BigInt64Array | Int32Array, dims: number[]): string {
    this.inits.push(tensorProto(this.claim(name), data, dims));
    return name;
  }

  /** An anonymous constant (stored as an initializer). Plain number arrays are float unless dtype says otherwise. */
  const(values: number[] | Float32Array | BigInt64Array, dims: number[], dtype: DType = "float", base = "const"): string {
    const data =
      values instanceof Float32Array || values instanceof BigInt64Array
        ? values
        : dtype === "int64"
          ? BigInt64Array.from(values, (v) => BigInt(v))
          : dtype === "bool"
            ? Uint8Array.from(values)
            : Float32Array.from(values);
    const name = this.fresh(base);
    this.inits.push(tensorProto(name, data, dims, dtype));
    return name;
  }

  /** int64 constant of shape [values.length] (shapes, axes, indices). */
  ints(values: number[]): string {
    return this.const(values, [values.length], "int64", "i64");
  }

  /** Scalar float constant (shape []). */
  scalar(v: number): string {
    return this.const([v], [], "float", "f32");
  }

  /**
   * Appends one node. Returns its output names (fresh unless `opts.outputs` is given).
   * `opts.domain: "com.microsoft"` registers the contrib opset.
   */
  node(opType: string, inputs: string[], attrs: Record<string, AttrValue> = {}, opts: { outputs?: string[]; nOutputs?: number; domain?: string; name?: string } = {}): string[] {
    const outputs = opts.outputs ?? Array.from({ length: opts.nOutputs ?? 1 }, (_, i) => this.fresh(`${opts.name ?? opType.toLowerCase()}${i ? `_o${i}` : ""}`));
    if (opts.domain === "com.microsoft") this.usesMicrosoft = true;
    this.nodes.push({
      opType,
      domain: opts.domain ?? "",
      input: inputs,
      output: outputs,
      name: this.fresh(`node/${opType}`),
      attribute: Object.entries(attrs).map(([k, v]) => attribute(k, v)),
    });
    return outputs;
  }

  /** One-output node. */
  op(opType: string, inputs: string[], attrs: Record<string, AttrValue> = {}, domain?: string): string {
    return this.node(opType, inputs, attrs, { domain })[0]!;
  }

  get nodeCount(): number {
    return this.nodes.length;
  }

  /** Serialized ModelProto (IR 8, opset 17, plus com.microsoft 1 when a contrib op was used). */
  toBytes(): Uint8Array {
    const opsetImport = [{ domain: "", version: 17 }];
    if (this.usesMicrosoft) opsetImport.push({ domain: "com.microsoft", version: 1 });
    return onnx.ModelProto.encode({
      irVersion: 8,
      opsetImport,
      producerName: "moe-studio",
      graph: { name: this.name, node: this.nodes, initializer: this.inits, input: this.inputs, output: this.outputs },
    }).finish();
  }
}
