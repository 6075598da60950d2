/**
 * A generated Uni-MoE-2.0-Omni checkpoint with its MoE-TTS, in the released layout: a tiny grin_qwen2_vl LLM under
 * `model.` (vocabulary covering the byte tokenizer, so the seeded tokenizer writes its ids) plus
 * `speech_generator.*` (tests/unit/tts/released-reference.ts seedSpeechWeights) and the speech generator's fields
 * in config.json (RELEASED.md §1.2, with the byte tokenizer's ids of the speech markers). Used by the import and
 * CLI tests and the e2e spec.
 *   npx tsx tests/unit/tts/omni-speech.ts <dir>
 */
import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { writeSafetensors } from "@/models/io/safetensors";
import { byteTokenizer } from "@/models/text/tokenizer";
import type { SpeechGenConfig } from "@/models/tts/tts-released";
import { randomConfig, randomWeights } from "../../reference/random";
import { seedSpeechWeights, smallSpeechConfig } from "./released-reference";

/** The speech generator config of the generated checkpoint (text table = the LLM vocabulary). */
export function omniSpeechConfig(vocab: number): SpeechGenConfig {
  return smallSpeechConfig({
    text_vocab_size: vocab,
    speech_start_token_id: byteTokenizer.tokenId("<|speech_start|>"),
    speech_end_token_id: byteTokenizer.tokenId("<|speech_end|>"),
    speech_prompt_token_id: byteTokenizer.tokenId("<|speech_prompt|>"),
    speech_split_token_id: byteTokenizer.tokenId("<|speech_split|>"),
  });
}

/** The `speech_generator.*` tensors of a generated MoE-TTS and its config.json fields (RELEASED.md §1.2). */
export function omniSpeechPart(vocab: number, seed: number): { speech: SpeechGenConfig; tensors: { name: string; shape: number[]; data: Float32Array }[]; fields: Record<string, unknown> } {
  const speech = omniSpeechConfig(vocab);
  const tensors = [...seedSpeechWeights(speech, seed)].map(([n, t]) => ({ name: `speech_generator.${n}`, shape: t.shape, data: t.data }));
  const fields = Object.fromEntries(
    ["idim", "odim", "transformer_attention_dim", "transformer_linear_units", "transformer_num_blocks", "transformer_attention_heads", "transformer_kv_heads", "transformer_dropout_rate", "encoder_output_dim", "speech_start_token_id", "speech_end_token_id", "speech_prompt_token_id", "speech_split_token_id"].map((k) => [k, speech[k as keyof SpeechGenConfig]]),
  );
  return { speech, tensors, fields: { speech_generator_type: "ar_ori_v2_new", llm_vocab_size: vocab, encoder_pre_norm_type: "ln", encoder_drop_rate: 0.1, encoder_criterion: "ce", encoder_upsample_rate: 9, ...fields } };
}

export async function writeOmniSpeechCheckpoint(dir: string, seed = 17): Promise<{ speech: SpeechGenConfig; vocab: number }> {
  mkdirSync(dir, { recursive: true });
  const vocab = Math.ceil(byteTokenizer.vocabSize / 64) * 64;
  const llm = randomConfig(seed, { model_type: "grin_qwen2_vl", vocab_size: vocab, mlp_dynamic_null_expert_num: 1, mlp_fixed_expert_num: 2, tie_word_embeddings: false });
  const W = randomWeights(llm, seed + 1);
  const { speech, tensors, fields } = omniSpeechPart(vocab, seed + 2);
  const entries = [...W.names().map((n) => ({ name: n, shape: W.get(n).shape, data: W.get(n).data })), ...tensors];
  await writeSafetensors(path.join(dir, "model.safetensors"), entries, { metadata: { format: "pt" } });
  const config = { ...llm, architectures: ["GrinQwen2VLOutForConditionalGeneration"], ...fields };
  writeFileSync(path.join(dir, "config.json"), JSON.stringify(config, null, 2));
  return { speech, vocab };
}

if (process.argv[1] && /omni-speech\.ts$/.test(process.argv[1])) {
  const dir = process.argv[2];
  if (!dir) throw new Error("usage: omni-speech.ts <dir>");
  void writeOmniSpeechCheckpoint(dir).then(() => console.log(`wrote a generated Omni checkpoint with a speech generator to ${dir}`));
}
