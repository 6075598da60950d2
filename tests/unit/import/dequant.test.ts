import { describe, expect, it } from "vitest";
import { dequantFp8Blocks, dequantMxfp4, e4m3ToF32 } from "@/models/import/dequant";
import { e4m3Value, quantMxfp4, refDequantFp8, refDequantMxfp4 } from "../../reference/quant";
import { prng } from "../../reference/random";

/** The import's dequantisers (models/import/dequant.ts) vs the plain-TS ones written from the formats (tests/reference/quant.ts). */
describe("MXFP4 and fp8 dequantisation vs the reference dequantisers", () => {
  it("MXFP4: every byte value in every nibble position, exponents 2^-127..2^128, bit-exact", () => {
    const rnd = prng(3);
    const rows = 24, G = 3;
    const blocks = Uint8Array.from({ length: rows * G * 16 }, (_, i) => (i < 256 ? i : Math.floor(rnd() * 256)));
    const scales = Uint8Array.from({ length: rows * G }, (_, i) => (i === 0 ? 0 : i === 1 ? 255 : 100 + Math.floor(rnd() * 50)));
    const got = dequantMxfp4(blocks, scales, rows, G);
    const want = refDequantMxfp4(blocks, scales);
    expect(got.length).toBe(rows * G * 32);
    expect(Array.from(got)).toEqual(want.map((v) => Math.fround(v)));
  });
  it("MXFP4 blocks quantised from random weights dequantise within the FP4 step of each block", () => {
    const rnd = prng(4);
    const rows = 8, cols = 64;
    const w = Float32Array.from({ length: rows * cols }, () => (rnd() * 2 - 1) * 0.3);
    const { blocks, scales } = quantMxfp4(w, rows, cols);
    const back = dequantMxfp4(blocks, scales, rows, cols / 32);
    let worst = 0;
    for (let b = 0; b < rows * 2; b++) {
      const step = 2 ** (scales[b]! - 127); // the widest gap between E2M1 values (4 → 6) is 2 steps of 2^e
      for (let j = 0; j < 32; j++) worst = Math.max(worst, Math.abs(back[b * 32 + j]! - w[b * 32 + j]!) / step);
    }
    console.log(`MXFP4 round trip: worst error ${worst.toFixed(3)} × 2^scale`);
    expect(worst).toBeLessThanOrEqual(1);
  });
  it("FP8 E4M3: all 256 codes (NaN at 0x7f/0xff, ±448 max, subnormals), and block scales over ragged blocks", () => {
    for (let b = 0; b < 256; b++) {
      const want = e4m3Value(b);
      if (Number.isNaN(want)) expect(e4m3ToF32(b)).toBeNaN();
      else expect(e4m3ToF32(b)).toBe(want);
    }
    expect(e4m3ToF32(0x7e)).toBe(448);
    expect(e4m3ToF32(0x01)).toBe(2 ** -9);
    const rnd = prng(5);
    const rows = 37, cols = 21, bm = 16, bn = 8;
    const bytes = Uint8Array.from({ length: rows * cols }, () => Math.floor(rnd() * 256) & 0xf7); // no NaN codes
    const scaleInv = Float32Array.from({ length: Math.ceil(rows / bm) * Math.ceil(cols / bn) }, () => rnd() * 0.01);
    const got = dequantFp8Blocks(bytes, scaleInv, rows, cols, [bm, bn]);
    const want = refDequantFp8(bytes, scaleInv, rows, cols, bm, bn).map((v) => Math.fround(v));
    expect(Array.from(got)).toEqual(want);
  });
  it("wrong sizes are refused naming the expected layout", () => {
    expect(() => dequantMxfp4(new Uint8Array(15), new Uint8Array(1), 1, 1)).toThrow("MXFP4 blocks hold 15 bytes, expected 1×1×16");
    expect(() => dequantFp8Blocks(new Uint8Array(4), new Float32Array(3), 2, 2, [1, 2])).toThrow("expected 2×1 for blocks of 1×2");
  });
});
