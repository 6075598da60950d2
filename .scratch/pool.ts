import { SessionPool, probeWebGpu } from "@/engine/runtime";
import { onnx } from "onnx-proto";
async function main() {
  const t0 = performance.now();
  const p = await probeWebGpu();
  console.log("probe", JSON.stringify(p), Math.round(performance.now() - t0), "ms", process.env.VK_ICD_FILENAMES);
  const F = onnx.TensorProto.DataType.FLOAT;
  const vi = (name: string) => ({ name, type: { tensorType: { elemType: F, shape: { dim: [{ dimValue: 3 }] } } } });
  const bytes = onnx.ModelProto.encode({ irVersion: 8, opsetImport: [{ domain: "", version: 17 }], graph: { name: "g", node: [{ opType: "Sigmoid", input: ["x"], output: ["y"] }], input: [vi("x")], output: [vi("y")] } }).finish();
  for (const ep of ["webgpu", "auto", "cpu"]) {
    const pool = new SessionPool({ executionProvider: ep });
    const h = await pool.getSession(bytes);
    console.log(ep, "->", h.executionProvider, JSON.stringify(pool.stats()));
    await pool.close();
  }
}
void main();
