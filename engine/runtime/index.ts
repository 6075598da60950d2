/** The ONNX Runtime layer: the only part of the engine that imports onnxruntime-node. */
export { SessionPool, type SessionPoolOptions } from "./pool";
export { selectExecutionProviders, parseEpPreference, defaultIntraOpThreads } from "./providers";
export { chooseProviders, probeCuda } from "./select";
export { adapterLabel, probeWebGpu, providerLabel, webGpuProbed, type WebGpuAdapter, type WebGpuProbe } from "./webgpu";
export { ortTensorCodec } from "./tensor-codec";
export type { EpPreference, ExecutionProvider, Runtime, SessionHandle, SessionPoolStats, SessionRequest } from "./types";
