/**
 * MoE-TTS inference (PAPER.md §5): conditioning layout, text chunking, speech-span extraction from LLM
 * text, KV-cache decoding restricted to codec codes + [EOS], the codec, and the routing trace.
 *
 *   conditioning  [SOPT] style prompt [EOPT] [BOS] text [EOT] [SOS]   (ids: see models/tts/tts-graph.ts)
 *   decoding      codec codes until [EOS] or the token budget; greedy (temperature 0) or sampled
 *                 (temperature / top-k / top-p / seed, models/text/sampling.ts) over the 4096 codes + [EOS] only
 *   budget        maxSeconds × codec_rate (40) codec tokens for the WHOLE utterance; chunk i of n may use
 *                 ceil(remaining / chunks left), so every chunk gets a share and a chunk that stops early
 *                 leaves its rest to the next ones
 *   chunks        text split at punctuation (and <|speech_split|>), synthesised in turn, each from a fresh
 *                 KV cache with positions from 0; the waveforms are concatenated
 *   trace         one RoutingTrace over all chunks: per chunk its conditioning tokens (phase "prefill",
 *                 modality "text") then each generated codec token as it is fed back (phase "decode",
 *                 modality "speech"); position = (p, p, p) with p the 1D position inside the chunk.
 *                 [EOS] is not fed back, so it has no routing row.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import * as ort from "onnxruntime-node";
import type { Runtime } from "@/engine/runtime/types";
import { SESSION_CONFIG_ENTRIES } from "@/engine/runtime/providers";
import { concatTyped, type LayerTrace, type RoutingTrace, type TraceToken } from "@/engine/trace";
import { buildCodecGraph, CodecRunner } from "./codec";
import { hashModelFiles } from "../io/model-dir";
import { SafetensorsWeights } from "../io/safetensors";
import { sampleToken, type SamplingOptions } from "../text/sampling";
import { SeededRandom } from "../io/seeded-random";
import { byteTokenizer } from "../text/tokenizer";
import { buildTtsGraph, checkTtsConfig, TTS_CONTROL_TOKENS, ttsIds, ttsIo, zTtsConfig, type TtsConfig, type TtsGraphOptions } from "./tts-graph";
import { ensureTtsReferenceModel, TTS_REFERENCE_LABEL, TTS_REFERENCE_REF } from "./tts-tiny";
import { modelsDir } from "@/engine/config";
import type { WeightSource } from "../io/weights";
import { resolveInside } from "@/engine/paths";
import { cachedGraphFile } from "../onnx/graph-cache";

/** The trace convention text, e.g. "MoE-TTS: softmax top-2 over 4 experts (…)". */
export function ttsConvention(c: TtsConfig): string {
  const X = c.num_experts, K = c.num_experts_per_tok;
  return `MoE-TTS: softmax top-${K} over ${X} experts (p = softmax of the ${X} router logits; the ${K} largest are chosen and their p renormalised to sum to 1; no null or shared experts, k = ${K} always).`;
}

/** Expert columns of the trace: E1..EX, all routed. */
export function ttsExperts(c: TtsConfig): { name: string; role: "routed" }[] {
  return Array.from({ length: c.num_experts }, (_, e) => ({ name: `E${e + 1}`, role: "routed" as const }));
}

// ---------------------------------------------------------------------------------------------
// Runner

/** Per-layer keys and values, each [1, KVH, length, Dh] row-major. */
export interface TtsKvCache {
  length: number;
  keys: Float32Array[];
  values: Float32Array[];
}

export interface TtsForwardOutput {
  /** [S*V] */
  logits: Float32Array;
  present?: TtsKvCache;
  /** per layer, [S*X] / [S] */
  trace?: LayerTrace[];
}

/** Runs the TTS decoder graph (batch 1). */
export class TtsRunner {
  private constructor(
    readonly config: TtsConfig,
    readonly options: TtsGraphOptions,
    readonly session: ort.InferenceSession,
  ) {}

  static async create(config: TtsConfig, weights: WeightSource, options: TtsGraphOptions, sessionOptions: ort.InferenceSession.SessionOptions = {}): Promise<TtsRunner> {
    const session = await ort.InferenceSession.create(buildTtsGraph(config, weights, options), { graphOptimizationLevel: "all", logSeverityLevel: 3, extra: SESSION_CONFIG_ENTRIES, ...sessionOptions });
    return new TtsRunner(config, options, session);
  }

  /** Wraps a session made elsewhere (e.g. the engine's session pool) from a graph built with `options`. */
  static fromSession(config: TtsConfig, options: TtsGraphOptions, session: ort.InferenceSession): TtsRunner {
    return new TtsRunner(config, options, session);
  }

  emptyCache(): TtsKvCache {
    const L = this.config.num_hidden_layers;
    return { length: 0, keys: Array.from({ length: L }, () => new Float32Array(0)), values: Array.from({ length: L }, () => new Float32Array(0)) };
  }

  /** One forward over `ids` (positions default to past.length + 0..S-1). */
  async forward(ids: readonly number[], positions?: readonly number[], past?: TtsKvCache): Promise<TtsForwardOutput> {
    const c = this.config;
    const S = ids.length, L = c.num_hidden_layers, KVH = c.num_key_value_heads, Dh = c.head_dim;
    if (S === 0) throw new Error("TTS forward: no tokens");
    const bad = ids.find((id) => !Number.isInteger(id) || id < 0 || id >= c.vocab_size);
    if (bad !== undefined) throw new Error(`TTS forward: token id ${bad} is outside 0..${c.vocab_size - 1}`);
    const start = past?.length ?? 0;
    const pos = positions ?? Array.from({ length: S }, (_, i) => start + i);
    if (pos.length !== S) throw new Error(`TTS forward: ${pos.length} positions for ${S} tokens`);
    const feeds: Record<string, ort.Tensor> = {
      [ttsIo.ids]: new ort.Tensor("int64", BigInt64Array.from(ids, (v) => BigInt(v)), [1, S]),
      [ttsIo.positions]: new ort.Tensor("int64", BigInt64Array.from(pos, (v) => BigInt(v)), [1, S]),
    };
    if (this.options.kvCache) {
      const p = past ?? this.emptyCache();
      for (let i = 0; i < L; i++) {
        feeds[ttsIo.pastKey(i)] = new ort.Tensor("float32", p.keys[i]!, [1, KVH, p.length, Dh]);
        feeds[ttsIo.pastValue(i)] = new ort.Tensor("float32", p.values[i]!, [1, KVH, p.length, Dh]);
      }
    }
    const out = await this.session.run(feeds);
    const f32 = (name: string) => out[name]!.data as Float32Array;
    const result: TtsForwardOutput = { logits: f32(ttsIo.logits) };
    if (this.options.kvCache) {
      result.present = { length: start + S, keys: Array.from({ length: L }, (_, i) => f32(ttsIo.presentKey(i))), values: Array.from({ length: L }, (_, i) => f32(ttsIo.presentValue(i))) };
    }
    if (this.options.trace) {
      result.trace = Array.from({ length: L }, (_, i) => ({
        routerLogits: f32(ttsIo.routerLogits(i)),
        mask: Uint8Array.from(f32(ttsIo.mask(i))),
        weights: f32(ttsIo.weights(i)),
        k: Int32Array.from(out[ttsIo.k(i)]!.data as BigInt64Array, (v) => Number(v)),
      }));
    }
    return result;
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}

// ---------------------------------------------------------------------------------------------
// Text: conditioning, chunks, speech spans

/** `[SOPT] style [EOPT] [BOS] text [EOT] [SOS]` as TTS ids (text as the LLM tokenizer's bytes, specials not recognised). */
export function conditioningIds(c: TtsConfig, style: string, text: string): number[] {
  const id = ttsIds(c);
  const enc = (s: string) => byteTokenizer.encode(s, { allowSpecial: false });
  return [id.SOPT, ...enc(style), id.EOPT, id.BOS, ...enc(text), id.EOT, id.SOS];
}

/** Display text of a TTS id: the text token's text, the control token's name, or `<c123>` for codec code 123. */
export function ttsTokenText(c: TtsConfig, tokenId: number): string {
  const id = ttsIds(c);
  if (tokenId < id.textVocab) return byteTokenizer.decode([tokenId]);
  if (tokenId < id.codecOffset) return TTS_CONTROL_TOKENS[tokenId - id.textVocab]!;
  return `<c${tokenId - id.codecOffset}>`;
}

const SPEECH_SPLIT = "<|speech_split|>";
const HAS_WORD = /[\p{L}\p{N}]/u;

/** Greedily joins pieces (each ≤ max) with `sep` into runs of at most `max` characters. */
function pack(pieces: string[], max: number, sep: string): string[] {
  const out: string[] = [];
  let cur = "";
  for (const p of pieces) {
    if (!cur) cur = p;
    else if (cur.length + sep.length + p.length <= max) cur += sep + p;
    else {
      out.push(cur);
      cur = p;
    }
  }
  if (cur) out.push(cur);
  return out;
}

/** Splits an over-long sentence: at commas/colons, then at spaces, then hard at `max` characters. */
function splitLong(s: string, max: number): string[] {
  if (s.length <= max) return [s];
  const byWords = (piece: string): string[] => {
    if (piece.length <= max) return [piece];
    const words = piece.split(/\s+/).flatMap((w) => (w.length <= max ? [w] : Array.from({ length: Math.ceil(w.length / max) }, (_, i) => w.slice(i * max, (i + 1) * max))));
    return pack(words, max, " ");
  };
  const clauses = s.split(/(?<=[,:，、：])\s*/u).filter(Boolean).flatMap(byWords);
  return pack(clauses, max, " ");
}

/**
 * Splits text into chunks synthesised in turn: at sentence punctuation (. ! ? ; … followed by a space or
 * the end, and the CJK 。！？；), at line breaks and at `<|speech_split|>`; chunks longer than `maxChars`
 * are split again at commas/colons, then between words. Whitespace is collapsed; chunks without a letter
 * or digit are dropped. "3.14" or "e.g." inside a word does not split.
 */
export function splitTextForSpeech(text: string, maxChars = 120): string[] {
  if (!(maxChars >= 8)) throw new Error(`splitTextForSpeech: maxChars must be at least 8, got ${maxChars}`);
  const out: string[] = [];
  for (const part of text.split(SPEECH_SPLIT)) {
    for (const line of part.split(/\r?\n+/)) {
      const sentences = line.split(/(?<=[.!?;…])\s+|(?<=[。！？；])/u);
      for (const raw of sentences) {
        const s = raw.replace(/\s+/g, " ").trim();
        if (!s || !HAS_WORD.test(s)) continue;
        out.push(...splitLong(s, maxChars));
      }
    }
  }
  return out;
}

export interface SpeechSegment {
  /** Style prompt, e.g. "Language: English; Speaker: A;" ("" when the span had none). */
  style: string;
  /** Text to speak (may contain `<|speech_split|>`, which splitTextForSpeech honours). */
  text: string;
}

const SPEECH_START = "<|speech_start|>";
const SPEECH_PROMPT = "<|speech_prompt|>";
const SPEECH_END = "<|speech_end|>";
/** Special tokens other than <|speech_split|> are removed from the spoken text. */
const OTHER_SPECIAL = /<\|(?!speech_split\|>)[a-z_]+\|>|\[(IMG\d+|TASK\d+)\]/g;

/**
 * Finds the `<|speech_start|> style <|speech_prompt|> text <|speech_end|>` spans of an LLM's text, in
 * order. A span without <|speech_prompt|> has no style (all of it is text); a span that is not closed
 * (generation stopped) runs to the next <|speech_start|> or the end. Spans with no text are skipped.
 * Returns [] when there is none.
 */
export function extractSpeechSpans(text: string): SpeechSegment[] {
  const out: SpeechSegment[] = [];
  let at = 0;
  for (;;) {
    const s = text.indexOf(SPEECH_START, at);
    if (s < 0) break;
    const body = s + SPEECH_START.length;
    let end = text.indexOf(SPEECH_END, body);
    let next = end < 0 ? text.length : end + SPEECH_END.length;
    const nextStart = text.indexOf(SPEECH_START, body);
    if (end < 0 || (nextStart >= 0 && nextStart < end)) {
      end = nextStart >= 0 ? nextStart : text.length;
      next = end;
    }
    const span = text.slice(body, end);
    const p = span.indexOf(SPEECH_PROMPT);
    const style = (p >= 0 ? span.slice(0, p) : "").replace(OTHER_SPECIAL, " ").replace(/\s+/g, " ").trim();
    const say = (p >= 0 ? span.slice(p + SPEECH_PROMPT.length) : span).replaceAll(SPEECH_PROMPT, " ").replace(OTHER_SPECIAL, " ").trim();
    if (HAS_WORD.test(say.replaceAll(SPEECH_SPLIT, " "))) out.push({ style, text: say });
    at = next;
  }
  return out;
}

/** Reads "Language: X; Speaker: Y;" style prompts (either field may be missing). */
export function parseStylePrompt(style: string): { language?: string; speaker?: string } {
  const field = (name: string) => new RegExp(`${name}\\s*:\\s*([^;]*)`, "i").exec(style)?.[1]?.trim() || undefined;
  return { language: field("language"), speaker: field("speaker") };
}

// ---------------------------------------------------------------------------------------------
// Decoding

/** Logits restricted to the codec codes then [EOS]: [codebook_size + 1]. */
export function codecLogits(c: TtsConfig, logits: Float32Array): Float32Array {
  const id = ttsIds(c);
  const out = new Float32Array(id.codecSize + 1);
  out.set(logits.subarray(id.codecOffset, id.codecOffset + id.codecSize));
  out[id.codecSize] = logits[id.EOS]!;
  return out;
}

/** Picks the next TTS id among the codec codes and [EOS] only. */
export function pickCodecOrEos(c: TtsConfig, logits: Float32Array, o: SamplingOptions, rng: SeededRandom): number {
  const id = ttsIds(c);
  const j = sampleToken(codecLogits(c, logits), o, rng);
  return j === id.codecSize ? id.EOS : id.code(j);
}

export class TtsCancelled extends Error {
  constructor() {
    super("cancelled");
    this.name = "TtsCancelled";
  }
}

export interface ChunkResult {
  style: string;
  text: string;
  /** Codec codes (0..4095) generated for this chunk. */
  codes: number[];
  stopReason: "eos" | "max-tokens";
  /** Trace rows of this chunk: conditioning tokens then the codec tokens. */
  tokens: TraceToken[];
  layers: LayerTrace[];
}

export interface DecodeOptions extends SamplingOptions {
  signal?: AbortSignal;
  /** Called after each codec token of this chunk. */
  onToken?: (code: number) => void;
}

/**
 * Decodes one chunk with the KV cache: prefill of the conditioning, then at most `maxTokens` codec codes
 * (stops at [EOS]). Every generated code is fed back once, so its routing is recorded (the last one's
 * logits are not used).
 */
export async function decodeChunk(tts: TtsRunner, style: string, text: string, maxTokens: number, o: DecodeOptions, rng: SeededRandom): Promise<ChunkResult> {
  const c = tts.config;
  const id = ttsIds(c);
  const check = () => {
    if (o.signal?.aborted) throw new TtsCancelled();
  };
  const ids = conditioningIds(c, style, text);
  const tokens: TraceToken[] = ids.map((t, p) => ({ id: t, text: ttsTokenText(c, t), modality: "text", position: [p, p, p], phase: "prefill" }));
  const parts: LayerTrace[][] = [];
  check();
  let out = await tts.forward(ids);
  if (!out.trace || !out.present) throw new Error("the TTS graph was built without trace outputs or KV cache");
  parts.push(out.trace);
  const V = c.vocab_size;
  let logits = out.logits.subarray((ids.length - 1) * V, ids.length * V);
  let cache = out.present;
  const codes: number[] = [];
  let stopReason: ChunkResult["stopReason"] = "max-tokens";
  for (let step = 0; step < maxTokens; step++) {
    check();
    const next = pickCodecOrEos(c, logits, o, rng);
    if (next === id.EOS) {
      stopReason = "eos";
      break;
    }
    const p = cache.length;
    out = await tts.forward([next], [p], cache);
    codes.push(next - id.codecOffset);
    tokens.push({ id: next, text: ttsTokenText(c, next), modality: "speech", position: [p, p, p], phase: "decode" });
    parts.push(out.trace!);
    cache = out.present!;
    logits = out.logits;
    o.onToken?.(next - id.codecOffset);
  }
  return { style, text, codes, stopReason, tokens, layers: concatLayerParts(parts, c.num_hidden_layers) };
}

function concatLayerParts(parts: LayerTrace[][], L: number): LayerTrace[] {
  return Array.from({ length: L }, (_, i) => ({
    routerLogits: concatTyped(parts.map((p) => p[i]!.routerLogits)),
    mask: concatTyped(parts.map((p) => p[i]!.mask)),
    weights: concatTyped(parts.map((p) => p[i]!.weights)),
    k: concatTyped(parts.map((p) => p[i]!.k)),
  }));
}

export interface SynthesizeOptions extends SamplingOptions {
  seed: number;
  /** Cap on the whole utterance (codec_rate tokens per second). */
  maxSeconds: number;
  /** Model name recorded in the trace. */
  modelName: string;
  /** Longest chunk in characters (default 120). */
  maxChunkChars?: number;
  signal?: AbortSignal;
  /** After each codec token: tokens so far over the whole utterance, and the budget. */
  onProgress?: (done: number, budget: number, chunk: number, chunks: number) => void;
}

export interface SynthesisResult {
  /** Mono waveform at sampleRate, |x| ≤ 1, length = total codes × samples_per_code. */
  waveform: Float32Array;
  sampleRate: number;
  durationSec: number;
  chunks: Omit<ChunkResult, "tokens" | "layers">[];
  /** Chunks that got no budget (maxSeconds ran out first). */
  skippedChunks: number;
  trace: RoutingTrace;
}

/** Splits every segment into chunks, decodes them in turn, decodes their codes and concatenates the waveforms. */
export async function synthesize(tts: TtsRunner, codec: CodecRunner, segments: readonly SpeechSegment[], o: SynthesizeOptions): Promise<SynthesisResult> {
  const c = tts.config;
  const chunks = segments.flatMap((s) => splitTextForSpeech(s.text, o.maxChunkChars).map((text) => ({ style: s.style, text })));
  if (chunks.length === 0) throw new Error("there is no text to speak (no letters or digits)");
  const budget = Math.floor(o.maxSeconds * c.codec_rate);
  if (!(budget >= 1)) throw new Error(`max seconds ${o.maxSeconds} allows no codec token (${c.codec_rate} per second)`);
  const rng = new SeededRandom(o.seed);
  const results: ChunkResult[] = [];
  const waves: Float32Array[] = [];
  let used = 0;
  let skipped = 0;
  for (let i = 0; i < chunks.length; i++) {
    const cap = Math.ceil((budget - used) / (chunks.length - i));
    if (cap <= 0) {
      skipped++;
      continue;
    }
    const r = await decodeChunk(tts, chunks[i]!.style, chunks[i]!.text, cap, {
        ...o,
        onToken: () => {
          used++;
          o.onProgress?.(used, budget, i, chunks.length);
        },
      }, rng);
    if (o.signal?.aborted) throw new TtsCancelled();
    results.push(r);
    waves.push(await codec.decode(r.codes));
  }
  const waveform = new Float32Array(waves.reduce((a, w) => a + w.length, 0));
  let off = 0;
  for (const w of waves) {
    waveform.set(w, off);
    off += w.length;
  }
  const sampleRate = c.codec.sample_rate;
  return {
    waveform,
    sampleRate,
    durationSec: waveform.length / sampleRate,
    chunks: results.map(({ style, text, codes, stopReason }) => ({ style, text, codes, stopReason })),
    skippedChunks: skipped,
    trace: {
      kind: "routing-trace",
      model: o.modelName,
      convention: ttsConvention(c),
      experts: ttsExperts(c),
      tokens: results.flatMap((r) => r.tokens),
      layers: concatLayerParts(results.map((r) => r.layers), c.num_hidden_layers),
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Models on disk, graph cache, sessions

/** Bumped whenever the graph builders' output changes, so cached graphs are rebuilt. */
const TTS_GRAPH_VERSION = 2; // 2: the codec bounds its tanh with Max/Min (WebGPU)
export const TTS_GRAPH: TtsGraphOptions = { kvCache: true, trace: true };

export interface ResolvedTts {
  ref: string;
  dir: string;
  config: TtsConfig;
  /** sha256 of config.json and the safetensors files. */
  contentHash: string;
  label?: string;
}

function hashDir(dir: string): string {
  return hashModelFiles(dir, readdirSync(dir).filter((f) => f === "config.json" || f.endsWith(".safetensors")));
}

/**
 * Finds a TTS model: "uni-moe-tiny/tts" builds the seeded reference on first use; anything else must be a
 * directory inside the models dir with a uni_moe_tts config.json, model.safetensors and codec.safetensors.
 */
export async function resolveTtsModel(ref: string): Promise<ResolvedTts> {
  const root = modelsDir();
  let dir: string;
  let label: string | undefined;
  if (ref === TTS_REFERENCE_REF) {
    dir = (await ensureTtsReferenceModel()).dir;
    label = TTS_REFERENCE_LABEL;
  } else {
    dir = resolveInside(root, ref, "model", "the models directory");
  }
  return openTtsDir(dir, ref, label);
}

/** Reads a TTS model directory wherever it is (callers decide which paths to allow). */
export function openTtsDir(dir: string, ref = dir, label?: string): ResolvedTts {
  const cfgFile = path.join(dir, "config.json");
  if (!existsSync(cfgFile)) throw new Error(`TTS model "${ref}" not found: no config.json in ${dir}`);
  let config: TtsConfig;
  try {
    config = zTtsConfig.parse(JSON.parse(readFileSync(cfgFile, "utf8")));
    checkTtsConfig(config);
  } catch (err) {
    throw new Error(`model "${ref}": config.json is not a valid MoE-TTS config: ${(err as Error).message}`);
  }
  if (config.text_vocab_size !== byteTokenizer.vocabSize) throw new Error(`model "${ref}": its text vocabulary (${config.text_vocab_size}) is not the byte tokenizer's (${byteTokenizer.vocabSize}); only byte-tokenizer TTS models are supported`);
  for (const f of ["model.safetensors", "codec.safetensors"]) if (!existsSync(/*turbopackIgnore: true*/ path.join(/*turbopackIgnore: true*/ dir, f))) throw new Error(`TTS model "${ref}": ${f} is missing`);
  return { ref, dir, config, contentHash: hashDir(dir), label };
}

/** The decoder and codec ONNX graphs of a model, built once and cached in <models dir>/.graphs by content hash. */
export function ttsGraphFiles(model: ResolvedTts, options: TtsGraphOptions = TTS_GRAPH): { decoder: string; codec: string } {
  const file = (kind: string, extra: unknown, build: () => Uint8Array) => cachedGraphFile({ kind, hash: model.contentHash, extra, v: TTS_GRAPH_VERSION }, build);
  const withWeights = (name: string, fn: (w: SafetensorsWeights) => Uint8Array) => () => {
    const w = new SafetensorsWeights(path.join(model.dir, name));
    try {
      return fn(w);
    } finally {
      w.close();
    }
  };
  return {
    decoder: file("tts-decoder", options, withWeights("model.safetensors", (w) => buildTtsGraph(model.config, w, options))),
    codec: file("tts-codec", null, withWeights("codec.safetensors", (w) => buildCodecGraph(model.config.codec, w))),
  };
}

/** Decoder and codec runners on pooled sessions (pinned while `fn` runs). */
export async function withTts<T>(model: ResolvedTts, runtime: Runtime, fn: (m: { tts: TtsRunner; codec: CodecRunner }) => Promise<T>): Promise<T> {
  const files = ttsGraphFiles(model, TTS_GRAPH);
  return runtime.withSession(files.decoder, undefined, (dec) =>
    runtime.withSession(files.codec, undefined, (cod) => fn({ tts: TtsRunner.fromSession(model.config, TTS_GRAPH, dec.session), codec: CodecRunner.fromSession(model.config.codec, cod.session) })),
  );
}
