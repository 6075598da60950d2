/**
 * Speech from an LLM output (or a text) with the released MoE-TTS and a codec, as the release does it (RELEASED.md
 * §1.8–1.9): the speech spans of the LLM's generated ids, cut into chunks at punctuation, each chunk decoded greedily
 * (release or cached mode), all codes mapped % codebook_size, decoded once by the codec. The routing of every chunk
 * goes into one trace (4 routed experts, k = 2, the capacity drops in `dropped`).
 */
import type { LayerTrace, RoutingTrace, TraceToken } from "@/engine/trace";
import type { CodecDecoder } from "./codec-wavtokenizer";
import { deriveSeed, SeededRandom } from "../io/seeded-random";
import type { Tokenizer } from "../text/tokenizer";
import { speechChunkIds, speechTokenIds, truncateUnclosed, type SpeechChunkIds } from "./tts-released-chunks";
import { speechCodes, speechDims, type SpeechGenConfig } from "./tts-released";
import { conditioningRows, decodeSpeechChunk, type SpeechChunkResult, type SpeechNoise, type SpeechRunner } from "./tts-released-run";

/** The release's cap per chunk (max_tokens 1000 = 25 s). */
export const MAX_CODES_PER_CHUNK = 1000;

export function releasedConvention(mode: "release" | "cached"): string {
  const how =
    mode === "release"
      ? "release mode as the released inference runs it: no attention mask, the whole sequence recomputed per code, training capacity factor 1.5 (cap = max(ceil(0.75·S), 4) choices per expert; later tokens' choices are dropped first)"
      : "cached mode (differs from the release): prefix-causal mask, KV cache, no capacity";
  return `Uni-MoE-TTS as released: DeepSpeed top-2 gate over 4 experts (first = argmax of softmax, second = argmax of the other logits), weights renormalised over the choices kept; ${how}. "dropped" marks choices lost to capacity.`;
}

/** The chunks to speak: the LLM output's spans (with the release's truncation rule), or the text with `voice` as its prompt. */
export function releasedChunks(c: SpeechGenConfig, tok: Tokenizer, source: { ids: number[]; stopReason?: string } | { text: string; voice: string }): SpeechChunkIds[] {
  const t = speechTokenIds(c, tok);
  let ids: number[];
  if ("ids" in source) {
    ids = source.stopReason === "max-tokens" && source.ids.includes(t.start) ? truncateUnclosed(source.ids, t) : source.ids;
    if (!ids.includes(t.start)) return [];
  } else {
    ids = [t.start, ...tok.encode(source.voice, { allowSpecial: false }), t.prompt, ...tok.encode(source.text, { allowSpecial: false }), t.end];
  }
  return speechChunkIds(ids, t);
}

export interface ReleasedSynthOptions {
  mode: "release" | "cached";
  seed: number;
  secondExpertSampling: boolean;
  attentionDropout: boolean;
  maxSeconds: number;
  modelName: string;
  signal?: AbortSignal;
  onProgress?: (done: number, budget: number, chunk: number, chunks: number) => void;
}

export interface ReleasedSynthResult {
  waveform: Float32Array;
  sampleRate: number;
  chunks: { prompt: number[]; text: number[]; codes: number; stopReason: SpeechChunkResult["stopReason"] }[];
  skippedChunks: number;
  drops: number;
  trace: RoutingTrace;
}

export async function synthesizeReleased(runner: SpeechRunner, codec: CodecDecoder, tok: Tokenizer, chunks: readonly SpeechChunkIds[], o: ReleasedSynthOptions): Promise<ReleasedSynthResult> {
  const c = runner.config;
  if (chunks.length === 0) throw new Error("there is nothing to speak");
  const { E, L } = speechDims(c);
  const names = Object.entries(speechCodes(c));
  const budget = Math.floor(o.maxSeconds * c.codec_rate);
  const noise: SpeechNoise = {
    ...(o.secondExpertSampling ? { gumbel: new SeededRandom(deriveSeed(o.seed, "tts.gumbel")) } : {}),
    ...(o.attentionDropout ? { dropout: new SeededRandom(deriveSeed(o.seed, "tts.dropout")) } : {}),
  };
  const tokens: TraceToken[] = [];
  const parts: SpeechChunkResult["layers"][] = [];
  const codes: number[] = [];
  const done: ReleasedSynthResult["chunks"] = [];
  let skipped = 0;
  for (let i = 0; i < chunks.length; i++) {
    const cap = Math.min(MAX_CODES_PER_CHUNK, Math.ceil((budget - codes.length) / (chunks.length - i)));
    if (cap <= 0) {
      skipped++;
      continue;
    }
    const ch = chunks[i]!;
    const cond = conditioningRows(c, ch.text, ch.prompt, null);
    const r = await decodeSpeechChunk(runner, cond, { mode: o.mode, maxCodes: cap, noise, signal: o.signal, onCode: () => o.onProgress?.(codes.length + 1, budget, i, chunks.length) });
    r.rows.forEach((row, p) => {
      const isCode = p > cond.length;
      const text = row.kind === "text" ? tok.decode([row.id]) : isCode ? `<c${row.id}>` : `[${names.find(([, v]) => v === row.id)?.[0] ?? row.id}]`;
      tokens.push({ id: row.id, text, modality: isCode ? "speech" : "text", position: [p, p, p], phase: p > cond.length ? "decode" : "prefill" });
    });
    parts.push(r.layers);
    codes.push(...r.codes);
    done.push({ prompt: ch.prompt, text: ch.text, codes: r.codes.length, stopReason: r.stopReason });
  }
  const layers: LayerTrace[] = Array.from({ length: L }, (_, l) => {
    const cat = <T extends Float32Array | Uint8Array>(pick: (x: SpeechChunkResult["layers"][number]) => T, make: (n: number) => T): T => {
      const xs = parts.map((p) => pick(p[l]!));
      const out = make(xs.reduce((a, x) => a + x.length, 0));
      let off = 0;
      for (const x of xs) {
        out.set(x, off);
        off += x.length;
      }
      return out;
    };
    const mask = cat((x) => x.mask, (n) => new Uint8Array(n));
    return { routerLogits: cat((x) => x.routerLogits, (n) => new Float32Array(n)), mask, weights: cat((x) => x.weights, (n) => new Float32Array(n)), k: new Int32Array(mask.length / E).fill(2), dropped: cat((x) => x.dropped, (n) => new Uint8Array(n)) };
  });
  const drops = layers.reduce((a, l) => a + l.dropped!.reduce((x, y) => x + y, 0), 0);
  const waveform = await codec.decode(codes.map((x) => x % codec.codebookSize));
  return {
    waveform,
    sampleRate: codec.sampleRate,
    chunks: done,
    skippedChunks: skipped,
    drops,
    trace: { kind: "routing-trace", model: o.modelName, convention: releasedConvention(o.mode), experts: Array.from({ length: E }, (_, e) => ({ name: `E${e + 1}`, role: "routed" as const })), tokens, layers },
  };
}
