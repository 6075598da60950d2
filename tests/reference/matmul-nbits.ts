/**
 * Plain-TS reference for ONNX Runtime's MatMulNBits (ContribOperators.md, onnxruntime 1.30), written from the operator's
 * definition with loops, independent of models/onnx/quantize.ts:
 *   B [N, n_blocks, blob_size] uint8, blob_size = block_size · bits / 8; element k of row n sits in block k / block_size at
 *   position j = k mod block_size: 8 bits → byte j; 4 bits → byte j / 2, low nibble for even j, high nibble for odd j.
 *   scales [N, n_blocks]; zero_points [N, ceil(n_blocks · bits / 8)] packed like B, default 2^(bits − 1).
 *   W[n, k] = (q − zero_point) · scale;  Y = A · Wᵀ.
 */

export interface NBitsTensors {
  N: number;
  K: number;
  bits: 4 | 8;
  blockSize: number;
  b: Uint8Array;
  scales: Float32Array;
  zeroPoints?: Uint8Array;
}

function packedAt(bytes: Uint8Array, rowStart: number, index: number, bits: 4 | 8): number {
  if (bits === 8) return bytes[rowStart + index]!;
  const byte = bytes[rowStart + Math.floor(index / 2)]!;
  return index % 2 === 0 ? byte % 16 : Math.floor(byte / 16);
}

/** The dequantised weight [N, K] (row-major, float64). */
export function refDequantNBits(t: NBitsTensors): Float64Array {
  const nBlocks = Math.ceil(t.K / t.blockSize);
  const blob = (t.blockSize * t.bits) / 8;
  const zpCols = Math.ceil((nBlocks * t.bits) / 8);
  const w = new Float64Array(t.N * t.K);
  for (let n = 0; n < t.N; n++)
    for (let k = 0; k < t.K; k++) {
      const blk = Math.floor(k / t.blockSize);
      const q = packedAt(t.b, (n * nBlocks + blk) * blob, k % t.blockSize, t.bits);
      const zp = t.zeroPoints ? packedAt(t.zeroPoints, n * zpCols, blk, t.bits) : 2 ** (t.bits - 1);
      w[n * t.K + k] = (q - zp) * t.scales[n * nBlocks + blk]!;
    }
  return w;
}

/** Y [M, N] = A [M, K] · Wᵀ (+ bias [N]), float64 accumulation. */
export function refLinear(a: ArrayLike<number>, M: number, w: ArrayLike<number>, N: number, K: number, bias?: ArrayLike<number>): Float64Array {
  const y = new Float64Array(M * N);
  for (let m = 0; m < M; m++)
    for (let n = 0; n < N; n++) {
      let s = bias ? bias[n]! : 0;
      for (let k = 0; k < K; k++) s += a[m * K + k]! * w[n * K + k]!;
      y[m * N + n] = s;
    }
  return y;
}
