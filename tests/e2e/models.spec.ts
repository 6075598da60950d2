import path from "node:path";
import { expect, test, type Page } from "@playwright/test";
import { byteTokenizer } from "@/models/text/tokenizer";
import { writeFamilyCheckpoint } from "../unit/import/family-checkpoints";

const SHOTS = "test-results/screens";
const PORT = Number(process.env.E2E_PORT ?? 3100);
/** The server's data dir (playwright.config.ts); its checkpoints/ folder is the default import folder. */
const CHECKPOINTS = path.resolve(`test-results/e2e-data-${PORT}/checkpoints`);

async function heatmapPixels(page: Page): Promise<number> {
  return page.getByTestId("heatmap").locator("canvas").first().evaluate((c: HTMLCanvasElement) => {
    const d = c.getContext("2d")!.getImageData(0, 0, c.width, c.height).data;
    let n = 0;
    for (let i = 0; i < d.length; i += 4) if (d[i + 3]! > 0 && d[i]! + d[i + 1]! + d[i + 2]! > 60) n++;
    return n;
  });
}

test("Models page: import a generated Qwen2-MoE checkpoint, run it in the MoE-LLM node, see its trace in the inspector, delete it", async ({ page }) => {
  // A tiny random checkpoint in the real Qwen2-MoE layout (2 shards + index.json), vocabulary covering the byte tokenizer.
  const vocab = Math.ceil(byteTokenizer.vocabSize / 64) * 64;
  await writeFamilyCheckpoint(path.join(CHECKPOINTS, "tiny-qwen2-moe"), "qwen2_moe", { seed: 7, shards: 2, configOverride: { vocab_size: vocab } });

  await page.goto("/models");
  const table = page.getByTestId("models-table");
  await expect(table.locator('tr[data-ref="uni-moe-tiny/tiny"]')).toContainText("seeded, untrained");
  await page.getByLabel("Checkpoint folder").selectOption("checkpoints/tiny-qwen2-moe");
  await expect(page.getByTestId("inspect-summary")).toContainText("qwen2_moe");
  await expect(page.getByTestId("inspect-summary")).not.toContainText("Missing");
  await page.getByLabel("Model name").fill("e2e-q2");
  await page.getByRole("button", { name: "Import", exact: true }).click();
  await expect(page.getByTestId("import-status")).toContainText("Imported: qwen2_moe/e2e-q2", { timeout: 60_000 });
  const row = table.locator('tr[data-ref="qwen2_moe/e2e-q2"]');
  await expect(row).toContainText("imported");
  await expect(row).toContainText("qwen2_moe");
  await expect(row).toContainText("tiny-qwen2-moe");
  await page.screenshot({ path: `${SHOTS}/models-imported.png`, fullPage: true });

  // Select it in the MoE-LLM node of the routing example and run.
  await page.goto("/");
  await page.getByRole("button", { name: /Text → MoE-LLM → routing/ }).click();
  await page.waitForURL(/\/w\//);
  await page.getByTestId("node-llm").getByLabel("Model", { exact: true }).selectOption("qwen2_moe/e2e-q2");
  await page.getByRole("button", { name: "▶ Run" }).click();
  await expect(page.getByTestId("run-status")).toHaveText("finished", { timeout: 90_000 });
  await page.getByRole("button", { name: "Open inspector" }).click();
  const dialog = page.getByRole("dialog", { name: "Routing Inspector" });
  await expect(dialog.getByTestId("heatmap")).toBeVisible();
  await expect.poll(() => heatmapPixels(page)).toBeGreaterThan(200);
  // the inspector explains this family's routing, not Uni-MoE's
  await expect(dialog.locator(".convention")).toContainText("Top-k over softmax");
  await expect(dialog).toContainText(/qwen2_moe\/e2e-q2 · \d+ tokens · 2 layers · 9 experts/); // 8 routed + the gated shared expert
  await page.screenshot({ path: `${SHOTS}/models-inspector.png`, fullPage: true });
  await dialog.getByRole("button", { name: "Close inspector" }).click();

  // The Models page records where it ran; delete removes it (the checkpoint folder stays).
  await page.goto("/models");
  await expect(row).toContainText("loaded on cpu");
  page.once("dialog", (d) => void d.accept());
  await row.getByRole("button", { name: "Delete" }).click();
  await expect(row).toHaveCount(0);
});

test("Models page: the import panel estimates int8/int4 memory; import as int4 weights; the table shows the quantisation", async ({ page }) => {
  const vocab = Math.ceil(byteTokenizer.vocabSize / 64) * 64;
  await writeFamilyCheckpoint(path.join(CHECKPOINTS, "tiny-olmoe-q"), "olmoe", { seed: 4, configOverride: { vocab_size: vocab, hidden_size: 64, intermediate_size: 32 } });
  await page.goto("/models");
  await page.getByLabel("Checkpoint folder").selectOption("checkpoints/tiny-olmoe-q");
  await expect(page.getByTestId("inspect-summary")).toContainText(/as int8 ~[\d.]+ [kMG]B, as int4 ~[\d.]+ [kMG]B on CPU/);
  await page.getByLabel("Model name").fill("e2e-q4");
  await page.getByLabel("Quantisation", { exact: true }).selectOption("int4");
  await expect(page.getByLabel("Quantisation block")).toHaveValue("auto");
  await page.getByRole("button", { name: "Import", exact: true }).click();
  await expect(page.getByTestId("import-status")).toContainText("Imported: olmoe/e2e-q4", { timeout: 90_000 });
  const row = page.getByTestId("models-table").locator('tr[data-ref="olmoe/e2e-q4"]');
  await expect(row.getByTestId("model-dtype")).toContainText("int4 (block 32, symmetric)");
  await page.screenshot({ path: `${SHOTS}/models-quantised.png`, fullPage: true });
  page.once("dialog", (d) => void d.accept());
  await row.getByRole("button", { name: "Delete" }).click();
  await expect(row).toHaveCount(0);
});

test("Models page: a checkpoint with a missing tensor is named and cannot be imported", async ({ page }) => {
  await writeFamilyCheckpoint(path.join(CHECKPOINTS, "broken-mixtral"), "mixtral", { omit: ["model.layers.1.block_sparse_moe.experts.2.w3.weight"] });
  await page.goto("/models");
  await page.getByLabel("Checkpoint folder").selectOption("checkpoints/broken-mixtral");
  await expect(page.getByTestId("inspect-summary")).toContainText("Missing: model.layers.1.block_sparse_moe.experts.2.w3.weight");
  await expect(page.getByRole("button", { name: "Import", exact: true })).toBeDisabled();
});
