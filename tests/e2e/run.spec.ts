import { expect, test, type Page } from "@playwright/test";
import { addNode, drag, newWorkflow } from "./helpers";

const SHOTS = "test-results/screens";

async function status(page: Page, nodeId: string) {
  return page.getByTestId(`status-${nodeId}`);
}

test("run a workflow, see outputs, change one param and see the rest cached", async ({ page }) => {
  await newWorkflow(page);
  const text = await addNode(page, "input.text");
  const template = await addNode(page, "text.template");
  const preview = await addNode(page, "output.preview");
  await page.getByTestId(`node-${text}`).getByLabel("Text", { exact: true }).fill("hello moe");
  await page.getByTestId(`node-${template}`).getByLabel("Template", { exact: true }).fill("{a}!");
  await page.getByRole("button", { name: "Auto-layout" }).click();
  await page.waitForTimeout(400);
  await drag(page, `handle-${text}-out-text`, `handle-${template}-in-a`);
  await drag(page, `handle-${template}-out-text`, `handle-${preview}-in-value`);
  await expect(page.locator(".react-flow__edge")).toHaveCount(2);

  await page.getByRole("button", { name: "▶ Run" }).click();
  await expect(page.getByTestId("run-status")).toHaveText("finished");
  for (const id of [text, template, preview]) await expect(await status(page, id)).toHaveAttribute("data-status", "done");
  await expect(page.getByTestId(`outputs-${template}`)).toContainText("hello moe!");
  await expect(page.getByTestId("ep")).toHaveText("cpu");
  await page.screenshot({ path: `${SHOTS}/run-finished.png` });

  // One param changes: only that node and its dependents run again.
  await page.getByTestId(`node-${template}`).getByLabel("Template", { exact: true }).fill("{a}?");
  // before the re-run, the changed node and what follows it say their outputs are from before the change
  await expect(await status(page, template)).toHaveAttribute("data-stale", "true");
  await expect(await status(page, preview)).toHaveAttribute("data-stale", "true");
  await expect(await status(page, template)).toContainText("stale");
  await expect(await status(page, text)).not.toHaveAttribute("data-stale", "true");
  await page.getByRole("button", { name: "▶ Run" }).click();
  await expect(page.getByTestId("run-status")).toHaveText("finished");
  await expect(await status(page, text)).toHaveAttribute("data-status", "cached");
  await expect(await status(page, template)).toHaveAttribute("data-status", "done");
  await expect(await status(page, preview)).toHaveAttribute("data-status", "done");
  await expect(await status(page, preview)).not.toHaveAttribute("data-stale", "true");
  await expect(page.getByTestId(`outputs-${preview}`)).toContainText("hello moe?");
  await page.screenshot({ path: `${SHOTS}/run-cached.png` });

  // Run to a node: only it and its ancestors (all cached now); the preview is not part of the run.
  await page.getByRole("button", { name: `Run to ${template}` }).click();
  await expect(page.getByTestId("run-status")).toHaveText("finished");
  await expect(await status(page, template)).toHaveAttribute("data-status", "cached");
  await expect(page.getByTestId(`status-${preview}`)).toHaveCount(0);

  // The run history lists the three runs; a past run's outputs can be reopened.
  await page.getByRole("button", { name: "Runs" }).click();
  await expect(page.getByTestId("run-row")).toHaveCount(3);
  await page.getByTestId("run-row").last().getByRole("button", { name: "Show outputs" }).click();
  await expect(page.getByTestId(`outputs-${template}`)).toContainText("hello moe!");
  await page.screenshot({ path: `${SHOTS}/run-history.png` });
});

test("a node without its file is pointed out, and when run shows its error and the run fails clearly", async ({ page }) => {
  await newWorkflow(page);
  const image = await addNode(page, "input.image");
  // Pointed out before the run (a warning: the run is not refused) …
  await expect(page.getByTestId("problem")).toContainText(`"${image}" (input.image): choose an image file`);
  await page.getByRole("button", { name: "▶ Run" }).click();
  await expect(page.getByTestId("run-status")).toHaveText("failed");
  await expect(await status(page, image)).toHaveAttribute("data-status", "error");
  await expect(page.getByTestId(`error-${image}`)).toContainText("choose an image file");
  await expect(page.getByTestId("run-error")).toContainText("image_1");
});

test("the MoE-LLM node runs on uni-moe-tiny/tiny and its routing trace reaches the next node", async ({ page }) => {
  await newWorkflow(page);
  const text = await addNode(page, "input.text");
  const llm = await addNode(page, "model.moe-llm");
  const out = await addNode(page, "output.preview");
  const trace = await addNode(page, "output.preview");
  await page.getByTestId(`node-${text}`).getByLabel("Text", { exact: true }).fill("What is a mixture of experts?");
  await expect(page.getByTestId(`node-${llm}`).getByLabel("Model", { exact: true })).toHaveValue("uni-moe-tiny/tiny");
  await page.getByRole("button", { name: "Auto-layout" }).click();
  await page.waitForTimeout(400);
  await drag(page, `handle-${text}-out-text`, `handle-${llm}-in-prompt`);
  await drag(page, `handle-${llm}-out-output`, `handle-${out}-in-value`);
  await drag(page, `handle-${llm}-out-trace`, `handle-${trace}-in-value`);
  await expect(page.locator(".react-flow__edge")).toHaveCount(3);

  await page.getByRole("button", { name: "▶ Run" }).click();
  await expect(page.getByTestId("run-status")).toHaveText("finished", { timeout: 60_000 });
  await expect(await status(page, llm)).toHaveAttribute("data-status", "done");
  await expect(page.getByTestId(`outputs-${out}`)).toContainText("generated tokens");
  await expect(page.getByTestId(`outputs-${trace}`)).toContainText("routing of");
  await expect(page.getByTestId(`outputs-${trace}`)).toContainText("8 layers × 7 experts");
  await page.screenshot({ path: `${SHOTS}/moe-llm.png` });
});

test("the server queue on the Account page: an admin (the single user here) sees a running run and cancels it", async ({ page }) => {
  const busy = { schemaVersion: 2, name: "busy", description: "", tags: [], nodes: [{ id: "s", type: "utility.script", typeVersion: 1, params: { code: "for (;;) {}", timeoutMs: 30000 }, position: { x: 0, y: 0 } }], edges: [], notes: [] };
  const res = await page.request.post("/api/trpc/run.start", { data: { document: busy } });
  const runId = ((await res.json()) as { result: { data: { runId: string } } }).result.data.runId;
  await page.goto("/account");
  const queue = page.getByTestId("server-queue");
  await expect(queue).toContainText(runId);
  await page.getByRole("button", { name: new RegExp(`^Cancel run ${runId} of `) }).click();
  await expect(queue).not.toContainText(runId, { timeout: 10_000 });
  await expect(queue).toContainText("no run is queued or running");
  await page.screenshot({ path: `${SHOTS}/server-queue.png` });
});
