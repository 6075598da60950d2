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
