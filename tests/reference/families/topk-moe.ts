/**
 * Plain-TS reference forward of the fixed top-k MoE families, written from Hugging Face transformers'
 * modeling_qwen2_moe / modeling_qwen3_moe / modeling_olmoe / modeling_mixtral, reading the checkpoint's OWN tensor
 * names and config.json fields (nothing from models/families or the graph builder). Loops only, fp64 accumulation.
 *
 * One sequence, positions 0..S-1, causal attention (within a sliding window where config.json asks for one, see
 * `attentionWindows`), GQA, rotate-half RoPE.
 * Routing per layer: router logits [S, E] (Qwen2-MoE: the shared_expert_gate logit appended as the last column),
 * mask, weights and k as the graph's trace defines them.
 */
export type { Tensors, RefLayerRouting, RefResult } from "./ops";
export type Family = "qwen2_moe" | "qwen3_moe" | "olmoe" | "mixtral";

import { attention, embed, get, heads, linear, mlp, n, order, rmsNorm, sigmoid, softmax, recordRow, type Cfg, type RefLayerRouting, type RefResult, type Tensors } from "./ops";
import { refRope, rotateHalf } from "./rope";
/**
 * Per layer, how many keys a query may see (itself included), from config.json as transformers reads it; null = all
 * earlier keys. Query i sees key j iff j <= i and j > i - W (transformers masking_utils: sliding_window_overlay AND
 * causal_mask_function). Mixtral: every layer when sliding_window is set. Qwen3-MoE: every layer when use_sliding_window
 * (sliding_window defaults to 4096). Qwen2-MoE: when use_sliding_window, the layers layer_types calls
 * "sliding_attention", or without layer_types the even layers below max_window_layers (default 28), as the current
 * Qwen2MoeConfig derives them. OLMoE has no window.
 */
export function attentionWindows(family: Family, config: Cfg): (number | null)[] {
  const layers = n(config, "num_hidden_layers");
  const none = new Array<number | null>(layers).fill(null);
  const use = config.use_sliding_window === true;
  const W = (config.sliding_window ?? (family === "mixtral" ? null : 4096)) as number | null;
  if (family === "mixtral") return W === null ? none : none.map(() => W);
  if (family === "qwen3_moe") return use && W !== null ? none.map(() => W) : none;
  if (family === "qwen2_moe" && use) {
    const types = config.layer_types as string[] | undefined;
    const maxWindowLayers = n(config, "max_window_layers", 28);
    return none.map((_, l) => ((types ? types[l] === "sliding_attention" : l % 2 === 0 && l < maxWindowLayers) ? W : null));
  }
  return none;
}

/** Qwen2-MoE / Qwen3-MoE decoder layers with a dense MLP (intermediate_size): in mlp_only_layers, or (l + 1) not a multiple of decoder_sparse_step. */
export function qwenDense(config: Cfg, l: number): boolean {
  const only = (config.mlp_only_layers as number[] | undefined) ?? [];
  return only.includes(l) || (l + 1) % n(config, "decoder_sparse_step", 1) !== 0;
}

export function referenceForward(family: Family, config: Cfg, t: Tensors, ids: number[]): RefResult {
  const H = n(config, "hidden_size"), L = n(config, "num_hidden_layers"), NH = n(config, "num_attention_heads");
  const KVH = n(config, "num_key_value_heads", NH), Dh = n(config, "head_dim", H / NH), V = n(config, "vocab_size");
  const eps = n(config, "rms_norm_eps", family === "olmoe" || family === "mixtral" ? 1e-5 : 1e-6);
  const rope = refRope(config, Dh, family === "mixtral" ? 1e6 : 10000);
  const E = family === "mixtral" ? n(config, "num_local_experts") : n(config, "num_experts");
  const K = n(config, "num_experts_per_tok");
  const I = family === "olmoe" || family === "mixtral" ? n(config, "intermediate_size") : n(config, "moe_intermediate_size");
  const renorm = family === "mixtral" ? true : ((config.norm_topk_prob as boolean | undefined) ?? false);
  const bias = family === "qwen2_moe" ? true : family === "mixtral" ? false : ((config.attention_bias as boolean | undefined) ?? false);
  const hidden: number[][][] = [];
  let xs = embed(t, ids, H);
  const layers: RefLayerRouting[] = [];
  const windows = attentionWindows(family, config);
  for (let l = 0; l < L; l++) {
    const p = `model.layers.${l}.`;
    // ---- attention ----
    const qs: number[][][] = [], ks: number[][][] = [], vs: number[][][] = [];
    xs.forEach((x, s) => {
      const h = rmsNorm(x, get(t, `${p}input_layernorm.weight`), eps);
      let q = linear(h, get(t, `${p}self_attn.q_proj.weight`), NH * Dh, bias ? get(t, `${p}self_attn.q_proj.bias`) : undefined);
      let k = linear(h, get(t, `${p}self_attn.k_proj.weight`), KVH * Dh, bias ? get(t, `${p}self_attn.k_proj.bias`) : undefined);
      const v = linear(h, get(t, `${p}self_attn.v_proj.weight`), KVH * Dh, bias ? get(t, `${p}self_attn.v_proj.bias`) : undefined);
      if (family === "olmoe") {
        q = rmsNorm(q, get(t, `${p}self_attn.q_norm.weight`), eps);
        k = rmsNorm(k, get(t, `${p}self_attn.k_norm.weight`), eps);
      }
      let qh = heads(q, NH, Dh), kh = heads(k, KVH, Dh);
      if (family === "qwen3_moe") {
        qh = qh.map((r) => rmsNorm(r, get(t, `${p}self_attn.q_norm.weight`), eps));
        kh = kh.map((r) => rmsNorm(r, get(t, `${p}self_attn.k_norm.weight`), eps));
      }
      qs.push(qh.map((r) => rotateHalf(r, s, rope)));
      ks.push(kh.map((r) => rotateHalf(r, s, rope)));
      vs.push(heads(v, KVH, Dh));
    });
    const att = attention(qs, ks, vs, 1 / Math.sqrt(Dh), windows[l] ?? null);
    xs = xs.map((x, s) => {
      const o = linear(att[s]!, get(t, `${p}self_attn.o_proj.weight`), H);
      return x.map((v, i) => v + o[i]!);
    });
    // ---- MoE (or a dense MLP) ----
    if ((family === "qwen2_moe" || family === "qwen3_moe") && qwenDense(config, l)) {
      xs = xs.map((x) => {
        const h = rmsNorm(x, get(t, `${p}post_attention_layernorm.weight`), eps);
        const y = mlp(h, get(t, `${p}mlp.gate_proj.weight`), get(t, `${p}mlp.up_proj.weight`), get(t, `${p}mlp.down_proj.weight`), n(config, "intermediate_size"));
        return x.map((v, i) => v + y[i]!);
      });
      hidden.push(xs);
      continue;
    }
    const routing: RefLayerRouting = { layer: l, routerLogits: [], mask: [], weights: [], k: [] };
    xs = xs.map((x) => {
      const h = rmsNorm(x, get(t, `${p}post_attention_layernorm.weight`), eps);
      const gateName = family === "mixtral" ? `${p}block_sparse_moe.gate.weight` : `${p}mlp.gate.weight`;
      const logits = linear(h, get(t, gateName), E);
      const probs = softmax(logits);
      const chosen = order(logits).slice(0, K);
      const sum = chosen.reduce((a, e) => a + probs[e]!, 0);
      const w = new Array<number>(E).fill(0);
      for (const e of chosen) w[e] = renorm ? probs[e]! / sum : probs[e]!;
      const y = new Array<number>(H).fill(0);
      for (const e of chosen) {
        const out =
          family === "mixtral"
            ? mlp(h, get(t, `${p}block_sparse_moe.experts.${e}.w1.weight`), get(t, `${p}block_sparse_moe.experts.${e}.w3.weight`), get(t, `${p}block_sparse_moe.experts.${e}.w2.weight`), I)
            : mlp(h, get(t, `${p}mlp.experts.${e}.gate_proj.weight`), get(t, `${p}mlp.experts.${e}.up_proj.weight`), get(t, `${p}mlp.experts.${e}.down_proj.weight`), I);
        out.forEach((v, i) => (y[i]! += w[e]! * v));
      }
      const mask = w.map((_, e) => (chosen.includes(e) ? 1 : 0));
      const rl = [...logits];
      if (family === "qwen2_moe") {
        const Is = n(config, "shared_expert_intermediate_size");
        const sg = linear(h, get(t, `${p}mlp.shared_expert_gate.weight`), 1)[0]!;
        const out = mlp(h, get(t, `${p}mlp.shared_expert.gate_proj.weight`), get(t, `${p}mlp.shared_expert.up_proj.weight`), get(t, `${p}mlp.shared_expert.down_proj.weight`), Is);
        out.forEach((v, i) => (y[i]! += sigmoid(sg) * v));
        rl.push(sg);
        mask.push(1);
        w.push(sigmoid(sg));
      }
      recordRow(routing, { logits: rl, mask: mask, weights: w, k: K });
      return x.map((v, i) => v + y[i]!);
    });
    layers.push(routing);
    hidden.push(xs);
  }
  const head = (config.tie_word_embeddings as boolean | undefined) ? get(t, "model.embed_tokens.weight") : get(t, "lm_head.weight");
  const logits = xs.map((x) => linear(rmsNorm(x, get(t, "model.norm.weight"), eps), head, V));
  return { logits, layers, hidden };
}
