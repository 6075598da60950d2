/**
 * Rotary frequencies of a Hugging Face config.json, written for the references from transformers'
 * modeling_rope_utils (`_compute_yarn_parameters`, `_compute_longrope_parameters`) and PhimoeRotaryEmbedding, without
 * models/families: { inv: frequency per rotated pair, mult: the factor cos and sin are multiplied by }.
 */
type Cfg = Record<string, unknown>;

export interface RefRope {
  inv: number[];
  mult: number;
}

const mscaleOf = (s: number, m: number) => (s > 1 ? 1 + 0.1 * m * Math.log(s) : 1);

export function refRope(config: Cfg, dim: number, defaultTheta: number): RefRope {
  const base = (config.rope_theta as number | undefined) ?? defaultTheta;
  const rs = (config.rope_scaling ?? config.rope_parameters ?? null) as Record<string, number | boolean | number[] | string> | null;
  const plain = [];
  for (let j = 0; j < dim; j += 2) plain.push(Math.pow(base, -j / dim));
  const type = rs ? (rs.rope_type ?? rs.type) : "default";
  if (!rs || type === "default") return { inv: plain, mult: 1 };
  if (type === "longrope") {
    const short = rs.short_factor as number[];
    return { inv: plain.map((f, j) => f / short[j]!), mult: rs.short_mscale as number };
  }
  if (type !== "yarn") throw new Error(`reference: rope type ${String(type)}`);
  const factor = rs.factor as number;
  const orig = (rs.original_max_position_embeddings as number | undefined) ?? (config.max_position_embeddings as number);
  const ms = rs.mscale as number | undefined, msAll = rs.mscale_all_dim as number | undefined;
  const mult = (rs.attention_factor as number | undefined) ?? (ms && msAll ? mscaleOf(factor, ms) / mscaleOf(factor, msAll) : mscaleOf(factor, 1));
  // the dims rotating fewer than beta_slow (more than beta_fast) times over the original context are (not) interpolated
  const dimFor = (rot: number) => (dim * Math.log(orig / (2 * Math.PI * rot))) / (2 * Math.log(base));
  const trunc = rs.truncate !== false;
  let lo = dimFor((rs.beta_fast as number) || 32), hi = dimFor((rs.beta_slow as number) || 1);
  if (trunc) [lo, hi] = [Math.floor(lo), Math.ceil(hi)];
  lo = Math.max(0, lo);
  hi = Math.min(dim - 1, hi);
  const span = hi === lo ? 0.001 : hi - lo;
  const inv = plain.map((f, j) => {
    const ramp = Math.min(1, Math.max(0, (j - lo) / span)); // 0 → extrapolate (keep f), 1 → interpolate (f / factor)
    return (f / factor) * ramp + f * (1 - ramp);
  });
  return { inv, mult };
}

/** [x0..x_{d/2-1} | x_{d/2}..] rotated by angle pos · inv[j] for pair (j, j + d/2), cos/sin × mult. */
export function rotateHalf(v: number[], pos: number, r: RefRope): number[] {
  const half = v.length / 2;
  const out = new Array<number>(v.length);
  for (let j = 0; j < half; j++) {
    const c = Math.cos(pos * r.inv[j]!) * r.mult, s = Math.sin(pos * r.inv[j]!) * r.mult;
    out[j] = v[j]! * c - v[j + half]! * s;
    out[j + half] = v[j + half]! * c + v[j]! * s;
  }
  return out;
}
