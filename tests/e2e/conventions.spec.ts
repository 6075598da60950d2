import { expect, test } from "@playwright/test";
import { newWorkflow } from "./helpers";

test("? opens the keyboard shortcuts; Escape closes it, the History and Runs panels, innermost first", async ({ page }) => {
  await newWorkflow(page);
  await page.locator(".react-flow__pane").click({ position: { x: 5, y: 5 } });
  await page.keyboard.press("?");
  const sheet = page.getByRole("dialog", { name: "Keyboard shortcuts" });
  await expect(sheet).toBeVisible();
  await expect(sheet).toContainText("Ctrl+Enter");
  await expect(sheet).toContainText("Escape");
  await page.keyboard.press("Escape");
  await expect(sheet).toHaveCount(0);

  await page.getByRole("button", { name: "Runs" }).click();
  const runs = page.getByRole("complementary", { name: "Runs" });
  await expect(runs).toBeVisible();
  await page.getByRole("button", { name: "History" }).click();
  const history = page.getByRole("complementary", { name: "History" });
  await expect(history).toBeVisible();
  await page.keyboard.press("Escape"); // the one opened last
  await expect(history).toHaveCount(0);
  await expect(runs).toBeVisible();
  await page.keyboard.press("Escape");
  await expect(runs).toHaveCount(0);
  // Typing ? in a field is text, not the shortcut sheet.
  await page.getByLabel("Workflow name").fill("a?b");
  await expect(sheet).toHaveCount(0);
});

test("the Models page spells the reference family one way (uni-moe-tiny)", async ({ page }) => {
  await page.goto("/models");
  const table = page.getByTestId("models-table");
  await expect(table).toContainText("uni-moe-tiny");
  await expect(table).not.toContainText("uni_moe_tiny");
});
