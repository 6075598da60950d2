import { expect, test } from "@playwright/test";
import { newWorkflow } from "./helpers";

test("the editor's help links open the docs pages the app serves; pages link to each other", async ({ page }) => {
  const csp: string[] = [];
  page.on("console", (m) => {
    if (/Content Security Policy|Refused to/i.test(m.text())) csp.push(m.text());
  });
  await newWorkflow(page);
  await page.getByRole("button", { name: "Help", exact: true }).click();
  const sheet = page.getByRole("dialog", { name: "Keyboard shortcuts" });
  await expect(sheet).toBeVisible();
  // A new tab: the editor (and unsaved work) stays open.
  const [docs] = await Promise.all([page.context().waitForEvent("page"), sheet.getByRole("link", { name: "Using the editor" }).click()]);
  docs.on("console", (m) => {
    if (/Content Security Policy|Refused to/i.test(m.text())) csp.push(m.text());
  });
  await docs.waitForLoadState();
  expect(new URL(docs.url()).pathname).toBe("/docs/editor");
  const body = docs.getByTestId("docs-body");
  await expect(body.getByRole("heading", { level: 1, name: "Using the editor" })).toBeVisible();
  await expect(body.getByRole("heading", { level: 2, name: "Script node" })).toHaveAttribute("id", "script-node");
  await expect(page.getByRole("dialog", { name: "Keyboard shortcuts" })).toBeVisible();

  // A link inside a page goes to the other page's route and anchor.
  await body.getByRole("link", { name: "Run a real model" }).first().click();
  await expect(docs).toHaveURL(/\/docs\/models#run-a-real-model$/);
  await expect(docs.getByRole("heading", { level: 2, name: "Run a real model" })).toBeVisible();

  // The front page is the README, and it links every page.
  await docs.getByRole("navigation", { name: "Documentation pages" }).getByRole("link", { name: "Start (README)" }).click();
  await expect(docs).toHaveURL(/\/docs$/);
  await expect(docs.getByRole("heading", { level: 2, name: "A five-minute tour" })).toBeVisible();
  await expect(docs.getByTestId("docs-body").locator("table td").first()).toBeVisible(); // GitHub tables render as tables
  // The screenshot is served from public/ (the image's own /docs/editor.png, not a docs page).
  const shot = docs.getByTestId("docs-body").getByRole("img").first();
  await expect(shot).toHaveAttribute("src", "/docs/editor.png");
  await expect.poll(() => shot.evaluate((i: HTMLImageElement) => i.complete && i.naturalWidth)).toBeGreaterThan(1000);
  await docs.getByTestId("docs-body").getByRole("link", { name: "Accounts and security" }).click();
  await expect(docs).toHaveURL(/\/docs\/security$/);
  // The config table markers are HTML comments in the markdown: skipped, never shown.
  await expect(docs.getByTestId("docs-body")).not.toContainText("config:accounts");
  expect(csp).toEqual([]);
});

test("the start page, Models and API tokens pages link to the docs", async ({ page }) => {
  await page.goto("/");
  await page.getByRole("link", { name: "Docs", exact: true }).click();
  await expect(page).toHaveURL(/\/docs$/);
  await page.goto("/models");
  await expect(page.getByRole("link", { name: "GPU providers" })).toHaveAttribute("href", "/docs/gpu-providers");
  await page.goto("/account");
  await expect(page.getByRole("link", { name: "HTTP API" })).toHaveAttribute("href", "/docs/cli-and-api#http-api-scripts-and-notebooks");
});

test("only the files of docs/ are pages: other names, traversal and encoded traversal are 404", async ({ request }) => {
  expect((await request.get("/docs/benchmarks")).status()).toBe(200);
  for (const p of ["/docs/..%2Fpackage.json", "/docs/..%2Fpackage", "/docs/%2E%2E%2FREADME", "/docs/package", "/docs/editor.md", "/docs/EDITOR", "/docs/..%5Cpackage", "/docs/editor%00", "/docs/editor/extra"]) {
    const r = await request.get(p);
    expect(r.status(), p).toBe(404);
    expect(await r.text(), p).not.toContain('"name": "moe-studio"');
  }
  // The unencoded form is normalised before it is sent: it asks for /package.json, which is not served either.
  const raw = await request.get("/docs/../package.json");
  expect(raw.status()).toBe(404);
  expect(await raw.text()).not.toContain('"name": "moe-studio"');
});
