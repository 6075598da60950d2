import { spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { PassThrough } from "node:stream";
import { describe, expect, it } from "vitest";
import { loggerTo, nodeOutput } from "@/engine/log";
import { freshDataDir } from "../../integration/fresh-db";
import { cliEntry } from "../../cli-bundle";

const FORGED = 'done\n[12:00:00.000] INFO: run started {"runId":"someone-else"}\n{"level":30,"msg":"forged"}\u001b[2J';

async function capture(format: "json" | "pretty"): Promise<string> {
  const stream = new PassThrough();
  let out = "";
  stream.on("data", (d) => (out += d));
  nodeOutput(loggerTo(stream, format), "run-1", "node-1", FORGED);
  await new Promise((r) => setTimeout(r, 20));
  return out;
}

describe("structured logs (pino)", () => {
  it("user text is one escaped field: one line per entry in JSON and in pretty form, with the run and node ids", async () => {
    const json = await capture("json");
    expect(json.trimEnd().split("\n")).toHaveLength(1);
    expect(JSON.parse(json)).toMatchObject({ runId: "run-1", nodeId: "node-1", output: FORGED, msg: "node output", level: 30 });
    const pretty = await capture("pretty");
    expect(pretty.trimEnd().split("\n")).toHaveLength(1);
    expect(pretty).toContain('"runId":"run-1"');
    expect(pretty).toContain("\\n[12:00:00.000] INFO");
    expect(pretty).not.toContain("\u001b[2J");
  });

  it("a run's log lines (LOG_FORMAT=json) all carry its run id, node lines their node id; a Script's console output stays one field", () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "log-run-"));
    const file = path.join(dir, "wf.json");
    const code = `console.log(${JSON.stringify(FORGED)}); return 2;`;
    writeFileSync(file, JSON.stringify({ schemaVersion: 2, name: "log", nodes: [{ id: "s", type: "utility.script", typeVersion: 1, params: { code }, position: { x: 0, y: 0 } }], edges: [] }));
    const r = spawnSync(process.execPath, [...cliEntry(), "run", file], {
      encoding: "utf8",
      env: { ...process.env, LOG_FORMAT: "json", LOG_LEVEL: "info", STUDIO_DATA_DIR: freshDataDir(), STUDIO_MODELS_DIR: path.join(dir, "models") },
      timeout: 120_000,
    });
    expect(r.status, r.stderr).toBe(0);
    const lines = r.stderr.trim().split("\n").map((l) => JSON.parse(l) as Record<string, unknown>);
    const runId = /run ([\w-]+):/.exec(r.stdout)![1];
    expect(lines.length).toBeGreaterThanOrEqual(4);
    for (const l of lines) expect(l.runId).toBe(runId);
    expect(lines.map((l) => l.msg)).toEqual(expect.arrayContaining(["run started", "node output", "node done", "run finished"]));
    for (const l of lines.filter((x) => x.msg === "node output" || x.msg === "node done")) expect(l.nodeId).toBe("s");
    expect(lines.find((l) => l.msg === "node output")!.output).toBe(FORGED);
  });
});
