import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { speechDims } from "@/models/tts/tts-released";
import { conditioningRows, speechCapacity, type SpeechMode } from "@/models/tts/tts-released-run";
import { referenceSpeechForward, seedSpeechWeights, speechCodes } from "../unit/tts/released-reference";
import { writeOmniSpeechCheckpoint } from "../unit/tts/omni-speech";
import { cliEntry } from "../cli-bundle";

// `cli tts-forward` is a scripting contract (issue 17): exact shape, rows as specified, numbers from the reference.
const root = path.join(__dirname, "../..");
const tmp = mkdtempSync(path.join(os.tmpdir(), "studio-ttsfwd-"));
const ckpt = path.join(tmp, "Uni-MoE-2.0-Omni");
let speech: Awaited<ReturnType<typeof writeOmniSpeechCheckpoint>>["speech"];

function cli(...args: string[]) {
  const r = spawnSync(process.execPath, [...cliEntry(), ...args], {
    cwd: root,
    env: { ...process.env, STUDIO_MODELS_DIR: path.join(tmp, "models") },
    encoding: "utf8",
    timeout: 120_000,
  });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

beforeAll(async () => {
  ({ speech } = await writeOmniSpeechCheckpoint(ckpt));
}, 60_000);

describe("cli tts-forward on a generated Omni checkpoint folder", () => {
  const text_ids = [84, 104, 101, 32, 99, 97, 116, 46];
  const codes = [5, 12, 12, 40, 63, 2, 9];

  function reference(mode: SpeechMode, prompt: number[] | null) {
    const W = seedSpeechWeights(speech, 19);
    const cond = conditioningRows(speech, text_ids, prompt, null);
    const C = cond.length;
    const all = [...cond, { kind: "audio" as const, id: speechCodes(speech).SOS }, ...codes.map((id) => ({ kind: "audio" as const, id }))];
    const { Vo } = speechDims(speech);
    const fwd = (S: number) => referenceSpeechForward(speech, W, all.slice(0, S), C, { attention: mode.attention, cap: speechCapacity(speech, S, mode.capacity) });
    const full = fwd(all.length);
    const logits = Array.from({ length: codes.length + 1 }, (_, t) => {
      if (mode.steps === "single") return full.logits.subarray((C + t) * Vo, (C + t + 1) * Vo);
      const S = C + 1 + t;
      return fwd(S).logits.subarray((S - 1) * Vo, S * Vo);
    });
    return { logits, full, S: all.length };
  }

  for (const [mode, prompt, defaults] of [
    [{ attention: "none", steps: "recompute", capacity: "train" }, [76, 58], true],
    [{ attention: "prefix_causal", steps: "single", capacity: "eval" }, null, false],
    [{ attention: "causal", steps: "recompute", capacity: "off" }, [], false],
  ] as [SpeechMode, number[] | null, boolean][]) {
    it(`${mode.attention}/${mode.steps}/${mode.capacity}${defaults ? " (mode left to its defaults)" : ""}: { logits [(n+1) × (V+9)], layers [{ router_logits, selected, mask, weights }] } as the reference`, () => {
      const input = path.join(tmp, "input.json");
      const out = path.join(tmp, "result.json");
      writeFileSync(input, JSON.stringify({ text_ids, prompt_ids: prompt, prefix_codes: null, codes, ...(defaults ? {} : { mode }) }));
      const r = cli("tts-forward", "--model", ckpt, "--input", input, "--out", out);
      expect(r.err).toBe("");
      expect(r.code).toBe(0);
      const result = JSON.parse(readFileSync(out, "utf8"));
      const ref = reference(mode, prompt);
      const { Vo, L, E } = speechDims(speech);
      expect(Object.keys(result).sort()).toEqual(["layers", "logits"]);
      expect(result.logits).toHaveLength(codes.length + 1);
      expect(result.logits[0]).toHaveLength(Vo);
      expect(result.layers).toHaveLength(L);
      let d = 0;
      result.logits.forEach((row: number[], t: number) => row.forEach((v, j) => (d = Math.max(d, Math.abs(v - ref.logits[t]![j]!)))));
      for (const [l, layer] of (result.layers as Record<string, number[][]>[]).entries()) {
        expect(Object.keys(layer).sort()).toEqual(["mask", "router_logits", "selected", "weights"]);
        expect(layer.router_logits).toHaveLength(ref.S);
        expect(layer.router_logits![0]).toHaveLength(E);
        expect(layer.selected!.flat()).toEqual(ref.full.routing[l]!.selected);
        expect(layer.mask!.flat()).toEqual(Array.from(ref.full.routing[l]!.mask));
        layer.weights!.flat().forEach((v, j) => (d = Math.max(d, Math.abs(v - ref.full.routing[l]!.weights[j]!))));
      }
      console.log(`tts-forward ${mode.attention}/${mode.steps}/${mode.capacity}: max |Δ| ${d.toExponential(2)}`);
      expect(d).toBeLessThanOrEqual(1e-4);
    }, 120_000);
  }

  it("bad input is refused with exit 2 naming the field; --help lists tts-forward", () => {
    const input = path.join(tmp, "bad.json");
    writeFileSync(input, JSON.stringify({ text_ids: [1, 2], codes: [1], mode: { attention: "sideways" } }));
    const r = cli("tts-forward", "--model", ckpt, "--input", input, "--out", path.join(tmp, "x.json"));
    expect(r.code).toBe(2);
    expect(r.err).toContain("mode.attention");
    // a misspelt key is refused (it ran with the default); an input past the context limit too (it ran for minutes)
    writeFileSync(input, JSON.stringify({ text_ids: [1, 2], codes: [1], mode: { atention: "causal" } }));
    const typo = cli("tts-forward", "--model", ckpt, "--input", input, "--out", path.join(tmp, "x.json"));
    expect(typo.code).toBe(2);
    expect(typo.err).toMatch(/mode: Unrecognized key: "atention"/);
    writeFileSync(input, JSON.stringify({ text_ids: Array(5000).fill(1), codes: Array(5000).fill(1) }));
    const long = cli("tts-forward", "--model", ckpt, "--input", input, "--out", path.join(tmp, "x.json"));
    expect(long.code).toBe(2);
    expect(long.err).toContain("the input has 10,000 ids; at most STUDIO_MAX_CONTEXT_TOKENS (8192) fit");
    // recompute runs one forward per code: at most the release's 1000 codes per chunk (4000 ran over 5 minutes)
    writeFileSync(input, JSON.stringify({ text_ids: [1, 2, 3], codes: Array(1001).fill(1) }));
    const recompute = cli("tts-forward", "--model", ckpt, "--input", input, "--out", path.join(tmp, "x.json"));
    expect(recompute.code).toBe(2);
    expect(recompute.err).toContain('1001 codes; steps "recompute" runs one forward per code and takes at most 1000');
    // … and the conditioning before the codes multiplies it (7,000 ids and 1,000 codes ran past 5 minutes)
    writeFileSync(input, JSON.stringify({ text_ids: Array(7000).fill(1), codes: Array(1000).fill(1) }));
    const rows = cli("tts-forward", "--model", ckpt, "--input", input, "--out", path.join(tmp, "x.json"));
    expect(rows.code).toBe(2);
    expect(rows.err).toContain('steps "recompute" would run 1001 forwards of 7.5 M rows in all; at most 2 M');
    const missing = cli("tts-forward", "--model", path.join(tmp, "nowhere"), "--input", input, "--out", path.join(tmp, "x.json"));
    expect(missing.code).toBe(2);
    expect(cli("--help").out).toContain("tts-forward --model <dir or ref> --input <input.json> --out <result.json>");
  }, 120_000);
});
