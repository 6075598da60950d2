/**
 * Quantises a graph file whose weights are ONNX external data (an import, or a graph variant built from the
 * checkpoint) with the transform of models/onnx/quantize.ts, streaming one tensor at a time: every external tensor of
 * the result (the quantised weights, their scales and zero points, and the weights kept in full precision) goes into
 * one new data file beside the new graph. Memory stays bounded by the largest weight matrix. The graph and its data are
 * written under temporary names and renamed into place (data first), so an interruption leaves no half graph.
 */
import { randomBytes } from "node:crypto";
import { closeSync, openSync, readFileSync, renameSync, rmSync, writeFileSync, writeSync } from "node:fs";
import path from "node:path";
import { onnx } from "onnx-proto";
import { inlineFloatValues, planQuantization, quantizeJob, summarizePlan, type QuantizeGraphOptions, type QuantSummary } from "../onnx/quantize";
import { externalLocation, readExternalBytes } from "./external-graph";
import { decodeToF32 } from "../io/safetensors";

const T = onnx.TensorProto.DataType;
/** Offsets of external tensors are aligned so ORT can map them directly (as external-graph.ts). */
const ALIGN = 64;
const isExternal = (t: onnx.ITensorProto) => t.dataLocation === onnx.TensorProto.DataLocation.EXTERNAL;

/** fp32 values of a float initializer of the graph in `dir` (inline or external FLOAT/FLOAT16/BFLOAT16). */
function floatValues(dir: string, t: onnx.ITensorProto): Float32Array {
  if (!isExternal(t)) return inlineFloatValues(t);
  const bytes = readExternalBytes(dir, t);
  return decodeToF32(bytes, t.dataType === T.FLOAT ? "F32" : t.dataType === T.FLOAT16 ? "F16" : "BF16");
}

export interface QuantizeFileProgress {
  /** Source weight bytes processed of the total. */
  bytes: number;
  totalBytes: number;
  tensor: string;
}

/**
 * Writes the quantised version of `srcGraph` (external data resolved beside it) as `destGraph` + `<destGraph>.data`
 * (destGraph may be srcGraph: it is replaced). Returns what was quantised.
 */
export function quantizeGraphFile(srcGraph: string, destGraph: string, opts: QuantizeGraphOptions, onProgress?: (p: QuantizeFileProgress) => void): QuantSummary {
  const srcDir = path.dirname(srcGraph), destDir = path.dirname(destGraph);
  const plan = planQuantization(onnx.ModelProto.decode(readFileSync(srcGraph)), opts);
  const jobOf = new Map(plan.jobs.map((j) => [j.b.name!, j]));
  const produced = new Set(plan.jobs.flatMap((j) => [j.scales.name!, ...(j.zeroPoints ? [j.zeroPoints.name!] : [])]));
  const dataName = `${path.basename(destGraph)}.data`;
  const suffix = `.tmp-${process.pid}-${randomBytes(4).toString("hex")}`;
  const tmpData = path.join(destDir, `.${dataName}${suffix}`);
  const tmpGraph = path.join(destDir, `.${path.basename(destGraph)}${suffix}`);
  const sizeOf = (t: onnx.ITensorProto) => (t.dims ?? []).reduce<number>((a, b) => a * Number(b), 1) * (t.dataType === T.FLOAT ? 4 : t.dataType === T.UINT8 ? 1 : 2);
  const totalBytes = plan.model.graph!.initializer!.reduce((a, t) => a + (isExternal(t) ? sizeOf(t) : 0), 0) + plan.jobs.reduce((a, j) => a + sizeOf(j.source), 0);
  const fd = openSync(tmpData, "w");
  let offset = 0, done = 0;
  const put = (t: onnx.ITensorProto, bytes: Uint8Array) => {
    offset = Math.ceil(offset / ALIGN) * ALIGN;
    for (let w = 0; w < bytes.length; ) w += writeSync(fd, bytes, w, bytes.length - w, offset + w);
    t.dataLocation = onnx.TensorProto.DataLocation.EXTERNAL;
    t.rawData = new Uint8Array(0);
    t.externalData = [
      onnx.StringStringEntryProto.create({ key: "location", value: dataName }),
      onnx.StringStringEntryProto.create({ key: "offset", value: String(offset) }),
      onnx.StringStringEntryProto.create({ key: "length", value: String(bytes.length) }),
    ];
    offset += bytes.length;
  };
  try {
    for (const t of plan.model.graph!.initializer!) {
      const job = jobOf.get(t.name!);
      if (job) {
        const q = quantizeJob(job, floatValues(srcDir, job.source), opts.scheme);
        put(job.b, q.b);
        put(job.scales, q.scales);
        if (job.zeroPoints) put(job.zeroPoints, q.zeroPoints!);
        done += sizeOf(job.source);
        onProgress?.({ bytes: done, totalBytes, tensor: job.source.name! });
      } else if (!produced.has(t.name!) && isExternal(t)) {
        put(t, readExternalBytes(srcDir, t));
        done += sizeOf(t);
        onProgress?.({ bytes: done, totalBytes, tensor: t.name! });
      }
    }
  } catch (e) {
    closeSync(fd);
    rmSync(tmpData, { force: true });
    throw e;
  }
  closeSync(fd);
  try {
    writeFileSync(tmpGraph, onnx.ModelProto.encode(plan.model).finish());
    renameSync(tmpData, path.join(destDir, dataName));
    renameSync(tmpGraph, destGraph);
  } catch (e) {
    rmSync(tmpData, { force: true });
    rmSync(tmpGraph, { force: true });
    throw e;
  }
  return summarizePlan(plan, opts);
}

/** The external data file a graph's initializers point at (the first one found), for cleaning up a source graph. */
export function dataFileOf(graph: string): string | undefined {
  const model = onnx.ModelProto.decode(readFileSync(graph));
  const t = model.graph?.initializer?.find(isExternal);
  return t ? path.join(path.dirname(graph), externalLocation(t)) : undefined;
}
