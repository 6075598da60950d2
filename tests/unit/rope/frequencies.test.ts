import { describe, expect, it } from "vitest";
import { rotaryAngles, rotaryFrequencies } from "@/engine/rope/frequencies";

describe("rotary frequency split", () => {
  it("real model: head_dim 128, theta 1e6, sections [16, 24, 24]", () => {
    const pairs = rotaryFrequencies({ headDim: 128, theta: 1e6, mropeSection: [16, 24, 24] });
    expect(pairs).toHaveLength(64);
    expect(pairs.filter((p) => p.axis === "t").map((p) => p.pair)).toEqual(Array.from({ length: 16 }, (_, i) => i));
    expect(pairs.filter((p) => p.axis === "h").map((p) => p.pair)).toEqual(Array.from({ length: 24 }, (_, i) => 16 + i));
    expect(pairs.filter((p) => p.axis === "w").map((p) => p.pair)).toEqual(Array.from({ length: 24 }, (_, i) => 40 + i));
    expect(pairs[40]!.axisIndex).toBe(2);
    // inv_freq = 1 / theta^(2i / head_dim), computed independently
    let maxRel = 0;
    for (let i = 0; i < 64; i++) {
      const ref = Math.exp(-Math.log(1e6) * ((2 * i) / 128));
      maxRel = Math.max(maxRel, Math.abs(pairs[i]!.invFreq - ref) / ref);
    }
    console.log(`inv_freq max relative difference: ${maxRel.toExponential(2)}`);
    expect(maxRel).toBeLessThan(1e-12);
    expect(pairs[0]!.invFreq).toBe(1);
    expect(pairs[32]!.invFreq).toBeCloseTo(1e-3, 15); // theta^(-1/2)
  });

  it("angles read the pair's axis", () => {
    const pairs = rotaryFrequencies({ headDim: 8, theta: 10000, mropeSection: [1, 1, 2] });
    expect(pairs.map((p) => p.axis)).toEqual(["t", "h", "w", "w"]);
    const a = rotaryAngles({ t: 5, h: 7, w: 11 }, pairs);
    const ref = [5 * 1, 7 * 10000 ** -0.25, 11 * 10000 ** -0.5, 11 * 10000 ** -0.75];
    ref.forEach((v, i) => expect(a[i]).toBeCloseTo(v, 12));
  });

  it("rejects sections that do not cover head_dim / 2", () => {
    expect(() => rotaryFrequencies({ headDim: 128, theta: 1e6, mropeSection: [16, 24, 16] })).toThrow(/sum to headDim \/ 2/);
    expect(() => rotaryFrequencies({ headDim: 7, theta: 1e6, mropeSection: [1, 1, 1] })).toThrow(/even/);
  });
});
