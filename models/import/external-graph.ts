import fs from "node:fs";
import path from "node:path";
import { onnx } from "onnx-proto";
import { GraphBuilder } from "../onnx/builder";
import { encodeFromF32 } from "../safetensors";

export type StorageDtype = "fp32" | "fp16" | "bf16";

const T = onnx.TensorProto.DataType;
const ELEM: Record<StorageDtype, number> = { fp32: T.FLOAT, fp16: T.FLOAT16, bf16: T.BFLOAT16 };
const SAFETENSORS_DTYPE = { fp32: "F32", fp16: "F16", bf16: "BF16" } as const;
/** Offsets of external tensors are aligned so ORT can map them directly. */
const ALIGN = 64;

/**
 * A GraphBuilder whose weights go straight to a sibling `.data` file as ONNX external data
 * (TensorProto data_location EXTERNAL, external_data location/offset/length), written as they are added:
 * the graph in memory keeps only references, so a model of any size is built with one tensor in memory at a time.
 * With fp16/bf16 storage each weight is followed by a Cast to float (the graph computes in fp32).
 * ORT loads the result from the .onnx file's path (the data file is resolved next to it).
 */
export class ExternalDataGraphBuilder extends GraphBuilder {
  private readonly external: onnx.ITensorProto[] = [];
  private readonly fd: number;
  private offset = 0;
  private readonly location: string;

  constructor(name: string, dataFile: string, readonly dtype: StorageDtype = "fp32", private readonly onWrite?: (bytes: number) => void) {
    super(name);
    this.location = path.basename(dataFile);
    this.fd = fs.openSync(dataFile, "w");
  }

  /** Bytes written to the data file so far. */
  get bytesWritten(): number {
    return this.offset;
  }

  override initializer(name: string, data: Float32Array | BigInt64Array | Int32Array, dims: number[]): string {
    if (!(data instanceof Float32Array)) return super.initializer(name, data, dims);
    const count = dims.reduce((a, b) => a * b, 1);
    if (count !== data.length) throw new Error(`tensor "${name}": dims [${dims}] hold ${count} values, data has ${data.length}`);
    const scope = this.scope;
    this.scope = "";
    const stored = this.fresh(name);
    this.scope = scope;
    const bytes = encodeFromF32(data, SAFETENSORS_DTYPE[this.dtype]);
    this.offset = Math.ceil(this.offset / ALIGN) * ALIGN;
    for (let done = 0; done < bytes.byteLength; ) done += fs.writeSync(this.fd, bytes, done, Math.min(1 << 30, bytes.byteLength - done), this.offset + done);
    this.external.push({
      name: stored,
      dataType: ELEM[this.dtype],
      dims,
      dataLocation: onnx.TensorProto.DataLocation.EXTERNAL,
      externalData: [
        { key: "location", value: this.location },
        { key: "offset", value: String(this.offset) },
        { key: "length", value: String(bytes.byteLength) },
      ],
    });
    this.offset += bytes.byteLength;
    this.onWrite?.(this.offset);
    return this.dtype === "fp32" ? stored : this.op("Cast", [stored], { to: T.FLOAT });
  }

  /** The ModelProto with the external initializers added; closes the data file. */
  override toBytes(): Uint8Array {
    const model = onnx.ModelProto.decode(super.toBytes());
    const graph = model.graph!;
    graph.initializer = [...(graph.initializer ?? []), ...this.external.map((t) => onnx.TensorProto.create(t))];
    fs.closeSync(this.fd);
    return onnx.ModelProto.encode(model).finish();
  }

  /** Closes the data file without producing a model (after a failure). */
  abort(): void {
    try {
      fs.closeSync(this.fd);
    } catch {
      // already closed
    }
  }
}
