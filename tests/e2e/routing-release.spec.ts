import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { expect, test, type Page } from "@playwright/test";
import { writeSafetensors } from "@/models/io/safetensors";
import { omniTensors, releaseConfigText } from "../unit/import/omni-checkpoint";

const SHOTS = "test-results/screens";
const PORT = Number(process.env.E2E_PORT ?? 3100);
const CHECKPOINTS = path.resolve(`test-results/e2e-data-${PORT}/checkpoints`);

async function paintedPixels(page: Page, testId: string): Promise<number> {
  return page.getByTestId(testId).locator("canvas").first().evaluate((c: HTMLCanvasElement) => {
    const d = c.getContext("2d")!.getImageData(0, 0, c.width, c.height).data;
    let n = 0;
    for (let i = 0; i < d.length; i += 4) if (d[i + 3]! > 0 && d[i]! + d[i + 1]! + d[i + 2]! > 60) n++;
    return n;
  });
}

test("a released-layout Omni checkpoint: parts and unused config fields on the Models page; bf16 routing with token drop in the inspector", async ({ page }) => {
  // The release's config (mlp_dynamic_top_k 0.0, training fields, …) with a capacity small enough to drop tokens.
  const dir = path.join(CHECKPOINTS, "omni-release");
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, "config.json"), releaseConfigText({ model_type: "grin_qwen2_vl", token_drop: true, drop_policy: "probs", capacity_factor: 0.5, min_capacity: 1 }));
  await writeSafetensors(path.join(dir, "model.safetensors"), omniTensors(), { dtype: "BF16" });

  await page.goto("/models");
  await page.getByLabel("Checkpoint folder").selectOption(`checkpoints/${path.basename(dir)}`); // named by its import folder, never by server path
  const summary = page.getByTestId("inspect-summary");
  await expect(summary).toContainText("grin_qwen2_vl");
  await expect(summary).toContainText("active per token (Top-P: varies per token)");
  const parts = page.getByTestId("checkpoint-parts");
  await expect(parts.locator('li[data-part="llm"]')).toHaveAttribute("data-imported", "true");
  await expect(parts.locator('li[data-part="vision"]')).toHaveAttribute("data-imported", "true");
  await expect(parts.locator('li[data-part="speech_generator"]')).toHaveAttribute("data-imported", "true");
  await expect(parts.locator('li[data-part="speech_generator"]')).toContainText("imported into speech/");
  await expect(parts.locator('li[data-part="image_generator"]')).toContainText("listed, not imported");
  await expect(parts.locator('li[data-part="image_projectors"]')).toContainText("listed, not imported");
  await expect(parts.locator('li[data-part="other"]')).toContainText("1 unclaimed");
  await page.getByTestId("unused-config").locator("summary").click();
  await expect(page.getByTestId("unused-config")).toContainText("fp32_gate: training only");
  await expect(page.getByTestId("unused-config")).toContainText("a_field_from_the_future: not used by MoE Studio");
  await page.getByLabel("Model name").fill("omni-e2e");
  await page.getByRole("button", { name: "Import", exact: true }).click();
  await expect(page.getByTestId("import-status")).toContainText("Imported: grin_qwen2_vl/omni-e2e", { timeout: 60_000 });
  const row = page.getByTestId("models-table").locator('tr[data-ref="grin_qwen2_vl/omni-e2e"]');
  await expect(row.getByTestId("active-parameters")).toContainText("–");
  await page.screenshot({ path: `${SHOTS}/models-omni-parts.png`, fullPage: true });

  // Run it: the node's Routing precision "model" is bf16 for this checkpoint; every call drops over capacity.
  await page.goto("/");
  await page.getByRole("button", { name: /Text → MoE-LLM → routing/ }).click();
  await page.waitForURL(/\/w\//);
  const llm = page.getByTestId("node-llm");
  await llm.getByLabel("Model", { exact: true }).selectOption("grin_qwen2_vl/omni-e2e");
  await page.getByRole("button", { name: "▶ Run" }).click();
  await expect(page.getByTestId("run-status")).toHaveText("finished", { timeout: 90_000 });
  await page.getByRole("button", { name: "Open inspector" }).click();
  const dialog = page.getByRole("dialog", { name: "Routing Inspector" });
  await expect(dialog).toContainText("routing in bf16 (as released)");
  await expect(dialog.getByTestId("dropped-count")).toContainText(/[1-9]\d* assignments? dropped over capacity/);
  await expect(dialog.getByTestId("active-parameters")).toContainText("parameters active per token");
  await expect(dialog.locator("h3", { hasText: "dropped: share of tokens that lost an expert" })).toBeVisible();
  await expect.poll(() => paintedPixels(page, "heatmap")).toBeGreaterThan(200);
  await expect(dialog.getByTestId("dropped-L0")).toHaveText(/^\d+ \(\d+\)$/);
  await dialog.getByTestId("token").nth(2).hover();
  await expect(dialog.getByTestId("token-detail")).toBeVisible();
  await page.screenshot({ path: `${SHOTS}/inspector-drops.png`, fullPage: true });
});

test("example: the same prompt routed in fp32 and in bf16 — Compare Traces lists the tokens routed differently", async ({ page }) => {
  await page.goto("/");
  await page.getByRole("button", { name: /Routing in fp32 vs bf16/ }).click();
  await page.waitForURL(/\/w\//);
  await page.getByRole("button", { name: "▶ Run" }).click();
  await expect(page.getByTestId("run-status")).toHaveText("finished", { timeout: 90_000 });
  await expect(page.getByTestId("outputs-compare")).toContainText("bf16 vs fp32");
  await page.getByRole("button", { name: "Open comparison" }).click();
  const dialog = page.getByRole("dialog", { name: "Compare traces" });
  await expect(dialog).toContainText("fp32 routing");
  await expect(dialog.getByTestId("routing-diff-summary")).toContainText(/[1-9]\d* token-layers? of the \d+ common tokens/);
  await expect(dialog.getByTestId("routing-diff").locator("tbody tr").first()).toContainText("k ");
  // routing agreement per layer and the next-token logits of the common tokens (the same prompt: every token in common)
  await expect(dialog.getByTestId("set-agreement").first()).toHaveText(/^\d+\.\d %$/);
  await expect(dialog.getByTestId("compare-logits")).toContainText("same next-token argmax");
  await expect(dialog.getByTestId("compare-logits")).toContainText(/\|Δ logit\| max \/ mean\s*\d/);
  await page.screenshot({ path: `${SHOTS}/compare-precision.png`, fullPage: true });
});
