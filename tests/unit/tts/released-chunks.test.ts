/** The release's speech-span cutting (§1.9) on hand-worked id sequences. */
import { describe, expect, it } from "vitest";
import { selectSplit, speechChunkIds, truncateUnclosed, type SpeechTokenIds } from "@/models/tts/tts-released-chunks";

const t: SpeechTokenIds = { start: 100, prompt: 101, end: 102, imEnd: 103, dot: 9, split: new Set([9, 11]), digits: new Set([20]) };

describe("speech chunks as released", () => {
  it("cuts after a split token once the piece is longer than 5, not before a digit or <|speech_end|>", () => {
    const ids = [100, 50, 51, 101, 1, 2, 3, 4, 5, 6, 9, 7, 8, 9, 20, 9, 102, 103];
    expect(selectSplit(ids, t)).toEqual([11]);
    expect(speechChunkIds(ids, t)).toEqual([
      { prompt: [50, 51], text: [1, 2, 3, 4, 5, 6, 9] },
      { prompt: [50, 51], text: [7, 8, 9, 20, 9] },
    ]);
  });
  it("forces a cut after more than 16 ids and appends '.' to chunks not ending in a split token", () => {
    const ids = [100, 101, ...Array(25).fill(30), 102];
    expect(selectSplit(ids, t)).toEqual([19]);
    const chunks = speechChunkIds(ids, t);
    expect(chunks.map((c) => c.text.length)).toEqual([18, 9]);
    expect(chunks.every((c) => c.text[c.text.length - 1] === 9 && c.prompt.length === 0)).toBe(true);
  });
  it("an output cut by the token cap loses its trailing repeats (one kept) and is closed", () => {
    expect(truncateUnclosed([100, 101, 5, 6, 7, 7, 7], t)).toEqual([100, 101, 5, 6, 7, 9, 102, 103]);
    expect(truncateUnclosed([100, 101, 5, 102], t)).toEqual([100, 101, 5, 102]);
  });
  it("unpaired markers are refused as the release pairs them by index", () => {
    expect(() => speechChunkIds([100, 101, 5], t)).toThrow(/pairs them one to one/);
  });
});
