/**
 * An independent plain-TS forward of the Uni-MoE-2.0 decoder (PAPER.md §2-3), written with loops and float64
 * arithmetic. It shares no code with models/moe-llm-graph.ts; it only reads the config and the weight names.
 * No KV cache (it always recomputes the whole sequence): the graph's incremental decoding is checked against
 * the graph's own full recomputation and this reference.
 */
import { type MoeLlmConfig, paramNames } from "@/models/config";
import type { WeightSource } from "@/models/weights";

export interface RefInterventions {
  /** [L*E] added to router logits */
  routerBias?: ArrayLike<number>;
  /** [L*E] > 0.5 bans */
  ban?: ArrayLike<number>;
  /** [L*E] > 0.5 forces */
  force?: ArrayLike<number>;
  /** > 0 overrides the config's Top-P */
  topP?: number;
}

export interface RefRoute {
  mask: number[];
  weights: number[];
  k: number;
}

export interface RefLayerTrace {
  /** [N*E] */
  routerLogits: number[];
  mask: number[];
  weights: number[];
  /** [N] */
  k: number[];
}

const f32 = Math.fround;

/**
 * Routing of one token with logits z [E] (PAPER.md §2, eval mode), plus the interventions as documented in
 * moe-llm-graph.ts (ban = -inf for all dynamic routing; force = union with the model's own choice, forced first).
 */
export function referenceRoute(c: MoeLlmConfig, z: ArrayLike<number>, ban: ArrayLike<number> = [], force: ArrayLike<number> = [], topPOverride = 0): RefRoute {
  const D = c.mlp_dynamic_expert_num + c.mlp_dynamic_null_expert_num;
  const E = D + c.mlp_fixed_expert_num;
  const allowed: boolean[] = [];
  const forced: boolean[] = [];
  for (let j = 0; j < D; j++) {
    allowed.push(!((ban[j] ?? 0) > 0.5));
    forced.push(allowed[j]! && (force[j] ?? 0) > 0.5);
  }
  const nAllowed = allowed.filter(Boolean).length;
  const P = topPOverride > 0 ? topPOverride : c.mlp_dynamic_top_p;

  // k: smallest k whose sorted cumulative p reaches P (p over the allowed dynamic columns)
  let kModel: number;
  if (P <= 0) kModel = c.mlp_dynamic_top_k;
  else if (P >= 1) kModel = D;
  else {
    let mx = -Infinity;
    for (let j = 0; j < D; j++) if (allowed[j]) mx = Math.max(mx, z[j]!);
    const p: number[] = [];
    let sum = 0;
    for (let j = 0; j < D; j++) {
      const v = allowed[j] ? Math.exp(z[j]! - mx) : 0;
      p.push(v);
      sum += v;
    }
    const sorted = p.map((v) => v / sum).sort((a, b) => b - a);
    kModel = D + 1;
    let cum = 0;
    for (let i = 0; i < D; i++) {
      cum = f32(cum + f32(sorted[i]!));
      if (cum >= f32(P)) { kModel = i + 1; break; }
    }
  }
  // the model's own choice = the kModel largest allowed logits (ties: lower index first)
  const order = [...Array(D).keys()].filter((j) => allowed[j]).sort((a, b) => z[b]! - z[a]! || a - b);
  const own = new Set(order.slice(0, kModel));
  let extra = 0;
  for (let j = 0; j < D; j++) if (forced[j] && !own.has(j)) extra++;
  const k = Math.min(kModel + extra, nAllowed);

  // GRIN: repeated argmax with the near-tie rule (float32 arithmetic for the ratio, like the graph and torch)
  const chosen = new Array<boolean>(D).fill(false);
  const mult = new Array<number>(D).fill(0);
  const thr = f32(2 * c.router_jitter_noise);
  for (let step = 0; step < k; step++) {
    const anyForced = forced.some((f, j) => f && !chosen[j]);
    let e = -1;
    for (let j = 0; j < D; j++) {
      if (!allowed[j] || chosen[j] || (anyForced && !forced[j])) continue;
      if (e < 0 || z[j]! > z[e]!) e = j;
    }
    const m = z[e]!;
    const kept: number[] = [];
    for (let j = 0; j < D; j++) {
      if (!allowed[j] || chosen[j]) continue;
      const ratio = f32(f32(m - z[j]!) / f32(Math.max(Math.abs(z[j]!), Math.abs(m))));
      if (!(ratio > thr)) kept.push(j);
    }
    let mx = -Infinity;
    for (const j of kept) mx = Math.max(mx, z[j]!);
    let den = 0;
    for (const j of kept) den += Math.exp(z[j]! - mx);
    mult[e] = Math.exp(m - mx) / den;
    chosen[e] = true;
  }
  let msum = 0;
  for (let j = 0; j < D; j++) msum += mult[j]!;

  const mask: number[] = [];
  for (let j = 0; j < E; j++) mask.push(j < D ? (chosen[j] ? 1 : 0) : (ban[j] ?? 0) > 0.5 ? 0 : 1);
  let gmx = -Infinity;
  for (let j = 0; j < E; j++) if (mask[j]) gmx = Math.max(gmx, z[j]!);
  const gexp: number[] = [];
  let gsum = 0;
  for (let j = 0; j < E; j++) {
    const v = mask[j] ? Math.exp(z[j]! - gmx) : 0;
    gexp.push(v);
    gsum += v;
  }
  let gDyn = 0;
  for (let j = 0; j < D; j++) gDyn += gsum > 0 ? gexp[j]! / gsum : 0;
  const weights: number[] = [];
  for (let j = 0; j < E; j++) weights.push(j < D ? (mult[j]! / (msum + 1e-6)) * gDyn : gsum > 0 ? gexp[j]! / gsum : 0);
  return { mask, weights, k };
}

export interface RefForwardInput {
  batch: number;
  seq: number;
  /** [B*S] token ids (or embeds) */
  ids?: ArrayLike<number>;
  /** [B*S*H] */
  embeds?: ArrayLike<number>;
  /** [3*B*S] (t, h, w) */
  positions: ArrayLike<number>;
  interventions?: RefInterventions;
}

export interface RefForwardOutput {
  /** [B*S*V] */
  logits: Float64Array;
  /** [B*S*H] after the final norm */
  lastHidden: Float64Array;
  trace: RefLayerTrace[];
}

/** out[n, o] = Σ_i x[n, i] W[o, i] (+ b[o]); W in PyTorch [out, in] layout. */
function linear(x: Float64Array, N: number, In: number, W: Float32Array, Out: number, b?: Float32Array): Float64Array {
  const y = new Float64Array(N * Out);
  for (let n = 0; n < N; n++)
    for (let o = 0; o < Out; o++) {
      let s = b ? b[o]! : 0;
      for (let i = 0; i < In; i++) s += x[n * In + i]! * W[o * In + i]!;
      y[n * Out + o] = s;
    }
  return y;
}

function rmsNorm(x: Float64Array, N: number, H: number, w: Float32Array, eps: number): Float64Array {
  const y = new Float64Array(N * H);
  for (let n = 0; n < N; n++) {
    let ss = 0;
    for (let i = 0; i < H; i++) ss += x[n * H + i]! ** 2;
    const inv = 1 / Math.sqrt(ss / H + eps);
    for (let i = 0; i < H; i++) y[n * H + i] = x[n * H + i]! * inv * w[i]!;
  }
  return y;
}

/** down(silu(gate x) * up x) for one token row. */
function swiglu(x: Float64Array, off: number, H: number, gate: Float32Array, up: Float32Array, down: Float32Array, I: number): Float64Array {
  const a = new Float64Array(I);
  for (let j = 0; j < I; j++) {
    let gs = 0, us = 0;
    for (let i = 0; i < H; i++) {
      gs += x[off + i]! * gate[j * H + i]!;
      us += x[off + i]! * up[j * H + i]!;
    }
    a[j] = (gs / (1 + Math.exp(-gs))) * us;
  }
  const y = new Float64Array(H);
  for (let h = 0; h < H; h++) {
    let s = 0;
    for (let j = 0; j < I; j++) s += a[j]! * down[h * I + j]!;
    y[h] = s;
  }
  return y;
}

/** Full forward: embeddings → L × (RMSNorm, GQA attention with M-RoPE, causal; RMSNorm, MoE) → norm → LM head. */
export function referenceForward(c: MoeLlmConfig, W: WeightSource, inp: RefForwardInput): RefForwardOutput {
  const B = inp.batch, S = inp.seq, N = B * S;
  const H = c.hidden_size, V = c.vocab_size, L = c.num_hidden_layers;
  const NH = c.num_attention_heads, KVH = c.num_key_value_heads, Dh = c.head_dim ?? H / NH;
  const R = c.mlp_dynamic_expert_num, D = R + c.mlp_dynamic_null_expert_num, SH = c.mlp_fixed_expert_num, E = D + SH;
  const I = c.dynamic_intermediate_size, Is = c.shared_intermediate_size;
  const w = (n: string) => W.get(n).data;
  const iv = inp.interventions ?? {};

  const x = new Float64Array(N * H);
  if (inp.embeds) for (let i = 0; i < N * H; i++) x[i] = inp.embeds[i]!;
  else {
    const emb = w(paramNames.embed);
    for (let n = 0; n < N; n++) for (let i = 0; i < H; i++) x[n * H + i] = emb[inp.ids![n]! * H + i]!;
  }

  // M-RoPE angle of (token n, dim d): pos[axis(d mod Dh/2)][n] * inv_freq[d mod Dh/2]
  const half = Dh / 2;
  const [st, sh] = c.rope_scaling.mrope_section as [number, number, number];
  const angle = (n: number, d: number): number => {
    const j = d % half;
    const axis = j < st ? 0 : j < st + sh ? 1 : 2;
    const invFreq = 1 / Math.pow(c.rope_theta, (2 * j) / Dh);
    return inp.positions[axis * N + n]! * invFreq;
  };
  const rope = (t: Float64Array, heads: number): void => {
    // t: [N, heads*Dh]; rotate_half(v) = [-v2, v1]
    for (let n = 0; n < N; n++)
      for (let hh = 0; hh < heads; hh++) {
        const o = n * heads * Dh + hh * Dh;
        const orig = t.slice(o, o + Dh);
        for (let d = 0; d < Dh; d++) {
          const rot = d < half ? -orig[d + half]! : orig[d - half]!;
          const a = angle(n, d);
          t[o + d] = orig[d]! * Math.cos(a) + rot * Math.sin(a);
        }
      }
  };

  const trace: RefLayerTrace[] = [];
  for (let l = 0; l < L; l++) {
    // attention
    const h = rmsNorm(x, N, H, w(paramNames.inputNorm(l)), c.rms_norm_eps);
    const q = linear(h, N, H, w(paramNames.attn(l, "q", "weight")), NH * Dh, w(paramNames.attn(l, "q", "bias")));
    const k = linear(h, N, H, w(paramNames.attn(l, "k", "weight")), KVH * Dh, w(paramNames.attn(l, "k", "bias")));
    const v = linear(h, N, H, w(paramNames.attn(l, "v", "weight")), KVH * Dh, w(paramNames.attn(l, "v", "bias")));
    rope(q, NH);
    rope(k, KVH);
    const att = new Float64Array(N * NH * Dh);
    const group = NH / KVH;
    for (let b = 0; b < B; b++)
      for (let hh = 0; hh < NH; hh++) {
        const kv = Math.floor(hh / group);
        for (let s = 0; s < S; s++) {
          const qo = (b * S + s) * NH * Dh + hh * Dh;
          const scores: number[] = [];
          for (let t = 0; t <= s; t++) {
            const ko = (b * S + t) * KVH * Dh + kv * Dh;
            let dot = 0;
            for (let d = 0; d < Dh; d++) dot += q[qo + d]! * k[ko + d]!;
            scores.push(dot / Math.sqrt(Dh));
          }
          const mx = Math.max(...scores);
          const ex = scores.map((v2) => Math.exp(v2 - mx));
          const sum = ex.reduce((a, b2) => a + b2, 0);
          for (let t = 0; t <= s; t++) {
            const vo = (b * S + t) * KVH * Dh + kv * Dh;
            for (let d = 0; d < Dh; d++) att[qo + d] = att[qo + d]! + (ex[t]! / sum) * v[vo + d]!;
          }
        }
      }
    const ao = linear(att, N, NH * Dh, w(paramNames.attn(l, "o", "weight")), H);
    for (let i = 0; i < N * H; i++) x[i] = x[i]! + ao[i]!;

    // MoE
    const h2 = rmsNorm(x, N, H, w(paramNames.postNorm(l)), c.rms_norm_eps);
    const z = linear(h2, N, H, w(paramNames.router(l)), E);
    const t: RefLayerTrace = { routerLogits: [], mask: [], weights: [], k: [] };
    const row = (a: ArrayLike<number> | undefined) => Array.from({ length: E }, (_, j) => (a ? a[l * E + j]! : 0));
    const bias = row(iv.routerBias), ban = row(iv.ban), force = row(iv.force);
    for (let n = 0; n < N; n++) {
      const zn = Array.from({ length: E }, (_, j) => z[n * E + j]! + bias[j]!);
      const r = referenceRoute(c, zn, ban, force, iv.topP ?? 0);
      t.routerLogits.push(...zn);
      t.mask.push(...r.mask);
      t.weights.push(...r.weights);
      t.k.push(r.k);
      const out = new Float64Array(H);
      for (let e = 0; e < R; e++) {
        if (!r.mask[e]) continue;
        const y = swiglu(h2, n * H, H, w(paramNames.routed(l, e, "gate")), w(paramNames.routed(l, e, "up")), w(paramNames.routed(l, e, "down")), I);
        for (let i = 0; i < H; i++) out[i] = out[i]! + r.weights[e]! * y[i]!;
      }
      for (let s = 0; s < SH; s++) {
        const y = swiglu(h2, n * H, H, w(paramNames.shared(l, s, "gate")), w(paramNames.shared(l, s, "up")), w(paramNames.shared(l, s, "down")), Is);
        for (let i = 0; i < H; i++) out[i] = out[i]! + r.weights[D + s]! * y[i]!;
      }
      for (let i = 0; i < H; i++) x[n * H + i] = x[n * H + i]! + out[i]!;
    }
    trace.push(t);
  }
  const lastHidden = rmsNorm(x, N, H, w(paramNames.finalNorm), c.rms_norm_eps);
  const head = c.tie_word_embeddings ? w(paramNames.embed) : w(paramNames.lmHead);
  const logits = linear(lastHidden, N, H, head, V);
  return { logits, lastHidden, trace };
}
