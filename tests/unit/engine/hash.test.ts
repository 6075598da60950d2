import { describe, expect, it } from "vitest";
import { canonicalJson, hashValue, UnhashableError } from "@/engine/hash";

describe("hash", () => {
  it("is independent of key order and drops undefined members", () => {
    expect(canonicalJson({ b: 1, a: [1, { d: 2, c: undefined }] })).toBe('{"a":[1,{"d":2}],"b":1}');
    expect(hashValue({ x: 1, y: 2 })).toBe(hashValue({ y: 2, x: 1 }));
    expect(hashValue({ x: 1 })).not.toBe(hashValue({ x: 2 }));
    expect(hashValue(-0)).toBe(hashValue(0));
    expect(hashValue("1")).not.toBe(hashValue(1));
    expect(hashValue({ x: 1 })).toMatch(/^[0-9a-f]{64}$/);
  });

  it("hashes typed arrays by content", () => {
    expect(hashValue(new Float32Array([1, 2]))).toBe(hashValue(new Float32Array([1, 2])));
    expect(hashValue(new Float32Array([1, 2]))).not.toBe(hashValue(new Float32Array([1, 3])));
    expect(hashValue(new Float32Array([1]))).not.toBe(hashValue(new Int32Array(new Float32Array([1]).buffer)));
  });

  it("refuses values without a stable form", () => {
    const cyclic: Record<string, unknown> = {};
    cyclic.me = cyclic;
    for (const bad of [() => 1, NaN, Infinity, cyclic, new Map(), Symbol("s")]) {
      expect(() => hashValue({ v: bad })).toThrow(UnhashableError);
    }
  });
});
