/**
 * Browser rendering of the routing inspector: starts the production server (needs `npm run build` first;
 * NEXT_DIST_DIR is honoured), opens /dev/render-bench in Debian Chromium and reads the time from opening the
 * inspector on a 28 layers × 64 experts × 4,096 tokens trace to every view drawn and on screen (target
 * < 200 ms), warm (second trace in an open page) and cold (fresh page). The frozen pre-optimisation
 * inspector (impl=baseline) is measured in the same run, interleaved, for a before/after on the same load,
 * and so is the product path for a new report (impl=precomputed: the "all tokens" metrics come from the
 * Routing Inspector node's metricsFile, only parsed in the page). The node's side of that path (computeMetrics
 * with entropy + metricsToJSON + JSON.stringify of the same trace) is timed here in Node.
 */
import { performance } from "node:perf_hooks";
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import path from "node:path";
import { chromium, type Page } from "@playwright/test";
import { computeMetrics, metricsToJSON } from "../../engine/routing/metrics";
import { syntheticTrace } from "../../engine/routing/synthetic";

export interface RenderRound {
  /** Warm: opening → all views drawn and two frames later (on screen). */
  totalMs: number;
  /** Cold: the same for the first inspector in a fresh page. */
  coldMs: number;
  /** Warm: opening → all views drawn, before the frame is painted. */
  drawnMs: number;
  /** Warm: opening → the heatmap drawn (current inspector only). */
  firstViewMs?: number;
  metricsMs: number;
  parts: Record<string, number>;
}

export interface RenderImplResult {
  rounds: RenderRound[];
  medianTotalMs: number;
  medianColdMs: number;
  medianDrawnMs: number;
  medianFirstViewMs?: number;
  medianMetricsMs: number;
  medianParts: Record<string, number>;
}

export interface RenderBenchResult {
  layers: number;
  experts: number;
  tokens: number;
  baseline: RenderImplResult;
  /** Metrics computed in the page (reports without a metricsFile). */
  current: RenderImplResult;
  /** Metrics precomputed by the node (reports with a metricsFile): the product path. */
  precomputed: RenderImplResult;
  /** The node's work for that trace in Node (ms, median of `reps`), and the metrics file's size. */
  server: { computeMs: number; serialiseMs: number; bytes: number; reps: number };
  /** Kept for older readers of bench.json: the current inspector's figures. */
  medianTotalMs: number;
  medianColdMs: number;
  medianMetricsMs: number;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function waitForServer(base: string) {
  for (let i = 0; ; i++) {
    try {
      if ((await fetch(`${base}/dev/render-bench?tokens=8`)).ok) return;
    } catch {
      if (i > 240) throw new Error("the server did not start");
    }
    await new Promise((r) => setTimeout(r, 500));
  }
}

/** Starts `next start` on the build in NEXT_DIST_DIR (default .next); returns the base URL and a stop function. */
export async function startServer(dataDir: string): Promise<{ base: string; stop: () => void } | { skipped: string }> {
  const dist = process.env.NEXT_DIST_DIR ?? ".next";
  if (!existsSync(path.join(dist, "BUILD_ID"))) return { skipped: `no production build in ${dist}: run \`npm run build\` first` };
  const port = Number(process.env.BENCH_PORT ?? 3300 + Math.floor(Math.random() * 500));
  // Its own process group: npx starts next-server as a child, which must go down with it.
  const server = spawn("npx", ["next", "start", "-H", "127.0.0.1", "-p", String(port)], { stdio: "ignore", detached: true, env: { ...process.env, STUDIO_DATA_DIR: dataDir } });
  const stop = () => {
    try {
      process.kill(-server.pid!, "SIGTERM");
    } catch {
      /* already gone */
    }
  };
  const base = `http://127.0.0.1:${port}`;
  try {
    await waitForServer(base);
  } catch (err) {
    stop();
    throw err;
  }
  return { base, stop };
}

export function launchChromium() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium",
    args: ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking"],
  });
}

const IMPLS = ["baseline", "current", "precomputed"] as const;
type Impl = (typeof IMPLS)[number];

/** The Routing Inspector node's metric work on the bench trace (seed 1, as the page's first trace). */
export function benchServerMetrics(reps = 7): RenderBenchResult["server"] {
  const trace = syntheticTrace({ seed: 1, layers: 28, routed: 64, nulls: 1, shared: 2, tokens: 4096 });
  const compute: number[] = [];
  const serialise: number[] = [];
  let bytes = 0;
  for (let r = 0; r < reps + 1; r++) {
    const t0 = performance.now();
    const m = computeMetrics(trace);
    const t1 = performance.now();
    const text = JSON.stringify(metricsToJSON(m));
    const t2 = performance.now();
    bytes = Buffer.byteLength(text);
    if (r > 0) {
      compute.push(t1 - t0);
      serialise.push(t2 - t1);
    }
  }
  return { computeMs: median(compute), serialiseMs: median(serialise), bytes, reps };
}

async function oneRound(page: Page, base: string, impl: Impl): Promise<RenderRound> {
  await page.goto(`${base}/dev/render-bench?layers=28&experts=64&tokens=4096&impl=${impl}`);
  const el = page.getByTestId("render-result");
  await el.locator("xpath=self::*[@data-total-ms]").waitFor({ timeout: 120_000 });
  const num = async (a: string) => {
    const v = await el.getAttribute(a);
    return v === null || v === "" ? undefined : Number(v);
  };
  return {
    totalMs: (await num("data-total-ms"))!,
    coldMs: (await num("data-cold-ms"))!,
    drawnMs: (await num("data-drawn-ms"))!,
    firstViewMs: await num("data-first-ms"),
    metricsMs: (await num("data-metrics-ms"))!,
    parts: JSON.parse((await el.getAttribute("data-parts")) ?? "{}") as Record<string, number>,
  };
}

function summarise(rounds: RenderRound[]): RenderImplResult {
  const partNames = [...new Set(rounds.flatMap((r) => Object.keys(r.parts)))];
  const first = rounds.map((r) => r.firstViewMs).filter((x): x is number => x !== undefined);
  return {
    rounds,
    medianTotalMs: median(rounds.map((r) => r.totalMs)),
    medianColdMs: median(rounds.map((r) => r.coldMs)),
    medianDrawnMs: median(rounds.map((r) => r.drawnMs)),
    medianFirstViewMs: first.length ? median(first) : undefined,
    medianMetricsMs: median(rounds.map((r) => r.metricsMs)),
    medianParts: Object.fromEntries(partNames.map((n) => [n, median(rounds.map((r) => r.parts[n] ?? 0))])),
  };
}

export async function benchRender(reps = 5): Promise<RenderBenchResult | { skipped: string }> {
  const server = await startServer("data/bench/render-data");
  if ("skipped" in server) return server;
  try {
    const browser = await launchChromium();
    const rounds: Record<Impl, RenderRound[]> = { baseline: [], current: [], precomputed: [] };
    try {
      const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
      for (let r = 0; r < reps + 1; r++) {
        for (const impl of IMPLS) {
          const round = await oneRound(page, server.base, impl);
          if (r > 0) rounds[impl].push(round); // r = 0 warms the server, the code cache and the fonts
        }
      }
    } finally {
      await browser.close();
    }
    const current = summarise(rounds.current);
    const precomputed = summarise(rounds.precomputed);
    const node = benchServerMetrics(reps);
    const ms = (x: number) => `${x.toFixed(0)} ms`;
    console.log(`\nrouting metrics precomputed by the Routing Inspector node (28 × 64 × 4,096, Node, median of ${node.reps}): computeMetrics with entropy ${ms(node.computeMs)}, metricsToJSON + JSON.stringify ${ms(node.serialiseMs)}, metrics file ${(node.bytes / 1024).toFixed(0)} KiB`);
    console.log("inspector in Chromium, same run, interleaved; warm = second trace in an open page, cold = first trace in a fresh page; opening → all views drawn (each view reported its paint, balance table with entropy) / + two frames (on screen):");
    for (const [name, x] of [
      ["before (baseline)", summarise(rounds.baseline)],
      ["metrics in page", current],
      ["metrics precomputed by the node (the product path)", precomputed],
    ] as const) {
      console.log(`  ${name}:\n    warm drawn ${ms(x.medianDrawnMs)}, on screen ${ms(x.medianTotalMs)}; cold on screen ${ms(x.medianColdMs)}; page metrics (main thread) ${ms(x.medianMetricsMs)}`);
    }
    console.log(`  parts precomputed: ${Object.entries(precomputed.medianParts).map(([k, v]) => `${k} ${v.toFixed(1)} ms`).join(", ")}`);
    return {
      layers: 28,
      experts: 64,
      tokens: 4096,
      baseline: summarise(rounds.baseline),
      current,
      precomputed,
      server: node,
      medianTotalMs: current.medianTotalMs,
      medianColdMs: current.medianColdMs,
      medianMetricsMs: current.medianMetricsMs,
    };
  } finally {
    server.stop();
  }
}
