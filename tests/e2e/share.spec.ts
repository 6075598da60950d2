import { expect, test, type APIRequestContext, type BrowserContext, type Locator, type Page } from "@playwright/test";
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
  // A link that only carries ?fork=1 (not this tab's own Fork before logging in) copies nothing into the viewer's workspace.
  await viewer.goto(`${link}?fork=1`);
  await expect(viewer.getByTestId("shared-name")).toHaveText("Untitled workflow");
  await viewer.waitForTimeout(1500);
  expect(new URL(viewer.url()).pathname).toMatch(/^\/s\//);

  // The owner revokes the link: the viewer's copy of the address is now the not-found page.
  await row.getByRole("button", { name: "Revoke" }).click();
  await expect(row).toHaveAttribute("data-status", "revoked");
  await viewer.goto(link);
  await expect(viewer.getByTestId("not-shared")).toBeVisible();
  await guest.close();
});

/** A tRPC call over HTTP (no transformer: plain JSON in, `{ result: { data } }` out). */
async function trpcCall<T>(request: APIRequestContext, path: string, input: unknown, method: "GET" | "POST"): Promise<T> {
  const url = `${BASE}/api/trpc/${path}`;
  const res = method === "GET" ? await request.get(`${url}?input=${encodeURIComponent(JSON.stringify(input))}`) : await request.post(url, { data: input });
  expect(res.ok(), `${path}: ${res.status()} ${await res.text()}`).toBe(true);
  return ((await res.json()) as { result: { data: T } }).result.data;
}

/** Counts canvas pixels that differ from the background (the chart drew something). */
async function paintedPixels(canvas: Locator): Promise<number> {
  return canvas.evaluate((c: HTMLCanvasElement) => {
    const d = c.getContext("2d")!.getImageData(0, 0, c.width, c.height).data;
    let n = 0;
    for (let i = 0; i < d.length; i += 4) if (d[i + 3]! > 0 && d[i]! + d[i + 1]! + d[i + 2]! > 60) n++;
    return n;
  });
}

test("share: the shared page shows the editor's output views (routing heatmap and inspector, RoPE positions, waveform), every file fetched with the token", async ({ page, browser }) => {
  test.setTimeout(180_000);
  const stamp = Date.now().toString(36);
  if (AUTH_BASE_URL) await signUp(page.context(), `viewsowner${stamp}`);
  const node = (id: string, type: string, x: number, y: number, params: Record<string, unknown> = {}) => ({ id, type, typeVersion: 1, params, position: { x, y } });
  const edge = (source: string, sourceSocket: string, target: string, targetSocket: string) => ({ id: `${source}.${sourceSocket}:${target}.${targetSocket}`, source, sourceSocket, target, targetSocket });
  const document = {
    schemaVersion: 2,
    name: `Shared views ${stamp}`,
    nodes: [
      node("question", "input.text", 0, 0, { text: "Which experts does this route to?" }),
      node("prompt", "prompt.builder", 320, 0),
      node("llm", "model.moe-llm", 640, 0, { maxNewTokens: 8 }),
      node("rope", "inspect.rope", 960, 420),
      node("routing", "inspect.routing", 960, 0),
      node("tts", "generate.tts", 320, 320, { maxSeconds: 1 }),
    ],
    edges: [
      edge("question", "text", "prompt", "text"),
      edge("prompt", "sequence", "llm", "sequence"),
      edge("prompt", "sequence", "rope", "sequence"),
      edge("llm", "trace", "routing", "trace"),
      edge("question", "text", "tts", "text"),
    ],
    notes: [],
  };
  const { id } = await trpcCall<{ id: string }>(page.request, "workflow.create", { document }, "POST");
  await page.goto(`${BASE}/w/${id}`);
  await expect(page.locator(".react-flow__node")).toHaveCount(6);
  await page.getByRole("button", { name: "▶ Run" }).click();
  await expect(page.getByTestId("run-status")).toHaveText("finished", { timeout: 150_000 });
  const share = await trpcCall<{ token: string; path: string }>(page.request, "share.create", { workflowId: id }, "POST");

  const guest = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  const viewer = await guest.newPage();
  const fileResponses: { url: string; status: number }[] = [];
  viewer.on("response", (r) => {
    if (new URL(r.url()).pathname.startsWith("/api/files/")) fileResponses.push({ url: r.url(), status: r.status() });
  });
  await viewer.goto(`${BASE}${share.path}`);
  await expect(viewer.getByTestId("shared-name")).toHaveText(`Shared views ${stamp}`);
  await expect(viewer.locator(".react-flow__minimap-node")).toHaveCount(6);

  // The routing report: the small heatmap on the node, then the full inspector with its views.
  const routing = viewer.getByTestId("shared-outputs-routing");
  await expect(routing.getByTestId("heatmap-mini")).toBeVisible();
  await expect.poll(() => paintedPixels(routing.getByTestId("heatmap-mini").locator("canvas").first())).toBeGreaterThan(100);
  await routing.getByRole("button", { name: "Open inspector" }).click();
  const inspector = viewer.getByRole("dialog", { name: "Routing Inspector" });
  await expect(inspector.getByTestId("heatmap")).toBeVisible();
  await expect.poll(() => paintedPixels(inspector.getByTestId("heatmap").locator("canvas").first())).toBeGreaterThan(500);
  await expect.poll(() => paintedPixels(inspector.getByTestId("fig8").locator("canvas").first())).toBeGreaterThan(500);
  await expect(inspector.getByRole("link", { name: "JSON" })).toHaveAttribute("href", /\?share=/);
  await viewer.screenshot({ path: `${SHOTS}/shared-routing-inspector.png` });
  await inspector.getByRole("button", { name: "Close inspector" }).click();

  // The RoPE report: the (t, h, w) positions of every token.
  await viewer.getByTestId("shared-outputs-rope").getByRole("button", { name: "Open RoPE inspector" }).click();
  const rope = viewer.getByRole("dialog", { name: "RoPE Inspector" });
  await expect(rope.getByTestId("rope-positions")).toBeVisible();
  await expect(rope.getByTestId("rope-table").locator('[data-modality="text"]').first()).toBeVisible();
  await viewer.screenshot({ path: `${SHOTS}/shared-rope-inspector.png` });
  await rope.getByRole("button", { name: "Close inspector" }).click();

  // The speech: a player and its waveform, decoded from the file fetched with the token.
  const tts = viewer.getByTestId("shared-outputs-tts");
  await expect(tts.locator("audio")).toHaveAttribute("src", /\?share=/);
  await expect.poll(() => paintedPixels(tts.getByTestId("waveform"))).toBeGreaterThan(50);
  // Read-only: no run buttons anywhere on the page.
  await expect(viewer.getByRole("button", { name: /^(▶ Run|Run to)/ })).toHaveCount(0);
  await viewer.screenshot({ path: `${SHOTS}/shared-views.png` });

  // Every file the page asked for carried the token and was served.
  expect(fileResponses.length).toBeGreaterThanOrEqual(4);
  for (const r of fileResponses) {
    expect(r.url, "a file fetched without the share token").toContain(`share=${share.token}`);
    expect(r.status, `${r.url} answered ${r.status}`).toBeLessThan(400);
  }

  if (AUTH_BASE_URL) {
    // The token opens the shared run's files only: not a file the owner uploaded elsewhere, and nothing without it.
    const resolved = await trpcCall<{ lastRun: { nodes: { nodeId: string; outputs: Record<string, { file?: string }> | null }[] } }>(guest.request, "share.resolve", { token: share.token }, "GET");
    const ropeFile = resolved.lastRun.nodes.find((n) => n.nodeId === "rope")!.outputs!.report!.file!;
    expect((await guest.request.get(`${BASE}/api/files/${ropeFile}?share=${share.token}`)).status()).toBe(200);
    expect((await guest.request.get(`${BASE}/api/files/${ropeFile}`)).status()).toBe(404);
    const png = await sharp({ create: { width: 8, height: 8, channels: 3, background: { r: 200, g: 30, b: 30 } } }).png().toBuffer();
    const upload = await page.request.post(`${BASE}/api/upload?kind=image&filename=private.png`, { data: png, headers: { "content-type": "image/png" } });
    expect(upload.ok(), `upload: ${upload.status()}`).toBe(true);
    const privateFile = ((await upload.json()) as { id: string }).id;
    expect((await page.request.get(`${BASE}/api/files/${privateFile}`)).status()).toBe(200);
    expect((await guest.request.get(`${BASE}/api/files/${privateFile}?share=${share.token}`)).status()).toBe(404);
  }
  await guest.close();
});
