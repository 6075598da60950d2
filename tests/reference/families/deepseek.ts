/**
 * Plain-TS reference forward of DeepSeek-V2 and -V3 checkpoints, written from transformers' modeling_deepseek_v2.py /
 * modeling_deepseek_v3.py (DeepseekV{2,3}Attention, DeepseekV2Moe.route_tokens_to_experts, DeepseekV3TopkRouter,
 * DeepseekV{2,3}MLP, the decoder layers), reading the checkpoint's own tensor names and config.json. Attention in
 * the expanded form (k and v from kv_b_proj, as transformers does); fp8 weights (V3) are dequantised with
 * tests/reference/quant.ts. One sequence, positions 0..S-1, loops only, fp64.
 */
import { refDequantFp8 } from "../quant";
import { attention, embed, get, heads, linear, mlp, n, order, rmsNorm, sigmoid, softmax, recordRow, type Cfg, type RefLayerRouting, type RefResult, type Tensors } from "./ops";
import { refRope, rotateHalf, type RefRope } from "./rope";

/** A weight as values: fp32, or F8_E4M3 bytes × their `_scale_inv` blocks. */
function weightOf(t: Tensors, config: Cfg, name: string): ArrayLike<number> {
  const w = t.get(name);
  if (!w) throw new Error(`reference: tensor ${name} missing`);
  if (w.dtype !== "F8_E4M3") return w.data;
  const [bm, bn] = ((config.quantization_config as { weight_block_size?: number[] } | undefined)?.weight_block_size ?? [128, 128]) as [number, number];
  return refDequantFp8(w.raw!, get(t, `${name}_scale_inv`), w.shape[0]!, w.shape[1]!, bm, bn);
}

/** V2: consecutive pairs as complex numbers times polar(mult, pos·inv) (apply_rotary_emb). */
function rotatePairs(v: number[], pos: number, r: RefRope): number[] {
  const out = [...v];
  for (let j = 0; j < v.length / 2; j++) {
    const c = Math.cos(pos * r.inv[j]!) * r.mult, s = Math.sin(pos * r.inv[j]!) * r.mult;
    out[2 * j] = v[2 * j]! * c - v[2 * j + 1]! * s;
    out[2 * j + 1] = v[2 * j]! * s + v[2 * j + 1]! * c;
  }
  return out;
}

/** V3 with rope_interleave: view(d/2, 2).transpose(-1, -2).reshape(d) — evens then odds — then rotate-half. */
const deinterleave = (v: number[]) => [...v.filter((_, j) => j % 2 === 0), ...v.filter((_, j) => j % 2 === 1)];

export function referenceDeepseek(family: "deepseek_v2" | "deepseek_v3", config: Cfg, t: Tensors, ids: number[]): RefResult {
  const v3 = family === "deepseek_v3";
  const W = (name: string) => weightOf(t, config, name);
  const H = n(config, "hidden_size"), L = n(config, "num_hidden_layers"), NH = n(config, "num_attention_heads"), V = n(config, "vocab_size");
  const eps = n(config, "rms_norm_eps", 1e-6);
  const dn = n(config, "qk_nope_head_dim"), dr = n(config, "qk_rope_head_dim"), dv = n(config, "v_head_dim"), R = n(config, "kv_lora_rank");
  const Q = config.q_lora_rank as number | null;
  const bias = config.attention_bias === true;
  const rope = refRope(config, dr, 10000);
  let scale = 1 / Math.sqrt(dn + dr);
  const rs = config.rope_scaling as Record<string, number> | null | undefined;
  if (v3 && rs && rs.mscale_all_dim) {
    const m = 0.1 * rs.mscale_all_dim * Math.log(rs.factor!) + 1;
    scale *= m * m;
  }
  const ropeOf = (x: number[], s: number) => (!v3 ? rotatePairs(x, s, rope) : rotateHalf(config.rope_interleave === false ? x : deinterleave(x), s, rope));
  const E = n(config, "n_routed_experts"), K = n(config, "num_experts_per_tok"), Im = n(config, "moe_intermediate_size");
  const shared = (config.n_shared_experts as number | null | undefined) ?? 0;
  const rsf = n(config, "routed_scaling_factor", v3 ? 2.5 : 1);
  const b = (name: string) => (bias ? get(t, name) : undefined);
  const hidden: number[][][] = [];
  let xs = embed(t, ids, H);
  const layers: RefLayerRouting[] = [];
  for (let l = 0; l < L; l++) {
    const p = `model.layers.${l}.`;
    const qs: number[][][] = [], ks: number[][][] = [], vs: number[][][] = [];
    xs.forEach((x, s) => {
      const h = rmsNorm(x, get(t, `${p}input_layernorm.weight`), eps);
      const q =
        Q === null
          ? linear(h, W(`${p}self_attn.q_proj.weight`), NH * (dn + dr))
          : linear(rmsNorm(linear(h, W(`${p}self_attn.q_a_proj.weight`), Q, b(`${p}self_attn.q_a_proj.bias`)), get(t, `${p}self_attn.q_a_layernorm.weight`), 1e-6), W(`${p}self_attn.q_b_proj.weight`), NH * (dn + dr));
      const ckv = linear(h, W(`${p}self_attn.kv_a_proj_with_mqa.weight`), R + dr, b(`${p}self_attn.kv_a_proj_with_mqa.bias`));
      const kv = linear(rmsNorm(ckv.slice(0, R), get(t, `${p}self_attn.kv_a_layernorm.weight`), 1e-6), W(`${p}self_attn.kv_b_proj.weight`), NH * (dn + dv));
      const kPe = ropeOf(ckv.slice(R), s);
      qs.push(heads(q, NH, dn + dr).map((qh) => [...qh.slice(0, dn), ...ropeOf(qh.slice(dn), s)]));
      const kvh = heads(kv, NH, dn + dv);
      ks.push(kvh.map((r) => [...r.slice(0, dn), ...kPe]));
      vs.push(kvh.map((r) => r.slice(dn)));
    });
    const att = attention(qs, ks, vs, scale, null);
    xs = xs.map((x, s) => {
      const o = linear(att[s]!, W(`${p}self_attn.o_proj.weight`), H, b(`${p}self_attn.o_proj.bias`));
      return x.map((v, i) => v + o[i]!);
    });
    if (l < n(config, "first_k_dense_replace", v3 ? 3 : 0)) {
      xs = xs.map((x) => {
        const h = rmsNorm(x, get(t, `${p}post_attention_layernorm.weight`), eps);
        const y = mlp(h, W(`${p}mlp.gate_proj.weight`), W(`${p}mlp.up_proj.weight`), W(`${p}mlp.down_proj.weight`), n(config, "intermediate_size"));
        return x.map((v, i) => v + y[i]!);
      });
      hidden.push(xs);
      continue;
    }
    const routing: RefLayerRouting = { layer: l, routerLogits: [], mask: [], weights: [], k: [], ...(v3 ? { scores: [] } : {}) };
    const groups = n(config, "n_group", 1), keep = n(config, "topk_group", 1), per = E / groups;
    /** experts outside the `keep` best groups (by `groupScore`) get 0, as masked_fill(~score_mask, 0.0) */
    const limitGroups = (score: number[], groupScore: (g: number[]) => number) => {
      const gs = Array.from({ length: groups }, (_, g) => groupScore(score.slice(g * per, (g + 1) * per)));
      const kept = new Set(order(gs).slice(0, keep));
      return score.map((v, e) => (kept.has(Math.floor(e / per)) ? v : 0));
    };
    xs = xs.map((x) => {
      const h = rmsNorm(x, get(t, `${p}post_attention_layernorm.weight`), eps);
      const logits = linear(h, get(t, `${p}mlp.gate.weight`), E);
      const w = new Array<number>(E).fill(0);
      let chosen: number[];
      if (v3) {
        const s = logits.map(sigmoid);
        const corr = get(t, `${p}mlp.gate.e_score_correction_bias`);
        const sel = s.map((v, e) => v + corr[e]!);
        routing.scores!.push(sel);
        chosen = order(limitGroups(sel, (g) => order(g).slice(0, 2).reduce((a, e) => a + g[e]!, 0))).slice(0, K);
        const sum = config.norm_topk_prob === false ? 1 : chosen.reduce((a, e) => a + s[e]!, 0) + 1e-20;
        for (const e of chosen) w[e] = (s[e]! / sum) * rsf;
      } else {
        const prob = softmax(logits);
        const grouped = config.topk_method === "group_limited_greedy" ? limitGroups(prob, (g) => Math.max(...g)) : prob;
        chosen = order(grouped).slice(0, K);
        for (const e of chosen) w[e] = prob[e]! * rsf;
      }
      const y = new Array<number>(H).fill(0);
      for (const e of chosen) mlp(h, W(`${p}mlp.experts.${e}.gate_proj.weight`), W(`${p}mlp.experts.${e}.up_proj.weight`), W(`${p}mlp.experts.${e}.down_proj.weight`), Im).forEach((v, i) => (y[i]! += w[e]! * v));
      const mask = w.map((_, e) => (chosen.includes(e) ? 1 : 0));
      const rl = [...logits];
      if (shared > 0) {
        mlp(h, W(`${p}mlp.shared_experts.gate_proj.weight`), W(`${p}mlp.shared_experts.up_proj.weight`), W(`${p}mlp.shared_experts.down_proj.weight`), Im * shared).forEach((v, i) => (y[i]! += v));
        rl.push(0); // no router row: the trace's shared column reads 0
        mask.push(1);
        w.push(1);
      }
      recordRow(routing, { logits: rl, mask: mask, weights: w, k: K });
      return x.map((v, i) => v + y[i]!);
    });
    layers.push(routing);
    hidden.push(xs);
  }
  const head = config.tie_word_embeddings === true ? get(t, "model.embed_tokens.weight") : get(t, "lm_head.weight");
  return { logits: xs.map((x) => linear(rmsNorm(x, get(t, "model.norm.weight"), eps), head, V)), layers, hidden };
}
