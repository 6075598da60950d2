/**
 * How the released Omni drives its MoE-TTS from the LLM's generated ids (RELEASED.md §1.9; modeling_out.py
 * select_split / extract_speech_ids / generate_from_tokens, cookbook_audio.py):
 *   - truncation: an output that reached the token cap without <|speech_end|> loses its trailing repeats (one kept)
 *     and gets [".", <|speech_end|>, <|im_end|>] appended;
 *   - cuts inside each <|speech_prompt|> … <|speech_end|> span: forced after more than 16 ids when the next id is
 *     neither a digit nor a split token; at a split token when the next id is not a digit or <|speech_end|> and the
 *     piece is longer than 5;
 *   - chunks: prompt = ids strictly between <|speech_start|> and <|speech_prompt|>; text = from <|speech_prompt|>+1
 *     to the first cut, cut to cut, the last to <|speech_end|>; a chunk not ending in a split token gets "." appended.
 * Split tokens and digits are the model tokenizer's ids for ". , ? ! ; .\n .\n\n 。 ， ？ ！ ： ； 。\n 。\n\n" and
 * "0".."9" (the release takes the second id of "yes. yes" etc. from the Qwen2 tokenizer; we take the id of the
 * separator when it is a single token, which is the same id there: 13, 11, 30, …).
 */
import type { Tokenizer } from "../text/tokenizer";
import type { SpeechGenConfig } from "./tts-released";

export const MAX_CUT_LEN = 16;
export const MIN_CUT_LEN = 5;
const SEPARATORS = [".", ",", "?", "!", ";", ".\n", ".\n\n", "。", "，", "？", "！", "：", "；", "。\n", "。\n\n"];

export interface SpeechTokenIds {
  start: number;
  prompt: number;
  end: number;
  /** <|im_end|> (appended by the truncation rule), when the tokenizer has it. */
  imEnd?: number;
  /** "." (appended to chunks that do not end in a split token). */
  dot: number;
  split: ReadonlySet<number>;
  digits: ReadonlySet<number>;
}

/** The span markers from the speech generator's config, the rest from the LLM tokenizer. */
export function speechTokenIds(c: SpeechGenConfig, tok: Tokenizer): SpeechTokenIds {
  const single = (s: string): number | undefined => {
    const ids = tok.encode(s, { allowSpecial: false });
    return ids.length === 1 ? ids[0] : undefined;
  };
  const dot = single(".");
  if (dot === undefined) throw new Error('the tokenizer has no single token for "." (needed to close speech chunks)');
  let imEnd: number | undefined;
  try {
    imEnd = tok.tokenId("<|im_end|>");
  } catch {
    imEnd = undefined;
  }
  const ids = (xs: (number | undefined)[]) => new Set(xs.filter((x): x is number => x !== undefined));
  return {
    start: c.speech_start_token_id,
    prompt: c.speech_prompt_token_id,
    end: c.speech_end_token_id,
    imEnd,
    dot,
    split: ids(SEPARATORS.map(single)),
    digits: ids(Array.from({ length: 10 }, (_, d) => single(String(d)))),
  };
}

/** The truncation rule for an output that hit the token cap without <|speech_end|> (§1.9.2). */
export function truncateUnclosed(ids: readonly number[], t: SpeechTokenIds): number[] {
  if (ids.includes(t.end) || ids.length === 0) return [...ids];
  let i = ids.length - 1;
  while (i > 0 && ids[i] === ids[ids.length - 1]) i--;
  return [...ids.slice(0, i + 2), t.dot, t.end, ...(t.imEnd !== undefined ? [t.imEnd] : [])];
}

/** select_split: cut positions (a chunk ends before each), in order. */
export function selectSplit(ids: readonly number[], t: SpeechTokenIds, maxLen = MAX_CUT_LEN, minLen = MIN_CUT_LEN): number[] {
  const cuts: number[] = [];
  let prompt = -1, start = -1;
  for (let idx = 0; idx < ids.length; idx++) {
    const i = ids[idx]!;
    if (i === t.prompt) prompt = start = idx;
    if (i === t.end) prompt = start = -1;
    if (prompt > 0 && start > 0) {
      const next = ids[idx + 1];
      if (idx - start > maxLen && (next === undefined || (!t.digits.has(next) && !t.split.has(next)))) {
        cuts.push(idx + 1);
        start = idx + 1;
      }
      if (t.split.has(i) && (next === undefined || (!t.digits.has(next) && next !== t.end)) && idx + 1 - start > minLen) {
        cuts.push(idx + 1);
        start = idx + 1;
      }
    }
  }
  return cuts;
}

export interface SpeechChunkIds {
  /** Style prompt ids (between <|speech_start|> and <|speech_prompt|>). */
  prompt: number[];
  /** Text ids of this chunk, "." appended when it does not end in a split token. */
  text: number[];
}

/** extract_speech_ids: every span's chunks, in order (spans need all three markers, as the release pairs them by index). */
export function speechChunkIds(ids: readonly number[], t: SpeechTokenIds): SpeechChunkIds[] {
  const at = (id: number) => ids.flatMap((v, i) => (v === id ? [i] : []));
  const starts = at(t.start), prompts = at(t.prompt), ends = at(t.end);
  if (starts.length !== prompts.length || prompts.length !== ends.length)
    throw new Error(`the LLM output has ${starts.length} <|speech_start|>, ${prompts.length} <|speech_prompt|> and ${ends.length} <|speech_end|>: the release pairs them one to one`);
  const cuts = selectSplit(ids, t);
  const out: SpeechChunkIds[] = [];
  const fix = (text: number[]) => (text.length > 0 && t.split.has(text[text.length - 1]!) ? text : [...text, t.dot]);
  starts.forEach((s, k) => {
    const p = prompts[k]!, e = ends[k]!;
    const prompt = ids.slice(s + 1, p);
    const inner = cuts.filter((x) => x > p && x < e);
    const bounds = [p + 1, ...inner, e];
    for (let j = 0; j + 1 < bounds.length; j++) out.push({ prompt, text: fix(ids.slice(bounds[j], bounds[j + 1])) });
  });
  return out;
}
