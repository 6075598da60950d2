/**
 * The README's screenshot (public/docs/editor.png): the omnimodal example after a run, in Debian's Chromium.
 *   npm start (or next start) on BASE_URL, then: BASE_URL=http://127.0.0.1:3000 npx tsx tools/readme-screenshot.ts
 */
import { chromium } from "@playwright/test";

const base = process.env.BASE_URL ?? "http://127.0.0.1:3000";
async function main() {
const browser = await chromium.launch({ executablePath: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium", args: ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"] });
try {
  const page = await browser.newPage({ viewport: { width: 1600, height: 900 } });
  await page.goto(base);
  await page.getByRole("button", { name: /Image \+ audio → MoE-LLM/ }).click();
  await page.waitForURL(/\/w\//);
  await page.getByRole("button", { name: "▶ Run" }).click();
  await page.getByTestId("run-status").filter({ hasText: "finished" }).waitFor({ timeout: 300_000 });
  // The middle of the pipeline (Prompt Builder → MoE-LLM → inspectors, TTS, DiT) at a readable zoom.
  await page.getByRole("button", { name: "Zoom In" }).click();
  await page.waitForTimeout(1000);
  await page.screenshot({ path: "public/docs/editor.png" });
  console.log("wrote public/docs/editor.png");
} finally {
  await browser.close();
}
}

void main();
