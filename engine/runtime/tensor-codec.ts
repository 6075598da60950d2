import * as ort from "onnxruntime-node";
import { copyToArrayBuffer, type SpillCodec } from "../cache";

type Ctor = new (buffer: ArrayBuffer) => ArrayBufferView;
const CTOR: Partial<Record<ort.Tensor.Type, Ctor>> = {
  float32: Float32Array, float64: Float64Array, float16: Uint16Array,
  int8: Int8Array, uint8: Uint8Array, bool: Uint8Array,
  int16: Int16Array, uint16: Uint16Array, int32: Int32Array, uint32: Uint32Array,
  int64: BigInt64Array, uint64: BigUint64Array,
};

/** Spills CPU ort.Tensor outputs of the output cache to storage and restores them on a hit. */
export const ortTensorCodec: SpillCodec = {
  name: "ort-tensor",
  spillableBytes(value) {
    if (!(value instanceof ort.Tensor)) return undefined;
    const t = value as ort.Tensor;
    if (t.location !== "cpu" || !CTOR[t.type]) return undefined;
    return (t.data as ArrayBufferView).byteLength;
  },
  encode(value) {
    const t = value as ort.Tensor;
    const d = t.data as ArrayBufferView;
    return { bytes: new Uint8Array(d.buffer, d.byteOffset, d.byteLength), meta: { type: t.type, dims: [...t.dims] } };
  },
  decode(bytes, meta) {
    const { type, dims } = meta as { type: ort.Tensor.Type; dims: number[] };
    const C = CTOR[type];
    if (!C) throw new Error(`cannot restore a spilled ${type} tensor`);
    return new ort.Tensor(type, new C(copyToArrayBuffer(bytes)) as never, dims);
  },
};
