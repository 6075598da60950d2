import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync, existsSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { compareAggregates } from "@/engine/batch/compare";
import { RoutingAggregate } from "@/engine/routing/aggregate";
import { freshDataDir } from "./fresh-db";
import { cliEntry } from "../cli-bundle";

// `cli run --dataset` as a user runs it: a separate process, killed mid-way and resumed.
const root = path.join(__dirname, "../..");
const tmp = mkdtempSync(path.join(os.tmpdir(), "studio-batch-cli-"));
const workflow = path.join(root, "app/examples/datasets/text-workflow.json");

function cli(dataDir: string, ...args: string[]) {
  const r = spawnSync(process.execPath, [...cliEntry(), ...args], { cwd: root, env: { ...process.env, STUDIO_DATA_DIR: dataDir }, encoding: "utf8", timeout: 300_000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

const TASKS = ["qa", "math", "chat"];
function dataset(name: string, n: number, extra = ""): string {
  const file = path.join(tmp, name);
  const rows = Array.from({ length: n }, (_, i) => JSON.stringify({ text: `Question ${i}: ${"why ".repeat(i % 5)}is the sky blue?`, task: TASKS[i % 3], label: i % 2 ? "b" : "a" }));
  writeFileSync(file, rows.join("\n") + "\n" + extra);
  return file;
}

const summaryLine = (out: string) => {
  const m = /records: ran (\d+), cached (\d+), failed (\d+) of (\d+)/.exec(out);
  if (!m) throw new Error(`no summary line in:\n${out}`);
  return { ran: Number(m[1]), cached: Number(m[2]), failed: Number(m[3]), total: Number(m[4]) };
};

describe("cli run --dataset", () => {
  it("resumes from the last finished record after the process is killed, and ends with the same aggregate as an uninterrupted run", async () => {
    const file = dataset("d48.jsonl", 48);
    const dataA = freshDataDir();
    // Start, and SIGKILL the process once at least 12 records are done (no chance to clean up). One
    // process (the CLI bundle, or tsx as a loader: not tsx's CLI, which would run the script in a child the kill misses).
    const killedAt = await new Promise<number>((resolve, reject) => {
      const child = spawn(process.execPath, [...cliEntry(), "run", workflow, "--dataset", file], { cwd: root, env: { ...process.env, STUDIO_DATA_DIR: dataA } });
      let out = "";
      let seen = 0;
      child.stdout.on("data", (b: Buffer) => {
        out += b.toString();
        const all = [...out.matchAll(/(\d+)\/48 records \(ran (\d+)/g)];
        if (all.length) seen = Number(all[all.length - 1]![2]);
        if (seen >= 12 && !child.killed) child.kill("SIGKILL");
      });
      child.on("exit", (_code, signal) => (signal === "SIGKILL" ? resolve(seen) : reject(new Error(`the run ended before it was killed:\n${out}`))));
    });
    expect(killedAt).toBeGreaterThanOrEqual(12);
    expect(killedAt).toBeLessThan(48);

    const out = path.join(tmp, "outA");
    const resumed = cli(dataA, "run", workflow, "--dataset", file, "--out", out);
    expect(resumed.code).toBe(0);
    const s = summaryLine(resumed.out);
    // What was finished before the kill comes from the store (a record may have landed after the last
    // progress line); the rest runs now.
    expect(s.cached).toBeGreaterThanOrEqual(killedAt);
    expect(s.cached).toBeLessThan(48);
    expect(s.ran + s.cached).toBe(48);
    expect(s.failed).toBe(0);

    const clean = path.join(tmp, "outB");
    const full = cli(freshDataDir(), "run", workflow, "--dataset", file, "--out", clean);
    expect(full.code).toBe(0);
    expect(summaryLine(full.out)).toEqual({ ran: 48, cached: 0, failed: 0, total: 48 });
    const a = JSON.parse(readFileSync(path.join(out, "aggregate.json"), "utf8"));
    const b = JSON.parse(readFileSync(path.join(clean, "aggregate.json"), "utf8"));
    // Batched (the default, 8 records per forward): records resumed in other batches than the clean run's differ
    // from it by float32 rounding only: every count identical, float sums within 1e-6 (engine/batch/compare.ts).
    expect(compareAggregates(a.aggregate, b.aggregate).diff).toBeNull();
    expect(a.datasetFingerprint).toBe(b.datasetFingerprint);
    expect(a.workflowFingerprint).toBe(b.workflowFingerprint);
    expect(a.workflow.nodes.map((n: { id: string }) => n.id)).toEqual(["data", "llm", "aggregate"]);
    const agg = RoutingAggregate.fromJSON(a.aggregate);
    expect(Object.values(agg.counts().traces).reduce((x, y) => x + y, 0)).toBe(48);
    expect(Object.keys(a.summary.byTask).sort()).toEqual(["chat", "math", "qa"]);
    const csv = readFileSync(path.join(out, "aggregate.csv"), "utf8");
    expect(csv.split("\n")[0]).toBe(`# workflow_fingerprint=${a.workflowFingerprint}`);

    // Nothing left to do: every record comes from the store.
    expect(summaryLine(cli(dataA, "run", workflow, "--dataset", file, "--out", out).out)).toEqual({ ran: 0, cached: 48, failed: 0, total: 48 });
  }, 600_000);

  it("sweeps a param: one aggregate per value and a sweep.json/.csv whose mean k grows with the routing Top-P", () => {
    const file = dataset("d6.jsonl", 6, "{oops\n");
    const out = path.join(tmp, "sweep");
    const r = cli(freshDataDir(), "run", workflow, "--dataset", file, "--sweep", "llm.routingTopP=0.3,0.95", "--out", out);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/1 bad row\(s\) skipped/);
    expect(r.err).toMatch(/bad row: line 7: not JSON/);
    const sweep = JSON.parse(readFileSync(path.join(out, "sweep.json"), "utf8"));
    expect(sweep.points.map((p: { value: number }) => p.value)).toEqual([0.3, 0.95]);
    expect(sweep.points[0].summary.all.meanK).toBeLessThan(sweep.points[1].summary.all.meanK);
    for (const i of [0, 1]) expect(existsSync(path.join(out, `aggregate-${i}.json`))).toBe(true);
    expect(readFileSync(path.join(out, "sweep.csv"), "utf8")).toMatch(/^# dataset_fingerprint=[0-9a-f]{64}\nvalue,status,meanK/);
  }, 300_000);

  it("--batch N: N records per model forward, the aggregate of one record per forward; --batch 1 runs unbatched", () => {
    const file = dataset("d10.jsonl", 10);
    const one = path.join(tmp, "batch1"), four = path.join(tmp, "batch4");
    const a = cli(freshDataDir(), "run", workflow, "--dataset", file, "--batch", "1", "--out", one);
    const b = cli(freshDataDir(), "run", workflow, "--dataset", file, "--batch", "4", "--out", four);
    for (const r of [a, b]) {
      expect(r.code).toBe(0);
      expect(summaryLine(r.out)).toEqual({ ran: 10, cached: 0, failed: 0, total: 10 });
    }
    expect(a.out).not.toMatch(/batched:/);
    // 10 records = batches of 4, 4, 2; each: the prompts, then 1 fed-back token (2 new tokens) → 6 forwards
    expect(b.out).toMatch(/batched: up to 4 records per forward; 6 model forwards for 20 record steps/);
    const x = JSON.parse(readFileSync(path.join(one, "aggregate.json"), "utf8"));
    const y = JSON.parse(readFileSync(path.join(four, "aggregate.json"), "utf8"));
    expect(compareAggregates(x.aggregate, y.aggregate).diff).toBeNull();
    expect(y.workflowFingerprint).toBe(x.workflowFingerprint);
  }, 300_000);

  it("bad usage gets a clear message and exit status 2", () => {
    const dataDir = freshDataDir();
    const a = cli(dataDir, "run", workflow, "--sweep", "llm.routingTopP=0.3,0.9");
    expect(a.code).toBe(2);
    expect(a.err).toMatch(/--sweep needs --dataset/);
    const b = cli(dataDir, "run", workflow, "--dataset", path.join(tmp, "nope.jsonl"));
    expect(b.code).toBe(2);
    expect(b.err).toMatch(/does not exist/);
    const c = cli(dataDir, "run", workflow, "--dataset", dataset("d2.jsonl", 2), "--sweep", "llm.nope=1,2");
    expect(c.code).toBe(2);
    expect(c.err).toMatch(/has no param "nope"/);
    const d = cli(dataDir, "run", workflow, "--dataset", dataset("d2.jsonl", 2), "--batch", "0");
    expect(d.code).toBe(2);
    expect(d.err).toMatch(/--batch/);
    const e = cli(dataDir, "run", workflow, "--batch", "4");
    expect(e.code).toBe(2);
    expect(e.err).toMatch(/--batch needs --dataset/);
    // a workflow with no Dataset node (its prompt a Text node): usage, refused before the dataset is read, no --out left behind
    const doc = JSON.parse(readFileSync(workflow, "utf8")) as { nodes: { id: string; type: string; params: unknown }[]; edges: { source: string }[] };
    doc.nodes = doc.nodes.map((n) => (n.id === "data" ? { ...n, type: "input.text", params: { text: "hi" } } : n));
    doc.edges = doc.edges.filter((e, i) => i < 2);
    const plain = path.join(tmp, "no-dataset-node.json");
    writeFileSync(plain, JSON.stringify(doc));
    const out = path.join(tmp, "no-dataset-node");
    const f = cli(dataDir, "run", plain, "--dataset", dataset("d1.jsonl", 1), "--out", out);
    expect(f.code, f.err).toBe(2);
    expect(f.err).toMatch(/no Dataset node feeds "llm"/);
    expect(existsSync(out)).toBe(false);
  }, 300_000);
});
