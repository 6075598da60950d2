import { describe, expect, it } from "vitest";
import { MAX_TEMPLATE_OUTPUT, textTemplate } from "@/nodes/text-template";

const run = (template: string, a: string, b?: string) => textTemplate.execute({ inputs: { a, ...(b === undefined ? {} : { b }) }, params: { template } } as never) as Promise<{ text: string }>;

describe("Text Template", () => {
  it("fills every {a} and {b} of the template in one pass: a slot inside an input's text stays text", async () => {
    expect((await run("Q: {a}\nA: {b} / {a}", "why?", "because")).text).toBe("Q: why?\nA: because / why?");
    expect((await run("{a}{b}", "x{b}")).text).toBe("x{b}");
    expect((await run("Q: {a}\nContext: {b}", "user said: {b} {a}", "SECRET-B")).text).toBe("Q: user said: {b} {a}\nContext: SECRET-B");
    expect((await run("{b}{a}{b}", "{a}", "{b}")).text).toBe("{b}{a}{b}");
    expect((await run("no slots", "ignored")).text).toBe("no slots");
  });

  it("refuses a template that would repeat its input into gigabytes, before building it", async () => {
    const template = "{a}".repeat(33_000); // 99 kB, within the param's limit
    const a = "x".repeat(15_000); // → 495 M characters
    await expect(run(template, a)).rejects.toThrow("the filled template would be 495,000,000 characters (33,000 × {a} with 15,000 characters each); at most 16,777,216 are allowed");
    await expect(run("{a}{b}{b}", "x", "y".repeat(MAX_TEMPLATE_OUTPUT / 2))).rejects.toThrow("(1 × {a} with 1 characters each, 2 × {b} with 8,388,608 characters each)");
    // {b}s arriving in {a}'s text are not filled, so they cost nothing (they made a 16 M-character intermediate that
    // was split into millions of pieces)
    expect((await run("{a}", "{b}".repeat(10), "y".repeat(MAX_TEMPLATE_OUTPUT / 4))).text).toBe("{b}".repeat(10));
    // up to the limit it is filled
    expect((await run("{a}", "z".repeat(MAX_TEMPLATE_OUTPUT))).text.length).toBe(MAX_TEMPLATE_OUTPUT);
  });
});
