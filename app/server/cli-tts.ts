/**
 * `tts-forward`: a teacher-forced forward of the released MoE-TTS (one entry of cli.ts's COMMANDS). The input and output
 * formats are a scripting contract (issue 17, RELEASED.md §1.12); see models/tts/tts-released-run.ts teacherForced.
 *   npm run cli -- tts-forward --model <dir or ref> --input input.json --out result.json
 */
import { existsSync, statSync } from "node:fs";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { z } from "zod";
import { float32Shortest } from "@/engine/routing/export";
import { isSpeechDir, openOmniCheckpointSpeech, openSpeechDir, resolveSpeechRef, speechRunner, type ResolvedSpeech } from "@/models/tts/tts-released-model";
import { teacherForced } from "@/models/tts/tts-released-run";
import { MAX_CODES_PER_CHUNK } from "@/models/tts/tts-released-synth";
import { config } from "@/engine/config";
import { parseCommand, UsageError, writeOutput, type CliCommand } from "./cli-args";

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

const ids = z.array(z.number().int().nonnegative());
// strict: a misspelt key ("atention", "promt_ids") is refused, not run with the default
export const zTtsForwardInput = z
  .object({
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
      .strict()
      .default({ attention: "none", steps: "recompute", capacity: "train" }),
  })
  .strict();

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

/** Rows all of recompute's forwards may take together (1000 codes after 1000 ids: 1.5 M). */
const MAX_RECOMPUTE_ROWS = 2_000_000;

export const ttsForwardCommand: CliCommand = {
  name: "tts-forward",
  help: TTS_FORWARD_HELP,
  async run(argv) {
    const { values: a, positionals } = parseCommand("tts-forward", argv, { model: { type: "string" }, input: { type: "string" }, out: { type: "string" } });
    if (positionals.length) throw new UsageError(`unexpected argument "${positionals[0]}"`);
    if (!a.model || !a.input || !a.out) throw new UsageError(`tts-forward needs --${!a.model ? "model" : !a.input ? "input" : "out"}`);
    let raw: unknown;
    try {
      raw = JSON.parse(await readFile(a.input, "utf8"));
    } catch (e) {
      throw new UsageError(`cannot read --input ${a.input}: ${(e as Error).message}`);
    }
    const input = zTtsForwardInput.safeParse(raw);
    if (!input.success) throw new UsageError(`${a.input}: ${input.error.issues.map((i) => `${i.path.join(".") || "input"}: ${i.message}`).join("; ")}`);
    // the forward is over every id given (and `recompute` runs one forward per code): bounded like an MoE-LLM sequence
    const d = input.data, tokens = d.text_ids.length + (d.prompt_ids?.length ?? 0) + (d.prefix_codes?.length ?? 0) + d.codes.length;
    const limit = config().STUDIO_MAX_CONTEXT_TOKENS;
    if (tokens > limit) throw new UsageError(`${a.input}: the input has ${tokens.toLocaleString("en")} ids; at most STUDIO_MAX_CONTEXT_TOKENS (${limit}) fit`);
    // recompute runs n+1 forwards of C+1 … C+1+n rows: bounded by the release's codes per chunk, and in rows all told
    if (d.mode.steps === "recompute") {
      const n = d.codes.length, rows = (n + 1) * (tokens - n + 1) + (n * (n + 1)) / 2;
      if (n > MAX_CODES_PER_CHUNK) throw new UsageError(`${a.input}: ${n} codes; steps "recompute" runs one forward per code and takes at most ${MAX_CODES_PER_CHUNK} (the release's codes per chunk); use steps "single" for more`);
      if (rows > MAX_RECOMPUTE_ROWS) throw new UsageError(`${a.input}: steps "recompute" would run ${n + 1} forwards of ${(rows / 1e6).toFixed(1)} M rows in all; at most ${MAX_RECOMPUTE_ROWS / 1e6} M (shorten the conditioning or the codes, or use steps "single")`);
    }
    let model: ResolvedSpeech;
    try {
      model = openModel(a.model);
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
    let result: Awaited<ReturnType<typeof teacherForced>>;
    try {
      result = await teacherForced(await speechRunner(model, { kvCache: false, dropout: false }), input.data);
    } catch (e) {
      console.error(`error: ${(e as Error).message}`); // the model cannot run this input: status 1, not a usage error
      return 1;
    }
    const json = {
      logits: result.logits.map(rowF32),
      layers: result.layers.map((l) => ({ router_logits: l.router_logits.map(rowF32), selected: l.selected, mask: l.mask, weights: l.weights.map(rowF32) })),
    };
    try {
      await writeOutput(a.out, JSON.stringify(json));
    } catch (err) {
      throw new UsageError(`cannot write ${a.out}: ${(err as Error).message}`);
    }
    const S = result.layers[0]?.mask.length ?? 0;
    const m = input.data.mode;
    console.log(`wrote ${a.out}: ${result.logits.length} logit rows of ${result.logits[0]?.length ?? 0}, ${result.layers.length} layers × ${S} rows (${m.attention}/${m.steps}/${m.capacity})`);
    return 0;
  },
};
