import { readFileSync } from "node:fs";
import path from "node:path";
import { expect, test, type Page } from "@playwright/test";
import { byteTokenizer } from "@/models/text/tokenizer";
import { writeFamilyCheckpoint, type Family, type WriteOptions } from "../unit/import/family-checkpoints";

const SHOTS = "test-results/screens";
const PORT = Number(process.env.E2E_PORT ?? 3100);
/** The server's data dir (playwright.config.ts); its checkpoints/ folder is the default import folder. */
const CHECKPOINTS = path.resolve(`test-results/e2e-data-${PORT}/checkpoints`);
/** A vocabulary covering the byte tokenizer the generated checkpoints fall back to (they ship no tokenizer.json). */
const VOCAB = Math.ceil(byteTokenizer.vocabSize / 64) * 64;

/** Writes a generated checkpoint in the family's real layout and imports it on the Models page (once per name). */
async function importOnModelsPage(page: Page, family: Family, name: string, opts: WriteOptions): Promise<string> {
  const ref = `${family}/${name}`;
  await page.goto("/models");
  const table = page.getByTestId("models-table");
  const row = table.locator(`tr[data-ref="${ref}"]`);
  await expect(table.locator('tr[data-ref="uni-moe-tiny/tiny"]')).toBeVisible(); // the list has loaded
  if ((await row.count()) > 0) return ref;
  const dir = path.join(CHECKPOINTS, `tiny-${name}`);
  await writeFamilyCheckpoint(dir, family, { ...opts, configOverride: { vocab_size: VOCAB, ...opts.configOverride } });
  await page.reload();
  await page.getByLabel("Checkpoint folder").selectOption(`checkpoints/${path.basename(dir)}`); // named by its import folder, never by server path
  await expect(page.getByTestId("inspect-summary")).toContainText(family);
  await expect(page.getByTestId("inspect-summary")).toContainText("active per token");
  await expect(page.getByTestId("inspect-summary")).not.toContainText("Missing");
  await page.getByLabel("Model name").fill(name);
  await page.getByRole("button", { name: "Import", exact: true }).click();
  await expect(page.getByTestId("import-status")).toContainText(`Imported: ${ref}`, { timeout: 90_000 });
  await expect(row).toContainText("imported");
  return ref;
}

async function openRoutingExample(page: Page, model: string) {
  await page.goto("/");
  await page.getByRole("button", { name: /Text → MoE-LLM → routing/ }).click();
  await page.waitForURL(/\/w\//);
  await page.getByTestId("node-llm").getByLabel("Model", { exact: true }).selectOption(model);
}

async function runAndOpenInspector(page: Page) {
  await page.getByRole("button", { name: "▶ Run" }).click();
  await expect(page.getByTestId("run-status")).toHaveText("finished", { timeout: 90_000 });
  await page.getByRole("button", { name: "Open inspector" }).click();
  const dialog = page.getByRole("dialog", { name: "Routing Inspector" });
  await expect(dialog.getByTestId("heatmap")).toBeVisible();
  return dialog;
}

test("a generated DeepSeek-V3 checkpoint: import on the Models page, run in the MoE-LLM node, its routing with the dense first layer in the inspector", async ({ page }) => {
  test.setTimeout(240_000);
  const ref = await importOnModelsPage(page, "deepseek_v3", "e2e-v3", { seed: 7, shards: 2, dtype: "BF16" });
  const row = page.getByTestId("models-table").locator(`tr[data-ref="${ref}"]`);
  await expect(row).toContainText("DeepSeek-V3");
  await page.screenshot({ path: `${SHOTS}/families-deepseek-imported.png`, fullPage: true });

  await openRoutingExample(page, ref);
  // a top-k router: the top-k override is offered, the Top-P override is not
  const llm = page.getByTestId("node-llm");
  await expect(llm.getByLabel("Routing top-k override: the model's", { exact: true })).toBeChecked();
  await expect(llm).toContainText("the model's (4)");
  await expect(llm.getByLabel("Routing Top-P override: the model's", { exact: true })).toHaveCount(0);
  const dialog = await runAndOpenInspector(page);
  await expect(dialog).toContainText(/deepseek_v3\/e2e-v3 · \d+ tokens · 2 layers with a router \(\+ 1 dense\) · 17 experts/); // 16 routed + the shared MLP
  await expect(dialog.locator(".convention")).toContainText("e_score_correction_bias");
  const rules = dialog.getByTestId("layer-rules");
  await expect(rules.locator('tr[data-kind="dense"]')).toContainText("L0");
  await expect(rules.locator('tr[data-kind="dense"]')).toContainText("dense (no routing)");
  await expect(rules.locator('tr[data-kind="moe"]')).toContainText("L1–L2");
  await expect(rules.locator('tr[data-kind="moe"]')).toContainText("sigmoid + correction bias, 4 groups keep 2 (by top-2 sum), top-4 of 16, renormalised, × 2.5");
  // the MoE layers keep their decoder indices: L1 and L2
  await expect(dialog.getByTestId("kdist-L1")).toContainText("k=4: 100.0%");
  await expect(dialog.getByTestId("kdist-L2")).toContainText("k=4: 100.0%");
  await expect(dialog.getByTestId("kdist-L0")).toHaveCount(0);
  await page.screenshot({ path: `${SHOTS}/families-deepseek-inspector.png`, fullPage: true });
});

test("a top-k override on a Mixtral changes its k histogram to the chosen k", async ({ page }) => {
  test.setTimeout(240_000);
  const ref = await importOnModelsPage(page, "mixtral", "e2e-mixtral", { seed: 8 });
  await openRoutingExample(page, ref);
  let dialog = await runAndOpenInspector(page);
  await expect(dialog.getByTestId("kdist-L0")).toHaveText("k=2: 100.0%");
  await dialog.getByRole("button", { name: "Close inspector" }).click();

  const llm = page.getByTestId("node-llm");
  await llm.getByLabel("Routing top-k override: the model's", { exact: true }).uncheck();
  await expect(llm.getByLabel("Routing top-k override", { exact: true })).toHaveValue("2");
  await llm.getByLabel("Routing top-k override", { exact: true }).fill("5");
  dialog = await runAndOpenInspector(page);
  await expect(dialog.getByTestId("kdist-L0")).toHaveText("k=5: 100.0%");
  await expect(dialog.getByTestId("kdist-L1")).toHaveText("k=5: 100.0%");
  await expect(dialog.getByTestId("layer-rules")).toContainText("top-5 of 8 (override)");
  await page.screenshot({ path: `${SHOTS}/families-mixtral-topk.png`, fullPage: true });
});

test("a Routing Top-P sweep over a top-k model is refused with the reason, before any record runs", async ({ page }) => {
  test.setTimeout(240_000);
  const ref = await importOnModelsPage(page, "mixtral", "e2e-mixtral", { seed: 8 });
  // the shipped text-only dataset workflow (Dataset → MoE-LLM → Routing Aggregate), imported on the start page
  await page.goto("/");
  const workflow = readFileSync(path.resolve("app/examples/datasets/text-workflow.json"));
  await page.getByTestId("import-input").setInputFiles({ name: "text-workflow.json", mimeType: "application/json", buffer: workflow });
  await page.waitForURL(/\/w\//);
  await page.getByTestId("node-llm").getByLabel("Model", { exact: true }).selectOption(ref);
  await page.getByTestId("node-aggregate").getByLabel("Sweep (optional)").fill("llm.routingTopP=0.4,0.9");
  await page.getByRole("button", { name: "▶ Run" }).click();
  await expect(page.getByTestId("run-status")).toHaveText("failed", { timeout: 120_000 });
  await expect(page.getByTestId("error-aggregate")).toContainText(
    "sweep of llm.routingTopP refused at 0.4: Routing Top-P override 0.4: mixtral's router picks a fixed number of experts per token (top-2); it has no Top-P threshold (use the top-k override)",
  );
  await page.screenshot({ path: `${SHOTS}/families-topp-sweep-refused.png`, fullPage: true });
});
