/**
 * "uni-moe-tiny/tts": the seeded reference MoE-TTS (decoder + codec). Same structure as the real
 * Uni-MoE-TTS (PAPER.md §5: decoder-only transformer with a 4-expert top-2 MoE FFN, one 4096-code
 * codebook at 40 codes/s, 24 kHz), scaled down, with SEEDED, UNTRAINED weights — the UI must say so.
 * Its speech is noise-like by construction.
 *
 * Directory: config.json (zTtsConfig, with the codec config nested under "codec"), model.safetensors
 * (decoder), codec.safetensors (codec decoder), manifest.json (written last: marks a complete build).
 * Built on first use in a temporary sibling directory and renamed into place, like uni-moe-tiny.
 *
 * Init (per tensor, from deriveSeed(seed, name)):
 *   decoder embeddings, attention, experts, lm_head, biases: N(0, 0.02²); RMSNorm weights 1 + N(0, 0.02²);
 *   routers: N(0, (s_i/√hidden)²), s_i ~ U[0.8, 2.0) per layer (logit std ≈ s_i, so top-2 choices vary);
 *   codec: codebook N(0, 1); convolutions N(0, (gain/√fan_in)²) with gain √2 (LeakyReLU), 1 for conv_out;
 *   codec biases N(0, 0.02²).
 */
import { createHash } from "node:crypto";
import path from "node:path";
import { codecParamTable } from "./codec";
import { ensureSeededModel, type SeededModelManifest } from "../io/seeded-store";
import { writeSafetensors, type SafetensorsEntry } from "../io/safetensors";
import { SeededRandom, deriveSeed } from "../io/seeded-random";
import { byteTokenizer } from "../text/tokenizer";
import { TTS_CONTROL_TOKENS, checkTtsConfig, ttsParamTable, zTtsConfig, type TtsConfig } from "./tts-graph";
import { modelsDir } from "@/engine/config";

export const TTS_FAMILY = "uni-moe-tiny";
export const TTS_REFERENCE_NAME = "tts";
export const TTS_REFERENCE_REF = `${TTS_FAMILY}/${TTS_REFERENCE_NAME}`;
/** Bump whenever generated weights or written files would change. */
export const TTS_GENERATOR_VERSION = 1;
export const TTS_DEFAULT_SEED = 2511;
export const TTS_REFERENCE_LABEL = "seeded, untrained";
const INIT_STD = 0.02;
/** conv_out gain: keeps the seeded waveform well inside tanh's range (RMS ≈ 0.3) instead of saturated. */
const CODEC_OUT_GAIN = 0.1;

/** The reference config: hidden 64, 4 layers, 4 heads / 2 KV heads, 4 experts top-2; codec 32-dim codebook, strides 8·5·5·3 = 600. */
export function ttsReferenceConfig(): TtsConfig {
  const textVocab = byteTokenizer.vocabSize;
  const codecOffset = textVocab + TTS_CONTROL_TOKENS.length;
  const c = zTtsConfig.parse({
    model_type: "uni_moe_tts",
    hidden_size: 64,
    num_hidden_layers: 4,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    head_dim: 16,
    intermediate_size: 128,
    num_experts: 4,
    num_experts_per_tok: 2,
    rms_norm_eps: 1e-6,
    rope_theta: 10000,
    vocab_size: codecOffset + 4096,
    text_vocab_size: textVocab,
    control_tokens: [...TTS_CONTROL_TOKENS],
    codec_offset: codecOffset,
    codec_rate: 40,
    codec: { codebook_size: 4096, codebook_dim: 32, sample_rate: 24000, samples_per_code: 600, channels: [64, 32, 16, 16, 8], strides: [8, 5, 5, 3], leaky_slope: 0.1 },
    initializer_range: INIT_STD,
    seeded_untrained: true,
  });
  checkTtsConfig(c);
  return c;
}

/** One seeded decoder tensor. */
function seedDecoderTensor(c: TtsConfig, p: ReturnType<typeof ttsParamTable>[number], seed: number): Float32Array {
  const data = new Float32Array(p.shape.reduce((a, b) => a * b, 1));
  const rng = new SeededRandom(deriveSeed(seed, p.name));
  if (p.kind === "norm") return rng.fillNormal(data, INIT_STD, 1);
  if (p.kind === "router") {
    const s = new SeededRandom(deriveSeed(seed, `tts-router-logit-std.${p.layer ?? 0}`)).range(0.8, 2.0);
    return rng.fillNormal(data, s / Math.sqrt(c.hidden_size));
  }
  return rng.fillNormal(data, INIT_STD);
}

/** One seeded codec tensor. */
function seedCodecTensor(p: ReturnType<typeof codecParamTable>[number], seed: number): Float32Array {
  const data = new Float32Array(p.shape.reduce((a, b) => a * b, 1));
  const rng = new SeededRandom(deriveSeed(seed, p.name));
  if (p.kind === "codebook") return rng.fillNormal(data, 1);
  if (p.kind === "bias") return rng.fillNormal(data, INIT_STD);
  const gain = p.name.includes("conv_out") ? CODEC_OUT_GAIN : Math.SQRT2;
  return rng.fillNormal(data, gain / Math.sqrt(p.fanIn));
}

/** Every decoder and codec parameter of `config`, seeded (deterministic per seed). */
export function seedTtsWeights(config: TtsConfig, seed = TTS_DEFAULT_SEED): { decoder: Map<string, { shape: number[]; data: Float32Array }>; codec: Map<string, { shape: number[]; data: Float32Array }> } {
  return {
    decoder: new Map(ttsParamTable(config).map((p) => [p.name, { shape: [...p.shape], data: seedDecoderTensor(config, p, seed) }])),
    codec: new Map(codecParamTable(config.codec).map((p) => [p.name, { shape: [...p.shape], data: seedCodecTensor(p, seed) }])),
  };
}

export type TtsManifest = SeededModelManifest<typeof TTS_REFERENCE_NAME, { decoder: number; codec: number }>;

export function ttsReferenceDir(root = modelsDir()): string {
  return path.join(root, TTS_FAMILY, TTS_REFERENCE_NAME);
}

function contentHashOf(config: TtsConfig, seed: number): string {
  return createHash("sha256").update(JSON.stringify({ config, seed, generatorVersion: TTS_GENERATOR_VERSION })).digest("hex");
}

/**
 * Makes sure `dir` (default <models dir>/uni-moe-tiny/tts) holds the seeded reference TTS; builds it
 * atomically (temp dir + rename) when missing or stale. Concurrent calls in one process share a build;
 * a build racing another process accepts the other's complete model (models/io/seeded-store.ts).
 */
export function ensureTtsReferenceModel(dir?: string, seed = TTS_DEFAULT_SEED): Promise<{ dir: string; built: boolean }> {
  const config = ttsReferenceConfig();
  const contentHash = contentHashOf(config, seed);
  return ensureSeededModel<TtsManifest, { dir: string; built: boolean }>({
    dir: dir ?? ttsReferenceDir(),
    contentHash,
    configFile: "config.json",
    config,
    weights: { "model.safetensors": () => ttsParamTable(config).length, "codec.safetensors": () => codecParamTable(config.codec).length },
    async write(tmp) {
      const metadata = { format: "pt", family: TTS_FAMILY, name: TTS_REFERENCE_NAME, seed: String(seed), generator_version: String(TTS_GENERATOR_VERSION), label: TTS_REFERENCE_LABEL };
      const dec: SafetensorsEntry[] = ttsParamTable(config).map((p) => ({ name: p.name, shape: p.shape, data: () => seedDecoderTensor(config, p, seed) }));
      const cod: SafetensorsEntry[] = codecParamTable(config.codec).map((p) => ({ name: p.name, shape: p.shape, data: () => seedCodecTensor(p, seed) }));
      const a = await writeSafetensors(path.join(tmp, "model.safetensors"), dec, { metadata });
      const b = await writeSafetensors(path.join(tmp, "codec.safetensors"), cod, { metadata });
      const count = (t: { shape: number[] }[]) => t.reduce((s, p) => s + p.shape.reduce((x, y) => x * y, 1), 0);
      return {
        family: TTS_FAMILY,
        name: TTS_REFERENCE_NAME,
        seed,
        generatorVersion: TTS_GENERATOR_VERSION,
        label: TTS_REFERENCE_LABEL,
        contentHash,
        files: { "model.safetensors": a.bytes, "codec.safetensors": b.bytes },
        parameters: { decoder: count(dec), codec: count(cod) },
        createdAt: new Date().toISOString(),
      };
    },
    result: ({ dir, built }) => ({ dir, built }),
  });
}
