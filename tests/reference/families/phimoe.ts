/**
 * Plain-TS reference forward of Phi-3.5-MoE checkpoints, written from transformers' modeling_phimoe.py
 * (PhimoeAttention, PhimoeRotaryEmbedding with LongRoPE's short factors, `sparsemixer` in eval mode,
 * PhimoeSparseMoeBlock, LayerNorm layers, lm_head bias), on the checkpoint's own names. Loops only, fp64.
 */
import { attention, embed, get, heads, layerNorm, linear, mlp, n, softmax, recordRow, type Cfg, type RefLayerRouting, type RefResult, type Tensors } from "./ops";
import { refRope, rotateHalf } from "./rope";

/**
 * sparsemixer(scores, jitter_eps, training=False), top-2: [expert, multiplier] twice. The threshold clamps |s_j| at
 * the max m (not |m|); 0/0 is NaN, which is not > 2·eps, so it stays.
 */
export function refSparsemixer(scores: number[], eps: number): [number, number][] {
  const pick = (masked: number[]): [number, number] => {
    const m = Math.max(...masked);
    const e = masked.indexOf(m);
    const gates = masked.map((v, j) => {
      const ratio = (m - scores[j]!) / Math.max(Math.abs(scores[j]!), m);
      return v === -Infinity || ratio > 2 * eps ? -Infinity : v;
    });
    return [e, softmax(gates)[e]!];
  };
  const first = pick(scores);
  const second = pick(scores.map((v, j) => (j === first[0] ? -Infinity : v)));
  return [first, second];
}

export function referencePhimoe(config: Cfg, t: Tensors, ids: number[]): RefResult {
  const H = n(config, "hidden_size"), L = n(config, "num_hidden_layers"), NH = n(config, "num_attention_heads");
  const KVH = n(config, "num_key_value_heads", NH), Dh = H / NH, V = n(config, "vocab_size");
  const eps = n(config, "rms_norm_eps", 1e-5);
  const E = n(config, "num_local_experts"), I = n(config, "intermediate_size"), jitter = n(config, "router_jitter_noise", 0.01);
  const rope = refRope(config, Dh, 1e6);
  const window = (config.sliding_window as number | null | undefined) ?? null;
  const bias = config.attention_bias === true;
  const b = (name: string) => (bias ? get(t, name) : undefined);
  const ln = (x: number[], name: string) => layerNorm(x, get(t, `${name}.weight`), get(t, `${name}.bias`), eps);
  const hidden: number[][][] = [];
  let xs = embed(t, ids, H);
  const layers: RefLayerRouting[] = [];
  for (let l = 0; l < L; l++) {
    const p = `model.layers.${l}.`;
    const qs: number[][][] = [], ks: number[][][] = [], vs: number[][][] = [];
    xs.forEach((x, s) => {
      const h = ln(x, `${p}input_layernorm`);
      const proj = (w: string, rows: number) => linear(h, get(t, `${p}self_attn.${w}_proj.weight`), rows, b(`${p}self_attn.${w}_proj.bias`));
      qs.push(heads(proj("q", NH * Dh), NH, Dh).map((r) => rotateHalf(r, s, rope)));
      ks.push(heads(proj("k", KVH * Dh), KVH, Dh).map((r) => rotateHalf(r, s, rope)));
      vs.push(heads(proj("v", KVH * Dh), KVH, Dh));
    });
    const att = attention(qs, ks, vs, 1 / Math.sqrt(Dh), window);
    xs = xs.map((x, s) => {
      const o = linear(att[s]!, get(t, `${p}self_attn.o_proj.weight`), H, b(`${p}self_attn.o_proj.bias`));
      return x.map((v, i) => v + o[i]!);
    });
    const routing: RefLayerRouting = { layer: l, routerLogits: [], mask: [], weights: [], k: [] };
    xs = xs.map((x) => {
      const h = ln(x, `${p}post_attention_layernorm`);
      const logits = linear(h, get(t, `${p}block_sparse_moe.gate.weight`), E);
      const w = new Array<number>(E).fill(0);
      const y = new Array<number>(H).fill(0);
      for (const [e, mult] of refSparsemixer(logits, jitter)) {
        w[e] = mult;
        const ex = `${p}block_sparse_moe.experts.${e}.`;
        mlp(h, get(t, `${ex}w1.weight`), get(t, `${ex}w3.weight`), get(t, `${ex}w2.weight`), I).forEach((v, i) => (y[i]! += mult * v));
      }
      recordRow(routing, { logits: logits, mask: w.map((v) => (v > 0 ? 1 : 0)), weights: w, k: 2 });
      return x.map((v, i) => v + y[i]!);
    });
    layers.push(routing);
    hidden.push(xs);
  }
  const head = config.tie_word_embeddings === true ? get(t, "model.embed_tokens.weight") : get(t, "lm_head.weight");
  const headBias = config.lm_head_bias === true ? get(t, "lm_head.bias") : undefined;
  return { logits: xs.map((x) => linear(ln(x, "model.norm"), head, V, headBias)), layers, hidden };
}
