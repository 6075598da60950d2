/**
 * Writes a random checkpoint in a family's real layout, for trying the import by hand and for the RSS measurement:
 *   npx tsx tests/unit/import/generate-checkpoint.ts <qwen2_moe|qwen3_moe|olmoe|mixtral> <dir> [--large] [--shards N] [--bf16]
 * --large: a Mixtral-layout checkpoint of ~2.2 GB (fp32), generated tensor by tensor (the generator holds one at a time).
 */
import type { Family } from "../../reference/families/topk-moe";
import { writeFamilyCheckpoint } from "./family-checkpoints";

const LARGE = { hidden_size: 1024, num_hidden_layers: 8, num_attention_heads: 16, num_key_value_heads: 4, vocab_size: 32000, num_local_experts: 8, intermediate_size: 2560 };

async function main(): Promise<void> {
  const [family, dir, ...rest] = process.argv.slice(2).filter((a) => a !== "--");
  if (!family || !dir) throw new Error("usage: generate-checkpoint.ts <family> <dir> [--large] [--shards N] [--bf16]");
  const large = rest.includes("--large");
  const si = rest.indexOf("--shards");
  const t0 = performance.now();
  await writeFamilyCheckpoint(dir, family as Family, {
    shards: si >= 0 ? Number(rest[si + 1]) : large ? 4 : 1,
    dtype: rest.includes("--bf16") ? "BF16" : "F32",
    streaming: large,
    configOverride: large ? LARGE : undefined,
  });
  console.log(`wrote ${family} checkpoint to ${dir} in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
