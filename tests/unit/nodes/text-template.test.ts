import { describe, expect, it } from "vitest";
import { MAX_TEMPLATE_OUTPUT, textTemplate } from "@/nodes/text-template";

const run = (template: string, a: string, b?: string) => textTemplate.execute({ inputs: { a, ...(b === undefined ? {} : { b }) }, params: { template } } as never) as Promise<{ text: string }>;

describe("Text Template", () => {
  it("fills {a} and {b} (every occurrence; {b} also where {a}'s text brought it, as before)", async () => {
    expect((await run("Q: {a}\nA: {b} / {a}", "why?", "because")).text).toBe("Q: why?\nA: because / why?");
    expect((await run("{a}{b}", "x{b}")).text).toBe("x");
    expect((await run("no slots", "ignored")).text).toBe("no slots");
  });

  it("refuses a template that would repeat its input into gigabytes, before building it", async () => {
    const template = "{a}".repeat(33_000); // 99 kB, within the param's limit
    const a = "x".repeat(15_000); // → 495 M characters
    await expect(run(template, a)).rejects.toThrow("the filled template would be 495,000,000 characters (33,000 × {a} with 15,000 characters each); at most 16,777,216 are allowed");
    // {b} is checked on what {a} made
    await expect(run("{a}", "{b}".repeat(10), "y".repeat(MAX_TEMPLATE_OUTPUT / 4))).rejects.toThrow(/× \{b\}/);
    // up to the limit it is filled
    expect((await run("{a}", "z".repeat(MAX_TEMPLATE_OUTPUT))).text.length).toBe(MAX_TEMPLATE_OUTPUT);
  });
});
