import { cpSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { JsonTokenizer, loadTokenizer, readJsonTokenizer } from "@/models/text/tokenizer-json";
import { byteTokenizer } from "@/models/text/tokenizer";
import { SeededRandom } from "@/models/io/seeded-random";
import { byteSymbols, makeQwen2Mini } from "@/tests/fixtures/tokenizers/make-qwen2-mini";

const FIXTURE = path.resolve(__dirname, "../../../fixtures/tokenizers/qwen2-mini");
const tmp = mkdtempSync(path.join(tmpdir(), "tokenizer-json-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
let dirs = 0;
function tempDir(files: Record<string, string> = {}): string {
  const dir = path.join(tmp, String(dirs++));
  cpSync(FIXTURE, dir, { recursive: true });
  for (const [name, text] of Object.entries(files)) writeFileSync(path.join(dir, name), text);
  return dir;
}

const tok = loadTokenizer(FIXTURE) as JsonTokenizer;
/** Id of a raw byte in the byte-level vocab (GPT-2 order, as in Qwen2). */
const byteId = new Map(byteSymbols().map(([b], i) => [b, i] as const));
const bytes = (s: string) => [...new TextEncoder().encode(s)].map((b) => byteId.get(b)!);

function randomText(rng: SeededRandom, n: number): string {
  const ranges: [number, number][] = [[0x20, 0x7e], [0x0a, 0x0a], [0xa0, 0x24f], [0x4e00, 0x9fff], [0x1f300, 0x1faff], [0x3040, 0x30ff]];
  let s = "";
  for (let i = 0; i < n; i++) {
    const [lo, hi] = ranges[rng.int(ranges.length)]!;
    s += String.fromCodePoint(lo + rng.int(hi - lo + 1));
  }
  return s;
}

describe("loadTokenizer with a tokenizer.json", () => {
  it("the committed fixture is what the generator writes", () => {
    const { tokenizer, config } = makeQwen2Mini();
    expect(JSON.parse(readFileSync(path.join(FIXTURE, "tokenizer.json"), "utf8"))).toEqual(tokenizer);
    expect(JSON.parse(readFileSync(path.join(FIXTURE, "tokenizer_config.json"), "utf8"))).toEqual(config);
  });

  it("uses the file, with Qwen2's byte-level ids", () => {
    expect(tok).toBeInstanceOf(JsonTokenizer);
    expect(tok.vocabSize).toBe(256 + 11 + 5);
    expect(tok.tokenId("!")).toBe(0);
    expect(tok.tokenId("Ġ")).toBe(220);
    expect(tok.tokenId("\n")).toBe(198); // a single-token string, like the byte tokenizer's single bytes
    expect(bytes(" \n")).toEqual([220, 198]);
  });

  it("applies the merges", () => {
    expect(tok.encode("hello world")).toEqual([259, 264]); // hello, Ġworld
    // H e l l o: only "l l" applies ("h e" is lowercase)
    expect(tok.encode("Hello")).toEqual([bytes("H")[0], bytes("e")[0], 257, bytes("o")[0]]);
    expect(tok.encode("hell")).toEqual([258]);
    expect(tok.encode("café")).toEqual([...bytes("caf"), 266]); // "Ã ©" = é
    expect(tok.encode("cafe\u0301")).toEqual([...bytes("caf"), 266]); // NFC first
    expect(tok.encode("hello  world")).toEqual([259, 220, 264]);
  });

  it("round-trips ASCII and unicode text", () => {
    for (const s of ["hello world", "Hello, World!\n\tok", "", "café 😀 中文 ひらがな", "a\u0000b", "\uFEFFbom"]) expect(tok.decode(tok.encode(s))).toBe(s);
    const rng = new SeededRandom(7);
    for (let i = 0; i < 200; i++) {
      const s = randomText(rng, rng.int(40)).normalize("NFC");
      expect(tok.decode(tok.encode(s))).toBe(s);
      expect(tok.decode(tok.encode(s, { allowSpecial: false }))).toBe(s);
    }
  });

  it("special tokens are single ids, flagged special; non-special added tokens are single ids too", () => {
    const ids = { eot: 267, start: 268, end: 269, img: 270, think: 271 };
    expect(tok.tokenId("<|endoftext|>")).toBe(ids.eot);
    expect(tok.tokenId("<|im_start|>")).toBe(ids.start);
    expect(tok.tokenId("<|im_end|>")).toBe(ids.end);
    expect(tok.tokenId("[IMG0]")).toBe(ids.img);
    expect(tok.specialTokens).toEqual(["<|endoftext|>", "<|im_start|>", "<|im_end|>", "[IMG0]"]);
    for (const id of [ids.eot, ids.start, ids.end, ids.img]) expect(tok.isSpecial(id)).toBe(true);
    for (const id of [0, 220, 259, ids.think, 999]) expect(tok.isSpecial(id)).toBe(false);

    const text = "<|im_start|>user\nhi[IMG0]<think><|im_end|>";
    const enc = tok.encode(text);
    expect(enc).toEqual([ids.start, ...bytes("user\nhi"), ids.img, ids.think, ids.end]);
    expect(tok.decode(enc)).toBe(text);
    expect(tok.decode(enc, { skipSpecial: true })).toBe("user\nhi<think>");

    // allowSpecial: false — special tokens are plain text (the "i m" merge shows it went through BPE)
    const plain = tok.encode("<|im_start|>", { allowSpecial: false });
    expect(plain).toEqual([...bytes("<|"), 265, ...bytes("_start|>")]);
    expect(plain.some((id) => tok.isSpecial(id))).toBe(false);
    expect(tok.decode(plain)).toBe("<|im_start|>");
    expect(() => tok.tokenId("<|nope|>")).toThrow(/not a single token of .*tokenizer\.json/);
  });

  it("ids past the tokenizer decode as U+FFFD; bad ids throw", () => {
    expect(tok.decode([259, 5000, 264])).toBe("hello\uFFFD world");
    expect(tok.decode([])).toBe("");
    expect(() => tok.decode([-1])).toThrow(/invalid token id/);
  });

  it("stream decoding never emits half a character", () => {
    const ids = tok.encode("a😀é!");
    expect(ids).toEqual([...bytes("a😀"), 266, ...bytes("!")]);
    const d = tok.createStreamDecoder();
    const out = ids.map((id) => d.push(id));
    expect(out).toEqual(["a", "", "", "", "😀", "é", "!"]);
    expect(d.flush()).toBe("");

    // incomplete at a special token: U+FFFD, then the token
    const d2 = tok.createStreamDecoder();
    expect([...bytes("😀").slice(0, 2), 269].map((id) => d2.push(id)).join("")).toBe("\uFFFD<|im_end|>");
    const d3 = tok.createStreamDecoder({ skipSpecial: true });
    expect([259, 269, 264].map((id) => d3.push(id))).toEqual(["hello", "", " world"]);

    // incomplete at the end: U+FFFD at flush
    const d4 = tok.createStreamDecoder();
    expect(bytes("😀").slice(0, 3).map((id) => d4.push(id)).join("")).toBe("");
    expect(d4.flush()).toBe("\uFFFD");

    // the stream equals decode() on random text
    const rng = new SeededRandom(3);
    for (let i = 0; i < 50; i++) {
      const s = randomText(rng, 30).normalize("NFC");
      const e = tok.encode(s);
      const sd = tok.createStreamDecoder();
      let acc = "";
      for (const id of e) {
        const piece = sd.push(id);
        expect(piece).not.toMatch(/\uFFFD/);
        acc += piece;
      }
      expect(acc + sd.flush()).toBe(s);
    }
  });

  it("writes the Qwen chat format", () => {
    const prompt = tok.applyChatTemplate([{ role: "user", content: "hello" }], { addGenerationPrompt: true, defaultSystem: "Be brief." });
    expect(prompt).toBe("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nhello<|im_end|>\n<|im_start|>assistant\n");
    const ids = tok.encode(prompt);
    expect(ids.filter((id) => tok.isSpecial(id))).toEqual([268, 269, 268, 269, 268]);
    expect(ids.slice(-3)).toEqual([268, ...bytes("assistant\n")].slice(-3));
    expect(tok.chatTemplate).toContain("<|im_start|>");
  });

  it("reads merges in the newer [a, b] array form too", () => {
    const { tokenizer } = makeQwen2Mini();
    const model = tokenizer.model as { merges: string[] };
    const dir = tempDir({ "tokenizer.json": JSON.stringify({ ...tokenizer, model: { ...model, merges: model.merges.map((m) => m.split(" ")) } }) });
    expect(loadTokenizer(dir).encode("hello world")).toEqual([259, 264]);
  });

  it("works without tokenizer_config.json", () => {
    const dir = tempDir();
    rmSync(path.join(dir, "tokenizer_config.json"));
    const t = loadTokenizer(dir);
    expect(t.encode("<|im_start|>hello")).toEqual([268, 259]);
    expect(t.decode([259, 264])).toBe("hello world");
  });
});

describe("loadTokenizer: fallback, cache, errors", () => {
  it("falls back to the byte tokenizer without tokenizer.json", () => {
    expect(loadTokenizer(tmp)).toBe(byteTokenizer);
    expect(loadTokenizer(path.join(tmp, "does-not-exist"))).toBe(byteTokenizer);
  });

  it("caches per directory until the file changes", () => {
    const dir = tempDir();
    const a = loadTokenizer(dir);
    expect(loadTokenizer(dir)).toBe(a);
    expect(loadTokenizer(`${dir}/`)).toBe(a);
    const { tokenizer } = makeQwen2Mini();
    const model = tokenizer.model as { merges: string[] };
    writeFileSync(path.join(dir, "tokenizer.json"), JSON.stringify({ ...tokenizer, model: { ...model, merges: model.merges.slice(0, 2) } }));
    utimesSync(path.join(dir, "tokenizer.json"), new Date(), new Date(Date.now() + 5000));
    const b = loadTokenizer(dir);
    expect(b).not.toBe(a);
    expect(b.encode("hell")).toEqual([256, 257]); // only "h e" and "l l" left
    rmSync(path.join(dir, "tokenizer.json"));
    expect(loadTokenizer(dir)).toBe(byteTokenizer);
  });

  it("names the file when tokenizer.json is malformed", () => {
    const notJson = tempDir({ "tokenizer.json": "{ nope" });
    expect(() => loadTokenizer(notJson)).toThrow(new RegExp(`${path.join(notJson, "tokenizer.json").replace(/[.\\/]/g, "\\$&")} is not valid JSON`));
    const noModel = tempDir({ "tokenizer.json": JSON.stringify({ added_tokens: [] }) });
    expect(() => loadTokenizer(noModel)).toThrow(/tokenizer\.json is not a usable tokenizer\.json: "model" must be an object/);
    const badModel = tempDir({ "tokenizer.json": JSON.stringify({ model: { type: "Nope" }, added_tokens: [] }) });
    expect(() => loadTokenizer(badModel)).toThrow(/tokenizer\.json is not a usable tokenizer\.json/);
    const badAdded = tempDir({ "tokenizer.json": JSON.stringify({ ...makeQwen2Mini().tokenizer, added_tokens: [{ content: "<x>" }] }) });
    expect(() => loadTokenizer(badAdded)).toThrow(/added_tokens\[0\] needs an integer "id"/);
    const array = tempDir({ "tokenizer.json": "[]" });
    expect(() => loadTokenizer(array)).toThrow(/tokenizer\.json is not a tokenizer\.json \(expected a JSON object\)/);
    const badConfig = tempDir({ "tokenizer_config.json": "{" });
    expect(() => readJsonTokenizer(badConfig)).toThrow(/tokenizer_config\.json is not valid JSON/);
  });
});
