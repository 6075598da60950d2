/**
 * Types of the ONNX Runtime layer that the rest of the engine may see. Type-only imports, so importing
 * this file (e.g. from engine/node.ts) never loads onnxruntime-node.
 */
import type { InferenceSession } from "onnxruntime-node";

/** The STUDIO_EP setting: `auto` tries CUDA, then WebGPU on a hardware adapter, then CPU (engine/runtime/select.ts). */
export type EpPreference = "auto" | "cuda" | "webgpu" | "cpu";
/** An execution provider that actually ran a session. */
export type ExecutionProvider = "cuda" | "webgpu" | "cpu";

export interface SessionRequest {
  /** Overrides the pool's preference for this session. */
  executionProvider?: EpPreference;
  /** Overrides the pool's intra-op thread count (STUDIO_THREADS). */
  intraOpNumThreads?: number;
  interOpNumThreads?: number;
  graphOptimizationLevel?: "disabled" | "basic" | "extended" | "all";
}

export interface SessionHandle {
  session: InferenceSession;
  /** The provider the session was created on (after any fallback). */
  executionProvider: ExecutionProvider;
  /** Pool key: model sha256 + provider preference + options. */
  key: string;
}

export interface SessionPoolStats {
  sessions: number;
  /** Estimated bytes of loaded sessions (from model sizes). */
  bytes: number;
  budgetBytes: number;
  /** Sessions created (misses). */
  loads: number;
  /** getSession calls served by an already loaded session. */
  hits: number;
  /** Sessions released to stay within the budget. */
  evictions: number;
  /** Sessions that wanted CUDA or WebGPU (auto) but were created on CPU. */
  fallbacks: number;
  byProvider: Record<ExecutionProvider, number>;
  /** Why CUDA is unavailable, once a probe has found out. */
  cudaUnavailable?: string;
  /** Why `auto` does not use WebGPU, once a probe has found out. */
  webgpuUnavailable?: string;
  /** The WebGPU adapter sessions run on (once one has), e.g. "SwiftShader Device (Subzero) (Vulkan, software)". */
  adapter?: string;
}

/** The ONNX Runtime layer as nodes see it (ctx.runtime). */
export interface Runtime {
  /** The provider sessions will run on by default: probes CUDA and WebGPU once under `auto`. */
  resolveExecutionProvider(): Promise<ExecutionProvider>;
  /** A pooled session: loaded once per (model content, provider, options), then reused. */
  getSession(model: string | Uint8Array, options?: SessionRequest): Promise<SessionHandle>;
  /** Like getSession, but the session cannot be evicted (released) while `fn` runs. */
  withSession<T>(model: string | Uint8Array, options: SessionRequest | undefined, fn: (handle: SessionHandle) => Promise<T>): Promise<T>;
  stats(): SessionPoolStats;
}
