import { createHash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import type { SequenceValue } from "../../engine/sequence";
import type { PromptInput } from "./generate";
import type { ResolvedModel } from "./moe-llm-model";
import { promptEmbeddings } from "./moe-llm-model";
import { checkContext } from "./context-limit";
import { tokenizerHash } from "../text/prompt-tokenizer";
import { continuePositions, scoredSequence, type ScoreInput } from "./scoring";
import { byteTokenizer, type Tokenizer } from "../text/tokenizer";
import { JsonTokenizer, loadTokenizer } from "../text/tokenizer-json";
import { GENERATION_CONFIG_FILE } from "./stop-tokens";

/**
 * What besides the weights decides an MoE-LLM run's prompt and stop: the chat template (not part of the weights'
 * content hash) and generation_config.json. The model's content hash, extended by those when present.
 */
export function promptFilesFingerprint(model: ResolvedModel): string {
  const tokenizer = loadTokenizer(model.dir);
  const template = tokenizer instanceof JsonTokenizer ? tokenizer.chatTemplate : null;
  const generationFile = path.join(model.dir, GENERATION_CONFIG_FILE);
  const extras = [template, existsSync(generationFile) ? readFileSync(generationFile, "utf8") : null];
  if (extras.every((e) => e === null)) return model.contentHash;
  return `${model.contentHash}:${createHash("sha256").update(JSON.stringify(extras)).digest("hex").slice(0, 16)}`;
}

/**
 * Refuses a Prompt Builder sequence whose ids belong to another tokenizer than the model's (they would index the
 * wrong embeddings: silently wrong output), and ids past the model's vocabulary.
 */
export function checkSequenceTokenizer(sequence: SequenceValue, modelRef: string, tok: Tokenizer, vocabSize: number): void {
  const hash = tokenizerHash(tok);
  if (sequence.tokenizer) {
    if (sequence.tokenizer.hash !== hash) {
      throw new Error(
        `the sequence was tokenised for ${sequence.tokenizer.model}'s tokenizer but this node runs ${modelRef}, whose tokenizer differs; set the Prompt Builder's model to ${modelRef}`,
      );
    }
  } else if (tok !== byteTokenizer) {
    throw new Error(
      `the sequence records no tokenizer (it was built before Prompt Builders had a model, with the reference byte tokenizer) but ${modelRef} has its own tokenizer; set the Prompt Builder's model to ${modelRef} and run it again`,
    );
  }
  const bad = sequence.ids.findIndex((id) => !Number.isInteger(id) || id < 0 || id >= vocabSize);
  if (bad >= 0) throw new Error(`the sequence's token ${bad} has id ${sequence.ids[bad]}, outside ${modelRef}'s vocabulary of ${vocabSize}`);
}

/** The prompt as the model reads it: ids (and positions, modalities, media rows for a sequence), its text and how it was written. */
export interface BuiltPrompt {
  ids: number[];
  input: PromptInput;
  text: string;
  format: string;
}

/**
 * A Prompt Builder's sequence as it is; a plain prompt as it is for language-model scoring (score-text); otherwise
 * the prompt (after `system`) through the chat template (`template`: the model's own, or the built-in ChatML).
 * With `embeds` (an `embeds` graph) the input carries the prompt's embedding rows, also when it has no media.
 */
export function buildPrompt(
  model: ResolvedModel,
  tokenizer: Tokenizer,
  modelRef: string,
  o: { sequence?: SequenceValue; prompt?: string; scoreText: boolean; system: string; chatTemplate: "model" | "chatml"; embeds?: boolean },
): BuiltPrompt {
  const built = promptOf(tokenizer, modelRef, o);
  checkContext(model.config, built.ids.length, "the prompt");
  const media = o.sequence?.media;
  if (!media && !o.embeds) return built;
  const rows = media ?? { at: new Int32Array(0), rows: new Float32Array(0), dim: model.config.hidden_size };
  return { ...built, input: { ...built.input, embeds: promptEmbeddings(model, built.ids, rows) } };
}

function promptOf(tokenizer: Tokenizer, modelRef: string, o: { sequence?: SequenceValue; prompt?: string; scoreText: boolean; system: string; chatTemplate: "model" | "chatml" }): BuiltPrompt {
  const { sequence } = o;
  if (sequence) {
    const ids = sequence.ids;
    const input: PromptInput = { ids, positions: sequence.positions, modalities: sequence.modality, modelName: modelRef };
    return { ids, input, text: sequence.text, format: sequence.tokenizer ? `sequence from the Prompt Builder, tokenised for ${sequence.tokenizer.model}` : "sequence from the Prompt Builder" };
  }
  const prompt = o.prompt ?? "";
  if (o.scoreText) {
    const ids = tokenizer.encode(prompt);
    return { ids, input: { ids, modelName: modelRef }, text: prompt, format: "the prompt as it is (language-model scoring, no chat template)" };
  }
  const messages = [...(o.system ? [{ role: "system", content: o.system }] : []), { role: "user", content: prompt }];
  const options = { addGenerationPrompt: true, template: o.chatTemplate };
  const text = tokenizer.applyChatTemplate(messages, options);
  const ids = tokenizer.encode(text);
  return { ids, input: { ids, modelName: modelRef }, text, format: tokenizer.chatTemplateLabel(options) };
}

/** `rows` ([n × H] row-major) with more rows appended. */
function appendRows(rows: Float32Array, more: Float32Array[]): Float32Array {
  const out = new Float32Array(rows.length + more.reduce((a, r) => a + r.length, 0));
  out.set(rows);
  let at = rows.length;
  for (const r of more) {
    out.set(r, at);
    at += r.length;
  }
  return out;
}

/** The prompt followed by the answer (score-answer) or alone (score-text), as one teacher-forced scoring input. */
export function scoringInput(prompt: BuiltPrompt, answerIds: number[] | null, modelRef: string): ScoreInput {
  const { ids, input } = prompt;
  const seq = scoredSequence(ids, answerIds);
  const extra = seq.ids.length - ids.length;
  return {
    ...seq,
    modelName: modelRef,
    ...(input.positions ? { positions: continuePositions(input.positions, extra) } : {}),
    ...(input.modalities ? { modalities: [...input.modalities, ...Array<"text">(extra).fill("text")] } : {}),
    ...(input.embeds ? { embeds: appendRows(input.embeds.prompt, seq.ids.slice(ids.length).map(input.embeds.token)) } : {}),
  };
}
