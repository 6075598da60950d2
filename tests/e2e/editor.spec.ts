import { expect, test } from "@playwright/test";
import { addNode, drag, exportDocument, moveNode, newWorkflow, save } from "./helpers";

const SHOTS = "test-results/screens";

test("build a graph: palette, typed links, undo/redo, save and reload", async ({ page }) => {
  await newWorkflow(page);
  const text = await addNode(page, "input.text");
  const image = await addNode(page, "input.image");
  const template = await addNode(page, "text.template");
  const preview = await addNode(page, "output.preview");
  await expect(page.locator(".react-flow__node")).toHaveCount(4);
  await page.getByRole("button", { name: "Auto-layout" }).click();
  await page.waitForTimeout(400); // the fit-view animation

  // A compatible link is made.
  await drag(page, `handle-${text}-out-text`, `handle-${template}-in-a`);
  await expect(page.locator(".react-flow__edge")).toHaveCount(1);

  // While dragging an IMAGE output, TEXT inputs are dimmed and the ANY input is highlighted.
  const from = (await page.getByTestId(`handle-${image}-out-image`).boundingBox())!;
  await page.mouse.move(from.x + 5, from.y + 5);
  await page.mouse.down();
  await page.mouse.move(from.x + 80, from.y + 20, { steps: 4 });
  await expect(page.getByTestId(`handle-${template}-in-b`)).toHaveClass(/dimmed/);
  await expect(page.getByTestId(`handle-${preview}-in-value`)).toHaveClass(/compatible/);
  await page.screenshot({ path: `${SHOTS}/dragging-link.png` });
  await page.mouse.up();

  // An incompatible link (IMAGE → TEXT) is refused, saying why.
  await drag(page, `handle-${image}-out-image`, `handle-${template}-in-b`);
  await expect(page.locator(".react-flow__edge")).toHaveCount(1);
  await expect(page.locator(".toast.error")).toContainText("Link refused:");
  await expect(page.locator(".toast.error")).toContainText("IMAGE");

  // Undo removes the link, redo puts it back.
  await page.locator(".react-flow__pane").click({ position: { x: 5, y: 5 } });
  await page.keyboard.press("Control+z");
  await expect(page.locator(".react-flow__edge")).toHaveCount(0);
  await page.keyboard.press("Control+Shift+z");
  await expect(page.locator(".react-flow__edge")).toHaveCount(1);
  // Undo also covers a param edit.
  await page.getByTestId(`node-${text}`).getByLabel("Text", { exact: true }).fill("hello moe");
  await page.locator(".react-flow__pane").click({ position: { x: 5, y: 5 } });
  await page.keyboard.press("Control+z");
  await expect(page.getByTestId(`node-${text}`).getByLabel("Text", { exact: true })).toHaveValue("");
  await page.keyboard.press("Control+Shift+z");
  await expect(page.getByTestId(`node-${text}`).getByLabel("Text", { exact: true })).toHaveValue("hello moe");

  await expect(page.getByTestId("dirty")).toBeVisible();
  await save(page);
  await expect(page.getByText("Saved version 2.")).toBeVisible();
  await expect(page.getByTestId("dirty")).toHaveCount(0);
  const saved = await exportDocument(page);
  await page.screenshot({ path: `${SHOTS}/editor-saved.png` });

  await page.reload();
  await expect(page.locator(".react-flow__node")).toHaveCount(4);
  await expect(page.locator(".react-flow__edge")).toHaveCount(1);
  expect(await exportDocument(page)).toEqual(saved);
});

test("export then import gives the same document", async ({ page }) => {
  await newWorkflow(page);
  const text = await addNode(page, "input.text");
  const preview = await addNode(page, "output.preview");
  await drag(page, `handle-${text}-out-text`, `handle-${preview}-in-value`);
  await page.getByLabel("Workflow name").fill("Round trip");
  await save(page);
  const exported = await exportDocument(page);

  await page.goto("/");
  await page.getByTestId("import-input").setInputFiles({ name: "round-trip.json", mimeType: "application/json", buffer: Buffer.from(JSON.stringify(exported)) });
  await page.waitForURL(/\/w\//);
  await expect(page.locator(".react-flow__node")).toHaveCount(2);
  expect(await exportDocument(page)).toEqual(exported);
});

test("a stale save is refused and can be kept as a copy", async ({ page, context }) => {
  const id = await newWorkflow(page);
  const other = await context.newPage();
  await other.goto(`/w/${id}`);
  await addNode(other, "input.text");
  await save(other);
  await expect(other.getByText("Saved version 2.")).toBeVisible();

  await addNode(page, "output.preview");
  await save(page);
  const dialog = page.getByRole("alertdialog", { name: "Save conflict" });
  await expect(dialog).toContainText("saved elsewhere (version 2)");
  await page.screenshot({ path: `${SHOTS}/conflict.png` });
  await dialog.getByRole("button", { name: "Save as a copy" }).click();
  await page.waitForURL((url) => !url.pathname.endsWith(id));
  await expect(page.locator('[data-node-type="output.preview"]')).toHaveCount(1);

  // The other user's version is intact.
  await other.reload();
  await expect(other.locator('[data-node-type="input.text"]')).toHaveCount(1);
  await expect(other.locator('[data-node-type="output.preview"]')).toHaveCount(0);
});

test("an edit in the JSON view shows on the canvas", async ({ page }) => {
  await newWorkflow(page);
  const text = await addNode(page, "input.text");
  const doc = await exportDocument(page);
  const nodes = doc.nodes as { id: string; label?: string }[];
  nodes[0]!.label = "Edited in JSON";

  await page.getByRole("tab", { name: "JSON" }).click();
  const editor = page.locator(".monaco-editor").first();
  await expect(editor).toBeVisible();
  await editor.click();
  await page.keyboard.press("Control+a");
  await page.keyboard.press("Delete");
  await page.keyboard.insertText(JSON.stringify(doc));
  await expect(page.getByTestId("json-status")).toContainText("the canvas shows it", { timeout: 15_000 });
  await page.screenshot({ path: `${SHOTS}/json-view.png` });
  // An invalid edit is reported and not applied.
  await page.keyboard.insertText("garbage");
  await expect(page.getByTestId("json-status")).toContainText("Not applied");

  await page.getByRole("tab", { name: "Canvas" }).click();
  await expect(page.getByTestId(`node-${text}`)).toContainText("Edited in JSON");
});

test("bad input gets a clear message and loses nothing", async ({ page }) => {
  await page.goto("/");
  await page.getByTestId("import-input").setInputFiles({ name: "broken.json", mimeType: "application/json", buffer: Buffer.from("{ not json") });
  await expect(page.locator(".banner.error")).toContainText("not valid JSON");

  const withUnknown = {
    schemaVersion: 2,
    name: "Has a future node",
    description: "",
    tags: [],
    nodes: [
      { id: "a", type: "input.text", typeVersion: 1, params: { text: "hi" }, position: { x: 0, y: 0 } },
      { id: "b", type: "future.thing", typeVersion: 1, params: {}, position: { x: 300, y: 0 } },
    ],
    edges: [{ id: "e1", source: "a", sourceSocket: "text", target: "b", targetSocket: "prompt" }],
  };
  await page.getByTestId("import-input").setInputFiles({ name: "future.json", mimeType: "application/json", buffer: Buffer.from(JSON.stringify(withUnknown)) });
  await page.waitForURL(/\/w\//);
  await expect(page.getByTestId("node-b")).toContainText("Unknown node type");
  await expect(page.getByTestId("problem").first()).toContainText("unknown type");

  // A file that claims to be a PNG but is not is refused with the reason on the node.
  const image = await addNode(page, "input.image");
  await page.getByTestId(`file-${image}-file`).setInputFiles({ name: "fake.png", mimeType: "image/png", buffer: Buffer.from("this is not an image at all") });
  await expect(page.getByTestId(`node-${image}`)).toContainText(/not|unsupported|recognised/i);
  await page.screenshot({ path: `${SHOTS}/bad-input.png` });
});

test("moving a node is an unsaved change that sends no check; an edit sends one", async ({ page }) => {
  await newWorkflow(page);
  const text = await addNode(page, "input.text");
  const preview = await addNode(page, "output.preview");
  await drag(page, `handle-${text}-out-text`, `handle-${preview}-in-value`);
  await expect(page.locator(".react-flow__edge")).toHaveCount(1);
  await save(page);
  await expect(page.getByTestId("dirty")).toHaveCount(0);
  await page.waitForTimeout(1000); // the check after the last edit has gone

  const checks: string[] = [];
  page.on("request", (r) => {
    if (r.url().includes("workflow.check")) checks.push(r.url());
  });
  const node = page.getByTestId(`node-${preview}`).locator("xpath=..");
  const before = await node.evaluate((e) => e.style.transform);
  await moveNode(page, preview, 120, 60);
  expect(await node.evaluate((e) => e.style.transform)).not.toBe(before);
  await expect(page.getByTestId("dirty")).toBeVisible();
  await page.waitForTimeout(1200); // four times the check's debounce
  expect(checks).toHaveLength(0);
  // Selecting is no edit either.
  await page.getByTestId(`node-${text}`).locator(".pnode-head").click();
  await page.waitForTimeout(800);
  expect(checks).toHaveLength(0);

  // Undoing the move is clean again.
  await page.locator(".react-flow__pane").click({ position: { x: 5, y: 5 } });
  await page.keyboard.press("Control+z");
  await expect(page.getByTestId("dirty")).toHaveCount(0);
  expect(await node.evaluate((e) => e.style.transform)).toBe(before);

  // A param edit is checked on the server (the counter does see checks).
  await page.getByTestId(`node-${text}`).getByLabel("Text", { exact: true }).fill("checked");
  await expect.poll(() => checks.length, { timeout: 5000 }).toBeGreaterThan(0);
  await expect(page.getByTestId("dirty")).toBeVisible();
});
