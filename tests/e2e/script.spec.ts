import { expect, test, type Page } from "@playwright/test";
import { addNode, drag, newWorkflow } from "./helpers";

const SHOTS = "test-results/screens";

/** Replaces the code in a Script node's Monaco editor (inserted as text: no autocomplete interferes). */
async function setCode(page: Page, nodeId: string, code: string): Promise<void> {
  const editor = page.getByTestId(`script-editor-${nodeId}`);
  await editor.locator(".view-lines").click({ position: { x: 20, y: 6 } });
  await page.keyboard.press("Control+a");
  await page.keyboard.press("Delete");
  await page.keyboard.insertText(code);
  await expect(editor.locator(".view-lines")).toContainText(code.split("\n")[0]!.slice(0, 20));
}

/** Fits the graph in view (the Script node is tall) before a screenshot. */
async function shot(page: Page, name: string): Promise<void> {
  await page.locator(".react-flow__controls-fitview").click();
  await page.waitForTimeout(300);
  await page.screenshot({ path: `${SHOTS}/${name}.png` });
}

async function run(page: Page): Promise<void> {
  await page.getByRole("button", { name: "▶ Run" }).click();
}

test("Script node: type code in Monaco with typed inputs, run it, an endless loop times out, the app keeps working", async ({ page }) => {
  await newWorkflow(page);
  const text = await addNode(page, "input.text");
  const script = await addNode(page, "utility.script");
  await page.getByTestId(`node-${text}`).getByLabel("Text", { exact: true }).fill("3,4,5");
  await page.getByRole("button", { name: "Auto-layout" }).click();
  await page.waitForTimeout(400);
  await drag(page, `handle-${text}-out-text`, `handle-${script}-in-a`);
  await expect(page.locator(".react-flow__edge")).toHaveCount(1);

  // The editor knows `inputs.a` is a string (a TEXT output is connected): it offers string methods.
  const editor = page.getByTestId(`script-editor-${script}`);
  await expect(editor.locator(".monaco-editor")).toBeVisible({ timeout: 20_000 });
  await setCode(page, script, "return inputs.a.");
  await page.keyboard.type("spl");
  await expect(page.locator(".suggest-widget")).toBeVisible({ timeout: 15_000 });
  await expect(page.locator(".suggest-widget")).toContainText("split");
  await page.screenshot({ path: `${SHOTS}/script-hints.png` });
  await page.keyboard.press("Escape");

  await setCode(page, script, 'console.log("got", inputs.a); return inputs.a.split(",").map(Number).map((x) => x * 2);');
  await run(page);
  await expect(page.getByTestId("run-status")).toHaveText("finished", { timeout: 30_000 });
  await expect(page.getByTestId(`status-${script}`)).toHaveAttribute("data-status", "done");
  await expect(page.getByTestId(`outputs-${script}`)).toContainText("list of 3");
  await expect(page.getByTestId(`outputs-${script}`).locator("pre")).toHaveText(/\[\s*6,\s*8,\s*10\s*\]/);
  await shot(page, "script-result");

  // An endless loop: the node fails with a timeout after its (shortened) time limit.
  await page.getByTestId(`node-${script}`).getByLabel("Time limit (ms)", { exact: true }).fill("3000");
  await setCode(page, script, "while (true) {}");
  const t0 = Date.now();
  await run(page);
  // While the script spins, the server answers at once (the script runs in a worker thread).
  await expect(page.getByTestId(`status-${script}`)).toHaveAttribute("data-status", "running");
  const h0 = Date.now();
  expect((await page.request.get("/api/health")).ok()).toBe(true);
  expect(Date.now() - h0).toBeLessThan(1000);
  await expect(page.getByTestId("run-status")).toHaveText("failed", { timeout: 30_000 });
  expect(Date.now() - t0).toBeLessThan(15_000);
  await expect(page.getByTestId(`status-${script}`)).toHaveAttribute("data-status", "error");
  await expect(page.getByTestId(`error-${script}`)).toContainText("time limit of 3000 ms");
  await shot(page, "script-timeout");

  // The server is fine: the health check answers and the next run works.
  const health = await page.request.get("/api/health");
  expect(health.ok()).toBe(true);
  await setCode(page, script, "return { sum: inputs.a.split(',').map(Number).reduce((s, x) => s + x, 0) };");
  await run(page);
  await expect(page.getByTestId("run-status")).toHaveText("finished", { timeout: 30_000 });
  await expect(page.getByTestId(`status-${script}`)).toHaveAttribute("data-status", "done");
  await expect(page.getByTestId(`outputs-${script}`).locator("pre")).toContainText('"sum": 12');
  await expect(page.getByTestId(`error-${script}`)).toHaveCount(0);
});

test("Script node: a syntax error shows its line on the node", async ({ page }) => {
  await newWorkflow(page);
  const script = await addNode(page, "utility.script");
  await expect(page.getByTestId(`script-editor-${script}`).locator(".monaco-editor")).toBeVisible({ timeout: 20_000 });
  await setCode(page, script, "const x = 1;\nreturn x +;");
  await run(page);
  await expect(page.getByTestId("run-status")).toHaveText("failed", { timeout: 30_000 });
  await expect(page.getByTestId(`error-${script}`)).toContainText(/syntax error at line 2/);
});
