import { describe, expect, it } from "vitest";
import type { FeaturesValue } from "@/engine/features";
import { computePositionIds } from "@/engine/rope/positions";
import { buildSequence } from "@/models/text/prompt";
import { byteTokenizer as tok } from "@/models/text/tokenizer";

function feats(modality: FeaturesValue["modality"], n: number, dim: number, extra: Partial<FeaturesValue>): FeaturesValue {
  // Row r is filled with the value r + 1 so we can see where each row lands.
  const data = new Float32Array(n * dim);
  for (let r = 0; r < n; r++) data.fill(r + 1, r * dim, (r + 1) * dim);
  return { kind: "features", modality, data, n, dim, encoder: "test", ...extra };
}

describe("buildSequence", () => {
  const image = feats("image", 2 * 1 * 4, 8, { image: { rows: 2, cols: 1, pool: 2 } });
  const audio = feats("audio", 200, 8, { audio: { chunks: 1, durationSec: 12 } });

  it("expands placeholders into markers + one pad per row, with uni-moe positions", () => {
    const s = buildSequence(tok, { template: "<image>\n<audio>\nWhat is it?", system: "", image, audio, mode: "uni-moe" });
    const imgPad = tok.tokenId("<|image_pad|>");
    const audPad = tok.tokenId("<|audio_pad|>");
    expect(s.ids.filter((i) => i === imgPad)).toHaveLength(8);
    expect(s.ids.filter((i) => i === audPad)).toHaveLength(200);
    const vs = s.ids.indexOf(tok.tokenId("<|vision_start|>"));
    expect(s.ids.slice(vs + 1, vs + 9).every((i) => i === imgPad)).toBe(true);
    expect(s.ids[vs + 9]).toBe(tok.tokenId("<|vision_end|>"));
    // The text decodes back to the templated prompt around the spans.
    expect(tok.decode(s.ids)).toContain("<|im_start|>user\n<|vision_start|><|image_pad|>");
    expect(tok.decode(s.ids).endsWith("What is it?<|im_end|>\n<|im_start|>assistant\n")).toBe(true);
    // Positions are exactly the rule's for the implied layout.
    const textBefore = vs + 1;
    const ae = s.ids.indexOf(tok.tokenId("<|audio_start|>"));
    const expected = computePositionIds(
      [
        { kind: "text", tokens: textBefore },
        { kind: "image", rows: 2, cols: 1, pool: 2 },
        { kind: "text", tokens: ae - (vs + 9) + 1 },
        { kind: "audio", chunks: 1 },
        { kind: "text", tokens: s.ids.length - (ae + 1 + 200) },
      ],
      "uni-moe",
    );
    expect(s.positions).toEqual({ t: expected.t, h: expected.h, w: expected.w });
    // Media rows sit at the pad positions, in order.
    expect(s.media!.at.length).toBe(208);
    expect(s.media!.at[0]).toBe(vs + 1);
    expect(s.media!.rows[0]).toBe(1);
    expect(s.media!.rows[7 * 8]).toBe(8);
    expect(s.media!.rows[8 * 8]).toBe(1); // first audio row
    expect(s.modality.filter((m) => m === "image")).toHaveLength(8);
  });

  it("puts connected media without a placeholder first, and refuses placeholders without media", () => {
    const s = buildSequence(tok, { template: "describe", system: "", image, mode: "uni-moe" });
    expect(s.modality.indexOf("image")).toBeLessThan(s.ids.length - 10);
    expect(() => buildSequence(tok, { template: "<audio> hi", system: "", image, mode: "uni-moe" })).toThrow(/no audio features/);
    expect(() => buildSequence(tok, { template: "<image><image>", system: "", image, mode: "uni-moe" })).toThrow(/more than once/);
    // placeholders in the system prompt would each be a whole copy of the media (120 × a 6×6-tile image: millions of rows)
    expect(() => buildSequence(tok, { template: "<image> what is it?", system: "<image>".repeat(120), image, mode: "uni-moe" })).toThrow(/<image> appears 121 times in the prompt as templated/);
    expect(() => buildSequence(tok, { template: "hi", system: "see <audio>", image, mode: "uni-moe" })).toThrow(/<audio> appears 1 time in the prompt/);
  });

  it("a prompt past the context limit is refused with the limit (500,000 tokens overflowed the call stack)", () => {
    const text = "x".repeat(500_000);
    expect(() => buildSequence(tok, { template: "{text}", text, system: "", mode: "uni-moe" })).toThrow(/^the prompt has 500,\d{3} text tokens or more; at most STUDIO_MAX_CONTEXT_TOKENS \(8192\) fit; shorten the prompt$/);
  });

  it("checks rows against the layout and the LLM's hidden size", () => {
    const bad = feats("image", 7, 8, { image: { rows: 2, cols: 1, pool: 2 } });
    expect(() => buildSequence(tok, { template: "<image>", system: "", image: bad, mode: "uni-moe" })).toThrow(/7 rows but their layout needs 8/);
    expect(() => buildSequence(tok, { template: "<image>", system: "", image, mode: "uni-moe" }, 128)).toThrow(/hidden size is 128/);
  });

  it("text only: 1D-like positions (t = h = w = index) in every mode", () => {
    for (const mode of ["uni-moe", "uni-moe-released", "1d"] as const) {
      const s = buildSequence(tok, { template: "hello", system: "be brief", mode });
      expect(s.positions.t).toEqual([...s.ids.keys()]);
      expect(s.positions.h).toEqual(s.positions.t);
      expect(s.media).toBeNull();
    }
  });
});
