/**
 * Rotary frequency split for 3D (multimodal) RoPE, as Qwen2-VL's multimodal rotary embedding does it
 * (PAPER.md §3). Framework-free.
 *
 * inv_freq[p] = 1 / theta^(2p / head_dim) for the head_dim/2 frequency pairs p. The pairs are split into
 * consecutive sections [s_t, s_h, s_w] (sum = head_dim/2); section a rotates by the token's position on axis a
 * (t, h, w). The rotate-half layout repeats the same split for the second half of the head: dimension d and
 * d + head_dim/2 form pair p = d and use the same axis and inv_freq.
 * Real model: head_dim 128, theta 1e6, sections [16, 24, 24] (theta and sections unconfirmed: config values).
 */
import { z } from "zod";

export const AXES = ["t", "h", "w"] as const;
export type Axis = (typeof AXES)[number];

export const zRotaryConfig = z
  .strictObject({
    headDim: z.number().int().positive().multipleOf(2, { error: "headDim must be even" }),
    theta: z.number().positive(),
    mropeSection: z.tuple([z.number().int().nonnegative(), z.number().int().nonnegative(), z.number().int().nonnegative()]),
  })
  .refine((c) => c.mropeSection[0] + c.mropeSection[1] + c.mropeSection[2] === c.headDim / 2, {
    error: "mropeSection must sum to headDim / 2",
  });
export type RotaryConfig = z.infer<typeof zRotaryConfig>;

export interface FrequencyPair {
  /** Pair index p, 0..head_dim/2-1 (dimensions p and p + head_dim/2 under rotate-half). */
  pair: number;
  axis: Axis;
  /** 0 = t, 1 = h, 2 = w: the row of position_ids this pair reads. */
  axisIndex: 0 | 1 | 2;
  invFreq: number;
}

/** For each frequency pair: its axis and inv_freq. Throws on an inconsistent config. */
export function rotaryFrequencies(config: RotaryConfig): FrequencyPair[] {
  const { headDim, theta, mropeSection } = zRotaryConfig.parse(config);
  const out: FrequencyPair[] = [];
  const bounds = [mropeSection[0], mropeSection[0] + mropeSection[1]];
  for (let p = 0; p < headDim / 2; p++) {
    const axisIndex = (p < bounds[0]! ? 0 : p < bounds[1]! ? 1 : 2) as 0 | 1 | 2;
    out.push({ pair: p, axis: AXES[axisIndex], axisIndex, invFreq: 1 / Math.pow(theta, (2 * p) / headDim) });
  }
  return out;
}

/** Rotation angle of every pair for one token at position (t, h, w): angle[p] = position[axis(p)] * inv_freq[p]. */
export function rotaryAngles(position: { t: number; h: number; w: number }, pairs: FrequencyPair[]): Float64Array {
  const out = new Float64Array(pairs.length);
  for (const p of pairs) out[p.pair] = position[p.axis] * p.invFreq;
  return out;
}
