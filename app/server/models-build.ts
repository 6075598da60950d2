/**
 * Builds the seeded uni-moe-tiny reference models.
 *
 *   npm run models:build              # tiny and small
 *   npm run models:build -- tiny      # only tiny
 *
 * Models go to <models dir>/uni-moe-tiny/<name> (STUDIO_MODELS_DIR, else <STUDIO_DATA_DIR or ./data>/models).
 * A model that is already there and matches its manifest is left alone.
 */
import "./load-env";
import { progressBar } from "@/engine/progress-bar";
import { REFERENCE_MODEL_NAMES, ensureReferenceModel, type ReferenceModelName } from "@/models/moe-llm/uni-moe-tiny";
import { modelsDir } from "@/engine/config";

function mb(bytes: number): string {
  return `${(bytes / 1e6).toFixed(1)} MB`;
}

async function main(): Promise<void> {
  const args = process.argv.slice(2).filter((a) => a !== "--");
  const unknown = args.filter((a) => !(REFERENCE_MODEL_NAMES as readonly string[]).includes(a));
  if (unknown.length > 0) {
    console.error(`unknown model(s): ${unknown.join(", ")} (known: ${REFERENCE_MODEL_NAMES.join(", ")})`);
    process.exit(2);
  }
  const names = (args.length > 0 ? args : [...REFERENCE_MODEL_NAMES]) as ReferenceModelName[];
  console.log(`models dir: ${modelsDir()}`);
  for (const name of names) {
    const bar = progressBar({ prefix: name.padEnd(6), width: 30 });
    const t0 = performance.now();
    const r = await ensureReferenceModel(name, undefined, { onProgress: (written, total) => bar.update(total > 0 ? written / total : 1, `${mb(written)} / ${mb(total)}`) });
    bar.done();
    const secs = ((performance.now() - t0) / 1000).toFixed(1);
    const size = mb(r.manifest.files["model.safetensors"] ?? 0);
    const params = `${(r.manifest.parameters / 1e6).toFixed(2)}M params`;
    if (r.built) console.log(`${name}: built in ${secs} s (${params}, ${size}; ${r.reason}) -> ${r.dir}`);
    else console.log(`${name}: up to date (${params}, ${size}) -> ${r.dir}`);
  }
  console.log("labels: seeded, untrained (not a trained model)");
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
