import { expect, test, type Page } from "@playwright/test";
import { CURRENT_SCHEMA_VERSION, type Workflow } from "../../engine/workflow/schema";
import { drag, exportDocument, save } from "./helpers";

// A text input and two templates far apart: the fitted view is zoomed out below LOD_ZOOM (0.3).
const doc: Workflow = {
  schemaVersion: CURRENT_SCHEMA_VERSION,
  name: "canvas detail",
  description: "",
  tags: [],
  nodes: [
    { id: "src", type: "input.text", typeVersion: 1, params: { text: "hello" }, position: { x: 0, y: 0 } },
    { id: "far", type: "text.template", typeVersion: 1, params: { template: "{a}" }, position: { x: 5200, y: 0 } },
    { id: "low", type: "text.template", typeVersion: 1, params: { template: "{a} {b}" }, position: { x: 2600, y: 2600 } },
  ],
  edges: [{ id: "e1", source: "src", sourceSocket: "text", target: "far", targetSocket: "a" }],
  notes: [],
};

const zoomOf = async (page: Page) => Number(/matrix\(([^,]+)/.exec(await page.locator(".react-flow__viewport").evaluate((el) => getComputedStyle(el).transform))?.[1]);
const nodeTranslate = (page: Page, id: string) => page.locator(`.react-flow__node[data-id="${id}"]`).evaluate((el) => (el as HTMLElement).style.transform);

async function open(page: Page): Promise<string> {
  const res = await page.request.post("/api/trpc/workflow.create", { data: { name: doc.name, document: doc } });
  const id = ((await res.json()) as { result: { data: { id: string } } }).result.data.id;
  await page.goto(`/w/${id}`);
  await expect(page.getByTestId("node-src")).toBeVisible();
  return id;
}

/** Pans with mouse drags on empty canvas until the flow point (x, y) is near the middle of the canvas. */
async function panTo(page: Page, x: number, y: number): Promise<void> {
  for (let i = 0; i < 20; i++) {
    const { a, tx, ty } = await page.locator(".react-flow__viewport").evaluate((el) => {
      const m = new DOMMatrix(getComputedStyle(el).transform);
      return { a: m.a, tx: m.e, ty: m.f };
    });
    const pane = (await page.locator(".react-flow__pane").boundingBox())!;
    const dx = pane.width / 2 - (tx + x * a);
    const dy = pane.height / 2 - (ty + y * a);
    if (Math.abs(dx) < 40 && Math.abs(dy) < 40) return;
    const step = { x: Math.max(-300, Math.min(300, dx)), y: Math.max(-200, Math.min(200, dy)) };
    const from = await page.evaluate(([p, s]) => {
      for (let yy = p.y + 220; yy < p.y + p.height - 220; yy += 9)
        for (let xx = p.x + 320; xx < p.x + p.width - 320; xx += 9)
          if (document.elementFromPoint(xx, yy)?.classList.contains("react-flow__pane") && document.elementFromPoint(xx + s.x, yy + s.y)) return { x: xx, y: yy };
      return null;
    }, [pane, step] as const);
    if (!from) throw new Error("no empty spot on the canvas to pan from");
    await page.mouse.move(from.x, from.y);
    await page.mouse.down();
    await page.mouse.move(from.x + step.x, from.y + step.y, { steps: 6 });
    await page.mouse.up();
  }
  throw new Error(`could not pan to (${x}, ${y})`);
}

test("zoomed out, nodes draw as outlines that still select, drag and connect; zoomed in, their widgets edit", async ({ page }) => {
  await open(page);
  await expect.poll(() => zoomOf(page)).toBeLessThan(0.3);
  await expect(page.locator('[data-detail="outline"]')).toHaveCount(3);
  await expect(page.locator(".react-flow__node textarea")).toHaveCount(0);
  await expect(page.getByTestId("node-far")).toContainText("Template");
  await expect(page.locator(".react-flow__edge")).toHaveCount(1);
  await page.screenshot({ path: "test-results/canvas-detail-outline.png" });

  // Connect an outline's socket dot to another's.
  await drag(page, "handle-src-out-text", "handle-low-in-b");
  await expect(page.locator(".react-flow__edge")).toHaveCount(2);

  // Select and drag an outline by its title.
  const head = page.locator('[data-testid="node-low"] .pnode-head');
  await head.click();
  await expect(page.getByTestId("node-low")).toHaveClass(/selected/);
  const before = await nodeTranslate(page, "low");
  const box = (await head.boundingBox())!;
  await page.mouse.move(box.x + 10, box.y + box.height / 2);
  await page.mouse.down();
  await page.mouse.move(box.x + 60, box.y + box.height / 2 - 40, { steps: 6 });
  await page.mouse.up();
  await expect.poll(() => nodeTranslate(page, "low")).not.toBe(before);

  // Zoom in past the threshold: full nodes with editable widgets again.
  for (let i = 0; i < 10 && (await zoomOf(page)) < 0.35; i++) await page.locator(".react-flow__controls-zoomin").click();
  await expect(page.locator('[data-detail="outline"]')).toHaveCount(0);
  await panTo(page, 100, 80); // zooming in kept the middle in view; the text input is at the top left
  await page.screenshot({ path: "test-results/canvas-detail-full.png" });
  const text = page.getByTestId("node-src").getByRole("textbox").first();
  await text.fill("edited at full detail");
  await save(page);
  const saved = (await exportDocument(page)) as unknown as Workflow;
  expect(saved.nodes.find((n) => n.id === "src")?.params.text).toBe("edited at full detail");
  expect(saved.edges.some((e) => e.source === "src" && e.target === "low" && e.targetSocket === "b")).toBe(true);
  expect(saved.nodes.find((n) => n.id === "low")?.position).not.toEqual({ x: 2600, y: 2600 });
});

test("zoomed in, only the nodes in view are in the page; panning brings the others in, editable", async ({ page }) => {
  await open(page);
  for (let i = 0; i < 12 && (await zoomOf(page)) < 0.99; i++) await page.locator(".react-flow__controls-zoomin").click();
  await panTo(page, 100, 80);
  await expect(page.getByTestId("node-src")).toBeVisible();
  await expect(page.locator('.react-flow__node[data-id="far"]')).toHaveCount(0);
  await expect(page.locator('.react-flow__node[data-id="low"]')).toHaveCount(0);
  await panTo(page, 5300, 80);
  await expect(page.locator('.react-flow__node[data-id="src"]')).toHaveCount(0);
  const template = page.getByTestId("node-far").getByRole("textbox").first();
  await template.fill("{a}!");
  await expect(template).toHaveValue("{a}!");
  // The link from the unrendered text input is still drawn into the template.
  await expect(page.locator(".react-flow__edge")).toHaveCount(1);
});
