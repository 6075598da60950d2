#!/usr/bin/env node
// Run first by `npm test` and `npm run test:e2e`: the browser tests need Debian's Chromium (never a
// downloaded browser). Missing, it says exactly what to install; as root in CI (CI=true) it installs it.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";

const browser = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const works = () => existsSync(browser) && spawnSync(browser, ["--version"], { encoding: "utf8", timeout: 30_000 }).status === 0;

if (!works()) {
  const root = typeof process.getuid === "function" && process.getuid() === 0;
  if (root && process.env.CI && !process.env.CHROMIUM_PATH) {
    console.error("--- Chromium is missing: installing Debian's chromium (CI, as root)");
    const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
    const ok = spawnSync("apt-get", ["update", "-qq"], { stdio: "inherit", env }).status === 0 && spawnSync("apt-get", ["install", "-y", "-qq", "chromium"], { stdio: "inherit", env }).status === 0;
    if (ok && works()) process.exit(0);
  }
  console.error(
    `The browser tests need Chromium at ${browser}, and it ${existsSync(browser) ? "does not run" : "is not there"}.\n` +
      (process.env.CHROMIUM_PATH
        ? "Point CHROMIUM_PATH at a working Chromium binary.\n"
        : "Install Debian's package:  sudo apt-get install chromium\n(or set CHROMIUM_PATH to another Chromium binary; Playwright's own browser downloads are not used).\n") +
      "Only the unit and integration tests need nothing more: npm run test:unit",
  );
  process.exit(1);
}
