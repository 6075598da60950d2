import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { expect, test, type APIRequestContext, type Page } from "@playwright/test";
import sharp from "sharp";
import { addNode, AUTH_BASE_URL, newWorkflow } from "./helpers";

// Untrusted text stays text: a payload in every string a user can put into a workflow must never run, in
// the editor, the inspectors (their tooltips hovered) or on the share page. Two lines of defence are
// checked apart: no markup made of user text reaches the page at all (no element with an event-handler
// attribute, no <img src=x>: escaping), and nothing runs or is even attempted (the Content-Security-
// Policy reports no violation, the payload's calls never happen).

const PORT = Number(process.env.E2E_PORT ?? 3100);
const DATA = path.resolve(`test-results/e2e-data-${PORT}`);
const P = `"'><img src=x onerror="window.__xss=1;window.pwned('img')"><svg onload="window.__xss=2;window.pwned('svg')"></svg>`;
/** Where there is room (names and labels hold 200 characters): a script element and a javascript: link too. */
const LONG_P = `${P}<script>window.__xss=4;window.pwned('script')</script><a href="javascript:window.pwned('url')">j</a>`;
/** As a whole value where a URL or file id might be expected. */
const URL_P = "javascript:window.__xss=5;window.pwned('url')";
/** Shorter, and without "/": for a file name (uploads keep only a path's last part) and trace labels (80 characters at most). */
const FILE_P = `"'><img src=x onerror="window.__xss=3;window.pwned('file')">`;

declare global {
  interface Window {
    __xss?: number;
    __csp: string[];
  }
}

async function guard(page: Page): Promise<string[]> {
  const calls: string[] = [];
  await page.exposeBinding("pwned", (_source, what: string) => void calls.push(what));
  page.on("dialog", (d) => {
    if (d.type() === "beforeunload") return void d.accept(); // leaving an edited workflow
    calls.push(`dialog: ${d.message()}`);
    void d.dismiss();
  });
  // Violations in workers (Monaco's, the entropy and spectrogram workers) reach the console, not the document.
  page.on("console", (m) => {
    if (/Content Security Policy|Refused to/i.test(m.text())) calls.push(`console: ${m.text().slice(0, 300)}`);
  });
  await page.addInitScript(() => {
    window.__csp = [];
    document.addEventListener("securitypolicyviolation", (e) => window.__csp.push(`${e.violatedDirective} ${e.blockedURI} ${e.sample}`));
  });
  return calls;
}

/** Nothing of the payload became markup or ran (or tried to). */
async function inert(page: Page, calls: string[], where: string): Promise<void> {
  expect(calls, where).toEqual([]);
  expect(await page.evaluate(() => window.__xss), where).toBeUndefined();
  expect(await page.evaluate(() => window.__csp), where).toEqual([]);
  expect(await page.locator("[onerror], [onload]").count(), `${where}: elements with event-handler attributes`).toBe(0);
  expect(await page.locator('img[src="x"]').count(), where).toBe(0);
  expect(await page.locator('a[href^="javascript:" i], [src^="javascript:" i]').count(), `${where}: javascript: links`).toBe(0);
}

async function trpc(request: APIRequestContext, proc: string, input: unknown, method: "GET" | "POST" = "POST"): Promise<unknown> {
  const res =
    method === "GET"
      ? await request.get(`/api/trpc/${proc}?input=${encodeURIComponent(JSON.stringify(input))}`)
      : await request.post(`/api/trpc/${proc}`, { data: input, headers: { "content-type": "application/json" } });
  const body = (await res.json()) as { result?: { data: unknown }; error?: unknown };
  expect(res.ok(), JSON.stringify(body.error)).toBe(true);
  return body.result!.data;
}

/** Hovers a grid of points over a chart so its tooltips render. */
async function hoverAll(page: Page, testId: string): Promise<void> {
  const box = (await page.getByTestId(testId).first().boundingBox())!;
  for (const fx of [0.2, 0.4, 0.6, 0.8]) for (const fy of [0.3, 0.5, 0.7]) await page.mouse.move(box.x + box.width * fx, box.y + box.height * fy, { steps: 2 });
}

type Doc = { name: string; description: string; tags: string[]; nodes: { id: string; label?: string; params: Record<string, unknown>; type: string; position: { x: number; y: number }; typeVersion: number }[]; edges: unknown[]; notes?: unknown[] };

test("a payload in every user string of a workflow runs nowhere: editor, inspectors, notebook, JSON view, share page", async ({ page, request }) => {
  test.setTimeout(300_000);
  const calls = await guard(page);
  // The comparison example, with the payload in its name, description, tags, node labels, prompt, compare
  // labels, a Script's output and console, and a note.
  const { id } = (await trpc(request, "workflow.createFromExample", { exampleId: "ban-and-compare" })) as { id: string };
  const doc = ((await trpc(request, "workflow.get", { id }, "GET")) as { document: Doc }).document;
  doc.name = `XSS ${P}`;
  doc.description = LONG_P;
  doc.tags = [P.slice(0, 50), URL_P];
  for (const n of doc.nodes) n.label = `${n.id} ${P}`;
  doc.nodes.find((n) => n.id === "prompt")!.params.text = `Sea ${LONG_P}`;
  Object.assign(doc.nodes.find((n) => n.id === "compare")!.params, { labelA: `A ${FILE_P}`, labelB: `B ${FILE_P}` });
  doc.nodes.push({ id: "script", type: "utility.script", typeVersion: 1, label: `script ${P}`, position: { x: 320, y: 600 }, params: { code: `console.log(${JSON.stringify(LONG_P)}); return ${JSON.stringify(LONG_P)} + " said " + inputs.a;` } });
  doc.edges.push({ id: "prompt.text:script.a", source: "prompt", sourceSocket: "text", target: "script", targetSocket: "a" });
  doc.notes = [{ id: "note1", text: `# ${P}\n\n${LONG_P} *${P}* [link](${URL_P})`, position: { x: 0, y: 700 } }];
  await trpc(request, "workflow.save", { id, baseVersion: 1, document: doc });

  await page.goto(`/w/${id}`);
  await expect(page.getByTestId("node-compare")).toContainText(`compare ${P}`);
  await expect(page.getByLabel("Workflow name")).toHaveValue(`XSS ${P}`);
  await page.getByRole("button", { name: "▶ Run" }).click();
  await expect(page.getByTestId("run-status")).toHaveText("finished", { timeout: 180_000 });
  await expect(page.getByTestId("outputs-script")).toContainText(`${LONG_P} said Sea`);
  await inert(page, calls, "editor after the run");

  // The Δ heatmap's tooltip names both labels (the reported hole): it must show them as text.
  // (The 200-character labels make the nodes taller than the example's layout allows: pressed where it is, covered or not.)
  await page.getByTestId("node-compare").getByRole("button", { name: "Open comparison" }).dispatchEvent("click");
  const compare = page.getByRole("dialog", { name: "Compare traces" });
  await expect(compare).toContainText(`B ${FILE_P}`);
  await hoverAll(page, "compare-heatmap");
  await inert(page, calls, "compare view, tooltips shown");
  await expect(page.getByText(`(B ${FILE_P} − A ${FILE_P})`).first()).toBeVisible(); // the tooltip, as text
  await compare.getByRole("button", { name: "Close comparison" }).click();

  await page.getByTestId("node-baseRouting").getByRole("button", { name: "Open inspector" }).dispatchEvent("click");
  const inspector = page.getByRole("dialog", { name: "Routing Inspector" });
  await expect(inspector.getByTestId("heatmap")).toBeVisible();
  await hoverAll(page, "heatmap");
  for (const t of await inspector.getByTestId("token").all().then((all) => all.slice(0, 12))) await t.hover();
  await inert(page, calls, "routing inspector, tooltips and tokens hovered");
  await inspector.getByRole("button", { name: "Close inspector" }).click();

  await page.getByRole("tab", { name: "Notebook" }).click();
  await expect(page.getByText(P).first()).toBeVisible();
  await inert(page, calls, "notebook");
  await page.getByRole("tab", { name: "JSON" }).click();
  await expect(page.locator(".monaco-editor").first()).toBeVisible();
  await inert(page, calls, "JSON view (Monaco)");
  await page.getByRole("tab", { name: "Canvas" }).click();

  // The share page of it, as another visitor sees it.
  const { token } = (await trpc(request, "share.create", { workflowId: id })) as { token: string };
  await page.goto(`/s/${token}`);
  await expect(page.getByText(`XSS ${P}`).first()).toBeVisible();
  await page.getByRole("button", { name: "Open comparison" }).dispatchEvent("click");
  await hoverAll(page, "compare-heatmap");
  await inert(page, calls, "share page, comparison tooltips shown");
  await expect(page.getByText(`(B ${FILE_P} − A ${FILE_P})`).first()).toBeVisible();
  await page.getByRole("button", { name: "Close comparison" }).click();
  await page.getByRole("button", { name: "Open inspector" }).first().dispatchEvent("click");
  await expect(page.getByRole("dialog", { name: "Routing Inspector" }).getByTestId("heatmap")).toBeVisible();
  await hoverAll(page, "heatmap");
  await inert(page, calls, "share page, routing inspector");
});

test("a payload as a file name, and as a dataset's task, label and text, runs nowhere", async ({ page, request }) => {
  test.setTimeout(300_000);
  const calls = await guard(page);
  // File names: a refused upload names the file in its message; an accepted one is stored under it.
  await newWorkflow(page);
  const image = await addNode(page, "input.image");
  await page.getByTestId(`file-${image}-file`).setInputFiles({ name: `${FILE_P}.png`, mimeType: "image/png", buffer: Buffer.from("not a picture at all") });
  await expect(page.getByTestId(`node-${image}`)).toContainText(`${FILE_P}.png claims to be PNG`);
  const png = await sharp({ create: { width: 16, height: 16, channels: 3, background: "#123456" } }).png().toBuffer();
  await page.getByTestId(`file-${image}-file`).setInputFiles({ name: `${FILE_P}.png`, mimeType: "image/png", buffer: png });
  await expect(page.getByTestId(`node-${image}`).locator("img")).toBeVisible();
  await inert(page, calls, "file names");

  // A javascript: URL where a file id belongs (typed into a document): shown as a file address, never followed.
  const media = { schemaVersion: 2, name: "file ids", description: "", tags: [], edges: [], nodes: (["image", "audio", "video"] as const).map((k, i) => ({ id: k, type: `input.${k}`, typeVersion: 1, params: { file: URL_P }, position: { x: 0, y: i * 250 } })) };
  const { id: mediaId } = (await trpc(request, "workflow.create", { document: media })) as { id: string };
  await page.goto(`/w/${mediaId}`);
  await expect(page.getByTestId("node-image").locator("img")).toHaveAttribute("src", `/api/files/${encodeURIComponent(URL_P)}`);
  await inert(page, calls, "javascript: as file ids");

  // A dataset whose task, label and text are the payload, through the Routing Aggregate and its views.
  mkdirSync(path.join(DATA, "datasets"), { recursive: true });
  writeFileSync(path.join(DATA, "datasets", "xss.jsonl"), [1, 2].map((i) => JSON.stringify({ id: `r${i}`, text: `${P} ${i}`, task: `task ${P}`, label: `label ${P}` })).join("\n"));
  const doc = JSON.parse(readFileSync("app/examples/datasets/text-workflow.json", "utf8")) as Doc;
  doc.name = `dataset ${P}`;
  doc.nodes.find((n) => n.type === "input.dataset")!.params.source = "xss.jsonl";
  const { id } = (await trpc(request, "workflow.create", { document: doc })) as { id: string };
  await page.goto(`/w/${id}`);
  await page.getByRole("button", { name: "▶ Run" }).click();
  await expect(page.getByTestId("run-status")).toHaveText("finished", { timeout: 240_000 });
  await expect(page.getByTestId("outputs-data")).toContainText(`task ${P}`);
  await inert(page, calls, "dataset preview");
  await page.getByRole("button", { name: /^Open aggregate/ }).click();
  const view = page.getByTestId("aggregate-view");
  await expect(view).toContainText(`task ${P}`);
  for (const chart of await view.locator('[data-testid^="agg-fig"]').all()) {
    const box = (await chart.boundingBox())!;
    for (const fx of [0.2, 0.5, 0.8]) await page.mouse.move(box.x + box.width * fx, box.y + box.height * 0.6, { steps: 2 });
  }
  await inert(page, calls, "aggregate figures hovered");
  await view.getByRole("button", { name: "Vocabulary & specialisation" }).click();
  await expect(view.getByTestId("vocab-table")).toBeVisible();
  await inert(page, calls, "vocabulary view");
});

test("every page carries a Content-Security-Policy (fresh nonce, no inline script, framed only by this origin); API answers too", async ({ request }) => {
  const { id } = (await trpc(request, "workflow.createFromExample", { exampleId: "moe-llm-routing" })) as { id: string };
  const { token } = (await trpc(request, "share.create", { workflowId: id })) as { token: string };
  const nonces = new Set<string>();
  // (a page path that ends like a static file, /w/….png, is a page all the same)
  for (const url of ["/", `/w/${id}`, `/s/${token}`, "/models", "/account", `${AUTH_BASE_URL}/login`, "/no-such-page", `/w/${id}.png`]) {
    const res = await request.get(url);
    const csp = res.headers()["content-security-policy"] ?? "";
    const script = /script-src ([^;]*)/.exec(csp)?.[1] ?? "";
    expect(script, url).toMatch(/'nonce-[^']+'/);
    expect(script, url).not.toMatch(/unsafe-inline|unsafe-eval/);
    expect(csp, url).toContain("frame-ancestors 'self'");
    expect(csp, url).toContain("object-src 'none'");
    expect(res.headers()["x-frame-options"], url).toBe("SAMEORIGIN");
    nonces.add(/'nonce-([^']+)'/.exec(script)![1]!);
    // Next put this response's nonce on its scripts, and there is no script without it.
    const html = await res.text();
    const scripts = [...html.matchAll(/<script\b[^>]*>/g)].map((m) => m[0]);
    expect(scripts.length, url).toBeGreaterThan(0);
    for (const tag of scripts) expect(tag, url).toContain(`nonce="${/'nonce-([^']+)'/.exec(script)![1]}"`);
  }
  expect(nonces.size).toBe(8);
  for (const url of ["/api/health", `/api/trpc/workflow.list`]) {
    const res = await request.get(url);
    expect(res.headers()["content-security-policy"], url).toContain("frame-ancestors 'self'");
    expect(res.headers()["x-frame-options"], url).toBe("SAMEORIGIN");
  }
  // answers that depend on who asks are kept by no shared cache
  for (const url of ["/api/trpc/workflow.list", "/api/v1/workflows"]) expect((await request.get(url)).headers()["cache-control"], url).toBe("private, no-store");
});

test("the app refuses to be framed by another site (clickjacking)", async ({ page, baseURL }) => {
  // Another origin's page that frames the editor's home page.
  await page.route("http://evil.test/**", (route) => route.fulfill({ contentType: "text/html", body: `<h1>win a prize</h1><iframe id="f" src="${baseURL}/" width="800" height="600"></iframe>` }));
  await page.goto("http://evil.test/");
  await expect(page.getByRole("heading", { name: "win a prize" })).toBeVisible();
  await page.waitForTimeout(2000); // the frame's navigation is answered and refused
  const frame = (await page.locator("#f").elementHandle())!.contentFrame();
  const framed = await frame.then((f) => f?.locator("body").textContent({ timeout: 2000 }).catch(() => "")) ?? "";
  expect(framed).not.toContain("New workflow");
  expect((await frame)?.url()).not.toBe(`${baseURL}/`);
  // The app may still frame itself.
  await page.goto("/");
  const same = await page.evaluate(
    (src) =>
      new Promise<boolean>((resolve) => {
        const f = document.createElement("iframe");
        f.src = src;
        f.onload = () => resolve(!!f.contentDocument?.body?.textContent?.includes("New workflow"));
        document.body.append(f);
      }),
    `${baseURL}/`,
  );
  expect(same).toBe(true);
});

test("no page reports a Content-Security-Policy violation: home, models, account, login, the omni example run (media, workers), RoPE and routing inspectors, Script and JSON editors", async ({ page, browser }) => {
  test.setTimeout(300_000);
  const calls = await guard(page);
  for (const url of ["/", "/models", "/account"]) {
    await page.goto(url);
    await page.waitForLoadState("networkidle");
    await inert(page, calls, url);
  }
  const login = await browser.newPage();
  const loginCalls = await guard(login);
  await login.goto(`${AUTH_BASE_URL}/login`);
  await expect(login.locator("form button[type=submit]")).toBeVisible();
  await inert(login, loginCalls, "login");
  await login.close();

  await page.goto("/");
  await page.getByRole("button", { name: /Image \+ audio → MoE-LLM/ }).click();
  await page.waitForURL(/\/w\//);
  await page.getByRole("button", { name: "▶ Run" }).click();
  await expect(page.getByTestId("run-status")).toHaveText("finished", { timeout: 200_000 });
  await expect(page.getByTestId("outputs-tts").getByTestId("spectrogram")).toBeVisible();
  await expect(page.getByTestId("outputs-dit").locator("img")).toBeVisible();
  await inert(page, calls, "omni run: audio, spectrogram worker, images");
  await page.getByRole("button", { name: "Open RoPE inspector" }).click();
  await expect(page.getByRole("dialog", { name: "RoPE Inspector" }).getByTestId("rope-grid-h")).toBeVisible();
  await hoverAll(page, "rope-grid-h");
  await page.keyboard.press("Escape");
  await page.getByTestId("node-routing").getByRole("button", { name: "Open inspector" }).dispatchEvent("click");
  await expect(page.getByRole("dialog", { name: "Routing Inspector" }).getByTestId("heatmap")).toBeVisible();
  await page.waitForTimeout(1000); // the entropy worker
  await inert(page, calls, "RoPE and routing inspectors");
  await page.keyboard.press("Escape");
  await page.getByRole("tab", { name: "JSON" }).click();
  await expect(page.locator(".monaco-editor").first()).toBeVisible();
  await page.locator(".monaco-editor").first().click();
  await page.keyboard.type(" ");
  await page.waitForTimeout(1500); // the JSON language worker answers
  await inert(page, calls, "JSON editor (Monaco and its worker)");

  await newWorkflow(page);
  const script = await addNode(page, "utility.script");
  await expect(page.getByTestId(`node-${script}`).locator(".monaco-editor")).toBeVisible();
  await page.getByTestId(`node-${script}`).locator(".monaco-editor").click();
  await page.keyboard.type("const x = 1;");
  await page.waitForTimeout(1500); // the TypeScript worker answers
  await inert(page, calls, "Script editor (Monaco's TypeScript worker)");
});
