import os from "node:os";
import type { EpPreference, ExecutionProvider } from "./types";

/** Parses STUDIO_EP (auto | cuda | cpu; empty means auto). */
export function parseEpPreference(setting: string | undefined = process.env.STUDIO_EP): EpPreference {
  const v = (setting ?? "").trim().toLowerCase();
  if (v === "" || v === "auto") return "auto";
  if (v === "cuda" || v === "cpu") return v;
  throw new Error(`STUDIO_EP must be "auto", "cuda" or "cpu" (got "${setting}")`);
}

/** Execution providers to try, in order, for a STUDIO_EP setting. */
export function selectExecutionProviders(setting: string | undefined = process.env.STUDIO_EP): ExecutionProvider[] {
  const pref = parseEpPreference(setting);
  return pref === "auto" ? ["cuda", "cpu"] : [pref];
}

/** Intra-op threads: STUDIO_THREADS if set (a positive integer), else the machine's available parallelism. */
export function defaultIntraOpThreads(setting: string | undefined = process.env.STUDIO_THREADS): number {
  if (setting === undefined || setting.trim() === "") return Math.max(1, os.availableParallelism());
  const n = Number(setting);
  if (!Number.isInteger(n) || n < 1 || n > 1024) throw new Error(`STUDIO_THREADS must be a positive integer (got "${setting}")`);
  return n;
}
