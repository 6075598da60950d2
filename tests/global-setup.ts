import { rmSync } from "node:fs";
import { buildCliBundle, CLI_BUNDLE_ENV } from "./cli-bundle";

/** vitest's global setup: the CLI bundle the suites spawn (tests/cli-bundle.ts), built once per run. */
export default async function setup() {
  const file = await buildCliBundle();
  process.env[CLI_BUNDLE_ENV] = file;
  return () => rmSync(file, { force: true });
}
