/** The import tests' harness: write a family checkpoint, import it, run the imported graph and compare with the plain-TS reference. */
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import * as ort from "onnxruntime-node";
import { expect } from "vitest";
import { zMoeLlmConfig } from "@/models/moe-llm/config";
import { conventionText } from "@/models/families/conventions";
import { DATA_FILE, GRAPH_FILE, IMPORT_GRAPH, importCheckpoint } from "@/models/import/import";
import type { StorageDtype } from "@/models/import/external-graph";
import { MoeLlmRunner } from "@/models/moe-llm/moe-llm-session";
import { f16BitsToF32, f32ToF16Bits } from "@/models/io/safetensors";
import { familyReference } from "../../reference/families";
import { randomIds } from "../../reference/random";
import { writeFamilyCheckpoint, type Family, type WriteOptions } from "./family-checkpoints";

export const maxAbs = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
};

/** Imports a checkpoint, runs the imported graph (from its file path, external data beside it) and compares with the reference. */
export async function importAndCompareIn(tmp: string, root: string, family: Family, opts: WriteOptions, label: string, dtype?: StorageDtype) {
  const src = path.join(tmp, `${family}-${label}`);
  const { config, tensors } = await writeFamilyCheckpoint(src, family, opts);
  const result = await importCheckpoint(src, { root, name: label, dtype });
  // fp16 storage: the graph computes with the fp16-rounded weights, so the reference gets them too
  if (dtype === "fp16") for (const t of tensors.values()) t.data = t.data.map((v) => f16BitsToF32(f32ToF16Bits(v)));
  return { src, config, tensors, ...(await compareImported(family, config, tensors, result, label)) };
}

/** Runs the imported graph (from its file path, external data beside it) on random ids and compares with the reference. */
export async function compareImported(family: Family, config: Record<string, unknown>, tensors: Parameters<typeof familyReference>[2], result: Awaited<ReturnType<typeof importCheckpoint>>, label: string) {
  expect(result.status).toBe("imported");
  expect(result.ref).toBe(`${family}/${label}`);
  expect(existsSync(path.join(result.dir, DATA_FILE))).toBe(true);
  const canonical = zMoeLlmConfig.parse(JSON.parse(readFileSync(path.join(result.dir, "config.json"), "utf8")));
  const session = await ort.InferenceSession.create(path.join(result.dir, GRAPH_FILE), { intraOpNumThreads: 1 });
  const runner = MoeLlmRunner.fromSession(canonical, IMPORT_GRAPH, session);
  const S = 7;
  const ids = randomIds(S, config.vocab_size as number, 11);
  const out = await runner.forward({ batch: 1, seq: S, ids, positions: Array.from({ length: 3 * S }, (_, q) => q % S) });
  const ref = familyReference(family, config, tensors, ids);
  const logitDiff = maxAbs(out.logits, ref.logits.flat());
  let routeDiff = 0;
  let selections = 0;
  expect(out.trace!.map((t) => t.layer)).toEqual(ref.layers.map((l) => l.layer));
  ref.layers.forEach((layer, l) => {
    const t = out.trace![l]!;
    if (layer.scores) routeDiff = Math.max(routeDiff, maxAbs(t.scores!, layer.scores.flat()));
    routeDiff = Math.max(routeDiff, maxAbs(t.routerLogits, layer.routerLogits.flat()), maxAbs(t.weights, layer.weights.flat()));
    expect(Array.from(t.mask)).toEqual(layer.mask.flat());
    expect(Array.from(t.k, Number)).toEqual(layer.k);
    selections += layer.mask.flat().reduce((a, b) => a + b, 0);
  });
  console.log(`${family} (${label}): max |Δlogits| ${logitDiff.toExponential(2)}, max |Δrouting| ${routeDiff.toExponential(2)}, ${selections} selections`);
  expect(logitDiff).toBeLessThan(1e-4);
  expect(routeDiff).toBeLessThan(1e-4);
  expect(conventionText(canonical).length).toBeGreaterThan(20);
  await session.release();
  return { result, ref, logitDiff };
}


/**
 * Writes `family`'s checkpoint under `tmp/label`, imports it into `root` and opens a runner on the graph written at
 * import (its session is pushed to `sessions`, for the caller to release).
 */
export async function openImported(tmp: string, root: string, family: Family, label: string, opts: WriteOptions, sessions: ort.InferenceSession[]) {
  const src = path.join(tmp, label);
  const { config, tensors } = await writeFamilyCheckpoint(src, family, opts);
  const result = await importCheckpoint(src, { root, name: label });
  const canonical = zMoeLlmConfig.parse(JSON.parse(readFileSync(path.join(result.dir, "config.json"), "utf8")));
  const session = await ort.InferenceSession.create(path.join(result.dir, GRAPH_FILE), { intraOpNumThreads: 1 });
  sessions.push(session);
  return { config, tensors, canonical, runner: MoeLlmRunner.fromSession(canonical, IMPORT_GRAPH, session) };
}
