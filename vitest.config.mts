import { defineConfig } from "vitest/config";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

export default defineConfig({
  resolve: { alias: { "@": path.dirname(fileURLToPath(import.meta.url)) } },
  test: {
    include: ["tests/unit/**/*.test.ts", "tests/integration/**/*.test.ts", "nodes/**/*.test.ts", "engine/**/*.test.ts"],
    environment: "node",
    // bundles the CLI once for the suites that spawn it (tests/cli-bundle.ts)
    globalSetup: ["tests/global-setup.ts"],
    testTimeout: 30_000,
    // Vitest's default is one worker per CPU but one: on a 2-CPU machine (CI here) the files ran one at a time, while
    // much of the suite waits on child processes (CLI, workers), servers and a software GPU. 2 workers: 671 s of wall
    // time instead of 961–1109 s on 2 cores, every file green; the slow files set their own timeouts.
    maxWorkers: Math.max(2, os.availableParallelism() - 1),
  },
});
