/**
 * The WebGPU variant of an imported graph file: the same graph with every GroupQueryAttention computing its softmax as
 * smooth_softmax, with a head_sink that takes no weight where the node has none (models/moe-llm/decoder/fused.ts
 * NULL_SINK explains why: ONNX Runtime 1.30's WebGPU FlashAttention path, which smooth_softmax avoids, gave wrong rows
 * for prefills of 32+ tokens on SwiftShader). Seeded decoders get this at build time (MoeGraphOptions.webgpu); an
 * import keeps the graph it wrote, so its sessions on WebGPU load `<name>.webgpu.onnx`, written beside the graph on
 * first use (external data keeps its relative location, so it resolves from the same folder) and rebuilt when the
 * source graph changes. Only the graph's nodes and one small initializer change; the weights are not touched.
 */
import { createHash, randomBytes } from "node:crypto";
import { existsSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { onnx } from "onnx-proto";
import { NULL_SINK } from "../moe-llm/decoder/fused";
import { removeStaleBuilds } from "../io/model-dir";

/** Bumped whenever the rewrite's output changes for the same input graph (variants on disk are rebuilt). */
export const WEBGPU_GRAPH_VERSION = 1;
const SOURCE_KEY = "moe_studio_webgpu_source";
/** fp16.ts marks its fp16 compute graphs with this key; their GroupQueryAttention computes in fp16. */
const FP16_SOURCE_KEY = "moe_studio_fp16_source";
const HEAD_SINK = 11;
const T = onnx.TensorProto.DataType;
/** The most negative finite fp16: exp(−65504 − max) is 0 in fp16 and fp32 alike. */
const NULL_SINK_FP16 = 0xfbff;

/** The WebGPU variant's file name beside `file` (model.onnx → model.webgpu.onnx). */
export function webGpuGraphPath(file: string): string {
  return path.join(path.dirname(file), `${path.basename(file, ".onnx")}.webgpu.onnx`);
}

const isGqa = (n: onnx.INodeProto) => n.opType === "GroupQueryAttention" && n.domain === "com.microsoft";

/**
 * Rewrites `model` in place: every GroupQueryAttention gets smooth_softmax = 1 and, without a head_sink, one shared
 * [num_heads] initializer of the null sink in the node's compute type (fp16 in fp16.ts's compute graphs, else float).
 * Returns the number of nodes rewritten.
 */
export function withWebGpuAttention(model: onnx.IModelProto): number {
  const graph = model.graph!;
  const nodes = (graph.node ?? []).filter(isGqa);
  const fp16 = (model.metadataProps ?? []).some((p) => p.key === FP16_SOURCE_KEY);
  const sinks = new Map<number, string>();
  const sinkFor = (heads: number) => {
    let name = sinks.get(heads);
    if (!name) {
      name = `webgpu.null_sink_${heads}`;
      const raw = fp16 ? new Uint8Array(new Uint16Array(heads).fill(NULL_SINK_FP16).buffer) : new Uint8Array(new Float32Array(heads).fill(NULL_SINK).buffer);
      graph.initializer = [...(graph.initializer ?? []), onnx.TensorProto.create({ name, dims: [heads], dataType: fp16 ? T.FLOAT16 : T.FLOAT, rawData: raw })];
      sinks.set(heads, name);
    }
    return name;
  };
  for (const n of nodes) {
    const attrs = (n.attribute ?? []).filter((a) => a.name !== "smooth_softmax");
    const heads = Number(n.attribute?.find((a) => a.name === "num_heads")?.i ?? 0);
    if (!(heads > 0)) throw new Error(`GroupQueryAttention node "${n.name}" has no num_heads`);
    n.attribute = [...attrs, onnx.AttributeProto.create({ name: "smooth_softmax", type: onnx.AttributeProto.AttributeType.INT, i: 1 })];
    const ins = [...(n.input ?? [])];
    if (!ins[HEAD_SINK]) {
      while (ins.length < HEAD_SINK) ins.push("");
      ins[HEAD_SINK] = sinkFor(heads);
    }
    n.input = ins;
  }
  return nodes.length;
}

/**
 * The graph file a WebGPU session of `file` loads: `file` itself when it has no GroupQueryAttention, else its WebGPU
 * variant beside it (built on first use, reused while the source graph is unchanged; written to a temporary name and
 * renamed into place).
 */
export function ensureWebGpuGraph(file: string): string {
  const srcBytes = readFileSync(file);
  const key = createHash("sha256").update(srcBytes).update(`webgpu-v${WEBGPU_GRAPH_VERSION}`).digest("hex");
  const target = webGpuGraphPath(file);
  if (existsSync(target)) {
    try {
      if (onnx.ModelProto.decode(readFileSync(target)).metadataProps?.find((p) => p.key === SOURCE_KEY)?.value === key) return target;
    } catch {
      // unreadable: rebuilt below
    }
  }
  const model = onnx.ModelProto.decode(srcBytes);
  if (withWebGpuAttention(model) === 0) return file;
  model.metadataProps.push(onnx.StringStringEntryProto.create({ key: SOURCE_KEY, value: key }));
  const dir = path.dirname(file);
  removeStaleBuilds(dir, path.basename(target));
  const tmp = path.join(dir, `.${path.basename(target)}.tmp-${process.pid}-${randomBytes(4).toString("hex")}`);
  try {
    writeFileSync(tmp, onnx.ModelProto.encode(model).finish());
    renameSync(tmp, target);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw new Error(`building the WebGPU graph of ${file}: ${(e as Error).message}`);
  }
  return target;
}
