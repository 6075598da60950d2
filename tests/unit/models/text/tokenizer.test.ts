import { describe, expect, it } from "vitest";
import { SPECIAL_TOKENS, byteTokenizer as tok } from "@/models/text/tokenizer";
import { SeededRandom } from "@/models/io/seeded-random";

/** Random well-formed unicode: ASCII, Latin, CJK, emoji (astral), combining marks, controls, BOM. */
function randomText(rng: SeededRandom, n: number): string {
  const ranges: [number, number][] = [[0x20, 0x7e], [0x00, 0x1f], [0xa0, 0x24f], [0x300, 0x36f], [0x4e00, 0x9fff], [0x1f300, 0x1faff], [0xfeff, 0xfeff], [0x10000, 0x10ffff], [0xe000, 0xf8ff]];
  let s = "";
  for (let i = 0; i < n; i++) {
    const [lo, hi] = ranges[rng.int(ranges.length)]!;
    s += String.fromCodePoint(lo + rng.int(hi - lo + 1));
  }
  return s;
}

describe("ByteTokenizer", () => {
  it("has the documented id layout", () => {
    expect(SPECIAL_TOKENS.length).toBe(14 + 32 + 3);
    expect(tok.vocabSize).toBe(256 + 49);
    expect(tok.tokenId("<|endoftext|>")).toBe(256);
    expect(tok.tokenId("<|im_start|>")).toBe(257);
    expect(tok.tokenId("<|im_end|>")).toBe(258);
    expect(tok.tokenId("<|speech_split|>")).toBe(269);
    expect(tok.tokenId("[IMG0]")).toBe(270);
    expect(tok.tokenId("[IMG31]")).toBe(301);
    expect(tok.tokenId("[TASK0]")).toBe(302);
    expect(tok.tokenId("[TASK2]")).toBe(304);
    expect(tok.tokenId("A")).toBe(65);
    expect(() => tok.tokenId("<|nope|>")).toThrow(/neither a special token nor a single byte/);
    expect(tok.isSpecial(255)).toBe(false);
    expect(tok.isSpecial(256)).toBe(true);
    expect(tok.isSpecial(304)).toBe(true);
    expect(tok.isSpecial(305)).toBe(false);
  });

  it("round-trips arbitrary unicode text", () => {
    const rng = new SeededRandom(99);
    for (let i = 0; i < 200; i++) {
      const text = randomText(rng, rng.int(60));
      const ids = tok.encode(text);
      expect(ids.every((id) => id >= 0 && id < 256)).toBe(true);
      expect(tok.decode(ids)).toBe(text);
    }
    expect(tok.encode("é")).toEqual([0xc3, 0xa9]);
    expect(tok.encode("😀")).toEqual([0xf0, 0x9f, 0x98, 0x80]);
  });

  it("encodes each special token to a single id, also inside text", () => {
    SPECIAL_TOKENS.forEach((t, i) => expect(tok.encode(t)).toEqual([256 + i]));
    expect(tok.encode("a[IMG12]b<|im_end|>")).toEqual([97, 270 + 12, 98, 258]);
    expect(tok.encode("[IMG1][IMG12]")).toEqual([271, 282]); // no prefix confusion
    expect(tok.encode("<|im_end|>", { allowSpecial: false })).toHaveLength("<|im_end|>".length);
    expect(tok.encode("<|im_end")).toHaveLength(8); // incomplete: plain bytes
    const text = "<|vision_start|><|image_pad|><|vision_end|>Describe 🖼️[TASK1][IMG0]";
    expect(tok.decode(tok.encode(text))).toBe(text);
    expect(tok.decode(tok.encode(text), { skipSpecial: true })).toBe("Describe 🖼️");
  });

  it("stream decoder never emits half a UTF-8 character", () => {
    const text = "a😀é中<|im_end|>z";
    const ids = tok.encode(text);
    const d = tok.createStreamDecoder();
    const pieces = ids.map((id) => d.push(id));
    pieces.push(d.flush());
    expect(pieces.join("")).toBe(text);
    // the 4 bytes of the emoji produce "", "", "", "😀"
    expect(pieces.slice(1, 5)).toEqual(["", "", "", "😀"]);
    for (const p of pieces) expect(p).not.toMatch(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/); // no lone surrogates
  });

  it("stream decoder: incomplete bytes become U+FFFD at a special token or at flush; ids past the vocab are U+FFFD", () => {
    const d = tok.createStreamDecoder();
    expect(d.push(0xf0)).toBe("");
    expect(d.push(0x9f)).toBe("");
    expect(d.push(tok.tokenId("<|im_end|>"))).toBe("\uFFFD<|im_end|>");
    expect(d.push(0xe4)).toBe("");
    expect(d.flush()).toBe("\uFFFD");
    expect(tok.decode([0x41, 319])).toBe("A\uFFFD");
    expect(tok.decode([0xff, 0x41])).toBe("\uFFFDA");
    expect(() => tok.decode([-1])).toThrow(/invalid token id -1/);
  });

  it("applies the Qwen chat template exactly", () => {
    const messages = [
      { role: "system", content: "You are terse." },
      { role: "user", content: "Hi<|image_pad|>" },
      { role: "assistant", content: "Hello." },
      { role: "user", content: "Line 1\nLine 2" },
    ];
    expect(tok.applyChatTemplate(messages, { addGenerationPrompt: true })).toBe(
      "<|im_start|>system\nYou are terse.<|im_end|>\n" +
        "<|im_start|>user\nHi<|image_pad|><|im_end|>\n" +
        "<|im_start|>assistant\nHello.<|im_end|>\n" +
        "<|im_start|>user\nLine 1\nLine 2<|im_end|>\n" +
        "<|im_start|>assistant\n",
    );
    expect(tok.applyChatTemplate([{ role: "user", content: "x" }])).toBe("<|im_start|>user\nx<|im_end|>\n");
    expect(tok.applyChatTemplate([{ role: "user", content: "x" }], { defaultSystem: "S" })).toBe(
      "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nx<|im_end|>\n",
    );
    const ids = tok.encode(tok.applyChatTemplate([{ role: "user", content: "x" }], { addGenerationPrompt: true }));
    expect(ids).toEqual([257, ..."user\nx".split("").map((c) => c.charCodeAt(0)), 258, 10, 257, ..."assistant\n".split("").map((c) => c.charCodeAt(0))]);
  });

  it("lists its special tokens for tokenizer_config.json", () => {
    const cfg = tok.tokenizerConfig() as { added_tokens_decoder: Record<string, { content: string }>; additional_special_tokens: string[] };
    expect(cfg.added_tokens_decoder["256"]!.content).toBe("<|endoftext|>");
    expect(cfg.added_tokens_decoder["304"]!.content).toBe("[TASK2]");
    expect(cfg.additional_special_tokens).toEqual(SPECIAL_TOKENS);
  });
});
