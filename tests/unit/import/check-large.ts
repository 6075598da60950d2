/**
 * Runs an imported large model (external data past 2 GB) once and compares it with the family reference:
 *   npx tsx tests/unit/import/check-large.ts <checkpoint dir> <imported model dir>
 * (the reference holds every tensor in memory: about the checkpoint's size in RAM).
 */
import { readFileSync } from "node:fs";
import path from "node:path";
import * as ort from "onnxruntime-node";
import { zMoeLlmConfig } from "@/models/moe-llm/config";
import { IMPORT_GRAPH } from "@/models/import/import";
import { MoeLlmRunner } from "@/models/moe-llm/moe-llm-session";
import { SafetensorsWeights } from "@/models/io/safetensors";
import { referenceForward, type Family, type Tensors } from "../../reference/families/topk-moe";

async function main(): Promise<void> {
  const [src, dir] = process.argv.slice(2);
  if (!src || !dir) throw new Error("usage: check-large.ts <checkpoint dir> <imported model dir>");
  const raw = JSON.parse(readFileSync(path.join(src, "config.json"), "utf8")) as Record<string, unknown>;
  const config = zMoeLlmConfig.parse(JSON.parse(readFileSync(path.join(dir, "config.json"), "utf8")));
  let t0 = performance.now();
  const session = await ort.InferenceSession.create(path.join(dir, "model.onnx"));
  console.log(`session from ${dir}: ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  const ids = [3, 141, 59, 2653, 589, 7932, 384];
  const S = ids.length;
  t0 = performance.now();
  const out = await MoeLlmRunner.fromSession(config, IMPORT_GRAPH, session).forward({ batch: 1, seq: S, ids, positions: Array.from({ length: 3 * S }, (_, q) => q % S) });
  console.log(`forward of ${S} tokens: ${((performance.now() - t0) / 1000).toFixed(2)} s`);
  await session.release();
  const w = new SafetensorsWeights(src);
  const tensors: Tensors = new Map(w.names().map((n) => [n, w.get(n)]));
  w.close();
  t0 = performance.now();
  const ref = referenceForward(raw.model_type as Family, raw, tensors, ids);
  console.log(`reference: ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  const flat = ref.logits.flat();
  let d = 0, scale = 0;
  flat.forEach((v, i) => {
    d = Math.max(d, Math.abs(v - out.logits[i]!));
    scale = Math.max(scale, Math.abs(v));
  });
  let masks = 0;
  ref.layers.forEach((l, i) => l.mask.flat().forEach((m, j) => (masks += m === out.trace![i]!.mask[j] ? 0 : 1)));
  console.log(`max |Δlogits| ${d.toExponential(2)} (logits up to ${scale.toFixed(2)}), routing masks differing: ${masks}`);
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
