import { expect, test, type Browser, type Page } from "@playwright/test";
import { AUTH_BASE_URL, save, signUp } from "./helpers";

// Against the second server (accounts on, sign-up open): two people in two browser contexts.

test("with accounts on, one user's workflow is invisible to another", async ({ browser }) => {
  const alice = await signUp(browser, "alice", "alice-password");
  await alice.getByRole("button", { name: "New workflow" }).click();
  await alice.waitForURL(/\/w\/[\w-]+$/);
  const id = alice.url().split("/w/")[1]!;
  await alice.getByLabel("Workflow name").fill("Alice's secret plan");
  await save(alice);
  await alice.screenshot({ path: "test-results/auth-editor.png" });
  await alice.goto("/");
  await expect(alice.getByRole("link", { name: "Alice's secret plan" })).toBeVisible();
  await alice.screenshot({ path: "test-results/auth-alice-list.png" });

  const bob = await signUp(browser, "bob", "bob-password");
  await expect(bob.getByText("Alice's secret plan")).toHaveCount(0);
  // Opening it by id: not found, exactly like an id that does not exist.
  await bob.goto(`/w/${id}`);
  await expect(bob.locator(".banner.error")).toContainText(`workflow ${id} does not exist`);
  await bob.screenshot({ path: "test-results/auth-bob-not-found.png" });
  const direct = await bob.request.get(`/api/trpc/workflow.get?input=${encodeURIComponent(JSON.stringify({ id }))}`);
  expect(direct.status()).toBe(404);
  // A cross-origin POST with bob's cookies is refused.
  const crossSite = await bob.request.post("/api/trpc/workflow.rename", { headers: { origin: "https://evil.example", "content-type": "application/json" }, data: { id, name: "pwned" } });
  expect(crossSite.status()).toBe(403);

  // Alice still has it, unchanged.
  await alice.goto(`/w/${id}`);
  await expect(alice.getByLabel("Workflow name")).toHaveValue("Alice's secret plan");

  // Nobody logged in: pages go to the login page, the API answers 401.
  const anon = await (await browser.newContext({ baseURL: AUTH_BASE_URL })).newPage();
  await anon.goto(`/w/${id}`);
  await expect(anon).toHaveURL(new RegExp(`/login\\?next=%2Fw%2F${id}$`));
  await anon.screenshot({ path: "test-results/auth-login.png" });
  expect((await anon.request.get("/api/trpc/workflow.list?input=%7B%7D")).status()).toBe(401);
  // A cookie that names no live session gets past the proxy's quick check, but not the layout's.
  const forged = await browser.newContext({ baseURL: AUTH_BASE_URL });
  await forged.addCookies([{ name: "studio_session", value: "forged-token", url: AUTH_BASE_URL }]);
  const forgedPage = await forged.newPage();
  await forgedPage.goto(`/w/${id}`);
  await expect(forgedPage).toHaveURL(new RegExp(`/login\\?next=%2Fw%2F${id}$`));

  // Logging out ends the session.
  await alice.goto("/");
  await alice.getByRole("button", { name: "Log out" }).click();
  await expect(alice).toHaveURL(/\/login$/);
  await alice.goto(`/w/${id}`);
  await expect(alice).toHaveURL(/\/login\?next=/);
});

test("a wrong password is refused with a message", async ({ browser }) => {
  const page = await (await browser.newContext({ baseURL: AUTH_BASE_URL })).newPage();
  await page.goto("/login");
  await page.getByLabel("User name").fill("alice");
  await page.getByLabel("Password").fill("not-her-password");
  await page.getByRole("button", { name: "Log in" }).click();
  await expect(page.locator(".login-card [role=alert]")).toHaveText("wrong user name or password");
  await page.getByLabel("Password").fill("alice-password");
  await page.getByRole("button", { name: "Log in" }).click();
  await expect(page.getByTestId("account-name")).toHaveText("alice");
});
