/**
 * Interrupted imports resume: a real CLI import (child process) is SIGKILLed mid-write, the next import picks up
 * its journal, writes only the rest, and produces the same files as a clean import; torn tails, changed sources,
 * concurrent imports and stale locks.
 */
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, truncateSync, writeFileSync, openSync, writeSync, closeSync, statSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import * as ort from "onnxruntime-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { zMoeLlmConfig } from "@/models/moe-llm/config";
import { journalFile, type JournalEntry } from "@/models/import/external-graph";
import { DATA_FILE, GRAPH_FILE, IMPORT_GRAPH, IMPORT_VERSION, importCheckpoint, type ImportProgress, type ImportResult } from "@/models/import/import";
import { acquireImportLock, partialDir } from "@/models/import/resume";
import { MoeLlmRunner } from "@/models/moe-llm/moe-llm-session";
import { referenceForward, type Tensors } from "../../reference/families/topk-moe";
import { zAudioConfig } from "@/models/encoders/audio-encoder";
import { seedEncoderWeights } from "@/models/encoders/encoders-tiny";
import { writeSafetensors } from "@/models/io/safetensors";
import { zVisionConfig } from "@/models/encoders/vision-encoder";
import type { Tensor32 } from "@/models/io/weights";
import { randomConfig, randomIds, randomWeights } from "../../reference/random";
import { writeFamilyCheckpoint } from "./family-checkpoints";
import { cliEntry } from "../../cli-bundle";

const tmp = mkdtempSync(path.join(os.tmpdir(), "import-resume-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** ~160 MB of fp32 weights: long enough to kill the import mid-write. */
const BIG = { hidden_size: 256, num_hidden_layers: 6, num_attention_heads: 8, num_key_value_heads: 4, vocab_size: 4000, intermediate_size: 1024 };
const src = path.join(tmp, "src");
let config: Record<string, unknown>;
let tensors: Tensors;
let clean: ImportResult;

const sha256 = (file: string) => createHash("sha256").update(readFileSync(file)).digest("hex");
const journal = (dataFile: string): JournalEntry[] =>
  readFileSync(journalFile(dataFile), "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l) as JournalEntry);

interface CliRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  pid: number;
  progress: ImportProgress[];
  result?: { status: string; ref: string; build?: ImportResult["build"] };
  stderr: string;
}

/**
 * `npm run cli -- import <src> --name m --json` as a child process (the real CLI entry); `killWhen` decides from
 * each progress line whether to SIGKILL it there; `onStart` sees the first progress line.
 */
function cliImport(root: string, opts: { killWhen?: (p: ImportProgress) => boolean; onFirstWrite?: (pid: number) => void | Promise<void> } = {}): Promise<CliRun> {
  const child = spawn(process.execPath, [...cliEntry(), "import", src, "--name", "m", "--json"], {
    env: { ...process.env, STUDIO_MODELS_DIR: root },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const run: CliRun = { code: null, signal: null, pid: child.pid!, progress: [], stderr: "" };
  let buf = "";
  let wrote = false;
  child.stdout.on("data", (d: Buffer) => {
    buf += d.toString();
    for (let i; (i = buf.indexOf("\n")) >= 0; buf = buf.slice(i + 1)) {
      const line = buf.slice(0, i);
      if (!line.startsWith("{")) continue;
      const msg = JSON.parse(line) as { progress?: ImportProgress; result?: CliRun["result"] };
      if (msg.result) run.result = msg.result;
      const p = msg.progress;
      if (!p) continue;
      run.progress.push(p);
      if (p.phase === "writing" && !wrote) {
        wrote = true;
        void opts.onFirstWrite?.(run.pid);
      }
      if (opts.killWhen?.(p)) child.kill("SIGKILL");
    }
  });
  child.stderr.on("data", (d: Buffer) => void (run.stderr += d.toString()));
  return new Promise((resolve) =>
    child.on("close", (code, signal) => {
      run.code = code;
      run.signal = signal;
      resolve(run);
    }),
  );
}

/** Runs the imported graph and compares logits and routing with the plain-TS Mixtral reference (1e-4). */
async function runsLikeReference(dir: string): Promise<void> {
  const canonical = zMoeLlmConfig.parse(JSON.parse(readFileSync(path.join(dir, "config.json"), "utf8")));
  const session = await ort.InferenceSession.create(path.join(dir, GRAPH_FILE), { intraOpNumThreads: 1 });
  try {
    const runner = MoeLlmRunner.fromSession(canonical, IMPORT_GRAPH, session);
    const S = 5;
    const ids = randomIds(S, config.vocab_size as number, 11);
    const out = await runner.forward({ batch: 1, seq: S, ids, positions: Array.from({ length: 3 * S }, (_, q) => q % S) });
    const ref = referenceForward("mixtral", config, tensors, ids);
    const flat = ref.logits.flat();
    let logitDiff = 0;
    for (let i = 0; i < flat.length; i++) logitDiff = Math.max(logitDiff, Math.abs(out.logits[i]! - flat[i]!));
    expect(out.logits.length).toBe(flat.length);
    ref.layers.forEach((layer, l) => expect(Array.from(out.trace![l]!.mask)).toEqual(layer.mask.flat()));
    console.log(`resumed import vs reference: max |Δlogits| ${logitDiff.toExponential(2)}`);
    expect(logitDiff).toBeLessThan(1e-4);
  } finally {
    await session.release();
  }
}

const familyDir = (root: string) => path.join(root, "mixtral");
const partials = (root: string) => readdirSync(familyDir(root)).filter((e) => e.startsWith(".m.partial-"));

/** A partial build of `src` left by a SIGKILLed CLI import (kept aside; each test works on its own copy). */
const killedRoot = path.join(tmp, "killed");
let killed: CliRun;

beforeAll(async () => {
  ({ config, tensors } = await writeFamilyCheckpoint(src, "mixtral", { seed: 7, configOverride: BIG }));
  clean = await importCheckpoint(src, { root: path.join(tmp, "clean"), name: "m" });
  expect(clean.build!.resumedBytes).toBe(0);
  // at 20 % (33 MB) the builder has journaled at least one 16 MB batch, and most of the import is still ahead
  killed = await cliImport(killedRoot, { killWhen: (p) => p.phase === "writing" && p.bytes >= 0.2 * p.totalBytes });
}, 300_000);

/** A copy of the killed import's models dir (partial folder + its stale lock). */
function copyKilled(name: string): string {
  const root = path.join(tmp, name);
  cpSync(killedRoot, root, { recursive: true });
  return root;
}

describe("an import killed mid-write", () => {
  it("leaves a journaled partial build and a stale lock, no model", () => {
    expect(killed.signal).toBe("SIGKILL");
    const writing = killed.progress.filter((p) => p.phase === "writing");
    expect(writing.at(-1)!.bytes).toBeGreaterThan(0);
    expect(existsSync(path.join(familyDir(killedRoot), "m"))).toBe(false);
    const [partial] = partials(killedRoot);
    expect(partial).toBeDefined();
    const entries = journal(path.join(familyDir(killedRoot), partial!, DATA_FILE));
    expect(entries.length).toBeGreaterThan(0);
    const lock = JSON.parse(readFileSync(path.join(familyDir(killedRoot), ".m.lock"), "utf8")) as { pid: number };
    expect(lock.pid).toBe(killed.pid);
    console.log(`killed at ${writing.at(-1)!.bytes} of ${writing.at(-1)!.totalBytes} bytes; ${entries.length} tensors journaled`);
  });

  it("the next CLI import takes over the lock, resumes (progress starts > 0, fewer bytes written and read) and gives the clean import's files", async () => {
    const root = copyKilled("resume");
    const run = await cliImport(root);
    expect(run.stderr).not.toContain("error");
    expect(run.code).toBe(0);
    const first = run.progress.find((p) => p.phase === "writing")!;
    expect(first.resumedBytes).toBeGreaterThan(0);
    expect(first.bytes).toBe(first.resumedBytes);
    expect(run.progress.filter((p) => p.phase === "writing").every((p) => p.bytes >= first.bytes)).toBe(true);
    const b = run.result!.build!;
    const c = clean.build!;
    console.log(
      `clean: wrote ${c.writtenBytes} B, read ${c.sourceBytesRead} B of tensors; resumed at ${b.resumedBytes} B (${b.resumedTensors} tensors): wrote ${b.writtenBytes} B, read ${b.sourceBytesRead} B`,
    );
    expect(b.resumedTensors).toBeGreaterThan(0);
    expect(b.tornTensors).toBe(0);
    expect(b.writtenBytes).toBeLessThan(c.writtenBytes);
    expect(b.sourceBytesRead).toBeLessThan(c.sourceBytesRead);
    expect(b.resumedBytes + b.writtenBytes).toBeGreaterThanOrEqual(c.writtenBytes);
    const dir = path.join(familyDir(root), "m");
    expect(sha256(path.join(dir, GRAPH_FILE))).toBe(sha256(path.join(clean.dir, GRAPH_FILE)));
    expect(sha256(path.join(dir, DATA_FILE))).toBe(sha256(path.join(clean.dir, DATA_FILE)));
    expect(readdirSync(familyDir(root))).toEqual(["m"]); // no partial, no lock left
    expect(readdirSync(dir).some((f) => f.endsWith(".journal"))).toBe(false);
    await runsLikeReference(dir);
  }, 300_000);

  it("a torn tail (a garbled tensor, a truncated one) is detected and written again; same files", async () => {
    const root = copyKilled("torn");
    const partial = path.join(familyDir(root), partials(root)[0]!);
    const data = path.join(partial, DATA_FILE);
    const entries = journal(data);
    expect(entries.length).toBeGreaterThanOrEqual(3);
    const [garbled, cut] = entries.slice(-2) as [JournalEntry, JournalEntry];
    const fd = openSync(data, "r+");
    writeSync(fd, Buffer.from("garbage!"), 0, 8, garbled.offset + garbled.length - 8);
    closeSync(fd);
    truncateSync(data, cut.offset + Math.floor(cut.length / 2));
    const seen: ImportProgress[] = [];
    const r = await importCheckpoint(src, { root, name: "m", onProgress: (p) => seen.push(p) });
    expect(r.build!.tornTensors).toBe(2);
    expect(r.build!.resumedTensors).toBe(entries.length - 2);
    expect(r.build!.resumedBytes).toBe(entries.at(-3)!.offset + entries.at(-3)!.length); // up to the last good tensor
    expect(seen.find((p) => p.phase === "writing")!.resumedBytes).toBe(r.build!.resumedBytes);
    expect(sha256(path.join(r.dir, DATA_FILE))).toBe(sha256(path.join(clean.dir, DATA_FILE)));
    expect(sha256(path.join(r.dir, GRAPH_FILE))).toBe(sha256(path.join(clean.dir, GRAPH_FILE)));
  }, 300_000);

  it("a changed source (another content hash) removes the partial build and imports from scratch", async () => {
    const root = copyKilled("changed");
    const old = partials(root)[0]!;
    const other = path.join(tmp, "other-src");
    const small = await writeFamilyCheckpoint(other, "mixtral", { seed: 9 });
    const r = await importCheckpoint(other, { root, name: "m" });
    expect(r.status).toBe("imported");
    expect(r.build!.resumedBytes).toBe(0);
    expect(r.build!.writtenBytes).toBe(statSync(path.join(r.dir, DATA_FILE)).size);
    expect(existsSync(path.join(familyDir(root), old))).toBe(false);
    expect(readdirSync(familyDir(root))).toEqual(["m"]);
    expect(small.config.hidden_size).toBe(32);
  }, 120_000);
});

it("another dtype or builder version is another build folder: an existing partial of the same files is removed, not mixed", async () => {
  const root = path.join(tmp, "dtype");
  const small = path.join(tmp, "small-src");
  await writeFamilyCheckpoint(small, "mixtral", { seed: 3 });
  const first = await importCheckpoint(small, { root, name: "s", dtype: "fp16" });
  const fd = familyDir(root);
  const parts = { sourceHash: first.manifest.sourceHash, family: "mixtral" };
  const fp32Partial = partialDir(fd, "s", { ...parts, dtype: "fp32", version: IMPORT_VERSION });
  const oldVersion = partialDir(fd, "s", { ...parts, dtype: "fp16", version: IMPORT_VERSION - 1 });
  for (const p of [fp32Partial, oldVersion]) {
    mkdirSync(p);
    writeFileSync(path.join(p, DATA_FILE), "left by an interrupted import");
    writeFileSync(journalFile(path.join(p, DATA_FILE)), "");
  }
  expect(new Set([fp32Partial, oldVersion, partialDir(fd, "s", { ...parts, dtype: "fp16", version: IMPORT_VERSION })]).size).toBe(3);
  const again = await importCheckpoint(small, { root, name: "s", dtype: "bf16" });
  expect(again.status).toBe("imported");
  expect(again.build!.resumedBytes).toBe(0);
  expect(readdirSync(fd)).toEqual(["s"]);
});

/** A tiny Uni-MoE-2.0-Omni checkpoint with both encoder towers (the layout of tests/unit/import/towers.test.ts). */
async function writeOmniCheckpoint(dir: string): Promise<void> {
  const llm = randomConfig(31, { mlp_dynamic_null_expert_num: 1, mlp_fixed_expert_num: 2, tie_word_embeddings: false, model_type: "grin_qwen2_vl" });
  const H = llm.hidden_size, Q = 10;
  const visionJson = { model_type: "siglip_vision_model", image_size: 70, patch_size: 14, hidden_size: 24, intermediate_size: 40, num_attention_heads: 3, num_hidden_layers: 3, layer_norm_eps: 1e-6, hidden_act: "gelu_pytorch_tanh" };
  const audioJson = { model_type: "whisper", num_mel_bins: 16, max_source_positions: 1500, max_target_positions: 12, d_model: 24, encoder_layers: 2, encoder_attention_heads: 3, encoder_ffn_dim: 40, decoder_layers: 2, decoder_attention_heads: 2, decoder_ffn_dim: 32, vocab_size: 50 };
  const vision = seedEncoderWeights("vision", zVisionConfig.parse({ ...visionJson, projector_hidden_size: 20, out_dim: H }), 41);
  const audio = seedEncoderWeights("audio", zAudioConfig.parse({ ...audioJson, num_queries: Q, qformer_layers: 2, qformer_attention_heads: 2, qformer_ffn_dim: 32, out_dim: H }), 42);
  const W = randomWeights(llm, 32);
  const out = new Map<string, Tensor32>(W.names().map((n) => [n, W.get(n)]));
  for (const [name, t] of vision) out.set(name.startsWith("mm_projector.") ? name.replace("mm_projector.", "vision_aligner.") : `vision_tower.vision_tower.${name}`, t);
  for (const [name, t] of audio) {
    if (name === "qformer.queries") out.set("audio_aligner.query_tokens", { shape: [1, Q, 24], data: t.data });
    else if (name.startsWith("encoder.")) out.set(`audio_tower.audio_tower.${name.slice("encoder.".length)}`, t);
    else if (name.startsWith("qformer.")) out.set(`audio_aligner.decoder.audio_decoder.${name.slice("qformer.".length)}`, t);
    else out.set(`audio_aligner.${name}`, t);
  }
  out.set("audio_aligner.decoder.audio_decoder.embed_positions.weight", { shape: [12, 24], data: Float32Array.from({ length: 12 * 24 }, (_, i) => Math.sin(i)) });
  mkdirSync(dir, { recursive: true });
  await writeSafetensors(path.join(dir, "model.safetensors"), [...out].map(([name, t]) => ({ name, shape: t.shape, data: t.data })));
  const raw = { ...llm, architectures: ["GrinQwen2VLOutForConditionalGeneration"], vision_config: visionJson, audio_config: audioJson, whisper_query_tokens_size: Q, whisper_projector_type: "linear", whisper_hidden_size: 24 };
  writeFileSync(path.join(dir, "config.json"), JSON.stringify(raw));
}

it("with encoder towers: an import stopped inside the LLM, the vision or the audio tower resumes to the clean import's files", async () => {
  const omni = path.join(tmp, "omni-src");
  await writeOmniCheckpoint(omni);
  const ref = await importCheckpoint(omni, { root: path.join(tmp, "omni-clean"), name: "o" });
  const files = ["model.onnx", "model.onnx.data", "vision/vision.onnx", "vision/vision.onnx.data", "audio/audio.onnx", "audio/audio.onnx.data"];
  const llmBytes = statSync(path.join(ref.dir, DATA_FILE)).size;
  const visionData = statSync(path.join(ref.dir, "vision/vision.onnx.data")).size;
  const visionBytes = visionData + statSync(path.join(ref.dir, "vision/vision.onnx")).size;
  // progress bytes: the LLM's data, then + the vision tower's (data + graph), then + the audio tower's
  const stops = [["LLM", llmBytes / 2, llmBytes / 2], ["vision", llmBytes + 1, llmBytes + 1], ["audio", llmBytes + visionBytes + 1, llmBytes + visionData + 1]] as const;
  for (const [where, at, minResumed] of stops) {
    const root = path.join(tmp, `omni-${where}`);
    const stop = (p: ImportProgress) => {
      if (p.phase === "writing" && p.bytes >= at) throw new Error(`stopped in the ${where}`);
    };
    await expect(importCheckpoint(omni, { root, name: "o", onProgress: stop })).rejects.toThrow(new RegExp(`stopped in the ${where} \\(the .* written so far are kept in .*\\.o\\.partial-`));
    const r = await importCheckpoint(omni, { root, name: "o" });
    const b = r.build!;
    expect(b.resumedBytes, where).toBeGreaterThanOrEqual(minResumed);
    // every tensor written once over the two runs (resumedBytes also counts the ≤ 63 B alignment gaps)
    expect(b.writtenBytes + b.resumedBytes, where).toBeGreaterThanOrEqual(ref.build!.writtenBytes);
    expect(b.writtenBytes + b.resumedBytes, where).toBeLessThanOrEqual(ref.build!.writtenBytes + 64 * b.resumedTensors);
    for (const f of files) expect(sha256(path.join(r.dir, f)), `${where}: ${f}`).toBe(sha256(path.join(ref.dir, f)));
  }
});

describe("lock", () => {
  it("a second import of the same model while one runs fails clearly, naming the running pid", async () => {
    const root = path.join(tmp, "concurrent");
    let second: Promise<Error | null> | undefined;
    const run = await cliImport(root, {
      // the first import holds the lock while it writes: try the same import in this process, then stop the first
      onFirstWrite: (pid) => {
        second = importCheckpoint(src, { root, name: "m" })
          .then(() => null, (e: Error) => e)
          .finally(() => process.kill(pid, "SIGKILL"));
      },
    });
    expect((await second)?.message).toBe(`an import of mixtral/m is already running (pid ${run.pid}); wait for it to finish`);
    expect(run.signal).toBe("SIGKILL");
  }, 120_000);

  it("a stale lock (dead pid, or a live pid that started later: recycled) is taken over; a live or foreign one is not", () => {
    const dir = path.join(tmp, "locks");
    mkdirSync(dir);
    const file = path.join(dir, ".x.lock");
    const host = os.hostname();
    const write = (v: object) => writeFileSync(file, JSON.stringify({ nonce: "n", at: "", ...v }));
    write({ pid: 2 ** 22 + 12345, host }); // above pid_max: no such process
    acquireImportLock(file, "f/x").release();
    expect(existsSync(file)).toBe(false);
    write({ pid: process.pid, host, start: "1" }); // this pid, but a process that started at another time
    const taken = acquireImportLock(file, "f/x");
    expect((JSON.parse(readFileSync(file, "utf8")) as { nonce: string }).nonce).not.toBe("n");
    expect(() => acquireImportLock(file, "f/x")).toThrow(`an import of f/x is already running (pid ${process.pid})`);
    taken.release();
    write({ pid: 1234, host: "another-host" });
    expect(() => acquireImportLock(file, "f/x")).toThrow(/already running \(pid 1234 on another-host\).*remove .*\.x\.lock/);
    writeFileSync(file, "{torn");
    acquireImportLock(file, "f/x").release();
  });
});
