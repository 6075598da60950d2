/**
 * The CLI as the tests spawn it. Every `tsx app/server/cli.ts …` child pays tsx's start: its loader hooks resolve and
 * load the 235 TypeScript modules it imports through a hook thread (~2 s of CPU a spawn on CI's machine, measured with
 * --cpu-prof: about 70% of it module loading), and the integration suites spawn the CLI ~120 times. So vitest's
 * global setup (tests/global-setup.ts) bundles app/server/cli.ts once per `vitest run` with esbuild — the transform
 * tsx applies file by file, with the same tsconfig — into node_modules/.cache/studio-cli/, and the suites run that
 * file with plain node (one process, as `--import tsx` is). The source is the same; the command (`npm run cli`, i.e.
 * tsx) keeps its own tests: tests/unit/cli/cli-args.test.ts (tsx from another directory), tests/unit/sandbox.
 * Without the global setup (a single file run with another config) the suites fall back to `--import tsx`.
 */
import { mkdirSync } from "node:fs";
import path from "node:path";

export const CLI_BUNDLE_ENV = "STUDIO_TEST_CLI_BUNDLE";
const ROOT = path.join(__dirname, "..");

/** The node arguments before the CLI's own: the bundle when the global setup built it, else tsx as a loader. */
export function cliEntry(): string[] {
  const bundle = process.env[CLI_BUNDLE_ENV];
  return bundle ? [bundle] : ["--import", "tsx", path.join(ROOT, "app/server/cli.ts")];
}

/** Bundles the CLI (its npm dependencies stay external, resolved from node_modules as under tsx); returns the file. */
export async function buildCliBundle(): Promise<string> {
  const { build } = await import("esbuild");
  const dir = path.join(ROOT, "node_modules/.cache/studio-cli");
  mkdirSync(dir, { recursive: true });
  const outfile = path.join(dir, `cli-${process.pid}.cjs`);
  await build({
    stdin: { contents: 'import { runCliProcess } from "./app/server/cli";\nrunCliProcess(process.argv.slice(2));\n', resolveDir: ROOT, sourcefile: "cli-entry.ts", loader: "ts" },
    bundle: true,
    platform: "node",
    format: "cjs", // as tsx runs this package's .ts files (package.json has no "type": "module")
    target: "node20",
    packages: "external",
    tsconfig: path.join(ROOT, "tsconfig.json"),
    outfile,
    logLevel: "error",
    // tsx gives each CJS module its own import.meta.url; the one module that reads it (Prisma's generated client,
    // for its __dirname) gets the bundle's
    banner: { js: 'var __bundle_import_meta_url = require("node:url").pathToFileURL(__filename).href;' },
    define: { "import.meta.url": "__bundle_import_meta_url" },
  });
  return outfile;
}
