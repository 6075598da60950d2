/**
 * Builds the seeded uni-moe-tiny reference models.
 *
 *   npm run models:build              # tiny and small
 *   npm run models:build -- tiny      # only tiny
 *
 * Models go to <models dir>/uni-moe-tiny/<name> (STUDIO_MODELS_DIR, else <STUDIO_DATA_DIR or ./data>/models).
 * A model that is already there and matches its manifest is left alone.
 */
import "@/app/server/load-env";
import { REFERENCE_MODEL_NAMES, ensureReferenceModel, modelsDir, type ReferenceModelName } from "./uni-moe-tiny";

function mb(bytes: number): string {
  return `${(bytes / 1e6).toFixed(1)} MB`;
}

function progressPrinter(name: string): { update: (written: number, total: number) => void; done: () => void } {
  const tty = process.stdout.isTTY === true;
  const width = 30;
  let lastPct = -1;
  let printed = false;
  return {
    update(written, total) {
      const frac = total > 0 ? written / total : 1;
      const pct = Math.floor(frac * 100);
      if (pct === lastPct) return;
      lastPct = pct;
      const filled = Math.round(frac * width);
      const line = `${name.padEnd(6)} [${"#".repeat(filled)}${"-".repeat(width - filled)}] ${String(pct).padStart(3)}%  ${mb(written)} / ${mb(total)}`;
      if (tty) {
        process.stdout.write(`\r${line}`);
        printed = true;
      } else if (pct % 10 === 0) {
        process.stdout.write(`${line}\n`);
      }
    },
    done() {
      if (tty && printed) process.stdout.write("\n");
    },
  };
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
    const bar = progressPrinter(name);
    const t0 = performance.now();
    const r = await ensureReferenceModel(name, undefined, { onProgress: bar.update });
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
