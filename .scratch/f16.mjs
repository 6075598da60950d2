import * as ort from "onnxruntime-node";
import { createRequire } from "node:module";
const require = createRequire(process.cwd() + "/index.js");
const { onnx } = require("onnx-proto");
const H = onnx.TensorProto.DataType.FLOAT16;
const vi = (name) => ({ name, type: { tensorType: { elemType: H, shape: { dim: [{ dimValue: 4 }] } } } });
const bytes = onnx.ModelProto.encode({ irVersion: 8, opsetImport: [{ domain: "", version: 17 }],
  graph: { name: "probe", node: [{ opType: "Mul", input: ["x", "x"], output: ["y"] }], input: [vi("x")], output: [vi("y")] } }).finish();
try {
  const s = await ort.InferenceSession.create(bytes, { executionProviders: ["webgpu"], logSeverityLevel: 0 });
  const r = await s.run({ x: new ort.Tensor("float16", Uint16Array.from([0x3c00, 0x4000, 0x4200, 0x4400]), [4]) });
  console.log("ok", r.y.data);
} catch (e) { console.log("ERR", e.message); }
