import * as ort from "onnxruntime-node";
import { createRequire } from "node:module";
const require = createRequire(process.cwd() + "/index.js");
const { onnx } = require("onnx-proto");
ort.env.logLevel = process.env.ENVLVL ?? "verbose";
const F = onnx.TensorProto.DataType.FLOAT;
const vi = (name) => ({ name, type: { tensorType: { elemType: F, shape: { dim: [{ dimValue: 4 }] } } } });
const bytes = onnx.ModelProto.encode({ irVersion: 8, opsetImport: [{ domain: "", version: 17 }],
  graph: { name: "probe", node: [{ opType: "Relu", input: ["x"], output: ["y"] }], input: [vi("x")], output: [vi("y")] } }).finish();
try {
  const s = await ort.InferenceSession.create(bytes, { executionProviders: ["webgpu"], logSeverityLevel: 3 });
  const r = await s.run({ x: new ort.Tensor("float32", Float32Array.from([-1, 2, -3, 4]), [4]) });
  console.log("ok", r.y.data);
} catch (e) { console.log("ERR", e.message); }
