import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { freshDataDir } from "./fresh-db";
import { cliEntry } from "../cli-bundle";

// The CLI as a user runs it: a separate process, a data directory set up like `npm run setup` leaves it.
const dataDir = freshDataDir();
process.env.STUDIO_DATA_DIR = dataDir;
const root = path.join(__dirname, "../..");

function cli(...args: string[]) {
  const r = spawnSync(process.execPath, [...cliEntry(), ...args], {
    cwd: root,
    env: { ...process.env, STUDIO_DATA_DIR: dataDir },
    encoding: "utf8",
    timeout: 60_000,
  });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

const doc = {
  schemaVersion: 2,
  name: "CLI test",
  nodes: [
    { id: "prompt", type: "input.text", typeVersion: 1, params: { text: "hello" }, position: { x: 0, y: 0 } },
    { id: "join", type: "text.template", typeVersion: 1, params: { template: "{a}, world" }, position: { x: 300, y: 0 } },
    { id: "show", type: "output.preview", typeVersion: 1, params: {}, position: { x: 600, y: 0 } },
  ],
  edges: [
    { id: "e1", source: "prompt", sourceSocket: "text", target: "join", targetSocket: "a" },
    { id: "e2", source: "join", sourceSocket: "text", target: "show", targetSocket: "value" },
  ],
};

describe("cli", () => {
  const tmp = mkdtempSync(path.join(os.tmpdir(), "studio-cli-"));
  const file = path.join(tmp, "wf.json");
  writeFileSync(file, JSON.stringify(doc));

  it("--help lists every subcommand", () => {
    const r = cli("--help");
    expect(r.code).toBe(0);
    for (const c of ["run <workflow.json | saved workflow id>", "validate", "list", "--set", "--out"]) expect(r.out).toContain(c);
  });

  it("runs a workflow file with --set and writes outputs with --out", () => {
    const out = path.join(tmp, "out");
    const r = cli("run", file, "--set", "prompt.text=goodbye", "--out", out);
    expect(r.err).not.toMatch(/error/i);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/3 node\(s\) on cpu/);
    expect(r.out).toMatch(/finished in/);
    const show = JSON.parse(readFileSync(path.join(out, "show.json"), "utf8"));
    expect(show.summary.text).toBe("goodbye, world");
    expect(JSON.parse(readFileSync(path.join(out, "run.json"), "utf8")).status).toBe("finished");
  });

  it("--out: a node called run does not overwrite run.json (it gets run.2.json)", () => {
    const renamed = JSON.parse(JSON.stringify(doc).replaceAll('"show"', '"run"'));
    const f = path.join(tmp, "node-run.json");
    writeFileSync(f, JSON.stringify(renamed));
    const out = path.join(tmp, "out-run");
    const r = cli("run", f, "--out", out);
    expect(r.code, r.err).toBe(0);
    expect(JSON.parse(readFileSync(path.join(out, "run.json"), "utf8")).status).toBe("finished");
    expect(JSON.parse(readFileSync(path.join(out, "run.2.json"), "utf8")).summary.text).toBe("hello, world");
  });

  it("SIGTERM (timeout, systemd, docker stop) cancels the run like Ctrl+C: exit 130, recorded as cancelled", async () => {
    const busy = {
      schemaVersion: 2,
      name: "busy",
      nodes: [{ id: "loop", type: "utility.script", typeVersion: 1, params: { code: "while (true) {}", timeoutMs: 30000 }, position: { x: 0, y: 0 } }],
      edges: [],
    };
    const f = path.join(tmp, "busy.json");
    writeFileSync(f, JSON.stringify(busy));
    const child = spawn(process.execPath, [...cliEntry(), "run", f], { cwd: root, env: { ...process.env, STUDIO_DATA_DIR: dataDir } });
    let out = "", err = "";
    child.stdout.on("data", (b: Buffer) => void (out += b.toString()));
    child.stderr.on("data", (b: Buffer) => void (err += b.toString()));
    const code = await new Promise<number | null>((resolve) => {
      const poll = setInterval(() => {
        if (!/run (\S+): 1 node/.test(out)) return;
        clearInterval(poll);
        setTimeout(() => child.kill("SIGTERM"), 500);
      }, 100);
      child.on("exit", (c) => (clearInterval(poll), resolve(c)));
    });
    expect(code, err).toBe(130);
    expect(err).toContain("cancelled");
    const runId = /run (\S+): 1 node/.exec(out)![1]!.replace(/:$/, "");
    const { db } = await import("@/app/server/db");
    expect((await db().run.findUniqueOrThrow({ where: { id: runId } })).status).toBe("cancelled");
  }, 90_000);

  it("a reader that stops early (| head) ends the CLI quietly: exit 0, no EPIPE trace", async () => {
    const layout = path.join(tmp, "long-layout.json");
    writeFileSync(layout, JSON.stringify([{ kind: "text", tokens: 400_000 }]));
    const child = spawn(process.execPath, [...cliEntry(), "rope", "--layout", layout], { cwd: root, env: { ...process.env, STUDIO_DATA_DIR: dataDir } });
    let err = "";
    child.stderr.on("data", (b: Buffer) => void (err += b.toString()));
    child.stdout.once("data", () => child.stdout.destroy());
    const code = await new Promise<number | null>((resolve) => child.on("exit", resolve));
    expect(err).not.toContain("EPIPE");
    expect(code, err).toBe(0);
  }, 60_000);

  it("runs a saved workflow by id, recorded in the run history", async () => {
    const { createWorkflow } = await import("@/app/server/workflows");
    const { db } = await import("@/app/server/db");
    const { id } = await createWorkflow({ document: doc });
    const r = cli("run", id, "--to", "join");
    expect(r.code).toBe(0);
    expect(r.out).toContain("join: done");
    expect(r.out).not.toContain("show:");
    const runs = await db().run.findMany({ where: { workflowId: id } });
    expect(runs.map((x) => [x.status, x.targetNodeId])).toEqual([["finished", "join"]]);
  });

  it("fails with a node-attributed error and a non-zero exit", () => {
    const bad = structuredClone(doc);
    bad.nodes.push({ id: "pic", type: "input.image", typeVersion: 1, params: {}, position: { x: 0, y: 200 } } as never);
    bad.nodes.push({ id: "show2", type: "output.preview", typeVersion: 1, params: {}, position: { x: 300, y: 200 } } as never);
    bad.edges.push({ id: "e3", source: "pic", sourceSocket: "image", target: "show2", targetSocket: "value" });
    const f = path.join(tmp, "bad.json");
    writeFileSync(f, JSON.stringify(bad));
    const r = cli("run", f);
    expect(r.code).toBe(1);
    expect(r.err).toContain('Node "pic" (input.image)');
  });

  it("bad usage is exit 2 with a clear message", { timeout: 120_000 }, () => { // six CLI processes, one after another
    expect(cli("run", path.join(tmp, "missing.json"))).toMatchObject({ code: 2 });
    expect(cli("run", file, "--set", "nobody.text=x").err).toContain('there is no node "nobody"');
    expect(cli("run", file, "--set", "prompt.nope=x").err).toContain('has no param "nope"');
    expect(cli("frobnicate").code).toBe(2);
    const cyc = structuredClone(doc);
    cyc.edges.push({ id: "e9", source: "join", sourceSocket: "text", target: "join", targetSocket: "b" });
    const f = path.join(tmp, "cycle.json");
    writeFileSync(f, JSON.stringify(cyc));
    const r = cli("run", f);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/cycle/);
    // a cycle through two nodes is one problem (the editor marks both nodes): validate prints it once
    const two = structuredClone(doc);
    two.nodes.push({ id: "again", type: "text.template", typeVersion: 1, params: { template: "{a}" }, position: { x: 300, y: 200 } });
    two.edges.push({ id: "e8", source: "join", sourceSocket: "text", target: "again", targetSocket: "a" }, { id: "e9", source: "again", sourceSocket: "text", target: "join", targetSocket: "b" });
    const f2 = path.join(tmp, "cycle2.json");
    writeFileSync(f2, JSON.stringify(two));
    const v = cli("validate", f2);
    expect(v.code).toBe(1);
    expect(v.err.match(/cycle:/g)).toHaveLength(1);
    expect(existsSync(dataDir)).toBe(true);
  });
});
