import { describe, expect, it } from "vitest";
import { extractSpeechSpans, parseStylePrompt, splitTextForSpeech } from "@/models/tts/tts";
import { NO_SPAN_MESSAGE, speechSegments, tts } from "@/nodes/tts";

describe("speech spans in LLM text", () => {
  it("finds style and text of a span", () => {
    const t = "<|im_start|>assistant\nSure.<|speech_start|>Language: English; Speaker: Brian;<|speech_prompt|>Hello world. How are you?<|speech_end|><|im_end|>";
    expect(extractSpeechSpans(t)).toEqual([{ style: "Language: English; Speaker: Brian;", text: "Hello world. How are you?" }]);
    expect(parseStylePrompt("Language: English; Speaker: Brian;")).toEqual({ language: "English", speaker: "Brian" });
    expect(parseStylePrompt("Speaker: X")).toEqual({ language: undefined, speaker: "X" });
  });

  it("reads several spans in order, a span without a prompt, and an unclosed span", () => {
    const t = "a<|speech_start|>S1;<|speech_prompt|>One.<|speech_end|> b <|speech_start|>Two, no style.<|speech_end|>c<|speech_start|>L: x;<|speech_prompt|>Three<|im_end|>";
    expect(extractSpeechSpans(t)).toEqual([
      { style: "S1;", text: "One." },
      { style: "", text: "Two, no style." },
      { style: "L: x;", text: "Three" },
    ]);
    // a new start before an end closes the previous span
    expect(extractSpeechSpans("<|speech_start|>A<|speech_start|>B<|speech_end|>")).toEqual([
      { style: "", text: "A" },
      { style: "", text: "B" },
    ]);
  });

  it("returns nothing when there is no span, or only empty ones", () => {
    expect(extractSpeechSpans("just text <|im_end|>")).toEqual([]);
    expect(extractSpeechSpans("<|speech_start|>Style;<|speech_prompt|>  ...  <|speech_end|>")).toEqual([]);
    expect(extractSpeechSpans("")).toEqual([]);
  });

  it("keeps <|speech_split|> for the chunker", () => {
    const [s] = extractSpeechSpans("<|speech_start|>x<|speech_prompt|>part one<|speech_split|>part two<|speech_end|>");
    expect(splitTextForSpeech(s!.text)).toEqual(["part one", "part two"]);
  });
});

describe("node input choice", () => {
  const llm = (text: string) => ({ kind: "llm-output", text, ids: [] });
  it("uses the span, with the voice param when the span has no style", () => {
    expect(speechSegments(llm("<|speech_start|>Language: Chinese;<|speech_prompt|>Hi<|speech_end|>"), undefined, "V;")).toEqual([{ style: "Language: Chinese;", text: "Hi" }]);
    expect(speechSegments(llm("<|speech_start|>Hi<|speech_end|>"), undefined, "V;")).toEqual([{ style: "V;", text: "Hi" }]);
  });
  it("falls back to TEXT, and explains when there is neither span nor text", () => {
    const logs: string[] = [];
    expect(speechSegments(llm("no span here"), "Spoken.", "V;", (m) => logs.push(m))).toEqual([{ style: "V;", text: "Spoken." }]);
    expect(logs[0]).toMatch(/no speech span/);
    expect(() => speechSegments(llm("no span here"), undefined, "V;")).toThrow(NO_SPAN_MESSAGE);
    expect(NO_SPAN_MESSAGE).toBe("the LLM output has no <|speech_start|> … <|speech_end|> span; connect TEXT instead, or prompt the model to speak");
  });
  it("takes text-only input, and needs one of the two", async () => {
    expect(speechSegments(undefined, "Only text.", "V;")).toEqual([{ style: "V;", text: "Only text." }]);
    expect(() => speechSegments(undefined, undefined, "V;")).toThrow(/connect an LLM output/);
    // what is not an LLM output is refused where it enters the node (engine/node.ts checks each input against its kind)
    await expect(tts.execute({ inputs: { llm: { kind: "x" } }, params: tts.params.parse({}), ctx: {} as never })).rejects.toThrow(/not an LLM output/);
  });
});

describe("splitting text at punctuation", () => {
  it("splits sentences and keeps the punctuation", () => {
    expect(splitTextForSpeech("Hello there. How are you?  Fine!   Thanks; bye")).toEqual(["Hello there.", "How are you?", "Fine!", "Thanks;", "bye"]);
  });
  it("does not split inside numbers or abbreviations without a following space", () => {
    expect(splitTextForSpeech("Pi is 3.14 today. Next")).toEqual(["Pi is 3.14 today.", "Next"]);
  });
  it("splits CJK punctuation without spaces, and at line breaks", () => {
    expect(splitTextForSpeech("你好。今天怎么样？很好\nNew line")).toEqual(["你好。", "今天怎么样？", "很好", "New line"]);
  });
  it("splits long sentences at commas, then between words, within maxChars", () => {
    const long = "alpha beta gamma, delta epsilon zeta, eta theta iota kappa lambda mu nu xi omicron pi rho sigma tau";
    const chunks = splitTextForSpeech(long, 30);
    for (const c of chunks) expect(c.length).toBeLessThanOrEqual(30);
    expect(chunks.join(" ").replace(/\s+/g, " ")).toBe(long);
    expect(chunks[0]).toBe("alpha beta gamma,");
    expect(splitTextForSpeech("x".repeat(25), 10)).toEqual(["xxxxxxxxxx", "xxxxxxxxxx", "xxxxx"]);
  });
  it("drops chunks without letters or digits", () => {
    expect(splitTextForSpeech("... ! Hi. ?")).toEqual(["Hi."]);
    expect(splitTextForSpeech("   ")).toEqual([]);
  });
});
