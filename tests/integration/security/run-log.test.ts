import { spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { escapeLogControls, terminalLine } from "@/engine/log";
import { freshDataDir } from "../fresh-db";

// What a Script prints reaches the server log through the executor's log (app/server/runs.ts createExecutor
// → engine/log.ts nodeOutput). Run for real through the CLI, in both log formats.
const PRINTED = "ok\n[run 00000000] admin: password reset\r\u001b[2Jcleared\u2028next\u009b2J\u202edesrever";
const NODE = "s";

function runScript(format: "json" | "pretty", code = `console.log(${JSON.stringify(PRINTED)}); return 1;`, status = 0): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), "run-log-"));
  const file = path.join(dir, "wf.json");
  writeFileSync(file, JSON.stringify({ schemaVersion: 2, name: "log", nodes: [{ id: NODE, type: "utility.script", typeVersion: 1, params: { code }, position: { x: 0, y: 0 } }], edges: [] }));
  const r = spawnSync(process.execPath, ["--import", "tsx", "app/server/cli.ts", "run", file], {
    encoding: "utf8",
    env: { ...process.env, LOG_FORMAT: format, LOG_LEVEL: "info", STUDIO_DATA_DIR: freshDataDir(), STUDIO_MODELS_DIR: path.join(dir, "models") },
    timeout: 120_000,
  });
  expect(r.status, r.stderr).toBe(status);
  return r.stderr;
}

describe("node output in the server log", () => {
  it("a Script's console.log with newlines, escapes, separators and overrides is one record, nothing raw (JSON)", () => {
    const out = runScript("json");
    expect(out).not.toMatch(/[\r\u001b\u2028\u009b\u202e]/);
    const records = out.trim().split("\n").map((l) => JSON.parse(l) as Record<string, unknown>);
    const printed = records.filter((r) => r.msg === "node output");
    expect(printed).toHaveLength(1);
    expect(printed[0]).toMatchObject({ nodeId: NODE, output: "ok\n[run 00000000] admin: password reset\r\u001b[2Jcleared\\u2028next\\u009b2J\\u202edesrever" });
  }, 120_000);

  it("the same in the terminal form: one line, no control character reaches the terminal", () => {
    const out = runScript("pretty");
    expect(out).not.toMatch(/[\r\u001b\u2028\u009b\u202e]/);
    const lines = out.trimEnd().split("\n").filter((l) => l.includes("node output"));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain("admin: password reset");
    expect(out.split("\n").filter((l) => l.startsWith("[run 00000000]"))).toEqual([]);
  }, 120_000);

  it("a Script's error message in the 'node failed' and 'run failed' records: escaped like its output (JSON)", () => {
    const out = runScript("json", `throw new Error(${JSON.stringify(PRINTED)});`, 1);
    expect(out).not.toMatch(/[\r\u001b\u2028\u009b\u202e]/);
    const records = out.trim().split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l) as Record<string, unknown>);
    const failed = records.filter((r) => r.msg === "node failed" || r.msg === "run failed");
    expect(failed.map((r) => r.msg).sort()).toEqual(["node failed", "run failed"]);
    for (const r of failed) expect(String(r.error)).toContain("\\u2028next\\u009b2J\\u202edesrever");
    // the CLI's own lines ("error: …", "failed: …") print the message as one inert line
    expect(out).toContain("failed: 1 node failed: Node \"s\" (utility.script): Error: ok\\n[run 00000000] admin: password reset\\r\\u001b[2J");
  }, 120_000);

  it("escapeLogControls writes only what JSON leaves alone as \\u escapes, and nothing else changes", () => {
    expect(escapeLogControls("plain \"text\"\n")).toBe('plain "text"\n');
    expect(escapeLogControls("a\u0085b\u007fc\u202ed\u2066")).toBe("a\\u0085b\\u007fc\\u202ed\\u2066");
    expect(escapeLogControls("é😀")).toBe("é😀");
    expect(terminalLine("a\nb\r\u001b[2J\u0000\u202e")).toBe("a\\nb\\r\\u001b[2J\\u0000\\u202e");
  });
});
