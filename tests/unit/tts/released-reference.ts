/**
 * Plain-TS reference of the released MoE-TTS forward (RELEASED.md §1.6–1.7), written from the release's code paths
 * with loops and float64 (no graph builder): rows → 24 (here L) pre-norm layers of GQA attention with an explicit
 * visibility rule and the DeepSpeed top-2 gate with capacity → RMSNorm → out_fnn. Plus a seeded generator of a
 * speech generator in the released tensor layout.
 */
import { speechCodes, speechDims, speechParamNames as n, speechParamTable, zSpeechGenConfig, type SpeechGenConfig } from "@/models/tts/tts-released";
import type { SpeechAttention, SpeechRow } from "@/models/tts/tts-released-run";
import { SeededRandom } from "@/models/io/seeded-random";
import type { Tensor32 } from "@/models/io/weights";
import { linear as lin, rmsNorm as rms } from "./reference";

export interface RefRouting {
  logits: Float64Array;
  /** [S × 2] */
  selected: number[];
  mask: Uint8Array;
  weights: Float64Array;
  dropped: Uint8Array;
}

/** May row i see row j (C conditioning rows)? */
export function visible(attention: SpeechAttention, C: number, i: number, j: number): boolean {
  if (attention === "none") return true;
  if (attention === "causal") return j <= i;
  return i < C ? j < C : j < C || j <= i;
}

export interface RefOptions {
  attention: SpeechAttention;
  /** Capacity cap (Infinity: no drops). */
  cap: number;
  /** [L × S × E] Gumbel noise added before the second-expert argmax (absent: none). */
  gumbel?: Float32Array;
  /** [L × NH × S × S] attention dropout multipliers (absent: none). */
  keep?: Float32Array;
}

/** One full forward over `rows` (positions 0..S−1, C conditioning rows): logits [S × (V+9)] and routing per layer. */
export function referenceSpeechForward(c: SpeechGenConfig, W: Map<string, Tensor32>, rows: readonly SpeechRow[], C: number, o: RefOptions): { logits: Float64Array; routing: RefRouting[] } {
  const get = (name: string) => W.get(name) ?? (() => { throw new Error(`missing ${name}`); })();
  const { d, NH, KVH, Dh, L, I, E, Vo, idim } = speechDims(c);
  const S = rows.length, G = NH / KVH, half = Dh / 2;
  let x = new Float64Array(S * d);
  const table = get(n.textEmbed), audio = get(n.audioEmbed), inW = get(n.inFnn("weight")), inB = get(n.inFnn("bias"));
  rows.forEach((r, s) => {
    if (r.kind === "audio") for (let h = 0; h < d; h++) x[s * d + h] = audio.data[r.id * d + h]!;
    else {
      const e = Float64Array.from(table.data.subarray(r.id * idim, (r.id + 1) * idim));
      x.set(lin(e, 1, idim, inW, inB), s * d);
    }
  });
  const rope = (v: Float64Array, off: number, p: number) => {
    const t = Array.from({ length: Dh }, (_, j) => v[off + j]!);
    for (let j = 0; j < half; j++) {
      const a = p / Math.pow(c.rope_theta, (2 * j) / Dh);
      v[off + j] = t[j]! * Math.cos(a) - t[j + half]! * Math.sin(a);
      v[off + j + half] = t[j + half]! * Math.cos(a) + t[j]! * Math.sin(a);
    }
  };
  const routing: RefRouting[] = [];
  for (let l = 0; l < L; l++) {
    const h = rms(x, S, d, get(n.inputNorm(l)), c.rms_norm_eps);
    const q = lin(h, S, d, get(n.attn(l, "q", "weight")), get(n.attn(l, "q", "bias")));
    const k = lin(h, S, d, get(n.attn(l, "k", "weight")), get(n.attn(l, "k", "bias")));
    const v = lin(h, S, d, get(n.attn(l, "v", "weight")), get(n.attn(l, "v", "bias")));
    for (let s = 0; s < S; s++) {
      for (let hd = 0; hd < NH; hd++) rope(q, (s * NH + hd) * Dh, s);
      for (let hd = 0; hd < KVH; hd++) rope(k, (s * KVH + hd) * Dh, s);
    }
    const att = new Float64Array(S * NH * Dh);
    for (let hd = 0; hd < NH; hd++) {
      const kv = Math.floor(hd / G);
      for (let i = 0; i < S; i++) {
        const sc = new Float64Array(S).fill(-Infinity);
        for (let j = 0; j < S; j++) {
          if (!visible(o.attention, C, i, j)) continue;
          let dot = 0;
          for (let t = 0; t < Dh; t++) dot += q[(i * NH + hd) * Dh + t]! * k[(j * KVH + kv) * Dh + t]!;
          sc[j] = dot / Math.sqrt(Dh);
        }
        const m = Math.max(...sc);
        let sum = 0;
        for (let j = 0; j < S; j++) sum += (sc[j] = Math.exp(sc[j]! - m));
        for (let j = 0; j < S; j++) {
          const p = (sc[j]! / sum) * (o.keep ? o.keep[((l * NH + hd) * S + i) * S + j]! : 1);
          if (p === 0) continue;
          for (let t = 0; t < Dh; t++) att[(i * NH + hd) * Dh + t] = att[(i * NH + hd) * Dh + t]! + p * v[(j * KVH + kv) * Dh + t]!;
        }
      }
    }
    const ao = lin(att, S, NH * Dh, get(n.attn(l, "o", "weight")));
    x = x.map((val, idx) => val + ao[idx]!);

    // DeepSpeed top-2 gating with capacity
    const hm = rms(x, S, d, get(n.postNorm(l)), c.rms_norm_eps);
    const z = lin(hm, S, d, get(n.gate(l)));
    const r: RefRouting = { logits: z, selected: [], mask: new Uint8Array(S * E), weights: new Float64Array(S * E), dropped: new Uint8Array(S * E) };
    const gates = new Float64Array(S * E);
    const e1s: number[] = [], e2s: number[] = [];
    for (let s = 0; s < S; s++) {
      const row = Array.from(z.subarray(s * E, (s + 1) * E));
      const m = Math.max(...row);
      const ex = row.map((v2) => Math.exp(v2 - m));
      const sum = ex.reduce((a, b) => a + b, 0);
      ex.forEach((v2, e) => (gates[s * E + e] = v2 / sum));
      let e1 = 0;
      for (let e = 1; e < E; e++) if (gates[s * E + e]! > gates[s * E + e1]!) e1 = e;
      let e2 = -1;
      for (let e = 0; e < E; e++) {
        if (e === e1) continue;
        const val = row[e]! + (o.gumbel ? o.gumbel[(l * S + s) * E + e]! : 0);
        const best = e2 < 0 ? -Infinity : row[e2]! + (o.gumbel ? o.gumbel[(l * S + s) * E + e2]! : 0);
        if (val > best) e2 = e;
      }
      e1s.push(e1);
      e2s.push(e2);
      r.selected.push(e1, e2);
    }
    const count1 = new Array<number>(E).fill(0);
    for (const e of e1s) count1[e] = count1[e]! + 1;
    const seen1 = new Array<number>(E).fill(0), seen2 = new Array<number>(E).fill(0);
    const y = new Float64Array(S * d);
    for (let s = 0; s < S; s++) {
      const e1 = e1s[s]!, e2 = e2s[s]!;
      const loc1 = seen1[e1]!;
      seen1[e1] = loc1 + 1;
      const loc2 = count1[e2]! + seen2[e2]!;
      seen2[e2] = seen2[e2]! + 1;
      const keep1 = loc1 < o.cap, keep2 = loc2 < o.cap;
      const g1 = keep1 ? gates[s * E + e1]! : 0, g2 = keep2 ? gates[s * E + e2]! : 0;
      const den = Math.max(g1 + g2, 1.1920928955078125e-7);
      for (const [e, kept, g] of [[e1, keep1, g1], [e2, keep2, g2]] as const) {
        if (!kept) {
          r.dropped[s * E + e] = 1;
          continue;
        }
        r.mask[s * E + e] = 1;
        r.weights[s * E + e] = g / den;
        const hrow = hm.subarray(s * d, (s + 1) * d);
        const gp = lin(hrow, 1, d, get(n.expert(l, e, "gate")));
        const up = lin(hrow, 1, d, get(n.expert(l, e, "up")));
        const act = gp.map((a, j) => (a / (1 + Math.exp(-a))) * up[j]!);
        const down = lin(act, 1, I, get(n.expert(l, e, "down")));
        for (let j = 0; j < d; j++) y[s * d + j] = y[s * d + j]! + (g / den) * down[j]!;
      }
    }
    x = x.map((val, idx) => val + y[idx]!);
    routing.push(r);
  }
  const hn = rms(x, S, d, get(n.norm), c.rms_norm_eps);
  return { logits: lin(hn, S, d, get(n.outFnn("weight")), get(n.outFnn("bias"))), routing };
}

/** A small speech-generator config in the released field names (Omni config.json keys + the engine constants). */
export function smallSpeechConfig(over: Partial<SpeechGenConfig> = {}): SpeechGenConfig {
  return zSpeechGenConfig.parse({
    model_type: "uni_moe_speech_generator",
    source_layout: "omni",
    idim: 24,
    odim: 64,
    text_vocab_size: 300,
    transformer_attention_dim: 32,
    transformer_linear_units: 48,
    transformer_num_blocks: 2,
    transformer_attention_heads: 4,
    transformer_kv_heads: 2,
    encoder_output_dim: 32,
    speech_start_token_id: 290,
    speech_end_token_id: 291,
    speech_prompt_token_id: 292,
    speech_split_token_id: 293,
    codebook_size: 64,
    ...over,
  });
}

/**
 * Seeded speech-generator tensors (names inside `speech_generator.`). Every row shares a common direction u and the
 * gate row of expert 0 points along it, so most tokens pick expert 0 first: capacity drops happen at S ≳ 8.
 */
export function seedSpeechWeights(c: SpeechGenConfig, seed: number): Map<string, Tensor32> {
  const rng = new SeededRandom(seed);
  const { d, E } = speechDims(c);
  const u = rng.fillNormal(new Float32Array(d));
  const out = new Map<string, Tensor32>();
  for (const p of speechParamTable(c)) {
    const size = p.shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(size);
    const fanIn = p.shape[p.shape.length - 1]!;
    if (p.kind === "norm") rng.fillNormal(data, 0.1, 1);
    else if (p.kind === "bias") rng.fillNormal(data, 0.05);
    else if (p.kind === "embed" && p.name === n.audioEmbed) {
      rng.fillNormal(data, 0.7);
      for (let r = 0; r < p.shape[0]!; r++) for (let j = 0; j < d; j++) data[r * d + j] = data[r * d + j]! + u[j]!;
    } else if (p.kind === "router") {
      rng.fillNormal(data, 1.5 / Math.sqrt(d));
      for (let j = 0; j < d; j++) data[j] = data[j]! + (1.2 * u[j]!) / d;
      for (let e = 1; e < E; e++) for (let j = 0; j < d; j++) data[e * d + j] = data[e * d + j]! - (0.3 * e * u[j]!) / d;
    } else rng.fillNormal(data, 1 / Math.sqrt(fanIn));
    out.set(p.name, { shape: [...p.shape], data });
  }
  // the seeded model would often stop at once: EOS is made unlikely, so it speaks until its budget
  const outBias = out.get(n.outFnn("bias"))!.data;
  outBias[speechCodes(c).EOS] = -8;
  // text rows (in_fnn of the table) carry u as well: in_fnn.bias along u
  const bias = out.get(n.inFnn("bias"))!.data;
  for (let j = 0; j < d; j++) bias[j] = bias[j]! + u[j]!;
  return out;
}

export { speechCodes };
