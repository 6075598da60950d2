/**
 * RoPE scaling of imported checkpoints, as Hugging Face transformers computes it at load time
 * (src/transformers/modeling_rope_utils.py, ROPE_INIT_FUNCTIONS). The result goes into the canonical config as
 * `rope_inv_freq` (one frequency per rotated pair) and `rope_attention_factor` (the multiplier of cos and sin), so the
 * graph builder needs no knowledge of the scaling type. Supported:
 * - "default" (or no rope_scaling): nothing is written; the graph uses 1/theta^(2j/d).
 * - "yarn": `_compute_yarn_parameters`, read in its current form (rope_parameters dict: `factor` as given,
 *   `truncate` default true, the correction range over `original_max_position_embeddings`). transformers v4.5x
 *   instead replaced `factor` by max_position_embeddings / original_max_position_embeddings whenever the latter
 *   was given; where the two disagree we refuse rather than pick one (they agree in every released config we know).
 * - "longrope" (Phi-3.5-MoE only, `PhimoeRotaryEmbedding`): the short factors, valid while the whole context fits
 *   in original_max_position_embeddings (the caller refuses longer inputs: `max_context_tokens`).
 * Everything else ("linear", "dynamic", "llama3", …) is refused with the reason.
 * Frequencies are computed in float64 here (transformers: float32); the difference is below 1e-7 relative.
 */
type Raw = Record<string, unknown>;

export interface RopeSpec {
  /** Omitted for plain RoPE. */
  rope_inv_freq?: number[];
  rope_attention_factor?: number;
  /** LongRoPE short factors: the longest context they hold. */
  max_context_tokens?: number;
}

/** The rope_scaling dict of a config.json (older name) or its rope_parameters (transformers v5 name); null = none. */
export function ropeScalingOf(raw: Raw): Raw | null {
  const rs = (raw.rope_scaling ?? raw.rope_parameters) as Raw | null | undefined;
  if (rs === undefined || rs === null) return null;
  if (typeof rs !== "object" || Array.isArray(rs)) throw new Error(`config.json: rope_scaling must be an object or null (got ${JSON.stringify(rs)})`);
  return rs;
}

export function ropeType(rs: Raw | null): string {
  return rs === null ? "default" : String(rs.rope_type ?? rs.type ?? "default");
}

const numberOr = (rs: Raw, key: string, fallback?: number): number | undefined => {
  const v = rs[key];
  if (v === undefined || v === null) return fallback;
  if (typeof v !== "number" || !Number.isFinite(v)) throw new Error(`config.json: rope_scaling.${key} must be a number (got ${JSON.stringify(v)})`);
  return v;
};

/** yarn_get_mscale / get_mscale of modeling_rope_utils and modeling_deepseek_v3. */
export function yarnMscale(scale: number, mscale = 1): number {
  return scale <= 1 ? 1 : 0.1 * mscale * Math.log(scale) + 1;
}

/** modeling_rope_utils._compute_yarn_parameters for `dim` rotated dims. */
export function yarnParameters(rs: Raw, base: number, dim: number, maxPositions: number | undefined, family: string): { invFreq: number[]; attentionFactor: number } {
  const factor = numberOr(rs, "factor");
  if (factor === undefined || factor <= 0) throw new Error(`${family}: YaRN rope_scaling needs a positive "factor" (got ${JSON.stringify(rs.factor)})`);
  const original = numberOr(rs, "original_max_position_embeddings", maxPositions);
  if (original === undefined) throw new Error(`${family}: YaRN rope_scaling needs original_max_position_embeddings (or max_position_embeddings)`);
  if (rs.original_max_position_embeddings !== undefined && maxPositions !== undefined && Math.abs(maxPositions / original - factor) > 1e-9 * factor)
    throw new Error(
      `${family}: YaRN factor ${factor} differs from max_position_embeddings / original_max_position_embeddings = ${maxPositions}/${original}; transformers versions disagree on which one applies, so this config is refused`,
    );
  const mscale = numberOr(rs, "mscale"), mscaleAll = numberOr(rs, "mscale_all_dim");
  const attentionFactor = numberOr(rs, "attention_factor") ?? (mscale && mscaleAll ? yarnMscale(factor, mscale) / yarnMscale(factor, mscaleAll) : yarnMscale(factor));
  const betaFast = numberOr(rs, "beta_fast") || 32;
  const betaSlow = numberOr(rs, "beta_slow") || 1;
  const truncate = rs.truncate ?? true;
  if (typeof truncate !== "boolean") throw new Error(`${family}: rope_scaling.truncate must be true or false (got ${JSON.stringify(rs.truncate)})`);
  const correctionDim = (rotations: number) => (dim * Math.log(original / (rotations * 2 * Math.PI))) / (2 * Math.log(base));
  let low = correctionDim(betaFast), high = correctionDim(betaSlow);
  if (truncate) {
    low = Math.floor(low);
    high = Math.ceil(high);
  }
  low = Math.max(low, 0);
  high = Math.min(high, dim - 1);
  if (low === high) high += 0.001;
  const invFreq = Array.from({ length: dim / 2 }, (_, j) => {
    const posFreq = Math.pow(base, (2 * j) / dim);
    const extrapolation = 1 - Math.min(1, Math.max(0, (j - low) / (high - low)));
    return (1 / (factor * posFreq)) * (1 - extrapolation) + (1 / posFreq) * extrapolation;
  });
  return { invFreq, attentionFactor };
}

/**
 * The rope of a config for `dim` rotated dims and base `theta`: YaRN for every family but Uni-MoE (whose M-RoPE has
 * no scaling), LongRoPE's short factors for phimoe only; anything else is refused naming the type.
 */
export function ropeSpec(raw: Raw, family: string, theta: number, dim: number): RopeSpec {
  const rs = ropeScalingOf(raw);
  const type = ropeType(rs);
  const maxPositions = typeof raw.max_position_embeddings === "number" ? raw.max_position_embeddings : undefined;
  if (type === "default") return {};
  if (type === "yarn") {
    const { invFreq, attentionFactor } = yarnParameters(rs!, theta, dim, maxPositions, family);
    return { rope_inv_freq: invFreq, rope_attention_factor: attentionFactor };
  }
  if (type === "longrope" && family === "phimoe") {
    // PhimoeRotaryEmbedding.forward: mscale = short_mscale while seq_len <= original_max_position_embeddings;
    // _compute_longrope_parameters: inv_freq = 1 / (short_factor[j] * base^(2j/dim)) for such lengths.
    const short = rs!.short_factor;
    if (!Array.isArray(short) || short.length !== dim / 2 || !short.every((v) => typeof v === "number" && v > 0))
      throw new Error(`phimoe: rope_scaling.short_factor must list ${dim / 2} positive numbers (got ${JSON.stringify(short)})`);
    const original = numberOr(rs!, "original_max_position_embeddings", typeof raw.original_max_position_embeddings === "number" ? raw.original_max_position_embeddings : undefined);
    if (original === undefined) throw new Error("phimoe: LongRoPE needs original_max_position_embeddings");
    const mscale = numberOr(rs!, "short_mscale");
    if (mscale === undefined) throw new Error("phimoe: rope_scaling.short_mscale must be a number (transformers' PhimoeConfig requires it)");
    return { rope_inv_freq: (short as number[]).map((f, j) => 1 / (f * Math.pow(theta, (2 * j) / dim))), rope_attention_factor: mscale, max_context_tokens: original };
  }
  const why =
    type === "dynamic"
      ? "its frequencies change with the sequence length at run time"
      : type === "longrope"
        ? "LongRoPE is implemented for phimoe only"
        : "only YaRN (and Phi-3.5-MoE's LongRoPE short factors) are implemented";
  throw new Error(`${family}: rope_scaling type "${type}" is not supported (${why}); rope_scaling = ${JSON.stringify(rs)}`);
}
