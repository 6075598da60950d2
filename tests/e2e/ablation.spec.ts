import { expect, test } from "@playwright/test";

const SHOTS = "test-results/screens";

test("expert ablation on tiny over the shipped sample: cost before the start, progress, ΔNLL maps per task, importance beside routing share", async ({ page }) => {
  test.setTimeout(600_000);
  await page.goto("/");
  await page.getByRole("button", { name: /Dataset → expert ablation/ }).click();
  await page.waitForURL(/\/w\//);
  await expect(page.locator(".react-flow__node")).toHaveCount(5);
  // The cost, before anything runs: 36 records × (baseline + 4 experts + k=1 + no-null).
  await expect(page.getByTestId("ablation-cost-ablation")).toContainText(/7 passes \(baseline \+ 6 ablations\) × ≈[\d,]+ text tokens per pass \(36 records\) ≈ [\d,]+ tokens/, { timeout: 30_000 });
  await page.screenshot({ path: `${SHOTS}/ablation-workflow.png` });

  await page.getByRole("button", { name: "▶ Run" }).click();
  // Progress: the baseline, then each ablation, records done of 36.
  const stream = page.getByTestId("stream-ablation");
  await expect(stream).toContainText(/baseline · \d+\/36 records/, { timeout: 120_000 });
  await expect(stream).toContainText(/ablation [1-6]\/6: .* · \d+\/36 records/, { timeout: 240_000 });
  await expect(page.getByTestId("run-status")).toHaveText("finished", { timeout: 480_000 });
  await expect(page.getByTestId("outputs-ablation")).toContainText("6 ablations × 36 records");
  // the LLM's own preview: the NLL of the previewed record's answer
  await expect(page.getByTestId("outputs-llm")).toContainText(/answer token\(s\): mean NLL \d+\.\d{3} nats/);

  await page.getByRole("button", { name: "Open ablation maps" }).click();
  const view = page.getByTestId("ablation-view");
  await expect(view.getByTestId("ablation-headline")).toContainText("experts · 6 ablations × 36 records");
  for (const task of ["all_records", "caption", "math", "translate", "code"]) await expect(view.getByTestId(`ablation-map-${task}`)).toBeVisible();
  await page.screenshot({ path: `${SHOTS}/ablation-maps.png` });

  // The most important experts for math, each with its routing share beside its ΔNLL.
  await view.getByTestId("ablation-task").selectOption("math");
  const ranking = view.getByTestId("ablation-ranking");
  await expect(ranking.locator("tbody tr")).toHaveCount(6);
  const deltas = await ranking.getByTestId("delta").allTextContents();
  const values = deltas.map(Number);
  expect(values.every(Number.isFinite)).toBe(true);
  expect([...values].sort((a, b) => b - a)).toEqual(values); // most important first
  const e1 = view.getByTestId("ablation-row-_E1");
  await expect(e1.getByTestId("delta")).toHaveText(/^[+-]\d+\.\d{4}$/);
  await expect(e1.getByTestId("share")).toHaveText(/^\d+\.\d %$/);
  await expect(view.getByTestId("ablation-row-k_1").getByTestId("share")).toHaveText("—");
  await expect(view.getByTestId("ablation-scatter")).toBeVisible();
  // sort by routing share instead
  await ranking.getByRole("button", { name: "routing share" }).click();
  const shares = (await ranking.getByTestId("share").allTextContents()).filter((s) => s !== "—").map((s) => parseFloat(s));
  expect([...shares].sort((a, b) => b - a)).toEqual(shares);
  await page.screenshot({ path: `${SHOTS}/ablation-importance-vs-share.png` });
});

test("logit lens and NLL colouring in the Routing Inspector", async ({ page }) => {
  test.setTimeout(180_000);
  await page.goto("/");
  await page.getByRole("button", { name: /Text → MoE-LLM → routing/ }).click();
  await page.waitForURL(/\/w\//);
  const llm = page.getByTestId("node-llm");
  await llm.locator("label.param").filter({ has: page.getByText("Mode", { exact: true }) }).locator("select").selectOption("score-text");
  await llm.getByLabel("Logit lens").check();
  await page.getByRole("button", { name: "▶ Run" }).click();
  await expect(page.getByTestId("run-status")).toHaveText("finished", { timeout: 120_000 });
  await expect(page.getByTestId("outputs-llm")).toContainText(/text token\(s\): mean NLL/);
  await page.getByRole("button", { name: "Open inspector" }).click();
  const dialog = page.getByRole("dialog", { name: "Routing Inspector" });
  await dialog.getByLabel("Colour tokens by").selectOption("nll");
  await expect(dialog.getByTestId("nll-legend")).toBeVisible();
  await dialog.getByTestId("token").nth(4).hover();
  await expect(dialog.getByTestId("token-detail")).toContainText(/NLL \d+\.\d{3} nats/);
  const grid = dialog.getByTestId("lens-grid");
  await expect(grid.locator("tbody tr")).toHaveCount(8);
  await dialog.getByTestId("lens-cell-L3-5").hover();
  await expect(dialog.getByTestId("lens-detail")).toContainText(/after L3, at token 5 .*final prediction ranked \d+/);
  await expect(dialog.getByTestId("lens-detail").locator("tr")).toHaveCount(5);
  await expect(dialog.getByTestId("lens-kl")).toBeVisible();
  await page.screenshot({ path: `${SHOTS}/logit-lens.png`, fullPage: true });
});
