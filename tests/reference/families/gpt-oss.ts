/**
 * Plain-TS reference forward of gpt-oss checkpoints, written from transformers' modeling_gpt_oss.py (GptOssAttention +
 * eager_attention_forward with sinks, GptOssTopKRouter, GptOssExperts.forward, layer_types) on the checkpoint's own
 * names, in either layout: the expert tensors as parameters ([E, H, 2I] gate_up_proj, x @ W, interleaved gate/up
 * columns) or MXFP4 blocks + scales, dequantised with tests/reference/quant.ts and transposed as
 * convert_moe_packed_tensors does. Loops only, fp64.
 */
import { refDequantMxfp4 } from "../quant";
import { attention, embed, get, heads, linear, n, order, rmsNorm, sigmoid, softmax, recordRow, type Cfg, type RefLayerRouting, type RefResult, type Tensors } from "./ops";
import { refRope, rotateHalf } from "./rope";

/** Expert e of a stacked parameter [E, rows, cols] (x @ W layout), from the bf16 tensor or the MXFP4 blocks. */
function expertParam(t: Tensors, base: string, e: number): { rows: number; cols: number; at: (r: number, c: number) => number } {
  const dense = t.get(base);
  if (dense) {
    const [, rows, cols] = dense.shape as [number, number, number];
    return { rows, cols, at: (r, c) => dense.data[e * rows * cols + r * cols + c]! };
  }
  const blocks = t.get(`${base}_blocks`)!, scales = t.get(`${base}_scales`)!;
  const [, outRows, G] = blocks.shape as [number, number, number];
  const per = outRows * G;
  const values = refDequantMxfp4(blocks.raw!.subarray(e * per * 16, (e + 1) * per * 16), scales.raw!.subarray(e * per, (e + 1) * per)); // [outRows, G·32]
  // convert_moe_packed_tensors returns out.transpose(1, 2): the parameter is [G·32, outRows]
  return { rows: G * 32, cols: outRows, at: (r, c) => values[c * G * 32 + r]! };
}

export function referenceGptOss(config: Cfg, t: Tensors, ids: number[]): RefResult {
  const H = n(config, "hidden_size"), L = n(config, "num_hidden_layers"), NH = n(config, "num_attention_heads");
  const KVH = n(config, "num_key_value_heads", NH), Dh = n(config, "head_dim", H / NH), V = n(config, "vocab_size");
  const eps = n(config, "rms_norm_eps", 1e-5);
  const E = n(config, "num_local_experts"), K = n(config, "num_experts_per_tok");
  const alpha = n(config, "swiglu_alpha", 1.702), limit = n(config, "swiglu_limit", 7);
  const rope = refRope(config, Dh, 150000);
  const types = (config.layer_types as string[] | undefined) ?? Array.from({ length: L }, (_, i) => (i % 2 === 0 ? "sliding_attention" : "full_attention"));
  const bias = config.attention_bias !== false;
  const b = (name: string) => (bias ? get(t, name) : undefined);
  const hidden: number[][][] = [];
  let xs = embed(t, ids, H);
  const layers: RefLayerRouting[] = [];
  for (let l = 0; l < L; l++) {
    const p = `model.layers.${l}.`;
    const qs: number[][][] = [], ks: number[][][] = [], vs: number[][][] = [];
    xs.forEach((x, s) => {
      const h = rmsNorm(x, get(t, `${p}input_layernorm.weight`), eps);
      const proj = (w: string, rows: number) => linear(h, get(t, `${p}self_attn.${w}_proj.weight`), rows, b(`${p}self_attn.${w}_proj.bias`));
      qs.push(heads(proj("q", NH * Dh), NH, Dh).map((r) => rotateHalf(r, s, rope)));
      ks.push(heads(proj("k", KVH * Dh), KVH, Dh).map((r) => rotateHalf(r, s, rope)));
      vs.push(heads(proj("v", KVH * Dh), KVH, Dh));
    });
    const window = types[l] === "sliding_attention" ? ((config.sliding_window as number | undefined) ?? 128) : null;
    const att = attention(qs, ks, vs, 1 / Math.sqrt(Dh), window, get(t, `${p}self_attn.sinks`));
    xs = xs.map((x, s) => {
      const o = linear(att[s]!, get(t, `${p}self_attn.o_proj.weight`), H, b(`${p}self_attn.o_proj.bias`));
      return x.map((v, i) => v + o[i]!);
    });
    const routing: RefLayerRouting = { layer: l, routerLogits: [], mask: [], weights: [], k: [] };
    const gu = Array.from({ length: E }, (_, e) => expertParam(t, `${p}mlp.experts.gate_up_proj`, e));
    const dn = Array.from({ length: E }, (_, e) => expertParam(t, `${p}mlp.experts.down_proj`, e));
    const guBias = get(t, `${p}mlp.experts.gate_up_proj_bias`), dnBias = get(t, `${p}mlp.experts.down_proj_bias`);
    xs = xs.map((x) => {
      const h = rmsNorm(x, get(t, `${p}post_attention_layernorm.weight`), eps);
      const logits = linear(h, get(t, `${p}mlp.router.weight`), E, get(t, `${p}mlp.router.bias`));
      const chosen = order(logits).slice(0, K);
      const top = softmax(chosen.map((e) => logits[e]!));
      const w = new Array<number>(E).fill(0);
      chosen.forEach((e, j) => (w[e] = top[j]!));
      const y = new Array<number>(H).fill(0);
      for (const e of chosen) {
        const I = gu[e]!.cols / 2;
        const col = (c: number) => h.reduce((a, v, r) => a + v * gu[e]!.at(r, c), 0) + guBias[e * 2 * I + c]!;
        const act = Array.from({ length: I }, (_, j) => {
          const gate = Math.min(col(2 * j), limit);
          const up = Math.min(Math.max(col(2 * j + 1), -limit), limit);
          return (up + 1) * gate * sigmoid(gate * alpha);
        });
        for (let c = 0; c < H; c++) y[c]! += w[e]! * (act.reduce((a, v, r) => a + v * dn[e]!.at(r, c), 0) + dnBias[e * H + c]!);
      }
      recordRow(routing, { logits: logits, mask: w.map((_, e) => (chosen.includes(e) ? 1 : 0)), weights: w, k: K });
      return x.map((v, i) => v + y[i]!);
    });
    layers.push(routing);
    hidden.push(xs);
  }
  return { logits: xs.map((x) => linear(rmsNorm(x, get(t, "model.norm.weight"), eps), get(t, "lm_head.weight"), V)), layers, hidden };
}
