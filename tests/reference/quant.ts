/**
 * Plain-TS (de)quantisers for the tests, written from the formats' definitions, independent of models/import/dequant.ts:
 * - MXFP4 (OCP microscaling, as gpt-oss stores it): a block of 32 E2M1 values shares an E8M0 scale 2^(s - 127); two
 *   values per byte, the element with the even index in the low nibble. E2M1: sign bit 3, exponent bits 2-1 (bias 1),
 *   mantissa bit 0; exponent 0 is subnormal (0 or 0.5).
 * - FP8 E4M3 (float8_e4m3fn): sign, 4 exponent bits (bias 7), 3 mantissa bits, 0x7f / 0xff NaN, max 448.
 */

export function e2m1Value(code: number): number {
  const sign = code & 8 ? -1 : 1;
  const e = (code >> 1) & 3, m = code & 1;
  return sign * (e === 0 ? m * 0.5 : (1 + m / 2) * 2 ** (e - 1));
}

/** blocks [rows·G·16] + scales [rows·G] → values [rows · G·32] */
export function refDequantMxfp4(blocks: Uint8Array, scales: Uint8Array): number[] {
  const out: number[] = [];
  scales.forEach((s, b) => {
    for (let j = 0; j < 16; j++) {
      const byte = blocks[b * 16 + j]!;
      out.push(e2m1Value(byte & 15) * 2 ** (s - 127), e2m1Value(byte >> 4) * 2 ** (s - 127));
    }
  });
  return out;
}

/** Values [rows, G·32] quantised to MXFP4: per block the scale 2^ceil(log2(max/6)), each value to the nearest code. */
export function quantMxfp4(values: Float32Array, rows: number, cols: number): { blocks: Uint8Array; scales: Uint8Array } {
  const G = cols / 32;
  const blocks = new Uint8Array(rows * G * 16), scales = new Uint8Array(rows * G);
  const codes = Array.from({ length: 16 }, (_, c) => c);
  for (let b = 0; b < rows * G; b++) {
    const vs = values.subarray(b * 32, b * 32 + 32);
    const max = Math.max(...Array.from(vs, Math.abs), 1e-30);
    const e = Math.ceil(Math.log2(max / 6));
    scales[b] = e + 127;
    const nearest = (v: number) => codes.reduce((best, c) => (Math.abs(e2m1Value(c) * 2 ** e - v) < Math.abs(e2m1Value(best) * 2 ** e - v) ? c : best), 0);
    for (let j = 0; j < 16; j++) blocks[b * 16 + j] = nearest(vs[2 * j]!) | (nearest(vs[2 * j + 1]!) << 4);
  }
  return { blocks, scales };
}

export function e4m3Value(byte: number): number {
  const sign = byte & 0x80 ? -1 : 1;
  const e = (byte >> 3) & 15, m = byte & 7;
  if (e === 15 && m === 7) return NaN;
  return sign * (e === 0 ? (m / 8) * 2 ** -6 : (1 + m / 8) * 2 ** (e - 7));
}

/** weight [rows, cols] as E4M3 bytes with per-block scale_inv [ceil(rows/bm), ceil(cols/bn)] (DeepSeek-V3's layout). */
export function quantFp8Blocks(values: Float32Array, rows: number, cols: number, bm: number, bn: number): { bytes: Uint8Array; scaleInv: Float32Array } {
  const sr = Math.ceil(rows / bm), sc = Math.ceil(cols / bn);
  const scaleInv = new Float32Array(sr * sc);
  const bytes = new Uint8Array(rows * cols);
  const table = Array.from({ length: 256 }, (_, b) => e4m3Value(b));
  for (let bi = 0; bi < sr; bi++)
    for (let bj = 0; bj < sc; bj++) {
      let max = 1e-30;
      for (let r = bi * bm; r < Math.min(rows, (bi + 1) * bm); r++) for (let c = bj * bn; c < Math.min(cols, (bj + 1) * bn); c++) max = Math.max(max, Math.abs(values[r * cols + c]!));
      const scale = Math.fround(max / 448);
      scaleInv[bi * sc + bj] = scale;
      for (let r = bi * bm; r < Math.min(rows, (bi + 1) * bm); r++)
        for (let c = bj * bn; c < Math.min(cols, (bj + 1) * bn); c++) {
          const v = values[r * cols + c]! / scale;
          let best = 0;
          for (let b = 0; b < 256; b++) if (!Number.isNaN(table[b]!) && Math.abs(table[b]! - v) < Math.abs(table[best]! - v)) best = b;
          bytes[r * cols + c] = best;
        }
    }
  return { bytes, scaleInv };
}

/** bytes [rows, cols] + scale_inv → values */
export function refDequantFp8(bytes: Uint8Array, scaleInv: Float32Array, rows: number, cols: number, bm: number, bn: number): number[] {
  const sc = Math.ceil(cols / bn);
  return Array.from(bytes, (b, i) => e4m3Value(b) * scaleInv[Math.floor(Math.floor(i / cols) / bm) * sc + Math.floor((i % cols) / bn)]!);
}
