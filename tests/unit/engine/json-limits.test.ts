import { describe, expect, it } from "vitest";
import { jsonTextProblem } from "@/engine/json-limits";

/** A seeded random JSON value with strings that hold brackets, commas, colons, quotes and escapes. */
function randomValue(rand: () => number, depth: number): unknown {
  const r = rand();
  if (depth > 5 || r < 0.35) {
    const leaves = [null, true, false, 0, -1.5e3, "", 'a"b', "[{,:}]", "\\", "\\\"]", "ünï\n"];
    return leaves[Math.floor(rand() * leaves.length)];
  }
  const n = Math.floor(rand() * 5);
  if (r < 0.7) return Array.from({ length: n }, () => randomValue(rand, depth + 1));
  return Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}:[,]"`, randomValue(rand, depth + 1)]));
}

/** The reference: values counted on the parsed value (one per element and member, plus the top). */
function countOf(v: unknown): number {
  if (v === null || typeof v !== "object") return 1;
  return 1 + (Array.isArray(v) ? v : Object.values(v)).reduce((n: number, c) => n + countOf(c), 0);
}

describe("jsonTextProblem", () => {
  it("counts exactly the values a walk of the parsed value counts, on 500 seeded random documents", () => {
    let s = 42;
    const rand = () => ((s = (s * 1103515245 + 12345) % 2147483648) / 2147483648);
    for (let i = 0; i < 500; i++) {
      const value = randomValue(rand, 0);
      const values = countOf(value);
      for (const text of [JSON.stringify(value), JSON.stringify(value, null, 2)]) {
        expect(jsonTextProblem(text, { maxDepth: 64, maxValues: values }), text).toBeNull();
        expect(jsonTextProblem(text, { maxDepth: 64, maxValues: values - 1 }), text).toMatch(/holds more than/);
      }
    }
  });

  it("refuses nesting past the limit, as the walk does (top value at depth 0)", () => {
    const nested = (d: number) => "[".repeat(d) + "]".repeat(d);
    expect(jsonTextProblem(nested(64))).toBeNull();
    expect(jsonTextProblem(nested(65))).toMatch(/nested deeper than 64 levels/);
    expect(jsonTextProblem(`{"a":${nested(64)}}`)).toMatch(/nested deeper/);
    expect(jsonTextProblem(`{"a":${nested(64)}}`, undefined, 1)).toBeNull();
    expect(jsonTextProblem(JSON.stringify("[".repeat(1000)))).toBeNull(); // inside a string it is text
  });

  it("stops at the limit instead of reading on", () => {
    const text = `[${"0,".repeat(3_000_000)}0]`;
    const t0 = performance.now();
    expect(jsonTextProblem(text)).toBe("it holds more than 250,000 values");
    expect(performance.now() - t0).toBeLessThan(200);
  });
});
