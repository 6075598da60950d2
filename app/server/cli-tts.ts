/**
 * `tts-forward`: a teacher-forced forward of the released MoE-TTS (dispatched from cli.ts). The input and output
 * formats are a scripting contract (issue 17, RELEASED.md §1.12); see models/tts-released-run.ts teacherForced.
 *   npm run cli -- tts-forward --model <dir or ref> --input input.json --out result.json
 */
import { existsSync, statSync } from "node:fs";
import { readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { z } from "zod";
import { float32Shortest } from "@/engine/routing/export";
import { isSpeechDir, openOmniCheckpointSpeech, openSpeechDir, resolveSpeechRef, speechRunner, type ResolvedSpeech } from "@/models/tts-released-model";
import { teacherForced } from "@/models/tts-released-run";

export const TTS_FORWARD_HELP = `  tts-forward --model <dir or ref> --input <input.json> --out <result.json>
                                            Teacher-forced forward of the released MoE-TTS. --model: an imported one
                                            (<family>/<name>/speech, uni_moe_tts/<name>) or a folder with the Omni
                                            checkpoint's config.json and speech_generator.* safetensors. Input:
                                            { "text_ids", "prompt_ids" (null: no style block), "prefix_codes" (null),
                                            "codes", "mode": { "attention": none|prefix_causal|causal, "steps":
                                            recompute|single, "capacity": train|eval|off } } (defaults: the release,
                                            none/recompute/train). Output: { "logits": [[V+9] × (n+1)], "layers":
                                            [{ "router_logits", "selected", "mask", "weights" } × layers] } over all
                                            rows of the full-length forward (mask/weights after capacity drops).`;

class TtsUsageError extends Error {}

const ids = z.array(z.number().int().nonnegative());
export const zTtsForwardInput = z.object({
  text_ids: ids,
  prompt_ids: ids.nullable().default(null),
  prefix_codes: ids.nullable().default(null),
  codes: ids,
  mode: z
    .object({
      attention: z.enum(["none", "prefix_causal", "causal"]).default("none"),
      steps: z.enum(["recompute", "single"]).default("recompute"),
      capacity: z.enum(["train", "eval", "off"]).default("train"),
    })
    .default({ attention: "none", steps: "recompute", capacity: "train" }),
});

function parse(argv: string[]): { model: string; input: string; out: string } {
  const a: Partial<Record<"model" | "input" | "out", string>> = {};
  for (let i = 1; i < argv.length; i++) {
    const flag = argv[i]!;
    const key = ({ "--model": "model", "--input": "input", "--out": "out" } as const)[flag as "--model"];
    if (!key) throw new TtsUsageError(flag.startsWith("--") ? `unknown option ${flag}` : `unexpected argument "${flag}"`);
    const v = argv[++i];
    if (v === undefined) throw new TtsUsageError(`${flag} needs a value`);
    a[key] = v;
  }
  for (const k of ["model", "input", "out"] as const) if (!a[k]) throw new TtsUsageError(`tts-forward needs --${k}`);
  return a as { model: string; input: string; out: string };
}

function openModel(model: string): ResolvedSpeech {
  if (existsSync(model) && statSync(model).isDirectory()) {
    const dir = path.resolve(model);
    return isSpeechDir(dir) ? openSpeechDir(dir, model) : openOmniCheckpointSpeech(dir);
  }
  const r = resolveSpeechRef(model);
  if (!r) throw new Error(`"${model}" is not a released MoE-TTS (import an Omni checkpoint with speech_generator.* tensors, or give its folder)`);
  return r;
}

const rowF32 = (xs: number[]) => xs.map(float32Shortest);

/** Runs `tts-forward`; returns the exit status (2 = bad usage or input, 1 = the model cannot run it). */
export async function runTtsForward(argv: string[]): Promise<number> {
  if (argv.includes("--help") || argv.includes("-h")) {
    console.log(`Usage: npm run cli -- <command> [options]\n\n${TTS_FORWARD_HELP}`);
    return 0;
  }
  try {
    const a = parse(argv);
    let raw: unknown;
    try {
      raw = JSON.parse(await readFile(a.input, "utf8"));
    } catch (e) {
      throw new TtsUsageError(`cannot read --input ${a.input}: ${(e as Error).message}`);
    }
    const input = zTtsForwardInput.safeParse(raw);
    if (!input.success) throw new TtsUsageError(`${a.input}: ${input.error.issues.map((i) => `${i.path.join(".") || "input"}: ${i.message}`).join("; ")}`);
    let model: ResolvedSpeech;
    try {
      model = openModel(a.model);
    } catch (e) {
      throw new TtsUsageError((e as Error).message);
    }
    const runner = await speechRunner(model, { kvCache: false, dropout: false });
    const result = await teacherForced(runner, input.data);
    const json = {
      logits: result.logits.map(rowF32),
      layers: result.layers.map((l) => ({ router_logits: l.router_logits.map(rowF32), selected: l.selected, mask: l.mask, weights: l.weights.map(rowF32) })),
    };
    await writeFile(a.out, JSON.stringify(json));
    const S = result.layers[0]?.mask.length ?? 0;
    const m = input.data.mode;
    console.log(`wrote ${a.out}: ${result.logits.length} logit rows of ${result.logits[0]?.length ?? 0}, ${result.layers.length} layers × ${S} rows (${m.attention}/${m.steps}/${m.capacity})`);
    return 0;
  } catch (err) {
    const usage = err instanceof TtsUsageError;
    console.error(`error: ${(err as Error).message}${usage ? "\n(npm run cli -- --help lists the commands)" : ""}`);
    return usage ? 2 : 1;
  }
}
