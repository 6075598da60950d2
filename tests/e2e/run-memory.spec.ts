import { expect, test } from "@playwright/test";
import { addNode, drag, newWorkflow } from "./helpers";

const SHOTS = "test-results/screens";

test("a run shows its provider and memory: header tag, run list line, per-node peaks", async ({ page }) => {
  await newWorkflow(page);
  const text = await addNode(page, "input.text");
  const preview = await addNode(page, "output.preview");
  await page.getByTestId(`node-${text}`).getByLabel("Text", { exact: true }).fill("how much memory?");
  await page.getByRole("button", { name: "Auto-layout" }).click();
  await page.waitForTimeout(400);
  await drag(page, `handle-${text}-out-text`, `handle-${preview}-in-value`);
  await expect(page.locator(".react-flow__edge")).toHaveCount(1);

  await page.getByRole("button", { name: "▶ Run" }).click();
  await expect(page.getByTestId("run-status")).toHaveText("finished");
  await expect(page.getByTestId("ep")).toHaveText("cpu");
  // The server process's peak RSS: tens or hundreds of MB (a GB figure on a bigger process).
  await expect(page.getByTestId("run-memory")).toHaveText(/^\d+(\.\d+)? (MB|GB) peak$/);
  await expect(page.getByTestId("run-memory")).toHaveAttribute("title", /peak RSS .* during the run\).*process-wide/);

  await page.getByRole("button", { name: "Runs" }).click();
  const row = page.getByTestId("run-row").first();
  await expect(row.getByTestId("run-memory-line")).toHaveText(/^peak RSS \d+(\.\d+)? (MB|GB) \(\+\d+(\.\d+)? (kB|MB|GB) during the run\)$/);
  await row.getByText("Nodes of this run: time and peak RSS").click();
  for (const id of [text, preview]) await expect(row.getByTestId(`node-memory-${id}`)).toContainText(/done.*\d+(\.\d+)? (MB|GB)$/);
  await page.screenshot({ path: `${SHOTS}/run-memory.png` });

  // Reopened from the database (run.get), the figures are the same.
  const shown = await page.getByTestId("run-memory").textContent();
  await page.reload();
  await page.getByRole("button", { name: "Runs" }).click();
  await page.getByTestId("run-row").first().getByRole("button", { name: "Show outputs" }).click();
  await expect(page.getByTestId("run-memory")).toHaveText(shown!);
});
