import { defineConfig } from "vitest/config";
import path from "node:path";

export default defineConfig({
  resolve: { alias: { "@": path.resolve(__dirname) } },
  test: {
    include: ["tests/unit/**/*.test.ts", "tests/integration/**/*.test.ts", "nodes/**/*.test.ts", "engine/**/*.test.ts"],
    environment: "node",
    testTimeout: 30_000,
  },
});
