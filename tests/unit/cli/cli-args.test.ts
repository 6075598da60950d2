import { spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it, vi } from "vitest";
import { copyOutput, numberOption, parseCommand, UsageError, writeOutput } from "@/app/server/cli-args";
import { freshDataDir } from "../../integration/fresh-db";

process.env.STUDIO_DATA_DIR = freshDataDir();
const { COMMANDS, HELP, main } = await import("@/app/server/cli");

/** Runs the CLI in-process, capturing what it prints. */
async function cli(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = "", err = "";
  const log = vi.spyOn(console, "log").mockImplementation((...a: unknown[]) => void (out += `${a.join(" ")}\n`));
  const error = vi.spyOn(console, "error").mockImplementation((...a: unknown[]) => void (err += `${a.join(" ")}\n`));
  const write = vi.spyOn(process.stdout, "write").mockImplementation(((s: string | Uint8Array, cb?: unknown) => {
    out += String(s);
    if (typeof cb === "function") (cb as () => void)();
    return true;
  }) as typeof process.stdout.write);
  try {
    return { code: await main(argv), out, err };
  } finally {
    log.mockRestore();
    error.mockRestore();
    write.mockRestore();
  }
}

describe("the CLI's arguments (node:util parseArgs)", () => {
  it("--help lists every command, from the one command list", async () => {
    for (const name of ["run", "validate", "list", "rope", "forward", "import", "inspect-checkpoint", "user", "token"]) {
      expect(COMMANDS.map((c) => c.name)).toContain(name);
      expect(HELP).toMatch(new RegExp(`^  ${name}\\b`, "m"));
    }
    expect(HELP).not.toContain("Later issues");
    const r = await cli("--help");
    expect(r.code).toBe(0);
    expect(r.out).toContain("import <checkpoint dir | org/name[@rev]>");
    expect((await cli("token", "--help")).out).toContain("token add <name>");
  });

  it("--opt=value works like --opt value (--out=DIR, --layout=FILE)", async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "cli-args-"));
    const layout = path.join(dir, "layout.json");
    writeFileSync(layout, JSON.stringify([{ kind: "text", tokens: 3 }]));
    const r = await cli("rope", `--layout=${layout}`, `--out=${path.join(dir, "ids.json")}`, "--mode=1d");
    expect(r.code, r.err).toBe(0);
    expect(JSON.parse(readFileSync(path.join(dir, "ids.json"), "utf8"))).toEqual({ t: [0, 1, 2], h: [0, 1, 2], w: [0, 1, 2] });
  });

  it("refuses bad numbers and unknown options with exit 2 and a message naming them", async () => {
    const v = await cli("run", "x.json", "--version", "x");
    expect(v.code).toBe(2);
    expect(v.err).toContain('--version must be an integer ≥ 1 (got "x")');
    const c = await cli("run", "x.json", "--concurrency=0", "--dataset", "d.jsonl");
    expect(c.code).toBe(2);
    expect(c.err).toContain('--concurrency must be an integer in 1..16 (got "0")');
    const t = await cli("forward", "--model", "m", "--ids", "1", "--out", "o.json", "--top-p", "lots");
    expect(t.err).toContain('--top-p must be a number');
    const u = await cli("list", "--bogus");
    expect(u.code).toBe(2);
    expect(u.err).toContain("list: unknown option --bogus");
    const missing = await cli("rope", "--layout");
    expect(missing.err).toContain("--layout needs a value");
    // a value that starts with "-": one line that says how to write it
    const dash = await cli("forward", "--model", "m", "--ids", "-1,2", "--out", "o.json");
    expect(dash.code).toBe(2);
    expect(dash.err.split("\n")[0]).toBe('error: forward: --ids needs a value (one starting with "-" is written --ids=-…)');
    // a lifetime past any date, an unknown graph: refused in one line, not a stack trace
    const days = await cli("token", "add", "t", "--days", "1e12");
    expect(days.code).toBe(2);
    expect(days.err).toContain('--days must be a number in (0, 36500] (got "1e12")');
    const graph = await cli("providers", "--placement", "nosuch", "--ep", "cpu");
    expect(graph.code).toBe(2);
    expect(graph.err).toContain('--placement: unknown graph "nosuch" (all, or one of: decoder:uni-moe-tiny/tiny');
    // sweeping the Dataset node while --dataset supplies the records would compare the same records
    const root = path.join(__dirname, "../../..");
    const sweep = await cli("run", path.join(root, "app/examples/datasets/text-workflow.json"), "--dataset", path.join(root, "app/examples/datasets/sample/records.jsonl"), "--sweep", "data.source=a.jsonl,b.jsonl");
    expect(sweep.code).toBe(2);
    expect(sweep.err).toContain("--sweep data.source: the Dataset node's records come from --dataset here");
    // an open bound is printed as one
    const p = await cli("forward", "--model", "m", "--ids", "1", "--out", "o.json", "--top-p", "0");
    expect(p.err).toContain('--top-p must be a number in (0, 1] (got "0")');
  });

  it("started by its path from another folder, it finds ONNX Runtime's files as from the project (no CUDA attempt)", { timeout: 120_000 }, () => {
    const cwd = mkdtempSync(path.join(os.tmpdir(), "cli-elsewhere-"));
    const root = path.join(__dirname, "../../..");
    const r = spawnSync(path.join(root, "node_modules/.bin/tsx"), ["--tsconfig", path.join(root, "tsconfig.json"), path.join(root, "app/server/cli.ts"), "forward", "--model", "uni-moe-tiny/tiny", "--ids", "1", "--out", "o.json"], { cwd, env: { ...process.env, STUDIO_EP: "" }, encoding: "utf8" });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain("wrote o.json");
    expect(r.stderr).not.toMatch(/onnxruntime|Failed to load/);
  });

  it("an --out that cannot be made is refused before the run, in one line (exit 2): a file in the way, /proc", { timeout: 60_000 }, async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "cli-out-"));
    const doc = path.join(dir, "wf.json");
    writeFileSync(doc, JSON.stringify({ schemaVersion: 2, name: "t", nodes: [{ id: "t", type: "input.text", typeVersion: 1, params: { text: "hi" }, position: { x: 0, y: 0 } }], edges: [] }));
    for (const [out, cause] of [["/dev/null/x", "cannot write --out /dev/null/x: ENOTDIR"], ["/proc/studio-nope/x", "cannot write --out /proc/studio-nope/x"]] as const) {
      const r = await cli("run", doc, `--out=${out}`);
      expect(r.code, out).toBe(2);
      expect(r.err).toContain(cause);
      expect(r.out).not.toContain("node(s) on"); // nothing ran
    }
    const nested = path.join(dir, "a", "b", "c");
    const ok = await cli("run", doc, "--out", nested);
    expect(ok.code, ok.err).toBe(0);
    expect(readFileSync(path.join(nested, "t.json"), "utf8")).toContain("hi");
  });

  it("numberOption and parseCommand on their own", () => {
    expect(numberOption(undefined, "--n")).toBeUndefined();
    expect(numberOption("2.5", "--n", { min: 0 })).toBe(2.5);
    expect(() => numberOption("", "--n")).toThrow(UsageError);
    expect(() => numberOption("3.5", "--n", { integer: true })).toThrow("--n must be an integer");
    expect(() => numberOption("Infinity", "--n")).toThrow("--n must be a number");
    expect(() => numberOption("0", "--days", { min: 0, aboveMin: true })).toThrow('--days must be a number > 0 (got "0")');
    expect(numberOption("1e-9", "--days", { min: 0, aboveMin: true })).toBe(1e-9);
    expect(parseCommand("x", ["--out=a=b", "p"], { out: { type: "string" } })).toMatchObject({ values: { out: "a=b" }, positionals: ["p"] });
  });

  it("rope --out of a layout of 300,000 segments: exit 0 (the summary's spread over the spans overflowed the stack after writing)", async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "cli-args-"));
    const layout = path.join(dir, "many.json");
    writeFileSync(layout, JSON.stringify(Array.from({ length: 300_000 }, () => ({ kind: "text", tokens: 1 }))));
    const r = await cli("rope", "--layout", layout, "--out", path.join(dir, "ids.json"));
    expect(r.code, r.err).toBe(0);
    expect(JSON.parse(readFileSync(path.join(dir, "ids.json"), "utf8")).t).toHaveLength(300_000);
  });

  it("validate prints a workflow's name and its problems as inert text (no terminal escapes, one line each)", async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "cli-args-"));
    const file = path.join(dir, "esc.json");
    const doc = {
      schemaVersion: 2,
      name: "evil\u001b]0;TITLE\u0007\u001b[31mRED\nsecond line",
      nodes: [{ id: "j", type: "text.template", typeVersion: 1, label: "\u001b[2Jx", params: {}, position: { x: 0, y: 0 } }],
      edges: [],
    };
    writeFileSync(file, JSON.stringify(doc));
    const r = await cli("validate", file);
    expect(r.out + r.err).not.toMatch(/[\u0007\u001b]/);
    expect(r.out.split("\n")[0]).toContain("evil\\u001b]0;TITLE");
    expect(r.err).toContain("\\u001b[2Jx");
  });

  it("outputs are written whole or not at all (a full disk left truncated JSON); devices are written in place", async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "cli-args-"));
    await writeOutput(path.join(dir, "a.json"), "{}");
    await writeOutput(path.join(dir, "a.json"), '{"v":2}');
    expect(readFileSync(path.join(dir, "a.json"), "utf8")).toBe('{"v":2}');
    await expect(copyOutput(path.join(dir, "missing.png"), path.join(dir, "b.png"))).rejects.toThrow(/ENOENT/);
    expect(readdirSync(dir)).toEqual(["a.json"]); // no b.png, no temp file left
    await writeOutput("/dev/null", "x");
    expect(statSync("/dev/null").isCharacterDevice()).toBe(true);
  });

  it("a value option given twice is refused (parseArgs kept the last one); repeatable options and flags may repeat", async () => {
    const options = { out: { type: "string" }, set: { type: "string", multiple: true }, dense: { type: "boolean" } } as const;
    expect(() => parseCommand("x", ["--out", "a", "--out=b"], options)).toThrow("x: --out is given more than once");
    expect(parseCommand("x", ["--set", "a", "--set", "b", "--dense", "--dense"], options).values).toEqual({ set: ["a", "b"], dense: true });
    const r = await cli("forward", "--model", "uni-moe-tiny/tiny", "--ids", "1", "--ids", "2", "--out", "/dev/null");
    expect(r.code).toBe(2);
    expect(r.err).toContain("forward: --ids is given more than once");
  });
});
