import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { CONFIG, ConfigError, configTable, parseConfig, unknownStudioVariables } from "@/engine/config";
import { docFiles, renderBlocks, SECTIONS } from "@/tools/config-docs";

const ROOT = path.resolve(__dirname, "../../..");
const TSX = path.join(ROOT, "node_modules/tsx/dist/loader.mjs");

/** Runs a TypeScript entry point of the repository with `env` added, in `cwd` (default the repository). */
function runEntry(file: string, args: string[], env: Record<string, string>, cwd = ROOT) {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !(k in CONFIG)));
  return spawnSync(process.execPath, ["--import", TSX, path.join(ROOT, file), ...args], {
    cwd,
    env: { ...clean, TSX_TSCONFIG_PATH: path.join(ROOT, "tsconfig.json"), ...env } as unknown as NodeJS.ProcessEnv,
    encoding: "utf8",
    timeout: 60_000,
  });
}

describe("the configuration schema", () => {
  it("gives the defaults when nothing is set", () => {
    const c = parseConfig({});
    expect(c.STUDIO_CACHE_MB).toBe(512);
    expect(c.STUDIO_EP).toBe("auto");
    expect(c.STUDIO_NODE_CONCURRENCY).toBe(2);
    expect(c.STUDIO_SIGNUP).toBe("closed");
    expect(c.STUDIO_AUTH).toBeUndefined();
    expect(c.STUDIO_DATA_DIR).toBeUndefined();
  });

  it("parses good values (trimmed, case-insensitive choices, lists, upload limits)", () => {
    const c = parseConfig({ STUDIO_CACHE_MB: " 64 ", STUDIO_EP: "CPU", STUDIO_AUTH: "1", STUDIO_IMPORT_ROOTS: "/a: /b:", STUDIO_MAX_UPLOAD_MB: "image=1, video=2048", STUDIO_QUEUE: "redis://r:6379" });
    expect(c.STUDIO_CACHE_MB).toBe(64);
    expect(c.STUDIO_EP).toBe("cpu");
    expect(c.STUDIO_AUTH).toBe("on");
    expect(c.STUDIO_IMPORT_ROOTS).toEqual(["/a", "/b"]);
    expect(c.STUDIO_MAX_UPLOAD_MB).toEqual({ image: 1024 * 1024, video: 2048 * 1024 * 1024 });
    expect(c.STUDIO_QUEUE).toBe("redis://r:6379");
  });

  it("refuses a bad value naming the variable, and lists every bad one", () => {
    expect(() => parseConfig({ STUDIO_CACHE_MB: "abc" })).toThrow(ConfigError);
    expect(() => parseConfig({ STUDIO_CACHE_MB: "abc" })).toThrow('STUDIO_CACHE_MB: "abc" is not a positive number');
    for (const [name, value] of [
      ["STUDIO_NODE_CONCURRENCY", "1.5"],
      ["STUDIO_EP", "tpu"],
      ["STUDIO_AUTH", "maybe"],
      ["PORT", "70000"],
      ["STUDIO_QUEUE", "amqp://x"],
      ["STUDIO_MAX_UPLOAD_MB", "pictures=3"],
      ["STUDIO_WORKER_LOCK_MS", "-1"],
      ["LOG_FORMAT", "xml"],
    ]) {
      expect(() => parseConfig({ [name!]: value }), name).toThrow(new RegExp(`${name}: `));
    }
    try {
      parseConfig({ STUDIO_CACHE_MB: "abc", STUDIO_MAX_RUNS: "0" });
      expect.unreachable();
    } catch (err) {
      expect((err as ConfigError).problems.map((p) => p.name)).toEqual(["STUDIO_CACHE_MB", "STUDIO_MAX_RUNS"]);
    }
  });

  it("reports STUDIO_* names nothing reads (typos), not the internal ones", () => {
    expect(unknownStudioVariables({ STUDIO_CACHE_MV: "1", STUDIO_CACHE_MB: "1", STUDIO_PRISMA_TARGET: "sqlite", STUDIO_TEST_SERVICES_DIR: "/tmp/x", PATH: "/bin" })).toEqual(["STUDIO_CACHE_MV"]);
  });

  it("every STUDIO_* variable the code reads is in the schema", () => {
    const out = spawnSync("git", ["grep", "-ohE", "STUDIO_[A-Z0-9_]+", "--", "app", "engine", "models", "nodes", "prisma", "proxy.ts", "instrumentation.ts"], { cwd: ROOT, encoding: "utf8" });
    const used = new Set(out.stdout.split("\n").filter(Boolean));
    const internal = new Set(["STUDIO_PRISMA_TARGET", "STUDIO_WORKFLOW", "STUDIO_TEST_DATABASE_URL", "STUDIO_TEST_REDIS_URL"]);
    const missing = [...used].filter((n) => !(n in CONFIG) && !internal.has(n) && !n.endsWith("_"));
    expect(missing).toEqual([]);
  });

  it("the docs' tables are the ones rendered from the schema, each section on exactly one page", () => {
    const found: string[] = [];
    const pages: Record<string, string> = {};
    for (const file of docFiles(ROOT)) {
      const doc = readFileSync(path.join(ROOT, file), "utf8");
      const r = renderBlocks(doc);
      expect(r.text, file).toBe(doc); // else: npx tsx tools/config-docs.ts --write
      found.push(...r.found);
      for (const s of r.found) pages[s] = file;
    }
    expect(found.sort()).toEqual([...SECTIONS].sort());
    expect(pages).toEqual({ general: "docs/configuration.md", accounts: "docs/security.md", scale: "docs/scaling-and-deploy.md" });
    for (const s of SECTIONS) expect(configTable(s)).toMatch(/^\| variable \| default \| meaning \|/);
  });
});

describe("entry points check the configuration at start-up", () => {
  it("the CLI stops with the variable's name (exit 2), also when the bad value comes from a .env file", () => {
    const r = runEntry("app/server/cli.ts", ["--help"], { STUDIO_CACHE_MB: "abc" });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('STUDIO_CACHE_MB: "abc" is not a positive number');
    const dir = mkdtempSync(path.join(os.tmpdir(), "studio-env-"));
    writeFileSync(path.join(dir, ".env"), "STUDIO_NODE_CONCURRENCY=many\n");
    const fromFile = runEntry("app/server/cli.ts", ["--help"], {}, dir);
    expect(fromFile.status).toBe(2);
    expect(fromFile.stderr).toContain('STUDIO_NODE_CONCURRENCY: "many" is not a positive integer');
    // A variable already set wins over .env (as in Next).
    const overridden = runEntry("app/server/cli.ts", ["--help"], { STUDIO_NODE_CONCURRENCY: "3" }, dir);
    expect(overridden.status).toBe(0);
  });

  it("an unknown STUDIO_* name is a warning (exit 0): a JSON line when logs are JSON, a readable line when pretty", () => {
    const json = runEntry("app/server/cli.ts", ["--help"], { STUDIO_CACHE_MV: "1", LOG_FORMAT: "json" });
    expect(json.status).toBe(0);
    const lines = json.stderr.trim().split("\n").map((l) => JSON.parse(l) as { level: number; msg: string });
    expect(lines).toEqual([expect.objectContaining({ level: 40, msg: "STUDIO_CACHE_MV is set but MoE Studio does not read it (a typo?)" })]);
    const pretty = runEntry("app/server/cli.ts", ["--help"], { STUDIO_CACHE_MV: "1", LOG_FORMAT: "pretty" });
    expect(pretty.stderr.trim()).toBe("warning: STUDIO_CACHE_MV is set but MoE Studio does not read it (a typo?)");
    expect(runEntry("app/server/cli.ts", ["--help"], { STUDIO_TEST_ANYTHING: "1", LOG_FORMAT: "pretty" }).stderr).toBe("");
  });

  it("npm run setup, the worker and the web server's start-up hook stop the same way", () => {
    const setup = runEntry("prisma/setup.ts", [], { STUDIO_EP: "tpu" });
    expect(setup.status).toBe(2);
    expect(setup.stderr).toContain('STUDIO_EP: "tpu" is not one of auto, cuda, webgpu, cpu');
    const worker = runEntry("app/server/worker.ts", [], { STUDIO_WORKER_LOCK_MS: "soon" });
    expect(worker.status).toBe(2);
    expect(worker.stderr).toContain("STUDIO_WORKER_LOCK_MS");
    const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !(k in CONFIG)));
    const web = spawnSync(process.execPath, ["--import", TSX, "-e", 'import("./instrumentation.ts").then((m) => (m.register ?? m.default.register)())'], {
      cwd: ROOT,
      env: { ...clean, NEXT_RUNTIME: "nodejs", STUDIO_MAX_RUNS: "0" } as unknown as NodeJS.ProcessEnv,
      encoding: "utf8",
      timeout: 60_000,
    });
    expect(web.status).toBe(2);
    expect(web.stderr).toContain('STUDIO_MAX_RUNS: "0" is not a positive integer');
  });
});
