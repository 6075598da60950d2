import * as ort from "onnxruntime-node";
import { onnx } from "onnx-proto";

/**
 * ONNX Runtime keeps the WebGPU shader pipelines it compiled in its WebGPU context, which lives while some WebGPU
 * session does. A suite that releases its sessions case by case (a closed SessionPool, a released runner) would have
 * every case compile every pipeline again — on SwiftShader most of a short run (the moe-llm-routing example: 14 s with
 * a fresh context, 3 s with a warm one, on 2 loaded cores). This one-node WebGPU session, held for a whole file, keeps
 * the context alive, as a server's SessionPool does between runs; the cases still load their own sessions, and a
 * pipeline compiles the same code for the same program either way. Returns its release.
 */
export async function holdWebGpuContext(): Promise<() => Promise<void>> {
  const F = onnx.TensorProto.DataType.FLOAT;
  const vi = (name: string) => ({ name, type: { tensorType: { elemType: F, shape: { dim: [{ dimValue: 1 }] } } } });
  const model = onnx.ModelProto.encode({
    irVersion: 8,
    opsetImport: [{ domain: "", version: 17 }],
    graph: { name: "hold", node: [{ opType: "Identity", input: ["x"], output: ["y"] }], input: [vi("x")], output: [vi("y")] },
  }).finish();
  const session = await ort.InferenceSession.create(model, { executionProviders: ["webgpu"], logSeverityLevel: 3 });
  return () => session.release();
}
