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
 *
 * The node drag (`BENCH_EDITOR_PARTS=drag`, on by default) drags one node of the same graph in a circle for
 * ~2 s, with the whole graph in view and at zoom 1, and reads the frames, the main thread's script time per
 * frame, the page's `JSON.stringify` calls (every call, and those at least half the document's size: the
 * document serialised), the `workflow.check` requests from the press until 1.5 s after the release (the
 * check is debounced by 300 ms), and whether the editor shows the move as an unsaved change. It runs on the
 * build in `.next` ("this") and, when `BENCH_EDITOR_BASELINE` names the folder of another checkout with a
 * production build (e.g. an export of the main branch), on that build too ("baseline"), alternating pages.
 */
import { execFileSync, spawn } from "node:child_process";
import { existsSync, rmSync } from "node:fs";
import path from "node:path";
import type { Browser, CDPSession, Page } from "@playwright/test";
import { CURRENT_SCHEMA_VERSION, type Workflow } from "../../engine/workflow/schema";
import { launchChromium, startServer } from "./render";

export interface PanResult {
  view: "fit" | "zoom 1";
  /** "now": as the editor ships; "before": its canvas performance switches off; "no …": one switch off. */
  variant: Variant;
  /** "this": the build in .next; "baseline": the build in BENCH_EDITOR_BASELINE (variant "now" only). */
  build: "this" | "baseline";
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

export interface DragResult {
  view: "fit" | "zoom 1";
  /** "this": the build in .next; "baseline": the build in BENCH_EDITOR_BASELINE. */
  build: "this" | "baseline";
  round: number;
  zoom: number;
  node: string;
  frames: number;
  meanFps: number;
  p95FrameMs: number;
  mainMsPerFrame: number;
  scriptMsPerFrame: number;
  /** JSON.stringify calls in the page during the drag, and those at least half the document's JSON size. */
  stringifyCalls: number;
  documentSerialisations: number;
  /** workflow.check requests from the press to 1.5 s after the release. */
  checkRequests: number;
  /** The editor shows the move as an unsaved change afterwards. */
  dirtyAfter: boolean;
}

export interface EditorBenchResult {
  nodes: number;
  edges: number;
  idleFps: number;
  pans: PanResult[];
  drags: DragResult[];
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
    build: "this",
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
    await zoomToOne(page); // around the graph's top-left
    pans.push(await pan(page, cdp, "zoom 1", variant, round));
    return { idle, pans };
  } finally {
    await page.close();
  }
}

/** Counts the page's JSON.stringify calls while `window.__serOn` is set (installed before the app loads). */
const COUNT_STRINGIFY = `(() => {
  const stringify = JSON.stringify;
  window.__ser = { calls: 0, big: 0, threshold: Infinity };
  JSON.stringify = function (...args) {
    const out = stringify.apply(this, args);
    if (window.__serOn) {
      window.__ser.calls++;
      if (typeof out === "string" && out.length >= window.__ser.threshold) window.__ser.big++;
    }
    return out;
  };
})()`;

/** The node whose box is nearest the middle of the canvas and wholly in it. */
async function nodeNearCentre(page: Page): Promise<string> {
  const id = await page.evaluate(() => {
    const pane = document.querySelector(".react-flow__pane")!.getBoundingClientRect();
    const cx = pane.x + pane.width / 2;
    const cy = pane.y + pane.height / 2;
    let best: { id: string; d: number } | null = null;
    for (const el of document.querySelectorAll<HTMLElement>(".react-flow__node")) {
      const r = el.getBoundingClientRect();
      if (r.left < pane.left + 10 || r.top < pane.top + 10 || r.right > pane.right - 10 || r.bottom > pane.bottom - 10) continue;
      const d = Math.hypot(r.x + r.width / 2 - cx, r.y + r.height / 2 - cy);
      if (!best || d < best.d) best = { id: el.dataset.id ?? "", d };
    }
    return best?.id ?? null;
  });
  if (!id) throw new Error("no node wholly in view to drag");
  return id;
}

async function dragNode(page: Page, cdp: CDPSession, view: DragResult["view"], build: DragResult["build"], round: number, docChars: number, ms = 2000): Promise<DragResult> {
  const node = await nodeNearCentre(page);
  const el = page.locator(`.react-flow__node[data-id="${node}"]`);
  const head = (await el.locator(".pnode-head").boundingBox())!;
  const start = { x: head.x + head.width / 2, y: head.y + head.height / 2 };
  const before = await el.evaluate((e) => e.style.transform);
  const checks: number[] = [];
  const onRequest = (r: { url(): string }) => {
    if (r.url().includes("workflow.check")) checks.push(Date.now());
  };
  page.on("request", onRequest);
  await page.evaluate(`window.__ser.calls = 0; window.__ser.big = 0; window.__ser.threshold = ${Math.floor(docChars / 2)}; window.__serOn = true;`);
  const cpu0 = await mainThreadSeconds(cdp);
  const frames = await recordFrames(page, ms, async () => {
    await page.mouse.move(start.x, start.y);
    await page.mouse.down();
    const t0 = Date.now();
    let i = 0;
    while (Date.now() - t0 < ms) {
      const a = (i++ / 60) * Math.PI;
      await page.mouse.move(start.x + 150 * Math.sin(a), start.y + 150 * (1 - Math.cos(a)));
    }
    await page.mouse.up();
  });
  const cpu1 = await mainThreadSeconds(cdp);
  await page.waitForTimeout(1500); // the debounced check, if a drag sends one
  const ser = (await page.evaluate("window.__serOn = false; window.__ser")) as { calls: number; big: number };
  page.off("request", onRequest);
  const after = await el.evaluate((e) => e.style.transform);
  if (after === before) throw new Error(`node ${node} did not move`);
  const zoom = Number(/matrix\(([^,]+)/.exec(await viewportTransform(page))?.[1] ?? NaN);
  return {
    view,
    build,
    round,
    zoom,
    node,
    frames: frames.length,
    meanFps: (frames.length * 1000) / frames.reduce((a, b) => a + b, 0),
    p95FrameMs: quantile(frames, 0.95),
    mainMsPerFrame: ((cpu1.task - cpu0.task) * 1000) / frames.length,
    scriptMsPerFrame: ((cpu1.script - cpu0.script) * 1000) / frames.length,
    stringifyCalls: ser.calls,
    documentSerialisations: ser.big,
    checkRequests: checks.length,
    dirtyAfter: (await page.getByTestId("dirty").count()) > 0,
  };
}

async function zoomToOne(page: Page) {
  // Through the controls' zoom-in button (each click is ×1.2).
  for (let i = 0; i < 12; i++) {
    const z = Number(/matrix\(([^,]+)/.exec(await viewportTransform(page))?.[1] ?? 1);
    if (z >= 0.99) break;
    await page.locator(".react-flow__controls-zoomin").click();
    await page.waitForTimeout(150);
  }
  await page.waitForTimeout(500); // nodes crossing the detail threshold re-render and re-measure
}

/** Opens the workflow in a fresh page of `build` and drags a node with the whole graph in view, then at zoom ~1. */
async function dragVariant(browser: Browser, url: string, build: DragResult["build"], round: number, docChars: number): Promise<DragResult[]> {
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  try {
    await page.addInitScript(COUNT_STRINGIFY);
    await page.goto(url);
    await page.locator('[data-testid="node-n0_0"]').waitFor({ timeout: 60_000 });
    await page.waitForTimeout(2000); // fitView, fonts, catalog, the first check
    const cdp = await page.context().newCDPSession(page);
    await cdp.send("Performance.enable");
    await dragNode(page, cdp, "fit", build, round, docChars, 600); // warm-up
    const drags = [await dragNode(page, cdp, "fit", build, round, docChars)];
    await zoomToOne(page);
    drags.push(await dragNode(page, cdp, "zoom 1", build, round, docChars));
    return drags;
  } finally {
    await page.close();
  }
}

/** `next start` on the production build of the checkout in `dir` (its own .next), on a fresh data dir. */
async function startBuildIn(dir: string, dataDir: string): Promise<{ base: string; stop: () => void }> {
  if (!existsSync(path.join(dir, ".next", "BUILD_ID"))) throw new Error(`BENCH_EDITOR_BASELINE: no production build in ${dir}/.next`);
  rmSync(dataDir, { recursive: true, force: true });
  execFileSync("npx", ["prisma", "migrate", "deploy"], { cwd: dir, env: { ...process.env, STUDIO_DATA_DIR: dataDir }, stdio: "ignore" });
  const port = 3300 + Math.floor(Math.random() * 500);
  const env: NodeJS.ProcessEnv = { ...process.env, STUDIO_DATA_DIR: dataDir, NEXT_DIST_DIR: "" }; // "": its own .next
  const server = spawn("npx", ["next", "start", "-H", "127.0.0.1", "-p", String(port)], { cwd: dir, stdio: "ignore", detached: true, env });
  const stop = () => {
    try {
      process.kill(-server.pid!, "SIGTERM");
    } catch {
      /* already gone */
    }
  };
  const base = `http://127.0.0.1:${port}`;
  for (let i = 0; ; i++) {
    try {
      if ((await fetch(`${base}/api/health`)).ok) return { base, stop };
    } catch {
      if (i > 240) {
        stop();
        throw new Error(`the baseline server in ${dir} did not start`);
      }
    }
    await new Promise((r) => setTimeout(r, 500));
  }
}

async function saveGrid(base: string, doc: Workflow): Promise<string> {
  const res = await fetch(`${base}/api/trpc/workflow.create`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ name: doc.name, document: doc }) });
  const body = (await res.json()) as { result?: { data?: { id?: string } }; error?: unknown };
  const id = body.result?.data?.id;
  if (!id) throw new Error(`could not save the 300-node workflow: ${JSON.stringify(body.error ?? body).slice(0, 300)}`);
  return id;
}

export async function benchEditor(): Promise<EditorBenchResult | { skipped: string }> {
  const dataDir = "data/bench/editor-data";
  rmSync(dataDir, { recursive: true, force: true });
  execFileSync("npx", ["prisma", "migrate", "deploy"], { env: { ...process.env, STUDIO_DATA_DIR: dataDir }, stdio: "ignore" });
  const server = await startServer(dataDir);
  if ("skipped" in server) return server;
  const baselineDir = process.env.BENCH_EDITOR_BASELINE;
  let baseline: { base: string; stop: () => void } | null = null;
  try {
    const doc = gridWorkflow();
    const docChars = JSON.stringify(doc).length;
    const id = await saveGrid(server.base, doc);
    if (baselineDir) baseline = await startBuildIn(path.resolve(baselineDir), path.resolve("data/bench/editor-data-baseline"));
    const baselineId = baseline ? await saveGrid(baseline.base, doc) : null;
    const browser = await launchChromium();
    try {
      const rounds = Number(process.env.BENCH_EDITOR_ROUNDS ?? 2);
      const parts = (process.env.BENCH_EDITOR_PARTS ?? "pan,drag").split(",");
      const variants = (process.env.BENCH_EDITOR_VARIANTS ?? "before,now,no lod,no cull,no capture").split(",") as Variant[];
      const idle: number[] = [];
      const pans: PanResult[] = [];
      const drags: DragResult[] = [];
      for (let round = 1; round <= rounds; round++) {
        if (parts.includes("pan")) {
          for (const variant of variants) {
            const r = await panVariant(browser, `${server.base}/w/${id}`, variant, round);
            idle.push(...r.idle);
            pans.push(...r.pans);
          }
          if (baseline) {
            const r = await panVariant(browser, `${baseline.base}/w/${baselineId}`, "now", round);
            pans.push(...r.pans.map((p) => ({ ...p, build: "baseline" as const })));
          }
        }
        if (parts.includes("drag")) {
          // Alternate which build goes first, so neither always follows the other.
          const builds: [DragResult["build"], string][] = [["this", `${server.base}/w/${id}`]];
          if (baseline) builds[round % 2 ? "push" : "unshift"](["baseline", `${baseline.base}/w/${baselineId}`]);
          for (const [build, url] of builds) drags.push(...(await dragVariant(browser, url, build, round, docChars)));
        }
      }
      return { nodes: doc.nodes.length, edges: doc.edges.length, idleFps: idle.length ? 1000 / median(idle) : NaN, pans, drags };
    } finally {
      await browser.close();
    }
  } finally {
    server.stop();
    baseline?.stop();
  }
}

/** The bench's report lines (npm run bench -- editor). */
export function editorReport(e: EditorBenchResult): string[] {
  const lines: string[] = [];
  if (e.pans.length) {
    lines.push(`editor pan in Chromium, ${e.nodes} nodes / ${e.edges} links, mouse drag ~2 s (target 60 fps; idle page paces at ${e.idleFps.toFixed(0)} fps; "baseline": "now" on the BENCH_EDITOR_BASELINE build):`);
    for (const p of e.pans) lines.push(`  ${p.view.padEnd(6)} ${(p.build === "baseline" ? "baseline" : p.variant).padEnd(8)} (zoom ${p.zoom.toFixed(2)}, ${p.nodesInDom} nodes in the DOM): median ${p.medianFps.toFixed(0)} fps, mean ${p.meanFps.toFixed(0)} fps, p95 frame ${p.p95FrameMs.toFixed(1)} ms, worst ${p.maxFrameMs.toFixed(0)} ms, main ${p.mainMsPerFrame.toFixed(1)} / script ${p.scriptMsPerFrame.toFixed(1)} ms per frame (${p.frames} frames)`);
  }
  if (e.drags.length) {
    lines.push(`editor node drag in Chromium, ${e.nodes} nodes / ${e.edges} links, one node dragged ~2 s:`);
    for (const d of e.drags)
      lines.push(
        `  ${d.view.padEnd(6)} ${d.build.padEnd(8)} r${d.round} (zoom ${d.zoom.toFixed(2)}, ${d.node}): mean ${d.meanFps.toFixed(0)} fps, p95 frame ${d.p95FrameMs.toFixed(1)} ms, main ${d.mainMsPerFrame.toFixed(1)} ms/frame, script ${d.scriptMsPerFrame.toFixed(1)} ms/frame (${d.frames} frames); ` +
          `JSON.stringify ${d.stringifyCalls} calls, ${d.documentSerialisations} of the document; ${d.checkRequests} check requests; ${d.dirtyAfter ? "unsaved change shown" : "NOT shown as unsaved"}`,
      );
  }
  return lines;
}
