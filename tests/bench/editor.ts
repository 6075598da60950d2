/**
 * Editor pan benchmark (`npm run bench -- editor`; DESIGN.md: "the editor pans a 300-node graph at 60 fps").
 * Starts the production server on a fresh data dir, saves a 300-node workflow (20 columns × 15 rows of text
 * nodes, ~570 links) through the API, opens it in the real editor page in Debian Chromium and drags the
 * canvas with the mouse (real input events through the DevTools protocol) for ~2 s, while a
 * requestAnimationFrame loop in the page records every frame interval. Measured twice: the whole graph in
 * view (the editor's fitted view when it opens) and at zoom 1 (a part in view, as when editing). The
 * idle frame rate (no input) is measured first: the ceiling the headless browser paces frames at. The page
 * is opened once per variant and round, alternating, so every variant sees the same machine load:
 * "now" is the editor as it ships; "before" is the editor before its canvas performance work, with all
 * three switched off (app/editor/canvas-detail.ts): level of detail (`?lod=off`: full nodes at every
 * zoom), rendering only the nodes and links in view (`?cull=off`), and the pan's pointer capture with the
 * pane's user-select: none (`?capture=off` plus an injected style); "no lod", "no cull", "no capture" switch
 * off one each. Each pan also reads Chromium's main-thread time (CDP Performance.getMetrics) to tell the
 * page's script, style and layout from the rest (hit testing, paint, layerization).
 */
import { execFileSync } from "node:child_process";
import { rmSync } from "node:fs";
import type { Browser, CDPSession, Page } from "@playwright/test";
import { CURRENT_SCHEMA_VERSION, type Workflow } from "../../engine/workflow/schema";
import { launchChromium, startServer } from "./render";

export interface PanResult {
  view: "fit" | "zoom 1";
  /** "now": as the editor ships; "before": its canvas performance switches off; "no …": one switch off. */
  variant: Variant;
  round: number;
  zoom: number;
  nodesInDom: number;
  frames: number;
  medianFps: number;
  meanFps: number;
  p95FrameMs: number;
  maxFrameMs: number;
  /** Main-thread busy time per frame while panning (CDP TaskDuration), and the script and style + layout parts of it. */
  mainMsPerFrame: number;
  scriptMsPerFrame: number;
  styleLayoutMsPerFrame: number;
}

export type Variant = "before" | "now" | "no lod" | "no cull" | "no capture";
const VARIANT_QUERY: Record<Variant, string> = { before: "?lod=off&cull=off&capture=off", now: "", "no lod": "?lod=off", "no cull": "?cull=off", "no capture": "?capture=off" };
/** Without pointer capture, the pane's user-select: none goes too (the text-selection tracking it spares). */
const NO_CAPTURE_STYLE = ".react-flow__pane { user-select: auto !important; }";

export interface EditorBenchResult {
  nodes: number;
  edges: number;
  idleFps: number;
  pans: PanResult[];
}

const COLS = 20;
const ROWS = 15;

/** 300 text nodes: column 0 text inputs, the rest templates reading their left and upper-left neighbours. */
export function gridWorkflow(): Workflow {
  const nodes: Workflow["nodes"] = [];
  const edges: Workflow["edges"] = [];
  for (let c = 0; c < COLS; c++)
    for (let r = 0; r < ROWS; r++) {
      const id = `n${c}_${r}`;
      const position = { x: c * 300, y: r * 220 };
      if (c === 0) nodes.push({ id, type: "input.text", typeVersion: 1, params: { text: `row ${r}` }, position });
      else {
        nodes.push({ id, type: "text.template", typeVersion: 1, params: { template: "{a} {b}" }, position });
        edges.push({ id: `e${c}_${r}a`, source: `n${c - 1}_${r}`, sourceSocket: "text", target: id, targetSocket: "a" });
        if (r > 0) edges.push({ id: `e${c}_${r}b`, source: `n${c - 1}_${r - 1}`, sourceSocket: "text", target: id, targetSocket: "b" });
      }
    }
  return { schemaVersion: CURRENT_SCHEMA_VERSION, name: "pan bench (300 nodes)", description: "", tags: [], nodes, edges, notes: [] };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const quantile = (xs: number[], q: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * q))]!;

/** Frame intervals (ms) recorded by requestAnimationFrame in the page for `ms`, while `drive` runs. */
async function recordFrames(page: Page, ms: number, drive: () => Promise<void>): Promise<number[]> {
  // A string, not a function: tsx's name helpers (__name) do not exist in the page.
  await page.evaluate(`(() => {
    const duration = ${ms};
    window.__frames = [];
    window.__framesDone = new Promise((done) => {
      requestAnimationFrame((start) => {
        let last = start;
        const tick = (t) => {
          window.__frames.push(t - last);
          last = t;
          if (t - start < duration) requestAnimationFrame(tick);
          else done();
        };
        requestAnimationFrame(tick);
      });
      setTimeout(done, duration + 20000); // a page too busy to produce frames still answers
    });
  })()`);
  await drive();
  const frames = (await page.evaluate("window.__framesDone.then(() => window.__frames)")) as number[];
  if (frames.length < 2) throw new Error(`the page drew ${frames.length} frames in ${ms} ms`);
  return frames;
}

const viewportTransform = (page: Page) => page.locator(".react-flow__viewport").evaluate((el) => getComputedStyle(el).transform);

/** A point on the empty canvas (the pane), where a drag pans instead of moving a node. */
async function panePoint(page: Page): Promise<{ x: number; y: number }> {
  const box = (await page.locator(".react-flow__pane").boundingBox())!;
  const p = await page.evaluate((b) => {
    for (let y = b.y + 20; y < b.y + b.height - 20; y += 7)
      for (let x = b.x + 20; x < b.x + b.width * 0.6; x += 7) if (document.elementFromPoint(x, y)?.classList.contains("react-flow__pane")) return { x, y };
    return null;
  }, box);
  if (!p) throw new Error("no empty spot on the canvas to start a pan");
  return p;
}

async function mainThreadSeconds(cdp: CDPSession): Promise<{ task: number; script: number; styleLayout: number }> {
  const { metrics } = (await cdp.send("Performance.getMetrics")) as { metrics: { name: string; value: number }[] };
  const m = (name: string) => metrics.find((x) => x.name === name)?.value ?? 0;
  return { task: m("TaskDuration"), script: m("ScriptDuration"), styleLayout: m("RecalcStyleDuration") + m("LayoutDuration") };
}

async function pan(page: Page, cdp: CDPSession, view: PanResult["view"], variant: Variant, round: number, ms = 2000): Promise<PanResult> {
  const start = await panePoint(page);
  const cpu0 = await mainThreadSeconds(cdp);
  const before = await viewportTransform(page);
  const frames = await recordFrames(page, ms, async () => {
    await page.mouse.move(start.x, start.y);
    await page.mouse.down();
    const t0 = Date.now();
    let i = 0;
    while (Date.now() - t0 < ms) {
      // A slow circle of radius 150 px: the graph keeps moving and stays partly in view.
      const a = (i++ / 60) * Math.PI;
      await page.mouse.move(start.x + 150 * Math.sin(a), start.y + 150 * (1 - Math.cos(a)));
    }
    await page.mouse.up();
  });
  const cpu1 = await mainThreadSeconds(cdp);
  const after = await viewportTransform(page);
  if (after === before) throw new Error("the canvas did not pan (viewport transform unchanged)");
  const zoom = Number(/matrix\(([^,]+)/.exec(after)?.[1] ?? NaN);
  const nodesInDom = await page.locator(".react-flow__node").count();
  const fps = frames.map((f) => 1000 / f);
  return {
    view,
    variant,
    round,
    zoom,
    nodesInDom,
    frames: frames.length,
    medianFps: median(fps),
    meanFps: (frames.length * 1000) / frames.reduce((a, b) => a + b, 0),
    p95FrameMs: quantile(frames, 0.95),
    maxFrameMs: Math.max(...frames),
    mainMsPerFrame: ((cpu1.task - cpu0.task) * 1000) / frames.length,
    scriptMsPerFrame: ((cpu1.script - cpu0.script) * 1000) / frames.length,
    styleLayoutMsPerFrame: ((cpu1.styleLayout - cpu0.styleLayout) * 1000) / frames.length,
  };
}

/** Opens the workflow in a fresh page as `variant` and pans it with the whole graph in view, then at zoom ~1. */
async function panVariant(browser: Browser, url: string, variant: Variant, round: number): Promise<{ idle: number[]; pans: PanResult[] }> {
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  try {
    page.on("crash", () => console.error("editor bench: the page crashed"));
    await page.goto(url + VARIANT_QUERY[variant]);
    if (variant === "before" || variant === "no capture") await page.addStyleTag({ content: NO_CAPTURE_STYLE });
    await page.locator('[data-testid="node-n0_0"]').waitFor({ timeout: 60_000 });
    await page.waitForTimeout(1500); // fitView, fonts, catalog
    const cdp = await page.context().newCDPSession(page);
    await cdp.send("Performance.enable");
    const idle = await recordFrames(page, 1000, async () => {});
    await pan(page, cdp, "fit", variant, round, 600); // warm-up: code paths compiled
    const pans = [await pan(page, cdp, "fit", variant, round)];
    // Zoom 1 around the graph's top-left, through the controls' zoom-in button (each click is ×1.2).
    for (let i = 0; i < 12; i++) {
      const z = Number(/matrix\(([^,]+)/.exec(await viewportTransform(page))?.[1] ?? 1);
      if (z >= 0.99) break;
      await page.locator(".react-flow__controls-zoomin").click();
      await page.waitForTimeout(150);
    }
    await page.waitForTimeout(500); // nodes crossing the detail threshold re-render and re-measure
    pans.push(await pan(page, cdp, "zoom 1", variant, round));
    return { idle, pans };
  } finally {
    await page.close();
  }
}

export async function benchEditor(): Promise<EditorBenchResult | { skipped: string }> {
  const dataDir = "data/bench/editor-data";
  rmSync(dataDir, { recursive: true, force: true });
  execFileSync("npx", ["prisma", "migrate", "deploy"], { env: { ...process.env, STUDIO_DATA_DIR: dataDir }, stdio: "ignore" });
  const server = await startServer(dataDir);
  if ("skipped" in server) return server;
  try {
    const doc = gridWorkflow();
    const res = await fetch(`${server.base}/api/trpc/workflow.create`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ name: doc.name, document: doc }) });
    const body = (await res.json()) as { result?: { data?: { id?: string } }; error?: unknown };
    const id = body.result?.data?.id;
    if (!id) throw new Error(`could not save the 300-node workflow: ${JSON.stringify(body.error ?? body).slice(0, 300)}`);
    const browser = await launchChromium();
    try {
      const rounds = Number(process.env.BENCH_EDITOR_ROUNDS ?? 2);
      const variants = (process.env.BENCH_EDITOR_VARIANTS ?? "before,now,no lod,no cull,no capture").split(",") as Variant[];
      const idle: number[] = [];
      const pans: PanResult[] = [];
      for (let round = 1; round <= rounds; round++)
        for (const variant of variants) {
          const r = await panVariant(browser, `${server.base}/w/${id}`, variant, round);
          idle.push(...r.idle);
          pans.push(...r.pans);
        }
      return { nodes: doc.nodes.length, edges: doc.edges.length, idleFps: 1000 / median(idle), pans };
    } finally {
      await browser.close();
    }
  } finally {
    server.stop();
  }
}
