import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { expect, test, type APIRequestContext, type Page } from "@playwright/test";
import sharp from "sharp";
import { addNode, newWorkflow } from "./helpers";

// Untrusted text stays text: a payload in every string a user can put into a workflow must never run, in
// the editor, the inspectors (their tooltips hovered) or on the share page. Two lines of defence are
// checked apart: no markup made of user text reaches the page at all (no element with an event-handler
// attribute, no <img src=x>: escaping), and nothing runs or is even attempted (the Content-Security-
// Policy reports no violation, the payload's calls never happen).

const PORT = Number(process.env.E2E_PORT ?? 3100);
const DATA = path.resolve(`test-results/e2e-data-${PORT}`);
const P = `"'><img src=x onerror="window.__xss=1;window.pwned('img')"><svg onload="window.__xss=2;window.pwned('svg')"></svg>`;
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
  doc.description = P;
  doc.tags = [P.slice(0, 50)];
  for (const n of doc.nodes) n.label = `${n.id} ${P}`;
  doc.nodes.find((n) => n.id === "prompt")!.params.text = `Sea ${P}`;
  Object.assign(doc.nodes.find((n) => n.id === "compare")!.params, { labelA: `A ${FILE_P}`, labelB: `B ${FILE_P}` });
  doc.nodes.push({ id: "script", type: "utility.script", typeVersion: 1, label: `script ${P}`, position: { x: 320, y: 600 }, params: { code: `console.log(${JSON.stringify(P)}); return ${JSON.stringify(P)} + " said " + inputs.a;` } });
  doc.edges.push({ id: "prompt.text:script.a", source: "prompt", sourceSocket: "text", target: "script", targetSocket: "a" });
  doc.notes = [{ id: "note1", text: `# ${P}\n\n${P} *${P}*`, position: { x: 0, y: 700 } }];
  await trpc(request, "workflow.save", { id, baseVersion: 1, document: doc });

  await page.goto(`/w/${id}`);
  await expect(page.getByTestId("node-compare")).toContainText(`compare ${P}`);
  await expect(page.getByLabel("Workflow name")).toHaveValue(`XSS ${P}`);
  await page.getByRole("button", { name: "▶ Run" }).click();
  await expect(page.getByTestId("run-status")).toHaveText("finished", { timeout: 180_000 });
  await expect(page.getByTestId("outputs-script")).toContainText(`${P} said Sea`);
  await inert(page, calls, "editor after the run");

  // The Δ heatmap's tooltip names both labels (the reported hole): it must show them as text.
  await page.getByRole("button", { name: "Open comparison" }).click();
  const compare = page.getByRole("dialog", { name: "Compare traces" });
  await expect(compare).toContainText(`B ${FILE_P}`);
  await hoverAll(page, "compare-heatmap");
  await expect(page.getByText(`(B ${FILE_P} − A ${FILE_P})`).first()).toBeVisible(); // the tooltip, as text
  await inert(page, calls, "compare view, tooltips shown");
  await compare.getByRole("button", { name: "Close comparison" }).click();

  // (The long labels make the nodes overlap: the button is pressed where it is, covered or not.)
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
  await page.getByRole("button", { name: "Open comparison" }).click();
  await hoverAll(page, "compare-heatmap");
  await expect(page.getByText(`(B ${FILE_P} − A ${FILE_P})`).first()).toBeVisible();
  await inert(page, calls, "share page, comparison tooltips shown");
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
