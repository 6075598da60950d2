import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { computePositionIds } from "@/engine/rope/positions";
import { cliEntry } from "../../cli-bundle";

// `npm run cli -- rope` as a user runs it: a separate process (the CLI bundle: tests/cli-bundle.ts). It needs no database.
const root = path.join(__dirname, "../../..");

function cli(...args: string[]) {
  const r = spawnSync(process.execPath, [...cliEntry(), ...args], {
    cwd: root,
    encoding: "utf8",
    timeout: 60_000,
  });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

describe("cli rope", () => {
  const tmp = mkdtempSync(path.join(os.tmpdir(), "studio-rope-"));
  const layout = [
    { kind: "text", tokens: 2 },
    { kind: "image", rows: 1, cols: 2, pool: 2 },
    { kind: "text", tokens: 1 },
    { kind: "video", frames: 8, pool: 1, secondsPerFrame: 2 },
    { kind: "audio", chunks: 1 },
    { kind: "text", tokens: 1 },
  ];
  const file = path.join(tmp, "layout.json");
  writeFileSync(file, JSON.stringify(layout));

  it("writes exactly { t, h, w } (default mode uni-moe)", () => {
    const out = path.join(tmp, "ids.json");
    const r = cli("rope", "--layout", file, "--out", out);
    expect(r.err).toBe("");
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/wrote 220 position id\(s\) \(mode uni-moe, max id 91\)/);
    const json = JSON.parse(readFileSync(out, "utf8")) as Record<string, unknown>;
    expect(Object.keys(json)).toEqual(["t", "h", "w"]);
    // by hand: text 0 1 | image st 2 (w up to 5) | text 6 | video st 7, t = 7 + 4f | audio st 36, 36 + 6k | text 91
    const t = json.t as number[];
    expect(t.slice(0, 11)).toEqual([0, 1, 2, 2, 2, 2, 2, 2, 2, 2, 6]);
    expect(t.slice(11, 19)).toEqual([7, 11, 15, 19, 23, 27, 31, 35]);
    expect(t[19]).toBe(36);
    expect(t.at(-2)).toBe(36 + 54);
    expect(t.at(-1)).toBe(91);
    const ref = computePositionIds(layout as never);
    expect(json).toEqual({ t: ref.t, h: ref.h, w: ref.w });
  });

  it("--mode selects the rule; without --out the ids go to stdout", () => {
    const r = cli("rope", "--layout", file, "--mode", "1d");
    expect(r.code).toBe(0);
    const json = JSON.parse(r.out) as { t: number[]; h: number[]; w: number[] };
    expect(Object.keys(json)).toEqual(["t", "h", "w"]);
    expect(json.t).toEqual(Array.from({ length: 220 }, (_, k) => k));
    const omni = JSON.parse(cli("rope", "--layout", file, "--mode", "qwen2.5-omni").out) as { t: number[] };
    expect(omni.t).toEqual(computePositionIds(layout as never, "qwen2.5-omni").t);
  });

  it("a bad layout exits 2 with a message naming the segment and field", () => {
    const bad = path.join(tmp, "bad.json");
    writeFileSync(bad, JSON.stringify([{ kind: "text", tokens: 2 }, { kind: "video", frames: 8, pool: 0 }]));
    const r = cli("rope", "--layout", bad, "--out", path.join(tmp, "x.json"));
    expect(r.code).toBe(2);
    expect(r.err).toContain("layout[1] (video).pool: pool (tokens per tile side, s) must be at least 1");
    const notJson = path.join(tmp, "not.json");
    writeFileSync(notJson, "[{kind: text}]");
    expect(cli("rope", "--layout", notJson)).toMatchObject({ code: 2 });
    expect(cli("rope", "--layout", path.join(tmp, "missing.json")).err).toContain("no such file");
    expect(cli("rope").err).toContain("rope needs --layout");
    expect(cli("rope", "--layout", file, "--mode", "2d").err).toContain("--mode must be one of uni-moe, uni-moe-released, qwen2-vl, qwen2.5-omni, 1d");
  });

  it("warns (stderr, exit 0) about frame counts the video sampler would not produce", () => {
    const odd = path.join(tmp, "odd.json");
    writeFileSync(odd, JSON.stringify([{ kind: "video", frames: 3, pool: 1 }]));
    const r = cli("rope", "--layout", odd, "--out", path.join(tmp, "odd-ids.json"));
    expect(r.code).toBe(0);
    expect(r.err).toMatch(/warning: layout\[0\] \(video\): 3 frame\(s\)/);
  });

  it("help lists rope; --layout stays unknown to other commands", () => {
    const h = cli("--help");
    expect(h.out).toContain("rope --layout <layout.json>");
    expect(h.out).not.toContain("Later issues");
    expect(cli("validate", file, "--layout", file).err).toContain("unknown option --layout");
  });
});
