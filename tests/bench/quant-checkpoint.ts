/**
 * A full-size OLMoE-1B-7B-shaped checkpoint with seeded random weights in the real layout (HF config.json fields and
 * tensor names of allenai/OLMoE-1B-7B-0924, bf16 safetensors in shards), written tensor by tensor (one tensor in memory
 * at a time): ~13.8 GB. Never committed; the quantisation bench (tests/bench/quant.ts) writes it on first use.
 *   npx tsx tests/bench/quant-checkpoint.ts <dir>
 */
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { writeSafetensors } from "@/models/io/safetensors";
import { hashString32 } from "@/models/io/seeded-random";
import { familyShapes, FAMILY_CONFIGS } from "../unit/import/family-checkpoints";

/** OLMoE-1B-7B-0924's config.json shape fields (16 layers, hidden 2048, 64 experts top-8 of 1024, vocab 50304, 16 heads). */
export const OLMOE_7B = {
  hidden_size: 2048, num_hidden_layers: 16, num_attention_heads: 16, num_key_value_heads: 16, intermediate_size: 1024,
  num_experts: 64, num_experts_per_tok: 8, vocab_size: 50304, rms_norm_eps: 1e-5, rope_theta: 10000, max_position_embeddings: 4096,
  norm_topk_prob: false, tie_word_embeddings: false, torch_dtype: "bfloat16",
};

const DONE = "generated.json";

/**
 * Seeded values of one tensor (xorshift32 seeded by the name): norms 1 ± 0.2, everything else (routers included)
 * uniform with std 1/sqrt(fan-in), so router logits have std ~1 after the RMSNorm (a trained router's scale, not the
 * hundreds the tiny test checkpoints use to avoid ties).
 */
function randomTensor(name: string, shape: number[]): Float32Array {
  const count = shape.reduce((a, b) => a * b, 1);
  const out = new Float32Array(count);
  let x = hashString32(name) | 1;
  const norm = /norm\.weight$/.test(name);
  const a = norm ? 0.2 : Math.sqrt(3 / shape[shape.length - 1]!), c = norm ? 1 : 0;
  for (let i = 0; i < count; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = c + a * ((x >>> 0) / 2147483648 - 1);
  }
  return out;
}

/** Writes the checkpoint into `dir` unless a complete one is there; returns the seconds it took (0: already there). */
export async function ensureOlmoe7b(dir: string, log: (s: string) => void = console.log): Promise<number> {
  if (existsSync(path.join(dir, DONE))) return 0;
  const t0 = performance.now();
  log(`writing an OLMoE-1B-7B-shaped bf16 checkpoint (seeded random weights, ~13.8 GB) to ${dir} …`);
  mkdirSync(dir, { recursive: true });
  const config = { ...FAMILY_CONFIGS.olmoe, ...OLMOE_7B };
  const shapes = familyShapes("olmoe", config);
  const names = [...shapes.keys()];
  const SHARDS = 8, per = Math.ceil(names.length / SHARDS);
  const weightMap: Record<string, string> = {};
  for (let s = 0; s < SHARDS; s++) {
    const file = `model-${String(s + 1).padStart(5, "0")}-of-${String(SHARDS).padStart(5, "0")}.safetensors`;
    const part = names.slice(s * per, (s + 1) * per);
    for (const n of part) weightMap[n] = file;
    await writeSafetensors(path.join(dir, file), part.map((name) => ({ name, shape: shapes.get(name)!, data: () => randomTensor(name, shapes.get(name)!) })), { dtype: "BF16", metadata: { format: "pt" } });
    log(`  ${file} (${((performance.now() - t0) / 1000).toFixed(0)} s)`);
  }
  writeFileSync(path.join(dir, "model.safetensors.index.json"), JSON.stringify({ metadata: { total_size: 0 }, weight_map: weightMap }, null, 2));
  writeFileSync(path.join(dir, "config.json"), JSON.stringify(config, null, 2));
  const seconds = (performance.now() - t0) / 1000;
  writeFileSync(path.join(dir, DONE), JSON.stringify({ seconds }));
  return seconds;
}

if (process.argv[1] && /quant-checkpoint\.ts$/.test(process.argv[1])) {
  const dir = process.argv[2];
  if (!dir) throw new Error("usage: quant-checkpoint.ts <dir>");
  ensureOlmoe7b(dir).then((s) => console.log(`done in ${s.toFixed(0)} s`));
}
