import { expect, test } from "@playwright/test";
import sharp from "sharp";
import { addNode, drag, newWorkflow } from "./helpers";

test("an uploaded image shows on its node and flows through a run", async ({ page }) => {
  await newWorkflow(page);
  const image = await addNode(page, "input.image");
  const preview = await addNode(page, "output.preview");
  const png = await sharp({ create: { width: 64, height: 48, channels: 3, background: { r: 200, g: 40, b: 90 } } }).png().toBuffer();
  await page.getByTestId(`file-${image}-file`).setInputFiles({ name: "red.png", mimeType: "image/png", buffer: png });
  await expect(page.getByTestId(`node-${image}`).locator("img")).toBeVisible();
  await drag(page, `handle-${image}-out-image`, `handle-${preview}-in-value`);
  await page.getByRole("button", { name: "▶ Run" }).click();
  await expect(page.getByTestId("run-status")).toHaveText("finished");
  await expect(page.getByTestId(`outputs-${preview}`)).toContainText("64×48");
});

test("uploads over the size limit are refused before they are read", async ({ request }) => {
  const big = Buffer.alloc(51 * 1024 * 1024, 0x41);
  const res = await request.post("/api/upload?kind=image&filename=huge.png", { data: big, headers: { "content-type": "application/octet-stream" } });
  expect(res.status()).toBe(413);
  expect((await res.json()).error).toMatch(/huge\.png.*limit/);
  const health = await request.get("/api/health");
  expect(health.ok()).toBe(true);
});
