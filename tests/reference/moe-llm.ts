/**
 * An independent plain-TS forward of the Uni-MoE-2.0 decoder (PAPER.md §2-3), written with loops and float64
 * arithmetic. It shares no code with models/moe-llm/moe-llm-graph.ts; it only reads the config and the weight names.
 * No KV cache (it always recomputes the whole sequence): the graph's incremental decoding is checked against
 * the graph's own full recomputation and this reference.
 */
import { type MoeLlmConfig, paramNames } from "@/models/moe-llm/config";
import type { WeightSource } from "@/models/io/weights";
import { releasedRouting, toBf16, type Precision } from "./grin-routing";

export interface RefInterventions {
  /** [L*E] added to router logits */
  routerBias?: ArrayLike<number>;
  /** [L*E] > 0.5 bans */
  ban?: ArrayLike<number>;
  /** [L*E] > 0.5 forces */
  force?: ArrayLike<number>;
  /** the routing Top-P override (absent: the config's P) */
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
  /** [N] as the release reports it (before capacity drops) */
  k: number[];
  /** [N*E] 1 = selected, then dropped over capacity (config.token_drop) */
  dropped: number[];
}

/**
 * Routing of one token with logits z [E] as released (grin-routing.ts; reference: ./grin-routing.ts), fp32, no
 * capacity drop (that needs the other tokens of the call: releasedRouting).
 */
export function referenceRoute(c: MoeLlmConfig, z: ArrayLike<number>, ban: ArrayLike<number> = [], force: ArrayLike<number> = [], topP?: number): RefRoute {
  const r = releasedRouting(c, [z], { precision: "fp32", ban, force, topP, drop: false });
  return { mask: r.mask[0]!, weights: r.weights[0]!, k: r.k[0]! };
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
   * The forward calls the routing sees (capacity and the bf16 scan depend on a call's tokens): the first
   * `prefillLength` positions of every row form the prefill call (N = batch * prefillLength, order
   * b * prefillLength + s); each later position is one decode step of `batch` tokens (a KV-cache graph's call).
   * Default: seq (the whole input is one call).
   */
  prefillLength?: number;
  /** Routing arithmetic (default fp32): bf16 routes as the release's bf16 inference (gate included). */
  routingPrecision?: Precision;
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

/**
 * One MoE feed-forward block (layer l) on normalised hidden states h [N*H]: router logits (in bf16 as
 * z = bf16(h_bf · W_bf) under bf16), the released routing per forward call (`calls`: token indices of each call), and
 * the weighted sum of the chosen routed experts and the shared experts. Returns the block output [N*H] (no residual).
 */
export function referenceMoeBlock(c: MoeLlmConfig, W: WeightSource, l: number, h: Float64Array, calls: number[][], precision: Precision, iv: RefInterventions = {}): { out: Float64Array; trace: RefLayerTrace } {
  const H = c.hidden_size;
  const N = h.length / H;
  const R = c.mlp_dynamic_expert_num, D = R + c.mlp_dynamic_null_expert_num, SH = c.mlp_fixed_expert_num, E = D + SH;
  const I = c.dynamic_intermediate_size, Is = c.shared_intermediate_size;
  const w = (n: string) => W.get(n).data;
  const row = (a: ArrayLike<number> | undefined) => Array.from({ length: E }, (_, j) => (a ? a[l * E + j]! : 0));
  const bias = row(iv.routerBias), ban = row(iv.ban), force = row(iv.force);
  const Wr = w(paramNames.router(l));
  const zs = Array.from({ length: N }, (_, n) =>
    Array.from({ length: E }, (_, j) => {
      let acc = 0;
      if (precision === "bf16") {
        for (let i = 0; i < H; i++) acc += toBf16(h[n * H + i]!) * toBf16(Wr[j * H + i]!);
        return toBf16(toBf16(acc) + bias[j]!); // + bias: one more bf16 op
      }
      for (let i = 0; i < H; i++) acc += h[n * H + i]! * Wr[j * H + i]!;
      return acc + bias[j]!;
    }),
  );
  const routes: RefRoute[] = new Array(N);
  const dropped: number[][] = new Array(N);
  for (const call of calls) {
    const r = releasedRouting(c, call.map((n) => zs[n]!), { precision, ban, force, topP: iv.topP });
    if (r.refused !== undefined) throw new Error(`reference: token ${call[r.refused]} of layer ${l} is left with no expert by "position" token drop (the release raises)`);
    call.forEach((n, q) => {
      routes[n] = { mask: r.mask[q]!, weights: r.weights[q]!, k: r.k[q]! };
      dropped[n] = r.dropped[q]!;
      zs[n] = r.z[q]!;
    });
  }
  const t: RefLayerTrace = { routerLogits: [], mask: [], weights: [], k: [], dropped: [] };
  const out = new Float64Array(N * H);
  for (let n = 0; n < N; n++) {
    const r = routes[n]!;
    t.dropped.push(...dropped[n]!);
    t.routerLogits.push(...zs[n]!);
    t.mask.push(...r.mask);
    t.weights.push(...r.weights);
    t.k.push(r.k);
    for (let e = 0; e < R; e++) {
      if (!r.mask[e]) continue;
      const y = swiglu(h, n * H, H, w(paramNames.routed(l, e, "gate")), w(paramNames.routed(l, e, "up")), w(paramNames.routed(l, e, "down")), I);
      for (let i = 0; i < H; i++) out[n * H + i] = out[n * H + i]! + r.weights[e]! * y[i]!;
    }
    for (let s = 0; s < SH; s++) {
      const y = swiglu(h, n * H, H, w(paramNames.shared(l, s, "gate")), w(paramNames.shared(l, s, "up")), w(paramNames.shared(l, s, "down")), Is);
      for (let i = 0; i < H; i++) out[n * H + i] = out[n * H + i]! + r.weights[D + s]! * y[i]!;
    }
  }
  return { out, trace: t };
}

/** Full forward: embeddings → L × (RMSNorm, GQA attention with M-RoPE, causal; RMSNorm, MoE) → norm → LM head. */
export function referenceForward(c: MoeLlmConfig, W: WeightSource, inp: RefForwardInput): RefForwardOutput {
  const B = inp.batch, S = inp.seq, N = B * S;
  const H = c.hidden_size, V = c.vocab_size, L = c.num_hidden_layers;
  const NH = c.num_attention_heads, KVH = c.num_key_value_heads, Dh = c.head_dim ?? H / NH;
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
    // the forward calls: the prefill (positions < S0 of every row), then one call per decode position
    const S0 = Math.min(inp.prefillLength ?? S, S);
    const calls = [Array.from({ length: B * S0 }, (_, q) => Math.floor(q / S0) * S + (q % S0))];
    for (let s = S0; s < S; s++) calls.push(Array.from({ length: B }, (_, b) => b * S + s));
    const moe = referenceMoeBlock(c, W, l, h2, calls, inp.routingPrecision ?? "fp32", iv);
    for (let i = 0; i < N * H; i++) x[i] = x[i]! + moe.out[i]!;
    trace.push(moe.trace);
    hidden.push(x.slice());
  }
  const lastHidden = rmsNorm(x, N, H, w(paramNames.finalNorm), c.rms_norm_eps);
  const head = c.tie_word_embeddings ? w(paramNames.embed) : w(paramNames.lmHead);
  const logits = linear(lastHidden, N, H, head, V);
  return { logits, lastHidden, trace, hidden };
}
