import { expect, test, type Page } from "@playwright/test";

const SHOTS = "test-results/screens";

/** Counts canvas pixels that differ from the background (the heatmap drew cells). */
async function paintedPixels(page: Page, testId: string): Promise<number> {
  return page.getByTestId(testId).locator("canvas").first().evaluate((c: HTMLCanvasElement) => {
    const ctx = c.getContext("2d")!;
    const d = ctx.getImageData(0, 0, c.width, c.height).data;
    let n = 0;
    for (let i = 0; i < d.length; i += 4) if (d[i + 3]! > 0 && d[i]! + d[i + 1]! + d[i + 2]! > 60) n++;
    return n;
  });
}

async function downloaded(page: Page, click: () => Promise<void>): Promise<{ name: string; text: string }> {
  const [download] = await Promise.all([page.waitForEvent("download"), click()]);
  const chunks: Buffer[] = [];
  for await (const c of await download.createReadStream()) chunks.push(c as Buffer);
  return { name: download.suggestedFilename(), text: Buffer.concat(chunks).toString("utf8") };
}

test("example: text → MoE-LLM → Routing Inspector; heatmap, Fig. 8, token hover, ban an expert", async ({ page }) => {
  await page.goto("/");
  await page.getByRole("button", { name: /Text → MoE-LLM → routing/ }).click();
  await page.waitForURL(/\/w\//);
  await expect(page.locator(".react-flow__node")).toHaveCount(4);
  await page.getByRole("button", { name: "▶ Run" }).click();
  await expect(page.getByTestId("run-status")).toHaveText("finished", { timeout: 90_000 });
  await expect(page.getByTestId("heatmap-mini")).toBeVisible();
  await page.screenshot({ path: `${SHOTS}/example-routing.png` });

  await page.getByRole("button", { name: "Open inspector" }).click();
  const dialog = page.getByRole("dialog", { name: "Routing Inspector" });
  await expect(dialog.getByTestId("heatmap")).toBeVisible();
  await expect.poll(() => paintedPixels(page, "heatmap")).toBeGreaterThan(500);
  await expect.poll(() => paintedPixels(page, "fig8")).toBeGreaterThan(500);
  await dialog.getByTestId("token").nth(3).hover();
  await expect(dialog.getByTestId("token-detail")).toContainText("L7");
  await page.screenshot({ path: `${SHOTS}/inspector.png`, fullPage: true });
  // Files made in the page (app/lib/download.ts) arrive whole: the trace as CSV, the heatmap as SVG.
  const csv = await downloaded(page, () => dialog.getByRole("button", { name: "CSV" }).click());
  expect(csv.name).toBe("routing-trace.csv");
  expect(csv.text.split("\n")[0]).toMatch(/^token,text,modality,phase,layer,k,top_expert,w:/);
  const svg = await downloaded(page, () => dialog.getByTestId("heatmap").locator("xpath=..").getByRole("button", { name: "SVG" }).click());
  expect(svg.name).toBe("expert-load-heatmap.svg");
  expect(svg.text).toMatch(/^<svg[^>]*xmlns="http:\/\/www.w3.org\/2000\/svg"/);
  // The routed experts carry load at layer 3 before the intervention.
  const before = Number(await dialog.getByTestId("share-L3-E1").textContent());
  expect(before).toBeGreaterThan(0);
  await page.keyboard.press("Escape"); // closes the inspector, as every dialog
  await expect(dialog).toHaveCount(0);

  // Ban E1 at layer 3 and re-run: only the LLM and the inspector run again; E1’s share at L3 is zero.
  const rules = page.getByTestId("node-llm").getByTestId("interventions");
  await rules.getByRole("button", { name: "+ rule" }).click();
  await rules.getByLabel("Layer").selectOption("3");
  await rules.getByLabel("Expert").selectOption("E1");
  await rules.getByLabel("Action").selectOption("ban");
  await page.getByRole("button", { name: "▶ Run" }).click();
  await expect(page.getByTestId("run-status")).toHaveText("finished", { timeout: 90_000 });
  await expect(page.getByTestId("status-prompt")).toHaveAttribute("data-status", "cached");
  await page.getByRole("button", { name: "Open inspector" }).click();
  await expect(dialog.getByTestId("share-L3-E1")).toHaveText("0.0");
});

test("example: ban an expert and compare — the comparison shows E1's share falling to zero", async ({ page }) => {
  await page.goto("/");
  await page.getByRole("button", { name: /Ban an expert and compare/ }).click();
  await page.waitForURL(/\/w\//);
  await page.getByRole("button", { name: "▶ Run" }).click();
  await expect(page.getByTestId("run-status")).toHaveText("finished", { timeout: 90_000 });
  await expect(page.getByTestId("outputs-compare")).toContainText("E1 banned vs baseline");
  await page.getByRole("button", { name: "Open comparison" }).click();
  const dialog = page.getByRole("dialog", { name: "Compare traces" });
  await expect(dialog.getByTestId("compare-heatmap")).toBeVisible();
  await expect(dialog.getByTestId("compare-table").locator("tbody tr")).toHaveCount(8);
  await page.screenshot({ path: `${SHOTS}/compare.png` });
});
