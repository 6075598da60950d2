/**
 * The checkpoint families MoE Studio imports, each as one table: how its config.json becomes our canonical
 * MoE-LLM config, and how each of its tensor names maps onto the canonical (Uni-MoE-2.0) parameter names the
 * graph builder reads. To correct a mapping, edit the rule here; `npm run cli -- inspect-checkpoint <dir>`
 * shows which rule claimed each tensor and what is unclaimed or missing.
 *
 * Rule patterns: `{i}` = layer index, `{e}` = expert index (both decimal). `to: null` claims a tensor we do not
 * use (e.g. rotary inv_freq buffers). `part` concatenates several checkpoint tensors along rows into one
 * canonical tensor, in part order (Qwen2-MoE's shared_expert_gate becomes the last router row).
 */
import { zMoeLlmConfig, type MoeLlmConfig } from "../moe-llm/config";
import { bool, C, canonicalConfig, decoderRules, hfExpertRules, num, qwenDenseLayers, same, windowSize, type MappingRule, type Raw } from "./common";
import { CONVENTION_TEXT, SLIDING_WINDOW_KEY } from "./conventions";
import { RELEASED_MODEL_TYPES } from "../moe-llm/grin-routing";
import { deepseekV2, deepseekV3 } from "./deepseek";
import { gptOss } from "./gpt-oss";
import { phimoe } from "./phimoe";
import { speechClaimRules } from "../tts/tts-released";
import { DECODER_PARTS, OMNI_PARTS } from "./parts";
import type { Family } from "./family";

export type { MappingRule, Take } from "./common";
export type { Family, FamilyName } from "./family";

/**
 * Uni-MoE-2.0-Omni's encoder towers, onto the parameter names of models/encoders/vision-encoder.ts (HF SigLIP names +
 * `mm_projector.{0,2}`) and models/encoders/audio-encoder.ts (HF Whisper encoder names under `encoder.`, the query former
 * under `qformer.`, `projector`). Sources, per prefix:
 *  - `vision_tower.` / `vision_aligner.` / `audio_tower.` / `audio_aligner.`: attributes of
 *    GrinQwen2VLForConditionalGeneration (Uni-MoE-2 uni_moe/model/modeling_qwen2vl.py), beside `model.` (LLM).
 *  - `vision_tower.vision_tower.vision_model.…`: SigLipVisionTower keeps the HF SigLipVisionModel as its own
 *    `vision_tower` (LLaVA-OneVision siglip_encoder, which Uni-MoE's visual_encoder follows).
 *  - `vision_aligner.{0,2}.…`: NOT established from a source (Uni-MoE's visual_projector builder was not found);
 *    read as LLaVA's mlp2x_gelu nn.Sequential (Linear, GELU, Linear), which matches PAPER.md §4's projector.
 *  - `audio_tower.audio_tower.…`: WhisperAudioTower.audio_tower = WhisperModel(audio_config).encoder
 *    (Uni-MoE-2 uni_moe/model/modeling_audio_module.py); HF WhisperEncoder names.
 *  - `audio_aligner.decoder.audio_decoder.…`, `audio_aligner.query_tokens`, `audio_aligner.projector.…`:
 *    WhisperAudioAligner (same file): decoder.audio_decoder = WhisperModel(audio_config).decoder; HF
 *    WhisperDecoder names.
 */
const V_SRC = "vision_tower.vision_tower.vision_model.";
const A_ENC = "audio_tower.audio_tower.";
const A_DEC = "audio_aligner.decoder.audio_decoder.";
const wb = (p: string) => [`${p}.weight`, `${p}.bias`];
const whisperAttn = (p: string) => [...["q", "v", "out"].flatMap((x) => wb(`${p}.${x}_proj`)), `${p}.k_proj.weight`, ...wb(`${p}_layer_norm`)];
const whisperMlp = [...wb("fc1"), ...wb("fc2"), ...wb("final_layer_norm")];
const towerRules: MappingRule[] = [
  ...["embeddings.patch_embedding.weight", "embeddings.patch_embedding.bias", "embeddings.position_embedding.weight"].map((r) => ({ from: V_SRC + r, to: `vision/vision_model.${r}` })),
  ...[...wb("layer_norm1"), ...["q", "k", "v", "out"].flatMap((x) => wb(`self_attn.${x}_proj`)), ...wb("layer_norm2"), ...wb("mlp.fc1"), ...wb("mlp.fc2")].map((r) => ({
    from: `${V_SRC}encoder.layers.{i}.${r}`,
    to: `vision/vision_model.encoder.layers.{i}.${r}`,
  })),
  ...wb(`${V_SRC}post_layernorm`).map((from) => ({ from, to: null, note: "the tower's features are hidden_states[-1], before post_layernorm (LLaVA-OneVision)" })),
  ...["probe", "attention.in_proj_weight", "attention.in_proj_bias", ...wb("attention.out_proj"), ...wb("layernorm"), ...wb("mlp.fc1"), ...wb("mlp.fc2")].map((r) => ({
    from: `${V_SRC}head.${r}`,
    to: null,
    note: "SigLIP's pooling head is replaced by Identity in the tower",
  })),
  ...[0, 2].flatMap((k) => ["weight", "bias"].map((w) => ({ from: `vision_aligner.${k}.${w}`, to: `vision/mm_projector.${k}.${w}` }))),
  ...[...wb("conv1"), ...wb("conv2"), "embed_positions.weight", ...wb("layer_norm")].map((r) => ({ from: A_ENC + r, to: `audio/encoder.${r}` })),
  ...[...whisperAttn("self_attn"), ...whisperMlp].map((r) => ({ from: `${A_ENC}layers.{i}.${r}`, to: `audio/encoder.layers.{i}.${r}` })),
  { from: `${A_DEC}embed_tokens.weight`, to: null, note: "the query former runs on the learned query tokens, not token ids" },
  { from: `${A_DEC}embed_positions.weight`, to: "audio/qformer.embed_positions", note: "added to the query tokens (folded into qformer.queries)" },
  ...[...whisperAttn("self_attn"), ...whisperAttn("encoder_attn"), ...whisperMlp].map((r) => ({ from: `${A_DEC}layers.{i}.${r}`, to: `audio/qformer.layers.{i}.${r}` })),
  ...wb(`${A_DEC}layer_norm`).map((from, j) => ({ from, to: `audio/qformer.layer_norm.${j ? "bias" : "weight"}` })),
  { from: "audio_aligner.query_tokens", to: "audio/qformer.queries" },
  ...wb("audio_aligner.projector").map((from, j) => ({ from, to: `audio/projector.${j ? "bias" : "weight"}` })),
];

/** Refuses config features the graph does not implement, naming them (RoPE scaling: families/rope.ts). */
function unsupported(raw: Raw, family: string): void {
  if (raw.clip_qkv !== undefined && raw.clip_qkv !== null) throw new Error(`${family}: clip_qkv ${String(raw.clip_qkv)} is not supported`);
  const act = raw.hidden_act ?? "silu";
  if (act !== "silu") throw new Error(`${family}: hidden_act "${String(act)}" is not supported (the experts are SwiGLU with silu)`);
}

/** A dense layer's MLP (Qwen2MoeMLP / Qwen3MoeMLP / DeepseekV2MLP / DeepseekV3MLP: the canonical names are the HF ones). */
const denseRules: MappingRule[] = same(...["gate", "up", "down"].map((p) => `model.layers.{i}.mlp.${p}_proj.weight`));

/*
 * Which layers use sliding-window attention, per family, as Hugging Face transformers decides it (the window rule
 * itself is in moe-llm-graph.ts, "sliding-window bias"). Read from transformers' sources (huggingface/transformers):
 * - mixtral: every layer when `sliding_window` is not null (MixtralModel.forward: `mask_function = create_causal_mask if
 *   self.config.sliding_window is None else create_sliding_window_causal_mask`, one mask for all layers). MixtralConfig
 *   has no use_sliding_window; real Mixtral configs carry `"sliding_window": null`.
 * - qwen3_moe: every layer when `use_sliding_window` (Qwen3MoeConfig.__post_init__: `sliding_window = sliding_window if
 *   use_sliding_window else None`, default 4096; in modular_qwen3_moe.py (commit 00eb1166) Qwen3MoeModel is
 *   MixtralModel, same global mask, and Qwen3MoeAttention deletes layer_type). max_window_layers is no longer a
 *   Qwen3MoeConfig field and is ignored.
 * - qwen2_moe: only when `use_sliding_window` (sliding_window default 4096), in the layers config.layer_types marks
 *   "sliding_attention" (Qwen2MoeAttention: `if config.layer_types[layer_idx] == "sliding_attention": self.sliding_window
 *   = config.sliding_window`). Without layer_types in config.json the current Qwen2MoeConfig.__post_init__ derives them:
 *   sliding iff `bool((i + 1) % 2) and i < max_window_layers and use_sliding_window` (even layers below
 *   max_window_layers, default 28; the @strict dataclass configuration_qwen2_moe.py, modular_qwen2_moe.py commit
 *   001f85b3). Versions disagree: the v4.4x Qwen2MoeFlashAttention2 (modeling_qwen2_moe.py commit 1c351314) windowed
 *   the layers with `layer_idx >= max_window_layers` (no parity), while that era's config docstring said "the bottom
 *   layers use SWA" (transformers issue #35896). We follow the current code. The released Qwen1.5-MoE / Qwen2-MoE
 *   configs set use_sliding_window false.
 */
function mixtralWindows(raw: Raw, layers: number): (number | null)[] | undefined {
  if (raw.sliding_window === undefined || raw.sliding_window === null) return undefined;
  return Array<number>(layers).fill(windowSize(raw, "sliding_window", "mixtral"));
}

function qwen3MoeWindows(raw: Raw, layers: number): (number | null)[] | undefined {
  if (!bool(raw, "use_sliding_window", false) || raw.sliding_window === null) return undefined;
  return Array<number>(layers).fill(windowSize(raw, "sliding_window", "qwen3_moe", 4096));
}

function qwen2MoeWindows(raw: Raw, layers: number): (number | null)[] | undefined {
  const types = raw.layer_types;
  if (types !== undefined && types !== null && (!Array.isArray(types) || types.length !== layers || !types.every((t) => t === "sliding_attention" || t === "full_attention")))
    throw new Error(`qwen2_moe: config.json "layer_types" must list "sliding_attention" or "full_attention" for each of the ${layers} layers (got ${JSON.stringify(types)})`);
  const use = bool(raw, "use_sliding_window", false);
  if (!use) {
    if (Array.isArray(types) && types.includes("sliding_attention"))
      throw new Error(`qwen2_moe: config.json "layer_types" has sliding_attention layers but "use_sliding_window" is false (transformers would then give them a window of 0)`);
    return undefined;
  }
  const W = windowSize(raw, "sliding_window", "qwen2_moe", 4096);
  const maxWindowLayers = num(raw, "max_window_layers", 28);
  return Array.from({ length: layers }, (_, i) => ((Array.isArray(types) ? types[i] === "sliding_attention" : i % 2 === 0 && i < maxWindowLayers) ? W : null));
}

export const FAMILIES: Family[] = [
  {
    name: "grin_qwen2_vl",
    // grin_qwen2_vl: the saved Uni-MoE-2.0 model; grin_qwen2_vl_out: its output-head config class (modeling_out.py)
    modelTypes: ["grin_qwen2_vl", "grin_qwen2_vl_out", "uni_moe_tiny"],
    title: "Uni-MoE-2.0 (GRIN-MoE on Qwen2.5, M-RoPE, dynamic-capacity Top-P routing)",
    toConfig: grinConfig,
    rules: [
      ...decoderRules({ bias: true, qkNorm: false }),
      { from: C.router, to: C.router },
      ...["gate", "up", "down"].map((p) => ({ from: C.routed(p), to: C.routed(p) })),
      ...[0, 1, 2, 3].flatMap((s) => ["gate", "up", "down"].map((p) => ({ from: C.shared(s, p), to: C.shared(s, p) }))),
      ...towerRules,
      ...speechClaimRules(), // the MoE-TTS, written beside the LLM as speech/ (import.ts)
      // the generation heads not imported: claimed whole and not used (a head's own rules, like the MoE-TTS's above, go first)
      ...OMNI_PARTS.filter((p) => ["image_generator", "image_projectors"].includes(p.id)).flatMap((p) =>
        p.prefixes.map((prefix) => ({ from: `${prefix}{*}`, to: null, note: `${p.title}: ${p.notImported}` })),
      ),
    ],
    towers: ["vision", "audio"],
    parts: OMNI_PARTS,
    configKeys: [...Object.keys(zMoeLlmConfig.shape), "vision_config", "audio_config", "whisper_query_tokens_size", "whisper_projector_type", "vision_spatial_pool_stride", "drop_policy", "routing_convention", "qk_norm", "attention_bias", "shared_expert_gate", SLIDING_WINDOW_KEY],
  },
  {
    name: "qwen2_moe",
    modelTypes: ["qwen2_moe"],
    title: "Qwen2-MoE / Qwen1.5-MoE (top-k softmax, shared expert with a sigmoid gate)",
    toConfig(raw) {
      unsupported(raw, "qwen2_moe");
      return canonicalConfig(raw, {
        family: "qwen2_moe",
        experts: num(raw, "num_experts"),
        topK: num(raw, "num_experts_per_tok"),
        expertIntermediate: num(raw, "moe_intermediate_size"),
        routing: bool(raw, "norm_topk_prob", false) ? "softmax_topk_renorm" : "softmax_topk",
        qkNorm: "none",
        attentionBias: true,
        shared: { intermediate: num(raw, "shared_expert_intermediate_size"), gated: true },
        ropeTheta: 10000,
        rmsEps: 1e-6,
        slidingWindows: qwen2MoeWindows(raw, num(raw, "num_hidden_layers")),
        dense: qwenDenseLayers(raw, "qwen2_moe"),
      });
    },
    rules: [
      ...decoderRules({ bias: true, qkNorm: false }),
      ...hfExpertRules,
      ...["gate", "up", "down"].map((p) => ({ from: `model.layers.{i}.mlp.shared_expert.${p}_proj.weight`, to: C.shared(0, p) })),
      { from: "model.layers.{i}.mlp.shared_expert_gate.weight", to: C.router, part: 1 },
      ...denseRules,
    ],
  },
  {
    name: "qwen3_moe",
    modelTypes: ["qwen3_moe"],
    title: "Qwen3-MoE (top-k softmax renormalised, per-head q/k RMSNorm)",
    toConfig(raw) {
      unsupported(raw, "qwen3_moe");
      return canonicalConfig(raw, {
        family: "qwen3_moe",
        experts: num(raw, "num_experts"),
        topK: num(raw, "num_experts_per_tok"),
        expertIntermediate: num(raw, "moe_intermediate_size"),
        routing: bool(raw, "norm_topk_prob", false) ? "softmax_topk_renorm" : "softmax_topk",
        qkNorm: "per_head",
        attentionBias: bool(raw, "attention_bias", false),
        ropeTheta: 10000,
        rmsEps: 1e-6,
        slidingWindows: qwen3MoeWindows(raw, num(raw, "num_hidden_layers")),
        dense: qwenDenseLayers(raw, "qwen3_moe"),
      });
    },
    rules: [...decoderRules({ bias: true, qkNorm: true }), ...hfExpertRules, ...denseRules],
  },
  {
    name: "olmoe",
    modelTypes: ["olmoe"],
    title: "OLMoE (top-8 of 64 softmax, q/k RMSNorm over the whole projection)",
    toConfig(raw) {
      unsupported(raw, "olmoe");
      return canonicalConfig(raw, {
        family: "olmoe",
        experts: num(raw, "num_experts", 64),
        topK: num(raw, "num_experts_per_tok", 8),
        expertIntermediate: num(raw, "intermediate_size"),
        routing: bool(raw, "norm_topk_prob", false) ? "softmax_topk_renorm" : "softmax_topk",
        qkNorm: "full",
        attentionBias: bool(raw, "attention_bias", false),
        ropeTheta: 10000,
        rmsEps: 1e-5,
      });
    },
    rules: [...decoderRules({ bias: true, qkNorm: true }), ...hfExpertRules],
  },
  {
    name: "mixtral",
    modelTypes: ["mixtral"],
    title: "Mixtral (top-2, softmax over the chosen logits)",
    toConfig(raw) {
      unsupported(raw, "mixtral");
      return canonicalConfig(raw, {
        family: "mixtral",
        experts: num(raw, "num_local_experts"),
        topK: num(raw, "num_experts_per_tok"),
        expertIntermediate: num(raw, "intermediate_size"),
        routing: "topk_softmax",
        qkNorm: "none",
        attentionBias: false,
        ropeTheta: 1e6,
        rmsEps: 1e-5,
        slidingWindows: mixtralWindows(raw, num(raw, "num_hidden_layers")),
      });
    },
    rules: [
      ...decoderRules({ bias: false, qkNorm: false }),
      { from: "model.layers.{i}.block_sparse_moe.gate.weight", to: C.router },
      { from: "model.layers.{i}.block_sparse_moe.experts.{e}.w1.weight", to: C.routed("gate") },
      { from: "model.layers.{i}.block_sparse_moe.experts.{e}.w3.weight", to: C.routed("up") },
      { from: "model.layers.{i}.block_sparse_moe.experts.{e}.w2.weight", to: C.routed("down") },
    ],
  },
  deepseekV2,
  deepseekV3,
  phimoe,
  gptOss,
];

/**
 * Uni-MoE-2.0's config.json as the release writes it. A field the release's GrinQwen2VLConfig sets by default may be
 * absent; it then takes the release's default (mlp_dynamic_null_expert_num 0 there, where PAPER.md's real model
 * has 1 — real configs write it). The seeded uni_moe_tiny configs keep our own defaults.
 */
function grinConfig(raw: Raw): MoeLlmConfig {
  const released = RELEASED_MODEL_TYPES.includes(String(raw.model_type));
  return zMoeLlmConfig.parse(released ? { ...GRIN_RELEASE_DEFAULTS, ...raw } : raw);
}

/** GrinQwen2VLConfig.__init__ defaults (grin:176-205) that differ from zMoeLlmConfig's. */
const GRIN_RELEASE_DEFAULTS = { mlp_dynamic_null_expert_num: 0, dynamic_intermediate_size: 8960, shared_intermediate_size: 8960 };

/**
 * What the config.json fields MoE Studio does not read are, for the "not used" list: the released Uni-MoE-2.0 config's
 * training and parallelism settings (grin:176-205, RELEASED.md §5 item 6), its generation heads' settings, and
 * transformers' bookkeeping. A field not named here is "not used by MoE Studio".
 */
export const CONFIG_FIELD_NOTES: Record<string, string> = {
  ignore_differentiable_router: "training: GRIN's gradient estimator (inference routes in eval mode)",
  enable_expert_tensor_parallelism: "DeepSpeed expert parallelism (how training spread experts over GPUs)",
  ep_size: "DeepSpeed expert parallelism (how training spread experts over GPUs)",
  fixed_ep_size: "DeepSpeed expert parallelism (how training spread experts over GPUs)",
  input_jitter_noise: "training only (input jitter)",
  fp32_gate: "training only: the gate runs in fp32 when training; inference routes in bf16 (the MoE-LLM node's Routing precision)",
  avg_hidden_states_last: "multi-GPU inference: averages expert-parallel outputs",
  drop_token_num_print: "logging of dropped tokens",
  l_aux_weight: "training: load-balancing loss weight",
  min_l_aux_weight: "training: load-balancing loss weight",
  l_aux_weight_decay_steps: "training: load-balancing loss schedule",
  visual_aligner_type: "ignored by the release's builder too: the aligner's shape comes from its tensors",
  speech_generator_type: "MoE-TTS head (see the parts)",
  tune_speech_generator_only: "training: which modules trained",
  tune_image_generator: "image-generation head (see the parts)",
  mm_use_im_start_end: "prompt format of the training data",
  image_aspect_ratio: "image preprocessing of the release's processor (MoE Studio tiles any-resolution 384² crops)",
  use_sliding_window: "Qwen2-VL attention option; the release's attention is full causal",
  sliding_window: "Qwen2-VL attention option; the release's attention is full causal",
  max_window_layers: "Qwen2-VL attention option; the release's attention is full causal",
  max_position_embeddings: "no limit is imposed (RoPE is computed for any position)",
  hidden_act: "SwiGLU with SiLU is built in",
  initializer_range: "training: weight initialisation",
  attention_dropout: "training only",
  use_cache: "transformers generation option (the node always uses its KV cache)",
  architectures: "transformers bookkeeping",
  transformers_version: "transformers bookkeeping",
  torch_dtype: "the dtype the weights were saved in (the import reads each tensor's own dtype)",
  _name_or_path: "transformers bookkeeping",
  vision_start_token_id: "prompt tokens come from the tokenizer",
  vision_end_token_id: "prompt tokens come from the tokenizer",
  vision_token_id: "prompt tokens come from the tokenizer",
  image_token_id: "prompt tokens come from the tokenizer",
  video_token_id: "prompt tokens come from the tokenizer",
  bos_token_id: "generation stops at the tokenizer's and generation_config.json's end tokens",
  eos_token_id: "generation stops at the tokenizer's and generation_config.json's end tokens",
  pad_token_id: "no padding (one sequence per call)",
};

/** The family of a config.json (by model_type); throws listing the known ones. */
export function detectFamily(raw: Raw): Family {
  const t = raw.model_type;
  const f = FAMILIES.find((x) => x.modelTypes.includes(String(t)));
  if (!f) throw new Error(`config.json model_type ${JSON.stringify(t)} is not a family MoE Studio imports (known: ${FAMILIES.flatMap((x) => x.modelTypes).join(", ")})`);
  return f;
}

export function familyByName(name: string): Family | undefined {
  return FAMILIES.find((f) => f.name === name);
}

export { CONVENTION_TEXT, denseRules };
