import { describe, expect, it } from "vitest";
import { loneSurrogateAt } from "@/app/server/trpc";

const lone = String.fromCharCode(0xd800);

describe("loneSurrogateAt: the first not-well-formed string of a tRPC input, and where", () => {
  it("names the place of a lone surrogate in a value, a nested array or a key; well-formed text (emoji too) passes", () => {
    expect(loneSurrogateAt({ name: "ok 🙂", tags: ["a", "b"] })).toBeNull();
    expect(loneSurrogateAt({ name: `a${lone}` })).toBe("input.name");
    expect(loneSurrogateAt({ document: { nodes: [{ params: { text: `x${lone}` } }] } })).toBe("input.document.nodes.0.params.text");
    expect(loneSurrogateAt({ [`k${lone}`]: 1 })).toBe("input (a key)");
    expect(loneSurrogateAt(lone)).toBe("input");
  });

  it("terminates on an input that refers to itself, and walks a 3-million-element array without a path per element", () => {
    // the first version looped on a cycle and built a path string per element: the fuzz suite's worker ran out of heap
    const self: Record<string, unknown> = { a: 1 };
    self.self = self;
    expect(loneSurrogateAt(self)).toBeNull();
    const big = new Array(3_000_000).fill("x");
    big[2_999_999] = lone;
    expect(loneSurrogateAt({ big })).toBe("input.big.2999999");
  });
});
