import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { textInput } from "../../../nodes/text-input";
import { makeCtx } from "./ctx";

let env: Awaited<ReturnType<typeof makeCtx>>;
beforeAll(async () => (env = await makeCtx()));
afterAll(() => env.dispose());

describe("input.text", () => {
  it("outputs its text param", async () => {
    const out = await textInput.execute({ inputs: {}, params: textInput.params.parse({ text: "Describe the image." }), ctx: env.ctx });
    expect(out).toEqual({ text: "Describe the image." });
    expect(textInput.summarize!(out)).toBe('19 characters: "Describe the image."');
  });
  it("defaults to empty text and says so", async () => {
    const out = await textInput.execute({ inputs: {}, params: textInput.params.parse({}), ctx: env.ctx });
    expect(out).toEqual({ text: "" });
    expect(textInput.summarize!(out)).toBe("empty text");
  });
  it("shortens long text in the summary", () => {
    const s = textInput.summarize!({ text: "word ".repeat(100) });
    expect(s.length).toBeLessThan(90);
    expect(s).toMatch(/^500 characters: ".*…"$/);
  });
});
