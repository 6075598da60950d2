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
  /** [N] (after capacity drops: the surviving dynamic selections) */
  k: number[];
  /** [N] dynamic selections dropped over capacity (config.token_drop), 0 otherwise */
  dropped: number[];
}

const f32 = Math.fround;

/**
 * Routing of one token with logits z [E] (PAPER.md §2, eval mode), plus the interventions as documented in
 * moe-llm-graph.ts (ban = -inf for all dynamic routing; force = union with the model's own choice, forced first).
 * No capacity drop (that needs the other tokens: see referenceRouteTokens).
 */
export function referenceRoute(c: MoeLlmConfig, z: ArrayLike<number>, ban: ArrayLike<number> = [], force: ArrayLike<number> = [], topPOverride = 0): RefRoute {
  const sel = selectExperts(c, z, ban, force, topPOverride);
  return { ...finishRoute(c, z, sel.chosen, sel.rw, ban), k: sel.k };
}

/** Steps 1-4 of §2 for one token: the chosen dynamic columns, their routing weights rw [D] and k. */
function selectExperts(c: MoeLlmConfig, z: ArrayLike<number>, ban: ArrayLike<number>, force: ArrayLike<number>, topPOverride: number): { chosen: boolean[]; rw: number[]; k: number } {
  const D = c.mlp_dynamic_expert_num + c.mlp_dynamic_null_expert_num;
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
  return { chosen, rw: mult.map((m) => m / (msum + 1e-6)), k };
}

/** Steps 5-6 of §2 for one token: mask and weights from the chosen dynamic columns and their rw. */
function finishRoute(c: MoeLlmConfig, z: ArrayLike<number>, chosen: boolean[], rw: number[], ban: ArrayLike<number>): { mask: number[]; weights: number[] } {
  const D = c.mlp_dynamic_expert_num + c.mlp_dynamic_null_expert_num;
  const E = D + c.mlp_fixed_expert_num;
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
  for (let j = 0; j < E; j++) weights.push(j < D ? rw[j]! * gDyn : gsum > 0 ? gexp[j]! / gsum : 0);
  return { mask, weights };
}

/** Capacity C for a group of n tokens (float32 arithmetic as torch's `_capacity`). */
export function referenceCapacity(c: MoeLlmConfig, n: number): number {
  const D = c.mlp_dynamic_expert_num + c.mlp_dynamic_null_expert_num;
  return Math.max(c.min_capacity, Math.ceil(f32(f32(n / D) * f32(c.capacity_factor))));
}

export interface RefRoutedTokens {
  routes: RefRoute[];
  /** [N] dynamic selections dropped over capacity per token */
  dropped: number[];
  /** the capacity used (undefined when nothing was capped) */
  capacity?: number;
}

/**
 * Routing of a group of tokens (rows of logits [E], in token order n = b*S + s) including the capacity
 * token-drop of PAPER.md §2 item 8 when `config.token_drop` and `drop` (the group is one prefill / full-sequence
 * call; pass drop = false for a decode step). Written from the rule documented in moe-llm-graph.ts
 * (`capacityKeep`), with plain loops: per dynamic column keep the C chosen tokens with the largest logit
 * (drop_policy "probs"; ties → lower token) or the first C chosen tokens (drop_policy "position"); then the
 * routing weights are re-masked and renormalised (+1e-6) and g is recomputed from the reduced mask.
 */
export function referenceRouteTokens(c: MoeLlmConfig, rows: ArrayLike<number>[], ban: ArrayLike<number> = [], force: ArrayLike<number> = [], topPOverride = 0, drop = true): RefRoutedTokens {
  const D = c.mlp_dynamic_expert_num + c.mlp_dynamic_null_expert_num;
  const N = rows.length;
  const sels = rows.map((z) => selectExperts(c, z, ban, force, topPOverride));
  if (!c.token_drop || !drop)
    return { routes: rows.map((z, n) => ({ ...finishRoute(c, z, sels[n]!.chosen, sels[n]!.rw, ban), k: sels[n]!.k })), dropped: new Array<number>(N).fill(0) };
  const policy = (c as Record<string, unknown>).drop_policy ?? "probs";
  const C = referenceCapacity(c, N);
  const keep = sels.map((s) => s.chosen.slice());
  for (let j = 0; j < D; j++) {
    const users = [...Array(N).keys()].filter((n) => sels[n]!.chosen[j]);
    let ranked: number[];
    if (policy === "position") ranked = users;
    else if (policy === "probs") ranked = users.sort((a, b) => f32(rows[b]![j]!) - f32(rows[a]![j]!) || a - b);
    else throw new Error(`unknown drop_policy ${String(policy)}`);
    for (const n of ranked.slice(Math.min(C, N))) keep[n]![j] = false;
  }
  const routes: RefRoute[] = [];
  const dropped: number[] = [];
  rows.forEach((z, n) => {
    const kept = sels[n]!.rw.map((w, j) => (keep[n]![j] ? w : 0));
    let sum = 0;
    for (const w of kept) sum += w;
    const rw = kept.map((w) => w / (sum + 1e-6));
    const k = keep[n]!.filter(Boolean).length;
    routes.push({ ...finishRoute(c, z, keep[n]!, rw, ban), k });
    dropped.push(sels[n]!.k - k);
  });
  return { routes, dropped, capacity: C };
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
  /**
   * With config.token_drop: the first `prefillLength` positions of every row form the prefill call whose tokens
   * share the capacity (N = batch * prefillLength, order b * prefillLength + s); the later positions are one-token
   * decode steps with a KV cache and never drop. Default: seq (the whole input is one call).
   */
  prefillLength?: number;
}

export interface RefForwardOutput {
  /** [B*S*V] */
  logits: Float64Array;
  /** [B*S*H] after the final norm */
  lastHidden: Float64Array;
  trace: RefLayerTrace[];
  /** [L] residual stream after each layer [B*S*H], before the final norm (the logit lens's input) */
  hidden: Float64Array[];
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
  const hidden: Float64Array[] = [];
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
    const t: RefLayerTrace = { routerLogits: [], mask: [], weights: [], k: [], dropped: [] };
    const row = (a: ArrayLike<number> | undefined) => Array.from({ length: E }, (_, j) => (a ? a[l * E + j]! : 0));
    const bias = row(iv.routerBias), ban = row(iv.ban), force = row(iv.force);
    const zs = Array.from({ length: N }, (_, n) => Array.from({ length: E }, (_, j) => z[n * E + j]! + bias[j]!));
    // the prefill call (positions < S0 of every row, in its own token order) shares the capacity
    const S0 = Math.min(inp.prefillLength ?? S, S);
    const prefillIdx: number[] = [];
    for (let b = 0; b < B; b++) for (let s = 0; s < S0; s++) prefillIdx.push(b * S + s);
    const routes: RefRoute[] = new Array(N);
    const droppedN = new Array<number>(N).fill(0);
    const pre = referenceRouteTokens(c, prefillIdx.map((n) => zs[n]!), ban, force, iv.topP ?? 0, true);
    prefillIdx.forEach((n, q) => { routes[n] = pre.routes[q]!; droppedN[n] = pre.dropped[q]!; });
    for (let n = 0; n < N; n++) if (!routes[n]) routes[n] = referenceRouteTokens(c, [zs[n]!], ban, force, iv.topP ?? 0, false).routes[0]!;
    for (let n = 0; n < N; n++) {
      const zn = zs[n]!;
      const r = routes[n]!;
      t.dropped.push(droppedN[n]!);
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
    hidden.push(x.slice());
  }
  const lastHidden = rmsNorm(x, N, H, w(paramNames.finalNorm), c.rms_norm_eps);
  const head = c.tie_word_embeddings ? w(paramNames.embed) : w(paramNames.lmHead);
  const logits = linear(lastHidden, N, H, head, V);
  return { logits, lastHidden, trace, hidden };
}
