import { expect, type Browser, type Page } from "@playwright/test";

/** The second e2e server: accounts on (STUDIO_AUTH=on), self sign-up open, its own data dir. */
export const AUTH_BASE_URL = `http://127.0.0.1:${Number(process.env.E2E_PORT ?? 3100) + 1}`;
/** The server on ONNX Runtime's WebGPU provider (STUDIO_EP=webgpu; SwiftShader in CI), started by playwright.config.ts. */
export const GPU_BASE_URL = `http://127.0.0.1:${Number(process.env.E2E_PORT ?? 3100) + 2}`;

export async function newWorkflow(page: Page): Promise<string> {
  await page.goto("/");
  await page.getByRole("button", { name: "New workflow" }).click();
  await page.waitForURL(/\/w\/[\w-]+$/);
  await expect(page.getByLabel("Workflow name")).toBeVisible();
  return page.url().split("/w/")[1]!;
}

/** Adds a node through the palette (Ctrl+K, search, Enter) and returns its id. */
export async function addNode(page: Page, query: string): Promise<string> {
  const before = await page.locator(".react-flow__node").evaluateAll((els) => els.map((e) => e.getAttribute("data-id")));
  await page.locator(".react-flow__pane").click({ position: { x: 5, y: 5 } });
  await page.keyboard.press("Control+k");
  const input = page.getByPlaceholder("Add a node… (type to search)");
  await input.fill(query);
  await input.press("Enter");
  await expect(page.locator(".react-flow__node")).toHaveCount(before.length + 1);
  const after = await page.locator(".react-flow__node").evaluateAll((els) => els.map((e) => e.getAttribute("data-id")));
  return after.find((id) => !before.includes(id))!;
}

/** Drags a link from one handle to another, as a person would with the mouse. */
export async function drag(page: Page, fromTestId: string, toTestId: string): Promise<void> {
  const from = await page.getByTestId(fromTestId).boundingBox();
  const to = await page.getByTestId(toTestId).boundingBox();
  if (!from || !to) throw new Error(`handle not found: ${fromTestId} or ${toTestId}`);
  await page.mouse.move(from.x + from.width / 2, from.y + from.height / 2);
  await page.mouse.down();
  await page.mouse.move((from.x + to.x) / 2, (from.y + to.y) / 2, { steps: 5 });
  await page.mouse.move(to.x + to.width / 2, to.y + to.height / 2, { steps: 5 });
  await page.mouse.up();
}

/** Moves a node so that nodes added later do not cover it. */
export async function moveNode(page: Page, nodeId: string, dx: number, dy: number): Promise<void> {
  const head = page.locator(`[data-testid="node-${nodeId}"] .pnode-head`);
  const box = await head.boundingBox();
  if (!box) throw new Error(`node ${nodeId} not visible`);
  await page.mouse.move(box.x + 20, box.y + box.height / 2);
  await page.mouse.down();
  await page.mouse.move(box.x + 20 + dx, box.y + box.height / 2 + dy, { steps: 8 });
  await page.mouse.up();
}

export async function exportDocument(page: Page): Promise<Record<string, unknown>> {
  const [download] = await Promise.all([page.waitForEvent("download"), page.getByRole("button", { name: "Export" }).click()]);
  const stream = await download.createReadStream();
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  return JSON.parse(Buffer.concat(chunks).toString("utf8")) as Record<string, unknown>;
}

export async function save(page: Page): Promise<void> {
  await page.getByRole("button", { name: "Save", exact: true }).click();
}

/** Creates an account on the accounts-on server in a fresh browser context; returns its logged-in page. */
export async function signUp(browser: Browser, name: string, password: string): Promise<Page> {
  const context = await browser.newContext({ baseURL: AUTH_BASE_URL });
  const page = await context.newPage();
  await page.goto("/");
  await expect(page).toHaveURL(/\/login\?next=%2F$/);
  const create = page.getByRole("button", { name: "Create an account" });
  if (await create.isVisible()) await create.click(); // not shown for the very first account
  await page.getByLabel("User name").fill(name);
  await page.getByLabel("Password").fill(password);
  await page.getByRole("button", { name: "Create account" }).click();
  await expect(page).toHaveURL(`${AUTH_BASE_URL}/`);
  await expect(page.getByTestId("account-name")).toHaveText(name);
  return page;
}
