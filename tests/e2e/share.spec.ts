import { expect, test, type BrowserContext, type Page } from "@playwright/test";
import sharp from "sharp";
import * as helpers from "./helpers";
import { addNode, drag } from "./helpers";

const SHOTS = "test-results/screens";
// With the auth agent's second server (accounts on), the whole flow runs there; otherwise single-user.
const AUTH_BASE_URL = (helpers as Record<string, unknown>).AUTH_BASE_URL as string | undefined;
const BASE = AUTH_BASE_URL ?? "";

async function signUp(context: BrowserContext, name: string): Promise<void> {
  const res = await context.request.post(`${AUTH_BASE_URL}/api/auth/signup`, { data: { name, password: `pw-${name}-12345` } });
  expect(res.ok(), `sign up ${name}: ${res.status()}`).toBe(true);
}

async function newWorkflowAt(page: Page): Promise<void> {
  await page.goto(`${BASE}/`);
  await page.getByRole("button", { name: "New workflow" }).click();
  await page.waitForURL(/\/w\/[\w-]+$/);
  await expect(page.getByLabel("Workflow name")).toBeVisible();
}

test("share: a read-only link opened by someone else shows graph, notes and outputs; fork and run the fork; revoke", async ({ page, browser }) => {
  const stamp = Date.now().toString(36);
  if (AUTH_BASE_URL) await signUp(page.context(), `owner${stamp}`);
  await newWorkflowAt(page);
  const text = await addNode(page, "input.text");
  const template = await addNode(page, "text.template");
  const image = await addNode(page, "input.image");
  const png = await sharp({ create: { width: 64, height: 48, channels: 3, background: { r: 40, g: 160, b: 90 } } }).png().toBuffer();
  await page.getByTestId(`file-${image}-file`).setInputFiles({ name: "green.png", mimeType: "image/png", buffer: png });
  await expect(page.getByTestId(`node-${image}`).locator("img")).toBeVisible();
  await page.getByTestId(`node-${text}`).getByLabel("Text", { exact: true }).fill("hello share");
  await page.getByTestId(`node-${template}`).getByLabel("Template", { exact: true }).fill("{a}!");
  await page.getByRole("button", { name: "Auto-layout" }).click();
  await page.waitForTimeout(400);
  await drag(page, `handle-${text}-out-text`, `handle-${template}-in-a`);
  await expect(page.locator(".react-flow__edge")).toHaveCount(1);
  await page.getByRole("button", { name: "Save", exact: true }).click();
  await expect(page.getByTestId("version")).toHaveText("v2");
  await page.getByRole("button", { name: "▶ Run" }).click();
  await expect(page.getByTestId("run-status")).toHaveText("finished");
  // A note (written in the notebook), saved with the document.
  await page.getByRole("tab", { name: "Notebook" }).click();
  await page.locator(`[data-node="${template}"]`).getByRole("button", { name: "+ Note" }).click();
  const editor = page.getByTestId("note-editor").locator(".monaco-editor");
  await expect(editor).toBeVisible();
  await editor.click();
  await page.keyboard.type("Greets whoever opens the link");
  await page.getByTestId("note-cell").getByRole("button", { name: "Done" }).click();
  await page.getByRole("tab", { name: "Canvas" }).click();
  await page.getByRole("button", { name: "Save", exact: true }).click();
  await expect(page.getByTestId("version")).toHaveText("v3");

  await page.getByRole("button", { name: "Share" }).click();
  const dialog = page.getByRole("dialog", { name: "Share" });
  await dialog.getByLabel("Expires").selectOption({ label: "1 day" });
  await dialog.getByRole("button", { name: "Create link" }).click();
  const row = dialog.getByTestId("share-link").first();
  await expect(row).toHaveAttribute("data-status", "active");
  await expect(row).toContainText("expires");
  const link = await row.getByLabel("Link address").inputValue();
  expect(link).toMatch(/\/s\/[A-Za-z0-9_-]{43}$/);
  await page.screenshot({ path: `${SHOTS}/share-dialog.png` });

  // A second browser context: nobody logged in there.
  const guest = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  const viewer = await guest.newPage();
  await viewer.goto(link);
  await expect(viewer.getByTestId("shared-name")).toHaveText("Untitled workflow");
  await expect(viewer.getByTestId(`shared-node-${text}`)).toContainText("hello share");
  await expect(viewer.getByTestId(`shared-outputs-${template}`)).toContainText("hello share!");
  await expect(viewer.locator(".react-flow__edge")).toHaveCount(1);
  await expect(viewer.getByTestId("shared-note")).toContainText("Greets whoever opens the link");
  // The run's image output, fetched with the share token by a browser that is not logged in.
  const shot = viewer.getByTestId(`shared-outputs-${image}`).locator("img");
  await expect(shot).toHaveAttribute("src", /\?share=/);
  await expect.poll(() => shot.evaluate((img: HTMLImageElement) => img.complete && img.naturalWidth)).toBe(64);
  // Read-only: no param inputs, no run button.
  await expect(viewer.locator(".react-flow__node input, .react-flow__node textarea")).toHaveCount(0);
  await expect(viewer.getByRole("button", { name: "▶ Run" })).toHaveCount(0);
  await viewer.screenshot({ path: `${SHOTS}/shared-page.png` });

  // A guessed token is the not-found page.
  const guessed = `${link.slice(0, -43)}${"A".repeat(43)}`;
  await viewer.goto(guessed);
  await expect(viewer.getByTestId("not-shared")).toContainText("Link not found or no longer shared");
  await viewer.goto(link);

  await viewer.getByRole("button", { name: "Fork" }).click();
  if (AUTH_BASE_URL) {
    // Not logged in: log in / sign up, then the page comes back and finishes the fork.
    await viewer.waitForURL(/\/login\?next=/);
    const create = viewer.getByRole("button", { name: "Create an account" });
    if (await create.isVisible()) await create.click();
    await viewer.getByLabel("User name").fill(`viewer${stamp}`);
    await viewer.getByLabel("Password").fill(`pw-viewer${stamp}-12345`);
    await viewer.locator("form").getByRole("button", { name: /^(Create account|Log in)$/ }).click();
  }
  await viewer.waitForURL(/\/w\/[\w-]+$/);
  await expect(viewer.getByLabel("Workflow name")).toHaveValue("Untitled workflow (fork)");
  await viewer.getByRole("button", { name: "▶ Run" }).click();
  await expect(viewer.getByTestId("run-status")).toHaveText("finished");
  await expect(viewer.getByTestId(`outputs-${template}`)).toContainText("hello share!");
  await viewer.screenshot({ path: `${SHOTS}/fork-run.png` });

  // The owner revokes the link: the viewer's copy of the address is now the not-found page.
  await row.getByRole("button", { name: "Revoke" }).click();
  await expect(row).toHaveAttribute("data-status", "revoked");
  await viewer.goto(link);
  await expect(viewer.getByTestId("not-shared")).toBeVisible();
  await guest.close();
});
