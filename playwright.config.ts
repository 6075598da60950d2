import { defineConfig } from "@playwright/test";

const PORT = Number(process.env.E2E_PORT ?? 3100);
const DATA = `test-results/e2e-data-${PORT}`;
// A second server with accounts on (sign-up open) for the account and sharing specs; see AUTH_BASE_URL.
const AUTH_PORT = PORT + 1;
const AUTH_DATA = `test-results/e2e-data-auth-${PORT}`;
// A third server on ONNX Runtime's WebGPU provider (a software GPU in CI: SwiftShader) for omni-webgpu.spec.ts; see GPU_BASE_URL.
const GPU_PORT = PORT + 2;
const GPU_DATA = `test-results/e2e-data-gpu-${PORT}`;

// Debian's Chromium (never a downloaded browser); the app is the production build on a fresh data dir.
export default defineConfig({
  testDir: "tests/e2e",
  timeout: 60_000,
  expect: { timeout: 10_000 },
  fullyParallel: false,
  workers: 1,
  retries: process.env.CI ? 1 : 0,
  reporter: [["list"]],
  outputDir: `test-results/e2e-output-${PORT}`,
  use: {
    baseURL: `http://127.0.0.1:${PORT}`,
    screenshot: "only-on-failure",
    trace: "retain-on-failure",
    acceptDownloads: true,
    viewport: { width: 1400, height: 900 },
    launchOptions: {
      executablePath: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium",
      args: ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking", "--disable-component-update", "--no-first-run"],
    },
  },
  webServer: [
    {
      command: `rm -rf ${DATA} && STUDIO_DATA_DIR=${DATA} npx prisma migrate deploy && LOG_LEVEL=warn STUDIO_DATA_DIR=${DATA} npx next start -H 127.0.0.1 -p ${PORT}`,
      url: `http://127.0.0.1:${PORT}/api/health`,
      timeout: 120_000,
      reuseExistingServer: false,
      stdout: "pipe",
      stderr: "pipe",
    },
    {
      command: `rm -rf ${AUTH_DATA} && STUDIO_DATA_DIR=${AUTH_DATA} npx prisma migrate deploy && LOG_LEVEL=warn STUDIO_AUTH=on STUDIO_SIGNUP=open STUDIO_DATA_DIR=${AUTH_DATA} npx next start -H 127.0.0.1 -p ${AUTH_PORT}`,
      url: `http://127.0.0.1:${AUTH_PORT}/api/health`,
      timeout: 120_000,
      reuseExistingServer: false,
      stdout: "pipe",
      stderr: "pipe",
    },
    {
      command: `rm -rf ${GPU_DATA} && STUDIO_DATA_DIR=${GPU_DATA} npx prisma migrate deploy && LOG_LEVEL=warn STUDIO_EP=webgpu STUDIO_DATA_DIR=${GPU_DATA} npx next start -H 127.0.0.1 -p ${GPU_PORT}`,
      url: `http://127.0.0.1:${GPU_PORT}/api/health`,
      timeout: 120_000,
      reuseExistingServer: false,
      stdout: "pipe",
      stderr: "pipe",
    },
  ],
});
