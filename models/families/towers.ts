/**
 * The encoder towers a family's checkpoint may carry next to its LLM (Uni-MoE-2.0-Omni: SigLIP vision tower +
 * MLP aligner; Whisper encoder + Whisper-decoder query former + linear projector). Their tensor-name rules are
 * in families/table.ts (canonical names `vision/<name>` and `audio/<name>`, where <name> is the parameter name
 * models/encoders/vision-encoder.ts and models/encoders/audio-encoder.ts read); this file derives each tower's encoder config from
 * config.json and the stored shapes, lists the canonical tensors a present tower needs, and adapts the mapped
 * checkpoint to the encoder graph builders.
 *
 * Sources for the config rules (each named where it is used):
 *  - Uni-MoE-2 modeling_qwen2vl (GrinQwen2VLConfig: `vision_config` is a SigLipVisionConfig, `audio_config` a
 *    WhisperConfig; the model holds `vision_tower`, `vision_aligner`, `audio_tower`, `audio_aligner`).
 *  - Uni-MoE-2 modeling_audio_module (WhisperAudioTower = WhisperModel(audio_config).encoder; WhisperAudioAligner =
 *    WhisperModel(audio_config).decoder run on `query_tokens` [1, whisper_query_tokens_size, d] as inputs_embeds,
 *    then `projector` = Linear(whisper_hidden_size, hidden_size) for whisper_projector_type "linear").
 *  - LLaVA-OneVision's siglip_encoder (the SigLipVisionTower Uni-MoE builds on): the last encoder layer is
 *    deleted, the head is Identity, features are hidden_states[-1] (no post_layernorm).
 *  - Hugging Face WhisperDecoder: hidden = inputs_embeds + embed_positions[0:Q]; causal self-attention.
 */
import type { AudioConfig } from "../encoders/audio-encoder";
import { audioParamTable, zAudioConfig } from "../encoders/audio-encoder";
import type { VisionConfig } from "../encoders/vision-encoder";
import { visionParamTable, zVisionConfig } from "../encoders/vision-encoder";
import type { Tensor32, WeightSource } from "../io/weights";

export type TowerKind = "vision" | "audio";
export const TOWER_KINDS: readonly TowerKind[] = ["vision", "audio"];

/** The canonical name of a tower tensor: `<kind>/<encoder parameter name>`. */
export const towerName = (kind: TowerKind, name: string) => `${kind}/${name}`;
/** Whisper decoder's learned positions, added to the query tokens (folded into `qformer.queries` on import). */
export const QFORMER_POSITIONS = "qformer.embed_positions";

export type TowerConfig = { kind: "vision"; config: VisionConfig } | { kind: "audio"; config: AudioConfig };

type Raw = Record<string, unknown>;
type ShapeOf = (canonical: string) => number[] | undefined;

function sub(raw: Raw, key: string, kind: TowerKind): Raw {
  const v = raw[key];
  if (!v || typeof v !== "object" || Array.isArray(v)) throw new Error(`config.json: the checkpoint has ${kind} tower tensors but no "${key}" object`);
  return v as Raw;
}

function poolSide(v: unknown): number {
  if (typeof v !== "number" || !Number.isInteger(v) || v < 1) throw new Error(`config.json: "vision_spatial_pool_stride" must be a positive integer (the pooled side of a tile), got ${JSON.stringify(v)}`);
  return v;
}

function n(obj: Raw, key: string, fallback: number, where: string): number {
  const v = obj[key] ?? fallback;
  if (typeof v !== "number" || !Number.isFinite(v)) throw new Error(`config.json ${where}: "${key}" must be a number (got ${JSON.stringify(obj[key])})`);
  return v;
}

/**
 * SigLIP tower + aligner. Defaults are SigLIP-So400m's (LLaVA-OneVision's SigLipVisionConfig; PAPER.md §4:
 * 384 px, patch 14, 1152 wide). The real tower drops its last layer, so `num_hidden_layers − 1` layers run and
 * only those are required (a stored last layer is claimed but unused). The aligner is read as LLaVA's
 * mlp2x_gelu (Linear → GELU → Linear): its hidden width comes from the stored first Linear, its output is the
 * LLM's hidden size. Pool side s (s × s tokens per tile): config.json's `vision_spatial_pool_stride`, the side the
 * release pools each tile to (grin:2225, 2260); our default when absent.
 */
export function visionTowerConfig(raw: Raw, shapeOf: ShapeOf, llmHidden: number): VisionConfig {
  const vc = sub(raw, "vision_config", "vision");
  const where = "vision_config";
  const layers = n(vc, "num_hidden_layers", 27, where);
  if (layers < 2) throw new Error(`config.json vision_config: num_hidden_layers ${layers}: the tower drops its last layer, so it needs at least 2`);
  const proj0 = shapeOf(towerName("vision", "mm_projector.0.weight"));
  return zVisionConfig.parse({
    model_type: "siglip_vision_model",
    image_size: n(vc, "image_size", 384, where),
    patch_size: n(vc, "patch_size", 14, where),
    hidden_size: n(vc, "hidden_size", 1152, where),
    intermediate_size: n(vc, "intermediate_size", 4304, where),
    num_attention_heads: n(vc, "num_attention_heads", 16, where),
    num_hidden_layers: layers - 1,
    num_layers_used: layers - 1,
    layer_norm_eps: n(vc, "layer_norm_eps", 1e-6, where),
    hidden_act: vc.hidden_act ?? "gelu_pytorch_tanh",
    projector_hidden_size: proj0?.[0] ?? llmHidden,
    out_dim: llmHidden,
    ...(raw.vision_spatial_pool_stride === undefined ? {} : { pool: poolSide(raw.vision_spatial_pool_stride) }),
  });
}

/**
 * Whisper encoder + query former + projector. Field defaults are Hugging Face WhisperConfig's. Queries:
 * `whisper_query_tokens_size` (else the stored query_tokens' length). Only the "linear" projector is built.
 */
export function audioTowerConfig(raw: Raw, shapeOf: ShapeOf, llmHidden: number): AudioConfig {
  const ac = sub(raw, "audio_config", "audio");
  const where = "audio_config";
  const type = raw.whisper_projector_type ?? "linear";
  if (type !== "linear") throw new Error(`config.json: whisper_projector_type ${JSON.stringify(type)} is not supported (only "linear")`);
  const queries = typeof raw.whisper_query_tokens_size === "number" ? raw.whisper_query_tokens_size : shapeOf(towerName("audio", "qformer.queries"))?.[1];
  if (queries === undefined) throw new Error(`config.json: no whisper_query_tokens_size and no stored audio_aligner.query_tokens`);
  const targets = n(ac, "max_target_positions", 448, where);
  if (queries > targets) throw new Error(`config.json: ${queries} query tokens exceed the query former's ${targets} positions (audio_config.max_target_positions)`);
  return zAudioConfig.parse({
    model_type: "whisper_qformer",
    num_mel_bins: n(ac, "num_mel_bins", 80, where),
    max_source_positions: n(ac, "max_source_positions", 1500, where),
    d_model: n(ac, "d_model", 384, where),
    encoder_layers: n(ac, "encoder_layers", 4, where),
    encoder_attention_heads: n(ac, "encoder_attention_heads", 6, where),
    encoder_ffn_dim: n(ac, "encoder_ffn_dim", 1536, where),
    num_queries: queries,
    qformer_layers: n(ac, "decoder_layers", 4, where),
    qformer_attention_heads: n(ac, "decoder_attention_heads", 6, where),
    qformer_ffn_dim: n(ac, "decoder_ffn_dim", 1536, where),
    layer_norm_eps: 1e-5,
    qformer_causal: true,
    out_dim: llmHidden,
  });
}

export function towerConfig(kind: TowerKind, raw: Raw, shapeOf: ShapeOf, llmHidden: number): TowerConfig {
  return kind === "vision" ? { kind, config: visionTowerConfig(raw, shapeOf, llmHidden) } : { kind, config: audioTowerConfig(raw, shapeOf, llmHidden) };
}

/** Canonical names a present tower needs from the checkpoint. */
export function towerNeeded(t: TowerConfig): string[] {
  if (t.kind === "vision") return visionParamTable(t.config).map((p) => towerName("vision", p.name));
  return [...audioParamTable(t.config).map((p) => towerName("audio", p.name)), towerName("audio", QFORMER_POSITIONS)];
}

/** Parameters of a tower as built (what the encoder graph holds). */
export function towerParameters(t: TowerConfig): number {
  const table = t.kind === "vision" ? visionParamTable(t.config) : audioParamTable(t.config);
  return table.reduce((s, p) => s + p.shape.reduce((a, b) => a * b, 1), 0);
}

/**
 * One tower's tensors under the encoder builder's names, read from the canonical (mapped) checkpoint.
 * Audio: `qformer.queries` = query_tokens [1,Q,d] (or [Q,d]) + the Whisper decoder's positions [0:Q] (exact:
 * the decoder adds them to its inputs_embeds before the first layer).
 */
export class TowerWeights implements WeightSource {
  constructor(
    private readonly mapped: WeightSource,
    private readonly t: TowerConfig,
  ) {}

  names(): string[] {
    const p = `${this.t.kind}/`;
    return this.mapped.names().filter((x) => x.startsWith(p)).map((x) => x.slice(p.length));
  }

  has(name: string): boolean {
    return this.mapped.has(towerName(this.t.kind, name));
  }

  get(name: string): Tensor32 {
    const t = this.mapped.get(towerName(this.t.kind, name));
    if (this.t.kind !== "audio" || name !== "qformer.queries") return t;
    const { num_queries: Q, d_model: d } = this.t.config;
    if (t.data.length !== Q * d) throw new Error(`audio_aligner.query_tokens has shape [${t.shape}], expected [1, ${Q}, ${d}]`);
    const pos = this.mapped.get(towerName("audio", QFORMER_POSITIONS));
    if (pos.shape.length !== 2 || pos.shape[1] !== d || pos.shape[0]! < Q) throw new Error(`the query former's embed_positions has shape [${pos.shape}], expected [≥${Q}, ${d}]`);
    const data = new Float32Array(Q * d);
    for (let i = 0; i < Q * d; i++) data[i] = t.data[i]! + pos.data[i]!;
    return { shape: [Q, d], data };
  }
}
