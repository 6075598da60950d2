import { config, intraOpThreads, parseSetting } from "../config";
import type { EpPreference, ExecutionProvider } from "./types";

/** STUDIO_EP (auto | cuda | webgpu | cpu; empty means auto): the given setting, else the environment's. */
export function parseEpPreference(setting?: string): EpPreference {
  return setting === undefined ? config().STUDIO_EP : parseSetting("STUDIO_EP", setting);
}

/** Execution providers a STUDIO_EP setting may use, in order of preference (select.ts decides which are available). */
export function selectExecutionProviders(setting?: string): ExecutionProvider[] {
  const pref = parseEpPreference(setting);
  return pref === "auto" ? ["cuda", "webgpu", "cpu"] : [pref];
}

/** Intra-op threads: STUDIO_THREADS if set (a positive integer), else the machine's available parallelism. */
export function defaultIntraOpThreads(setting?: string): number {
  return setting === undefined ? intraOpThreads() : (parseSetting("STUDIO_THREADS", setting) ?? intraOpThreads());
}

/**
 * ONNX Runtime session config entries (SessionOptions.extra) every session of the engine gets: the intra-op pool's
 * workers stop spinning when a Run returns (`session.force_spinning_stop`). They still spin inside a run, between its
 * ops. Spinning on after it (ORT's default), an idle session's workers hold the cores the next session, sharp's
 * image work and the file system's threads need — and pipelines alternate sessions all the time (the MoE-LLM's prefill
 * graph and its decode twin, the encoders). On 2 cores the dataset sample ran 1.6–1.7× faster one record per forward and
 * 1.1–1.2× faster batched (docs/benchmarks.md, "Batched datasets").
 */
export const SESSION_CONFIG_ENTRIES: Record<string, unknown> = { session: { force_spinning_stop: "1" } };
