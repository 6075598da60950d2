/**
 * Browser rendering of the routing views: starts the production server (needs `npm run build` first),
 * opens /dev/render-bench in Debian Chromium and reads the time from metrics to painted charts
 * (28 layers × 64 experts × 4,096 tokens; target < 200 ms), warm (in an open page) and cold (fresh page).
 */
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { chromium } from "@playwright/test";

export interface RenderBenchResult {
  layers: number;
  experts: number;
  tokens: number;
  metricsMs: number[];
  /** Warm: a second trace drawn into new charts in the open page (as opening an inspector in the app). */
  totalMs: number[];
  /** Cold: the first render in a fresh page, charting code not yet compiled. */
  coldMs: number[];
  medianTotalMs: number;
  medianColdMs: number;
  medianMetricsMs: number;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

export async function benchRender(reps = 5): Promise<RenderBenchResult | { skipped: string }> {
  if (!existsSync(".next/BUILD_ID")) return { skipped: "no production build: run `npm run build` first" };
  const port = 3300 + Math.floor(Math.random() * 500);
  const server = spawn("npx", ["next", "start", "-H", "127.0.0.1", "-p", String(port)], { stdio: "ignore", env: { ...process.env, STUDIO_DATA_DIR: "data/bench/render-data" } });
  try {
    const base = `http://127.0.0.1:${port}`;
    for (let i = 0; ; i++) {
      try {
        if ((await fetch(`${base}/dev/render-bench?tokens=8`)).ok) break;
      } catch {
        if (i > 120) throw new Error("the server did not start");
      }
      await new Promise((r) => setTimeout(r, 500));
    }
    const browser = await chromium.launch({
      executablePath: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium",
      args: ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking"],
    });
    const metricsMs: number[] = [];
    const totalMs: number[] = [];
    const coldMs: number[] = [];
    try {
      const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
      for (let r = 0; r < reps + 1; r++) {
        await page.goto(`${base}/dev/render-bench?layers=28&experts=64&tokens=4096`);
        const el = page.getByTestId("render-result");
        await el.locator("xpath=self::*[@data-total-ms]").waitFor({ timeout: 60_000 });
        if (r === 0) continue; // warm-up: code and fonts loaded
        totalMs.push(Number(await el.getAttribute("data-total-ms")));
        coldMs.push(Number(await el.getAttribute("data-cold-ms")));
        metricsMs.push(Number(await el.getAttribute("data-metrics-ms")));
      }
    } finally {
      await browser.close();
    }
    return { layers: 28, experts: 64, tokens: 4096, metricsMs, totalMs, coldMs, medianTotalMs: median(totalMs), medianColdMs: median(coldMs), medianMetricsMs: median(metricsMs) };
  } finally {
    server.kill("SIGTERM");
  }
}
