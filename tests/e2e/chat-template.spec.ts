import { expect, test } from "@playwright/test";
import { addNode, drag, newWorkflow } from "./helpers";

const SHOTS = "test-results/screens";

test("the MoE-LLM node offers the chat template choice and runs with ChatML forced", async ({ page }) => {
  await newWorkflow(page);
  const text = await addNode(page, "input.text");
  const llm = await addNode(page, "model.moe-llm");
  await page.getByTestId(`node-${text}`).getByLabel("Text", { exact: true }).fill("hello");
  const choice = page.getByTestId(`node-${llm}`).getByRole("combobox", { name: "Chat template", exact: true });
  await expect(choice).toHaveValue("model");
  await expect(choice.locator("option")).toHaveText(["model", "chatml"]);
  await choice.selectOption("chatml");
  await expect(choice).toHaveValue("chatml");
  await page.getByRole("button", { name: "Auto-layout" }).click();
  await page.waitForTimeout(400);
  await drag(page, `handle-${text}-out-text`, `handle-${llm}-in-prompt`);
  await page.getByRole("button", { name: "▶ Run" }).click();
  await expect(page.getByTestId("run-status")).toHaveText("finished", { timeout: 60_000 });
  await expect(page.getByTestId(`status-${llm}`)).toHaveAttribute("data-status", "done");
  await page.getByTestId(`node-${llm}`).screenshot({ path: `${SHOTS}/moe-llm-chat-template.png` });
});
