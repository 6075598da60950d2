import { expect, test } from "@playwright/test";

const SHOTS = "test-results/screens";

test("Routing Top-P override: 'the model's' (null) by default; unticked it takes a P the run and the inspector use", async ({ page }) => {
  await page.goto("/");
  await page.getByRole("button", { name: /Text → MoE-LLM → routing/ }).click();
  await page.waitForURL(/\/w\//);
  const llm = page.getByTestId("node-llm");
  const own = llm.getByLabel("Routing Top-P override: the model's", { exact: true });
  const p = llm.getByLabel("Routing Top-P override", { exact: true });
  await expect(own).toBeChecked();
  await expect(llm).toContainText("the model's (0.7)");
  await expect(p).toHaveCount(0);

  await own.uncheck();
  await expect(p).toHaveValue("0.7");
  await p.fill("0.4");
  await page.screenshot({ path: `${SHOTS}/routing-top-p-override.png` });
  await page.getByRole("button", { name: "▶ Run" }).click();
  await expect(page.getByTestId("run-status")).toHaveText("finished", { timeout: 90_000 });
  await page.getByRole("button", { name: "Open inspector" }).click();
  const dialog = page.getByRole("dialog", { name: "Routing Inspector" });
  await expect(dialog.getByTestId("layer-rules")).toContainText("Top-P 0.4 (override)");
  await page.keyboard.press("Escape");

  await own.check();
  await expect(p).toHaveCount(0);
  await page.getByRole("button", { name: "▶ Run" }).click();
  await expect(page.getByTestId("run-status")).toHaveText("finished", { timeout: 90_000 });
  await page.getByRole("button", { name: "Open inspector" }).click();
  await expect(dialog.getByTestId("layer-rules")).toContainText("Top-P 0.7 over");
  await expect(dialog.getByTestId("layer-rules")).not.toContainText("override");
});
