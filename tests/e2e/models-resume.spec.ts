import { spawn } from "node:child_process";
import path from "node:path";
import { expect, test } from "@playwright/test";
import { writeFamilyCheckpoint } from "../unit/import/family-checkpoints";

const SHOTS = "test-results/screens";
const PORT = Number(process.env.E2E_PORT ?? 3100);
/** The server's data dir (playwright.config.ts): checkpoints/ is its default import folder, models/ its models dir. */
const DATA = path.resolve(`test-results/e2e-data-${PORT}`);
const CHECKPOINTS = path.join(DATA, "checkpoints");

/** `npm run cli -- import <dir> --name N --json` into the server's models dir, SIGKILLed once 25 % of the bytes are written (past the first 16 MB journal batch). */
function killedImport(dir: string, name: string): Promise<number> {
  const child = spawn(process.execPath, ["--import", "tsx", "app/server/cli.ts", "import", dir, "--name", name, "--json"], {
    env: { ...process.env, STUDIO_DATA_DIR: DATA },
    stdio: ["ignore", "pipe", "inherit"],
  });
  let buf = "", written = 0;
  child.stdout.on("data", (d: Buffer) => {
    buf += d.toString();
    for (let i; (i = buf.indexOf("\n")) >= 0; buf = buf.slice(i + 1)) {
      const line = buf.slice(0, i);
      if (!line.startsWith("{")) continue;
      const p = (JSON.parse(line) as { progress?: { phase: string; bytes: number; totalBytes: number } }).progress;
      if (p?.phase === "writing" && p.bytes >= 0.25 * p.totalBytes) {
        written = p.bytes;
        child.kill("SIGKILL");
      }
    }
  });
  return new Promise((resolve, reject) => child.on("close", (_code, signal) => (signal === "SIGKILL" ? resolve(written) : reject(new Error("the import finished before it was killed")))));
}

test("Models page: an import interrupted from the CLI resumes from the page and says so", async ({ page }) => {
  test.setTimeout(180_000);
  const dir = path.join(CHECKPOINTS, "resume-mixtral");
  await writeFamilyCheckpoint(dir, "mixtral", { seed: 5, configOverride: { hidden_size: 256, num_hidden_layers: 4, num_attention_heads: 8, num_key_value_heads: 4, vocab_size: 4000, intermediate_size: 1024 } });
  const killedAt = await killedImport(dir, "e2e-resume");
  expect(killedAt).toBeGreaterThan(0);

  await page.goto("/models");
  await page.getByLabel("Checkpoint folder").selectOption("checkpoints/resume-mixtral"); // named by its import folder, never by server path
  await expect(page.getByTestId("inspect-summary")).toContainText("mixtral");
  await page.getByLabel("Model name").fill("e2e-resume");
  await page.getByRole("button", { name: "Import", exact: true }).click();
  await expect(page.getByTestId("import-status")).toContainText(/Imported \(resumed an interrupted import at [\d.]+ MB\): mixtral\/e2e-resume/, { timeout: 90_000 });
  await expect(page.getByTestId("models-table").locator('tr[data-ref="mixtral/e2e-resume"]')).toContainText("imported");
  await page.screenshot({ path: `${SHOTS}/models-import-resumed.png`, fullPage: true });
});
