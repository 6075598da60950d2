import { spawnSync } from "node:child_process";
import { chmodSync, mkdtempSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { expect, it } from "vitest";

const script = path.resolve(__dirname, "../../../tools/check-chromium.mjs");
const check = (env: Record<string, string>) => spawnSync(process.execPath, [script], { encoding: "utf8", env: { ...process.env, CI: "", ...env } });

it("npm test checks for Chromium first: missing or broken, it says what to install and stops; present, it passes", () => {
  const missing = check({ CHROMIUM_PATH: "/nonexistent/chromium" });
  expect(missing.status).toBe(1);
  expect(missing.stderr).toContain("The browser tests need Chromium at /nonexistent/chromium, and it is not there.");
  const dir = mkdtempSync(path.join(os.tmpdir(), "chromium-"));
  const broken = path.join(dir, "broken");
  writeFileSync(broken, "#!/bin/sh\nexit 3\n");
  chmodSync(broken, 0o755);
  expect(check({ CHROMIUM_PATH: broken }).stderr).toContain("and it does not run");
  const fine = path.join(dir, "fine");
  writeFileSync(fine, "#!/bin/sh\necho Chromium 1.0\n");
  chmodSync(fine, 0o755);
  expect(check({ CHROMIUM_PATH: fine }).status).toBe(0);
});
