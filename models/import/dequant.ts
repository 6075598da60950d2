/**
 * Quantised checkpoint formats, dequantised to fp32 at import (the graph computes in fp32/fp16 either way).
 *
 * MXFP4 (gpt-oss experts), as transformers' integrations/mxfp4.py `convert_moe_packed_tensors` reads it:
 *   `<p>_blocks` uint8 [..., rows, G, 16] and `<p>_scales` uint8 [..., rows, G]; each byte holds two FP4 (E2M1)
 *   codes, the low nibble first (element 2j) then the high nibble (2j + 1); value = FP4_VALUES[code] · 2^(scale - 127);
 *   a row of G blocks is G·32 values. (transformers then transposes the last two dims: the caller does that.)
 * FP8 block quantisation (DeepSeek-V3, transformers' finegrained_fp8): `<w>.weight` F8_E4M3 [rows, cols] and
 *   `<w>.weight_scale_inv` F32 [ceil(rows/bm), ceil(cols/bn)]; value = fp8(w) · scale_inv[r / bm, c / bn].
 */

/** integrations/mxfp4.py FP4_VALUES: E2M1 codes 0..15. */
const FP4_VALUES = [0, 0.5, 1, 1.5, 2, 3, 4, 6, -0, -0.5, -1, -1.5, -2, -3, -4, -6];

/** MXFP4 blocks [rows, G, 16] + scales [rows, G] → fp32 [rows, G·32] (row-major). */
export function dequantMxfp4(blocks: Uint8Array, scales: Uint8Array, rows: number, groups: number): Float32Array {
  if (blocks.length !== rows * groups * 16) throw new Error(`MXFP4 blocks hold ${blocks.length} bytes, expected ${rows}×${groups}×16`);
  if (scales.length !== rows * groups) throw new Error(`MXFP4 scales hold ${scales.length} bytes, expected ${rows}×${groups}`);
  const out = new Float32Array(rows * groups * 32);
  for (let b = 0; b < rows * groups; b++) {
    const mult = Math.pow(2, scales[b]! - 127);
    for (let j = 0; j < 16; j++) {
      const byte = blocks[b * 16 + j]!;
      out[b * 32 + 2 * j] = FP4_VALUES[byte & 0x0f]! * mult;
      out[b * 32 + 2 * j + 1] = FP4_VALUES[byte >> 4]! * mult;
    }
  }
  return out;
}

/** float8_e4m3fn (1 sign, 4 exponent bits with bias 7, 3 mantissa bits; no infinities; S.1111.111 is NaN) → fp32. */
export function e4m3ToF32(byte: number): number {
  const sign = byte & 0x80 ? -1 : 1;
  const exp = (byte >> 3) & 0x0f;
  const mant = byte & 0x07;
  if (exp === 0x0f && mant === 0x07) return NaN;
  if (exp === 0) return sign * (mant / 8) * Math.pow(2, -6);
  return sign * (1 + mant / 8) * Math.pow(2, exp - 7);
}

const E4M3 = Float32Array.from({ length: 256 }, (_, b) => e4m3ToF32(b));

/** FP8 E4M3 weight [rows, cols] with block scales [ceil(rows/bm), ceil(cols/bn)] → fp32 [rows, cols]. */
export function dequantFp8Blocks(weight: Uint8Array, scaleInv: Float32Array, rows: number, cols: number, block: [number, number]): Float32Array {
  const [bm, bn] = block;
  const sr = Math.ceil(rows / bm), sc = Math.ceil(cols / bn);
  if (weight.length !== rows * cols) throw new Error(`fp8 weight holds ${weight.length} bytes, expected ${rows}×${cols}`);
  if (scaleInv.length !== sr * sc) throw new Error(`fp8 weight_scale_inv holds ${scaleInv.length} values, expected ${sr}×${sc} for blocks of ${bm}×${bn}`);
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    const srow = Math.floor(r / bm) * sc;
    for (let c = 0; c < cols; c++) out[r * cols + c] = E4M3[weight[r * cols + c]!]! * scaleInv[srow + Math.floor(c / bn)]!;
  }
  return out;
}
