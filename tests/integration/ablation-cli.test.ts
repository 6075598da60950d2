import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import type { AblationTable } from "@/engine/batch/ablation";
import { freshDataDir } from "./fresh-db";
import { cliEntry } from "../cli-bundle";

// `cli run --dataset … --ablate` as a user runs it: a separate process, SIGKILLed mid-sweep and resumed.
const root = path.join(__dirname, "../..");
const tmp = mkdtempSync(path.join(os.tmpdir(), "studio-ablation-cli-"));
const workflow = path.join(root, "app/examples/datasets/ablation-workflow.json");
const dataset = path.join(root, "app/examples/datasets/sample/records.jsonl");
const models = path.join(tmp, "models");
const env = (dataDir: string) => ({ ...process.env, STUDIO_DATA_DIR: dataDir, STUDIO_MODELS_DIR: models });

function cli(dataDir: string, ...args: string[]) {
  const r = spawnSync(process.execPath, [...cliEntry(), ...args], { cwd: root, env: env(dataDir), encoding: "utf8", timeout: 600_000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

const results = (t: AblationTable) => t.rows.map(({ records: _r, ...rest }) => rest);

describe("cli run --dataset --ablate", () => {
  it("resumes after a kill and ends with the same table as an uninterrupted run; CSV and safetensors carry the fingerprints", async () => {
    const dataA = freshDataDir();
    // SIGKILL once the third ablation ([3/6]) has records done: the baseline and two ablations are in the ledger.
    const killedIn = await new Promise<string>((resolve, reject) => {
      const child = spawn(process.execPath, [...cliEntry(), "run", workflow, "--dataset", dataset, "--ablate", "experts"], { cwd: root, env: env(dataA) });
      let out = "";
      child.stdout.on("data", (b: Buffer) => {
        out += b.toString();
        const at = out.lastIndexOf("[3/6]");
        if (at >= 0 && /\b[1-9]\d*\/36 records/.test(out.slice(at)) && !child.killed) child.kill("SIGKILL");
      });
      child.stderr.on("data", (b: Buffer) => (out += b.toString()));
      child.on("exit", (_code, signal) => (signal === "SIGKILL" ? resolve(out) : reject(new Error(`the sweep ended before it was killed:\n${out}`))));
    });
    expect(killedIn).toMatch(/cost: 36 records × 7 passes \(baseline \+ 6\) × ≈[\d,]+ text tokens per pass/);

    const outA = path.join(tmp, "resumed");
    const resumed = cli(dataA, "run", workflow, "--dataset", dataset, "--ablate", "experts", "--out", outA);
    expect(resumed.code, resumed.err).toBe(0);
    const a = JSON.parse(readFileSync(path.join(outA, "ablation.json"), "utf8")) as AblationTable;
    // The baseline and the first two ablations came from the ledger; the third partly.
    expect(a.baseline.records).toMatchObject({ ran: 0, cached: 36 });
    expect(a.rows[0]!.records).toMatchObject({ ran: 0, cached: 36 });
    expect(a.rows[1]!.records).toMatchObject({ ran: 0, cached: 36 });
    expect(a.rows[2]!.records.cached).toBeGreaterThan(0);
    expect(a.rows[5]!.records).toMatchObject({ ran: 36, cached: 0 });

    const outB = path.join(tmp, "clean");
    const clean = cli(freshDataDir(), "run", workflow, "--dataset", dataset, "--ablate", "experts", "--out", outB);
    expect(clean.code, clean.err).toBe(0);
    const b = JSON.parse(readFileSync(path.join(outB, "ablation.json"), "utf8")) as AblationTable;
    expect(results(a)).toEqual(results(b));
    expect(a.baseline.nll).toEqual(b.baseline.nll);
    expect(a.rows.map((r) => r.id)).toEqual(["*.E1", "*.E2", "*.E3", "*.E4", "k=1", "no-null"]);
    expect(a.tasks).toEqual(["*", "caption", "math", "translate", "code"]);
    expect(readFileSync(path.join(outA, "ablation.csv"), "utf8")).toBe(readFileSync(path.join(outB, "ablation.csv"), "utf8"));
    expect(readFileSync(path.join(outA, "ablation.safetensors")).equals(readFileSync(path.join(outB, "ablation.safetensors")))).toBe(true);
    expect(readFileSync(path.join(outA, "ablation.csv"), "utf8").split("\n")[1]).toBe(`# dataset_fingerprint=${a.datasetFingerprint}`);
    expect(resumed.out).toMatch(/baseline: mean NLL \d+\.\d{4} over \d+ scored tokens of 36 records; ran 0, cached 36/);
  }, 900_000);

  it("bad usage: no scoring mode, a bad spec, --ablate with --sweep; exit status 2 with the cause", () => {
    const dataDir = freshDataDir();
    const gen = cli(dataDir, "run", path.join(root, "app/examples/datasets/text-workflow.json"), "--dataset", dataset, "--ablate", "experts");
    expect(gen.code).toBe(2);
    expect(gen.err).toMatch(/set "llm"'s mode to score-answer/);
    const bad = cli(dataDir, "run", workflow, "--dataset", dataset, "--ablate", "subset:L9.E1");
    expect(bad.code).toBe(2);
    expect(bad.err).toMatch(/layer 9 does not exist \(L0\.\.L7\)/);
    const both = cli(dataDir, "run", workflow, "--dataset", dataset, "--ablate", "experts", "--sweep", "llm.routingTopP=0.5,0.9");
    expect(both.code).toBe(2);
    expect(both.err).toMatch(/--ablate and --sweep do not go together/);
    expect(cli(dataDir, "run", workflow, "--ablate", "experts").err).toMatch(/--ablate needs --dataset/);
  }, 300_000);
});
