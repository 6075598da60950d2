import { expect, test } from "@playwright/test";
import { addNode, newWorkflow } from "./helpers";

const SHOTS = "test-results/screens";

test("history: two saves with different params, the diff on the canvas and as a list, restore makes a new version", async ({ page }) => {
  await newWorkflow(page); // version 1, "Created"
  const text = await addNode(page, "input.text");
  const field = page.getByTestId(`node-${text}`).getByLabel("Text", { exact: true });
  await field.fill("one");
  await page.getByLabel("Version message").fill("first text");
  await page.getByRole("button", { name: "Save", exact: true }).click();
  await expect(page.getByTestId("version")).toHaveText("v2");

  await field.fill("two");
  const template = await addNode(page, "text.template");
  await page.getByLabel("Version message").fill("second text and a template");
  await page.getByRole("button", { name: "Save", exact: true }).click();
  await expect(page.getByTestId("version")).toHaveText("v3");

  await page.getByRole("button", { name: "History" }).click();
  const panel = page.getByRole("complementary", { name: "History" });
  await expect(panel.getByTestId("version-3")).toContainText("second text and a template");
  await expect(panel.getByTestId("version-2")).toContainText("first text");
  await expect(panel.getByTestId("version-1")).toContainText("Created");
  await expect(panel.getByTestId("version-1")).toContainText("by ");

  // The two newest are compared by default: v2 → v3, and the panel says so.
  await expect(panel.getByTestId("history-hint")).toHaveText(/^Comparing the ticked versions v2 and v3/);
  const lines = panel.getByTestId("diff-lines");
  await expect(lines).toContainText(`~ node ${text}: text "one" → "two"`);
  await expect(lines).toContainText(`+ node ${template} (text.template)`);
  // On the canvas: the changed node in amber naming the param, the new one in green.
  await expect(page.getByTestId(`diff-${text}`)).toHaveAttribute("data-diff", "changed");
  await expect(page.getByTestId(`diff-tag-${text}`)).toHaveText("changed: text");
  await expect(page.getByTestId(`diff-${template}`)).toHaveAttribute("data-diff", "added");
  await page.screenshot({ path: `${SHOTS}/history-diff.png` });
  // The picture is read-only: its fields are disabled and double-clicking the pane adds nothing.
  await expect(page.getByTestId(`diff-${text}`).getByLabel("Text", { exact: true })).toBeDisabled();
  await page.locator(".react-flow__pane").dblclick({ position: { x: 1000, y: 300 } }); // right of the History panel, clear of nodes
  await expect(page.getByPlaceholder("Add a node… (type to search)")).toHaveCount(0);

  // Compare v1 → v3 instead: both nodes are new there.
  await panel.getByLabel("Compare version 2").uncheck();
  await panel.getByLabel("Compare version 1").check();
  await expect(page.getByTestId(`diff-${text}`)).toHaveAttribute("data-diff", "added");
  await expect(lines).not.toContainText("→ \"two\"");

  await panel.getByLabel("Compare version 1").uncheck();
  await panel.getByLabel("Compare version 2").check();

  // Restore v2: a new version 4 with v2's content; v1..v3 stay.
  await panel.getByRole("button", { name: "Restore version 2" }).click();
  await expect(page.getByTestId("version")).toHaveText("v4");
  await expect(page.getByRole("status")).toContainText("Restored version 2 as version 4");
  await expect(panel.getByTestId("version-4")).toContainText("Restored version 2");
  for (const v of [1, 2, 3]) await expect(panel.getByTestId(`version-${v}`)).toBeVisible();
  await expect(panel.getByTestId("version-3")).toContainText("second text and a template");

  // v3 → v4: the template was removed (a red ghost) and the text changed back.
  await panel.getByLabel("Compare version 2").uncheck();
  await panel.getByLabel("Compare version 4").check();
  await expect(page.getByTestId(`diff-${template}`)).toHaveAttribute("data-diff", "removed");
  await expect(page.getByTestId(`diff-tag-${text}`)).toHaveText("changed: text");
  await expect(lines).toContainText(`- node ${template} (text.template)`);
  await page.screenshot({ path: `${SHOTS}/history-removed.png` });

  // Closing the panel gives the editable document back: v2's content.
  await page.getByRole("button", { name: "Close history" }).click();
  await expect(page.getByTestId(`node-${text}`).getByLabel("Text", { exact: true })).toHaveValue("one");
  await expect(page.getByTestId(`node-${template}`)).toHaveCount(0);
  await expect(page.getByTestId("dirty")).toHaveCount(0);
  await page.screenshot({ path: `${SHOTS}/history-restored.png` });
});
