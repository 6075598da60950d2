import { expect, test } from "@playwright/test";

const SHOTS = "test-results/screens";

test("the shipped sample dataset runs per record: Fig. 7 and 8 per task, vocabularies, and a Top-P sweep chart", async ({ page }) => {
  test.setTimeout(480_000);
  await page.goto("/");
  await page.getByRole("button", { name: /Dataset → routing per task/ }).click();
  await page.waitForURL(/\/w\//);
  await expect(page.locator(".react-flow__node")).toHaveCount(5);
  await page.getByRole("button", { name: "▶ Run" }).click();
  // The aggregate node streams records done / total while it runs.
  await expect(page.getByTestId("stream-aggregate")).toContainText(/\d+\/36 records/, { timeout: 120_000 });
  await expect(page.getByTestId("run-status")).toHaveText("finished", { timeout: 240_000 });

  // The Dataset node: count, tasks, a preview of the first rows.
  const preview = page.getByTestId("outputs-data").getByTestId("dataset-preview");
  await expect(preview).toBeVisible();
  await expect(page.getByTestId("outputs-data")).toContainText("36 records");
  await expect(preview.locator("tbody tr")).toHaveCount(10);
  await expect(page.getByTestId("outputs-aggregate")).toContainText("36 records");
  await page.screenshot({ path: `${SHOTS}/dataset-workflow.png` });

  await page.getByRole("button", { name: "Open aggregate" }).click();
  const view = page.getByTestId("aggregate-view");
  await expect(view.getByTestId("aggregate-headline")).toContainText("36 records (36 ran, 0 cached");
  for (const task of ["all_records", "caption", "code", "math", "translate"]) {
    await expect(view.getByTestId(`agg-fig7-${task}`)).toBeVisible();
    await expect(view.getByTestId(`agg-fig8-${task}`)).toBeVisible();
  }
  // Two modalities: the image tokens of the caption task can be looked at alone.
  await view.getByTestId("aggregate-facet").selectOption("modality:image");
  await expect(view.getByTestId("agg-fig7-caption")).toBeVisible();
  await expect(view.getByTestId("agg-fig7-math")).toHaveCount(0);
  await view.getByTestId("aggregate-facet").selectOption("all");
  await expect(view.getByTestId("aggregate-balance").locator("tbody tr")).toHaveCount(5);
  await page.screenshot({ path: `${SHOTS}/dataset-fig7-fig8.png` });

  await view.getByRole("button", { name: "Vocabulary & specialisation" }).click();
  await expect(view.getByTestId("vocab-table").locator("tbody tr")).toHaveCount(5); // E1..E4 + the null expert
  await expect(view.getByTestId("spec-table").locator("tbody tr")).toHaveCount(4);
  await view.getByTestId("vocab-layer").selectOption("3");
  await expect(view.getByText("Tokens each expert receives most often at L3")).toBeVisible();
  await page.screenshot({ path: `${SHOTS}/dataset-vocabulary.png` });
  await view.getByRole("button", { name: "Close aggregate" }).click();

  // A sweep over the routing Top-P: one batch per value, plotted against it.
  await page.getByTestId("node-aggregate").getByLabel("Sweep (optional)").fill("llm.routingTopP=0.4,0.9");
  await page.getByRole("button", { name: "▶ Run" }).click();
  await expect(page.getByTestId("run-status")).toHaveText("finished", { timeout: 300_000 });
  await page.getByRole("button", { name: "Open aggregate and sweep" }).click();
  await expect(view.getByTestId("sweep-chart")).toBeVisible();
  await expect(view.getByTestId("sweep-table").locator("tbody tr")).toHaveCount(2);
  const meanK = await view.getByTestId("sweep-table").locator("tbody tr").evaluateAll((rows) => rows.map((r) => Number(r.querySelectorAll("td")[2]!.textContent)));
  expect(meanK[0]).toBeLessThan(meanK[1]!); // a higher Top-P threshold chooses more experts per token
  await page.screenshot({ path: `${SHOTS}/dataset-sweep.png` });
});
