/**
 * A tiny Uni-MoE-2.0-Omni checkpoint in the released layout (config.json as save_pretrained writes it, every part of
 * the safetensors), for the import tests and the Models-page e2e.
 */
import { seedEncoderWeights } from "@/models/encoders/encoders-tiny";
import { zVisionConfig } from "@/models/encoders/vision-encoder";
import type { Tensor32 } from "@/models/io/weights";
import { randomConfig, randomWeights } from "../../reference/random";
import { omniSpeechPart } from "../tts/omni-speech";

/** The LLM part (4 routed + 1 null + 2 shared experts, tiny sizes); `vocab_size` covers the byte tokenizer. */
export const omniLlmConfig = randomConfig(51, { mlp_dynamic_expert_num: 4, mlp_dynamic_null_expert_num: 1, mlp_fixed_expert_num: 2, tie_word_embeddings: false, vocab_size: 320 });
const llm = omniLlmConfig;
/** The MoE-TTS of the checkpoint: its tensors and config.json fields. */
export const omniSpeech = omniSpeechPart(llm.vocab_size, 55);
const visionConfigJson = { model_type: "siglip_vision_model", image_size: 70, patch_size: 14, hidden_size: 24, intermediate_size: 40, num_attention_heads: 3, num_hidden_layers: 3, layer_norm_eps: 1e-6, hidden_act: "gelu_pytorch_tanh" };

/** config.json as the release's save_pretrained writes it (GrinQwen2VLConfig's fields, RELEASED.md §5 item 6), tiny sizes. */
export function releaseConfigText(over: Record<string, unknown> = {}): string {
  const { seeded_untrained: _, ...base } = llm as Record<string, unknown>;
  const config = {
    ...base,
    architectures: ["GrinQwen2VLOutForConditionalGeneration"],
    model_type: "grin_qwen2_vl_out",
    rope_scaling: { type: "default", rope_type: "default", mrope_section: llm.rope_scaling.mrope_section },
    mlp_dynamic_top_p: 0.7,
    mlp_dynamic_top_k: 0.5, // replaced by the literal 0.0 below
    router_jitter_noise: 0.01,
    token_drop: true,
    drop_policy: "probs",
    min_capacity: 8,
    capacity_factor: 1.0,
    ignore_differentiable_router: false,
    enable_expert_tensor_parallelism: false,
    ep_size: 1,
    fixed_ep_size: 1,
    input_jitter_noise: 0.01,
    fp32_gate: true,
    avg_hidden_states_last: false,
    drop_token_num_print: true,
    l_aux_weight: 0,
    min_l_aux_weight: 0,
    l_aux_weight_decay_steps: 1,
    vision_spatial_pool_stride: 2,
    vision_config: visionConfigJson,
    whisper_query_tokens_size: 200,
    whisper_projector_type: "linear",
    visual_aligner_type: "mlp2x_gelu",
    ...omniSpeech.fields,
    tune_image_generator: true,
    torch_dtype: "bfloat16",
    transformers_version: "4.51.3",
    a_field_from_the_future: 3,
    ...over,
  };
  return JSON.stringify(config, null, 2).replace('"mlp_dynamic_top_k": 0.5', '"mlp_dynamic_top_k": 0.0');
}

/** Every part of an Omni checkpoint: LLM, SigLIP tower + aligner, the MoE-TTS, and (tiny stand-ins for) the image heads. */
export function omniTensors(): { name: string; shape: number[]; data: Float32Array }[] {
  const W = randomWeights(llm, 52);
  const out = W.names().map((n) => ({ name: n, ...W.get(n) }));
  const vc = zVisionConfig.parse({ ...visionConfigJson, projector_hidden_size: 20, out_dim: llm.hidden_size });
  for (const [name, t] of seedEncoderWeights("vision", vc, 53) as Map<string, Tensor32>)
    out.push({ name: name.startsWith("mm_projector.") ? name.replace("mm_projector.", "vision_aligner.") : `vision_tower.vision_tower.${name}`, ...t });
  const small = (name: string) => ({ name, shape: [2, 3], data: Float32Array.from([1, 2, 3, 4, 5, 6]) });
  out.push(
    ...omniSpeech.tensors,
    small("image_generator.model.x_embedder.weight"),
    small("image_hidden_fcs.0.0.weight"),
    small("task_hidden_fcs.0.0.weight"),
    small("visual_hidden_fcs.0.weight"),
    small("mtp_head.weight"),
  );
  return out;
}
