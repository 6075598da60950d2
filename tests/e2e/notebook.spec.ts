import { expect, test } from "@playwright/test";
import { save } from "./helpers";

const SHOTS = "test-results/screens";

test("the notebook shows the cells in execution order, and a note cell persists after reload", async ({ page }) => {
  await page.goto("/");
  await page.getByRole("button", { name: /Text → MoE-LLM → routing/ }).click();
  await page.waitForURL(/\/w\//);
  await page.getByRole("button", { name: "▶ Run" }).click();
  await expect(page.getByTestId("run-status")).toHaveText("finished", { timeout: 90_000 });

  await page.getByRole("tab", { name: "Notebook" }).click();
  const cells = page.getByTestId("cell");
  await expect(cells).toHaveCount(4);
  const order = await cells.evaluateAll((els) => els.map((e) => e.getAttribute("data-node")));
  expect(order.indexOf("prompt")).toBe(0);
  expect(order.indexOf("llm")).toBe(1);
  expect(order.slice(2).sort()).toEqual(["answer", "routing"]);
  await expect(page.locator('[data-node="routing"]').getByTestId("heatmap-mini")).toBeVisible();

  // A note after the LLM cell, written in Monaco.
  await page.locator('[data-node="llm"]').getByRole("button", { name: "+ Note" }).click();
  const editor = page.getByTestId("note-editor").locator(".monaco-editor");
  await expect(editor).toBeVisible();
  await editor.click();
  await page.keyboard.type("Layer three routes **most** tokens to E1");
  await page.getByTestId("note-cell").getByRole("button", { name: "Done" }).click();
  await expect(page.getByTestId("note-cell")).toContainText("Layer three routes most tokens to E1");
  await expect(page.getByTestId("note-cell").locator("strong")).toHaveText("most"); // the note's markdown, rendered

  // Changing the prompt marks the LLM's cell and everything after it stale.
  await page.getByRole("tab", { name: "Canvas" }).click();
  await page.getByTestId("node-prompt").getByLabel("Text", { exact: true }).fill("Something else entirely.");
  await page.getByRole("tab", { name: "Notebook" }).click();
  await expect(page.locator('[data-node="llm"]')).toHaveClass(/stale/);
  await page.screenshot({ path: `${SHOTS}/notebook.png` });

  await save(page);
  await expect(page.getByText(/Saved version/)).toBeVisible();
  await page.reload();
  await page.getByRole("tab", { name: "Notebook" }).click();
  await expect(page.getByTestId("note-cell")).toContainText("Layer three routes most tokens to E1");
  // The note sits right after the LLM's cell.
  const after = await page.getByTestId("notebook").evaluate((nb) => {
    const llm = nb.querySelector('[data-node="llm"]')!.parentElement!;
    return llm.querySelector('[data-testid="note-cell"]') !== null;
  });
  expect(after).toBe(true);
});
