/**
 * Uni-MoE-2.0-Omni's MoE-TTS as released (RELEASED.md §1): `speech_generator.*` of the Omni checkpoint (type
 * `ar_ori_v2_new`, LLM2TTSCodecAR) or the standalone Uni-MoE-TTS `speech_gen_ep2.bin` (same names). A Qwen2-style
 * decoder (QKV bias, GQA, half-split RoPE θ 10000, RMSNorm eps 1e-6) whose FFN is a DeepSpeed MoE of 4 SwiGLU
 * experts with top-2 gating and capacity; its own text-embedding table + in_fnn turn LLM token ids into rows.
 *
 * Rows (one per position, §1.5; V = odim, A = audio_embedding, E = qwenvl_embed_tokens):
 *   [SOPT] in_fnn(E[prompt]) [EOPT]   (the Omni path always has this block, possibly empty)
 *   [SOP] A[prefix] [EOP]             (never at inference)
 *   [BOS] in_fnn(E[text]) [EOT]
 *   [SOS] A[c_1] A[c_2] …
 * Special codes V+0..V+8: BOS SOS EOS PAD SOPT EOPT SOP EOP EOT.
 *
 * The MoE layer (§1.7, DeepSpeed top2gating as patched by the release), per token s of the S in one call:
 *   z = h·Wgᵀ [S,4] (fp32, "router logits");  g = softmax(z);  e1 = argmax g (first on ties)
 *   e2 = argmax_{e≠e1} (z + G)   (G = Gumbel noise when second-expert sampling is on, else 0)
 *   cap = max(ceil(S/4 · cf · 2), min_capacity)   (cf 1.5 training mode, 1.0 eval; "off": no cap)
 *   loc1 = #earlier tokens with the same e1;  loc2 = #tokens (all S) whose e1 is this e2 + #earlier with the same e2
 *   a choice is dropped when its loc ≥ cap; g1/g2 = g[e] if kept else 0; w = g_i / max(g1+g2, 1.1920929e-7)
 *   y = w1·Expert_e1(h) + w2·Expert_e2(h),  Expert(h) = down(silu(gate h) · up h)
 *
 * Graph (batch 1; letters: S rows in this call, P past rows, T = P+S, d hidden, Dh head dim, NH/KVH heads, E = 4,
 * L layers, Vo = V+9):
 *   inputs  text_ids int64 [S], audio_ids int64 [S], is_text float [S] (1: row = in_fnn(E[text_id]), 0: A[audio_id]),
 *           position_ids int64 [S], attn_bias float [S,T] (0 / −inf: the mask), capacity float [] (the cap; a huge
 *           value for "off"), gumbel float [L,S,E] (zeros: argmax second expert),
 *           past_key_i / past_value_i [1,KVH,P,Dh] (kvCache), attn_keep float [L,NH,S,T] (dropout: 0 or 1/(1−p))
 *   outputs logits [S,Vo]; per layer router_logits_i [S,E], selected_i int64 [S,2] (e1, e2 before capacity),
 *           mask_i [S,E] (experts that ran), weights_i [S,E] (applied), dropped_i [S,E]; present_key_i/value_i
 */
import { z } from "zod";
import { GraphBuilder } from "../onnx/builder";
import { Ops } from "../onnx/ops";
import { checkedWeight } from "./tts-graph";
import { gqaAttention, halfSplitRope } from "../onnx/attention";
import type { WeightSource } from "../io/weights";

export const SPEECH_MODEL_TYPE = "uni_moe_speech_generator";

/** The released MoE-TTS config: Omni config.json field names (§1.2) plus the hard-coded constants (§1.3) as settings. */
export const zSpeechGenConfig = z.object({
  model_type: z.literal(SPEECH_MODEL_TYPE),
  speech_generator_type: z.string().default("ar_ori_v2_new"),
  /** Where the weights came from: the Omni checkpoint's speech_generator.* or the standalone speech_gen_ep2.bin. */
  source_layout: z.enum(["omni", "standalone"]),
  idim: z.number().int().positive(),
  odim: z.number().int().positive(),
  /** Rows of qwenvl_embed_tokens (the LLM vocabulary the text ids index; 151936 in the release). */
  text_vocab_size: z.number().int().positive(),
  llm_vocab_size: z.number().int().positive().optional(),
  transformer_attention_dim: z.number().int().positive(),
  transformer_linear_units: z.number().int().positive(),
  transformer_num_blocks: z.number().int().positive(),
  transformer_attention_heads: z.number().int().positive(),
  transformer_kv_heads: z.number().int().positive(),
  transformer_dropout_rate: z.number().min(0).max(1).default(0.1),
  encoder_output_dim: z.number().int().positive(),
  speech_start_token_id: z.number().int().nonnegative(),
  speech_end_token_id: z.number().int().nonnegative(),
  speech_prompt_token_id: z.number().int().nonnegative(),
  speech_split_token_id: z.number().int().nonnegative().optional(),
  num_experts: z.number().int().positive().default(4),
  moe_top_k: z.literal(2).default(2),
  capacity_factor: z.number().positive().default(1.5),
  eval_capacity_factor: z.number().positive().default(1.0),
  min_capacity: z.number().int().nonnegative().default(4),
  rms_norm_eps: z.number().positive().default(1e-6),
  rope_theta: z.number().positive().default(10000),
  /** Codes per second of the codec the codes are meant for (WavTokenizer 40/s). */
  codec_rate: z.number().positive().default(40),
  /** Codes are mapped % this before the codec (4096). */
  codebook_size: z.number().int().positive().default(4096),
});
export type SpeechGenConfig = z.infer<typeof zSpeechGenConfig>;

export function speechDims(c: SpeechGenConfig) {
  const d = c.transformer_attention_dim, NH = c.transformer_attention_heads, KVH = c.transformer_kv_heads;
  return { d, NH, KVH, Dh: d / NH, L: c.transformer_num_blocks, I: c.transformer_linear_units, E: c.num_experts, V: c.odim, Vo: c.odim + 9, idim: c.idim, Vt: c.text_vocab_size };
}

export function checkSpeechGenConfig(c: SpeechGenConfig): SpeechGenConfig {
  const bad = (m: string) => new Error(`MoE-TTS config: ${m}`);
  const { d, NH, KVH } = speechDims(c);
  if (d % NH !== 0) throw bad(`transformer_attention_dim ${d} is not a multiple of transformer_attention_heads ${NH}`);
  if (NH % KVH !== 0) throw bad(`transformer_attention_heads ${NH} is not a multiple of transformer_kv_heads ${KVH}`);
  if ((d / NH) % 2 !== 0) throw bad(`head dim ${d / NH} must be even (RoPE)`);
  if (c.encoder_output_dim !== d) throw bad(`encoder_output_dim ${c.encoder_output_dim} must equal transformer_attention_dim ${d} (out_fnn reads the decoder's rows)`);
  if (c.num_experts < 2) throw bad(`num_experts ${c.num_experts}: top-2 gating needs at least 2`);
  return c;
}

/** The special codes (ids into audio_embedding / the output logits, §1.5). */
export function speechCodes(c: SpeechGenConfig) {
  const V = c.odim;
  return { BOS: V, SOS: V + 1, EOS: V + 2, PAD: V + 3, SOPT: V + 4, EOPT: V + 5, SOP: V + 6, EOP: V + 7, EOT: V + 8 };
}

/** Tensor names inside `speech_generator.` (§1.4). */
export const speechParamNames = {
  textEmbed: "qwenvl_embed_tokens.weight",
  inFnn: (k: "weight" | "bias") => `in_fnn.${k}`,
  audioEmbed: "audio_embedding.weight",
  inputNorm: (i: number) => `layers.${i}.input_layernorm.weight`,
  postNorm: (i: number) => `layers.${i}.post_attention_layernorm.weight`,
  attn: (i: number, p: "q" | "k" | "v" | "o", k: "weight" | "bias") => `layers.${i}.self_attn.${p}_proj.${k}`,
  gate: (i: number) => `layers.${i}.mlp.deepspeed_moe.gate.wg.weight`,
  expert: (i: number, e: number, p: "gate" | "up" | "down") => `layers.${i}.mlp.deepspeed_moe.experts.deepspeed_experts.${e}.${p}_proj.weight`,
  norm: "norm.weight",
  outFnn: (k: "weight" | "bias") => `out_fnn.${k}`,
};

export type SpeechParamKind = "embed" | "linear" | "bias" | "norm" | "router";

/** Canonical-name prefix of the speech generator's tensors in an Omni checkpoint map (models/import/checkpoint.ts). */
export const SPEECH_CANONICAL = "speech/";

/** Import rules claiming `speech_generator.*` of an Omni checkpoint (patterns with {i} layer, {e} expert). */
export function speechClaimRules(): { from: string; to: string }[] {
  const n = speechParamNames;
  const names = [
    n.textEmbed, n.inFnn("weight"), n.inFnn("bias"), n.audioEmbed, n.norm, n.outFnn("weight"), n.outFnn("bias"),
    ...[n.inputNorm, n.postNorm, n.gate].map((f) => f(-1)),
    ...(["q", "k", "v"] as const).flatMap((p) => [n.attn(-1, p, "weight"), n.attn(-1, p, "bias")]), n.attn(-1, "o", "weight"),
    ...(["gate", "up", "down"] as const).map((p) => n.expert(-1, -2, p)),
  ].map((x) => x.replace("layers.-1.", "layers.{i}.").replace("experts.-2.", "experts.{e}."));
  return names.map((x) => ({ from: `speech_generator.${x}`, to: `${SPEECH_CANONICAL}${x}` }));
}

/** Every tensor with its PyTorch shape (Linear [out, in]), in file order: 22 per layer + 7. */
export function speechParamTable(c: SpeechGenConfig): { name: string; shape: number[]; kind: SpeechParamKind; layer?: number }[] {
  const { d, NH, KVH, Dh, L, I, E, Vo, idim, Vt } = speechDims(c);
  const n = speechParamNames;
  const t: { name: string; shape: number[]; kind: SpeechParamKind; layer?: number }[] = [
    { name: n.textEmbed, shape: [Vt, idim], kind: "embed" },
    { name: n.inFnn("weight"), shape: [d, idim], kind: "linear" },
    { name: n.inFnn("bias"), shape: [d], kind: "bias" },
    { name: n.audioEmbed, shape: [Vo, d], kind: "embed" },
  ];
  for (let i = 0; i < L; i++) {
    const p = (name: string, shape: number[], kind: SpeechParamKind) => t.push({ name, shape, kind, layer: i });
    p(n.inputNorm(i), [d], "norm");
    p(n.attn(i, "q", "weight"), [NH * Dh, d], "linear");
    p(n.attn(i, "q", "bias"), [NH * Dh], "bias");
    p(n.attn(i, "k", "weight"), [KVH * Dh, d], "linear");
    p(n.attn(i, "k", "bias"), [KVH * Dh], "bias");
    p(n.attn(i, "v", "weight"), [KVH * Dh, d], "linear");
    p(n.attn(i, "v", "bias"), [KVH * Dh], "bias");
    p(n.attn(i, "o", "weight"), [d, NH * Dh], "linear");
    p(n.postNorm(i), [d], "norm");
    p(n.gate(i), [E, d], "router");
    for (let e = 0; e < E; e++) {
      p(n.expert(i, e, "gate"), [I, d], "linear");
      p(n.expert(i, e, "up"), [I, d], "linear");
      p(n.expert(i, e, "down"), [d, I], "linear");
    }
  }
  t.push({ name: n.norm, shape: [d], kind: "norm" });
  t.push({ name: n.outFnn("weight"), shape: [Vo, d], kind: "linear" });
  t.push({ name: n.outFnn("bias"), shape: [Vo], kind: "bias" });
  return t;
}

export function speechParameters(c: SpeechGenConfig): { total: number; activePerToken: number } {
  const { d, I, E, L } = speechDims(c);
  const total = speechParamTable(c).reduce((a, p) => a + p.shape.reduce((x, y) => x * y, 1), 0);
  // per token: one text-table row at most (not the table), every dense weight, 2 of the E experts
  const { Vt, idim } = speechDims(c);
  return { total, activePerToken: total - Vt * idim + idim - L * (E - 2) * 3 * d * I };
}

/**
 * The speech generator's config from an Omni config.json (§1.2) and the text table's shape (the Omni code hard-codes
 * 151936 × 2048; generated checkpoints use their own). Throws naming the missing field.
 */
export function speechConfigFromOmni(raw: Record<string, unknown>, textTableShape: number[], layout: SpeechGenConfig["source_layout"] = "omni"): SpeechGenConfig {
  const type = raw.speech_generator_type;
  if (type !== undefined && type !== "ar_ori_v2_new") throw new Error(`speech_generator_type ${JSON.stringify(type)} is not supported (only "ar_ori_v2_new", RELEASED.md §1)`);
  const need = ["idim", "odim", "transformer_attention_dim", "transformer_linear_units", "transformer_num_blocks", "transformer_attention_heads", "transformer_kv_heads", "encoder_output_dim", "speech_start_token_id", "speech_end_token_id", "speech_prompt_token_id"];
  const missing = need.filter((k) => typeof raw[k] !== "number");
  if (missing.length) throw new Error(`config.json has speech_generator.* tensors but lacks the speech generator's field(s) ${missing.join(", ")} (RELEASED.md §1.2)`);
  const pick = Object.fromEntries([...need, "llm_vocab_size", "transformer_dropout_rate", "speech_split_token_id"].filter((k) => raw[k] !== undefined && raw[k] !== null).map((k) => [k, raw[k]]));
  return checkSpeechGenConfig(zSpeechGenConfig.parse({ ...pick, model_type: SPEECH_MODEL_TYPE, speech_generator_type: "ar_ori_v2_new", source_layout: layout, text_vocab_size: textTableShape[0] }));
}

/** The standalone Uni-MoE-TTS's hard-coded config (TTS/…/ar_decoder.py load_moetts), sizes read from the tensors. */
export function speechConfigFromShapes(shapeOf: (name: string) => number[] | undefined, layerCount: number): SpeechGenConfig {
  const n = speechParamNames;
  const need = (name: string) => {
    const s = shapeOf(name);
    if (!s) throw new Error(`the speech generator checkpoint lacks speech_generator.${name}`);
    return s;
  };
  const [d, idim] = need(n.inFnn("weight")) as [number, number];
  const q = need(n.attn(0, "q", "weight"))[0]!, k = need(n.attn(0, "k", "weight"))[0]!;
  // head_dim is not in the tensors: the release's 896 / 14 = 64
  const Dh = 64;
  if (q % Dh !== 0 || k % Dh !== 0) throw new Error(`q/k projections of ${q}/${k} rows are not whole heads of 64 (the standalone Uni-MoE-TTS head size)`);
  return checkSpeechGenConfig(
    zSpeechGenConfig.parse({
      model_type: SPEECH_MODEL_TYPE,
      source_layout: "standalone",
      idim,
      odim: need(n.audioEmbed)[0]! - 9,
      text_vocab_size: need(n.textEmbed)[0],
      llm_vocab_size: 151936,
      transformer_attention_dim: d,
      transformer_linear_units: need(n.expert(0, 0, "gate"))[0],
      transformer_num_blocks: layerCount,
      transformer_attention_heads: q / Dh,
      transformer_kv_heads: k / Dh,
      encoder_output_dim: need(n.outFnn("weight"))[1],
      speech_start_token_id: 151668,
      speech_end_token_id: 151669,
      speech_prompt_token_id: 151670,
      speech_split_token_id: 151671,
    }),
  );
}

export interface SpeechGraphOptions {
  /** past_key/value inputs and present outputs (the cached mode). */
  kvCache: boolean;
  /** attn_keep input (attention dropout, opt-in noise). */
  dropout: boolean;
}

export const speechIo = {
  textIds: "text_ids",
  audioIds: "audio_ids",
  isText: "is_text",
  positions: "position_ids",
  bias: "attn_bias",
  capacity: "capacity",
  gumbel: "gumbel",
  keep: "attn_keep",
  pastKey: (i: number) => `past_key_${i}`,
  pastValue: (i: number) => `past_value_${i}`,
  presentKey: (i: number) => `present_key_${i}`,
  presentValue: (i: number) => `present_value_${i}`,
  logits: "logits",
  routerLogits: (i: number) => `router_logits_${i}`,
  selected: (i: number) => `selected_${i}`,
  mask: (i: number) => `mask_${i}`,
  weights: (i: number) => `weights_${i}`,
  dropped: (i: number) => `dropped_${i}`,
};

/** The DeepSpeed top-2 MoE of layer i (file comment): h [S,d] → y [S,d] and the routing tensors. */
function deepspeedTop2(o: Ops, c: SpeechGenConfig, ws: WeightSource, i: number, h: string, capacity: string, gumbel: string) {
  const g = o.g;
  const { d, I, E } = speechDims(c);
  const n = speechParamNames;
  const z = o.linear(h, g.initializer(n.gate(i), checkedWeight(ws, n.gate(i), [E, d]).data, [E, d])); // [S,E]
  const gates = o.softmax(z, 1);
  const cols = g.const(Array.from({ length: E }, (_, e) => e), [1, E], "int64");
  const e1 = o.argmax(gates, 1); // [S,1]
  const mask1 = o.equal(e1, cols); // [S,E] bool
  const e2 = o.argmax(o.where(mask1, g.scalar(-Infinity), o.add(z, gumbel)), 1);
  const mask2 = o.equal(e2, cols);
  const f1 = o.cast(mask1, "float"), f2 = o.cast(mask2, "float");
  const one = g.scalar(1);
  const loc1 = o.sub(o.cumsum(f1, 0), one);
  const loc2 = o.add(o.sub(o.cumsum(f2, 0), one), o.reduceSum(f1, [0])); // first choices queue before second ones
  const keep1 = o.mul(f1, o.cast(o.less(loc1, capacity), "float"));
  const keep2 = o.mul(f2, o.cast(o.less(loc2, capacity), "float"));
  const g1 = o.reduceSum(o.mul(gates, keep1), [1]), g2 = o.reduceSum(o.mul(gates, keep2), [1]); // [S,1]
  const denom = o.max(o.add(g1, g2), g.scalar(1.1920928955078125e-7));
  const weights = o.add(o.mul(o.div(g1, denom), keep1), o.mul(o.div(g2, denom), keep2)); // [S,E]
  const mask = o.add(keep1, keep2);
  const dropped = o.sub(o.add(f1, f2), mask);
  const selected = o.concat([e1, e2], 1); // [S,2]

  let y = o.expand(g.scalar(0), o.shape(h)); // [S,d]
  const runs = o.transpose(o.greater(mask, g.scalar(0.5)), [1, 0]); // [E,S]
  const wT = o.transpose(weights, [1, 0]); // [E,S]
  for (let e = 0; e < E; e++) {
    const w = (p: "gate" | "up" | "down", shape: number[]) => g.initializer(n.expert(i, e, p), checkedWeight(ws, n.expert(i, e, p), shape).data, shape);
    const row = g.const([e], [], "int64");
    const idx = o.transpose(o.nonzero(o.gather(runs, row)), [1, 0]); // [n_e,1]
    const flat = o.reshape(idx, g.ints([-1]));
    const he = o.swiglu(o.gather(h, flat), w("gate", [I, d]), w("up", [I, d]), w("down", [d, I])); // [n_e,d]
    y = o.scatterAddRows(y, idx, o.mul(he, o.unsqueeze(o.gather(o.gather(wT, row), flat), [1])));
  }
  return { y, z, selected, mask, weights, dropped };
}

/** Builds the released MoE-TTS graph (file comment); returns a serialized ONNX ModelProto. */
export function buildSpeechGraph(config: SpeechGenConfig, weights: WeightSource, options: SpeechGraphOptions, builder?: GraphBuilder): Uint8Array {
  const c = checkSpeechGenConfig(config);
  const { d, NH, KVH, Dh, L, E, Vo, idim, Vt } = speechDims(c);
  const n = speechParamNames;
  const g = builder ?? new GraphBuilder("uni_moe_tts_released");
  const o = new Ops(g);
  const w = (name: string, shape: number[]) => g.initializer(name, checkedWeight(weights, name, shape).data, shape);

  const textIds = g.input(speechIo.textIds, "int64", ["seq"]);
  const audioIds = g.input(speechIo.audioIds, "int64", ["seq"]);
  const isText = o.unsqueeze(g.input(speechIo.isText, "float", ["seq"]), [1]); // [S,1]
  const pos = o.unsqueeze(g.input(speechIo.positions, "int64", ["seq"]), [0]); // [1,S]
  const bias = g.input(speechIo.bias, "float", ["seq", "total"]);
  const capacity = g.input(speechIo.capacity, "float", []);
  const gumbel = g.input(speechIo.gumbel, "float", [L, "seq", E]);
  const keep = options.dropout ? g.input(speechIo.keep, "float", [L, NH, "seq", "total"]) : undefined;
  const bsShape = o.shape(pos); // [1,S]

  // rows: in_fnn(E[text]) or A[audio] (the other term is finite, times 0)
  const textRows = o.linear(o.gather(w(n.textEmbed, [Vt, idim]), textIds), w(n.inFnn("weight"), [d, idim]), w(n.inFnn("bias"), [d]));
  const audioRows = o.gather(w(n.audioEmbed, [Vo, d]), audioIds);
  let x = o.add(o.mul(textRows, isText), o.mul(audioRows, o.sub(g.scalar(1), isText))); // [S,d]
  const rope = halfSplitRope(o, pos, Dh, c.rope_theta);
  const pack = (i: number, k: "weight" | "bias") => {
    const parts = (["q", "k", "v"] as const).map((p) => checkedWeight(weights, n.attn(i, p, k), k === "weight" ? [(p === "q" ? NH : KVH) * Dh, d] : [(p === "q" ? NH : KVH) * Dh]).data);
    const rows = (NH + 2 * KVH) * Dh;
    const data = new Float32Array(parts.reduce((a, p) => a + p.length, 0));
    let off = 0;
    for (const p of parts) {
      data.set(p, off);
      off += p.length;
    }
    return g.initializer(`layers.${i}.self_attn.qkv.${k}`, data, k === "weight" ? [rows, d] : [rows]);
  };

  for (let i = 0; i < L; i++) {
    g.scope = `l${i}/`;
    const past = options.kvCache ? { key: g.input(speechIo.pastKey(i), "float", [1, KVH, "past", Dh]), value: g.input(speechIo.pastValue(i), "float", [1, KVH, "past", Dh]) } : undefined;
    const layerKeep = keep ? o.unsqueeze(o.gather(keep, g.const([i], [], "int64")), [0]) : undefined; // [1,NH,S,T]
    const att = gqaAttention(o, { h: o.rmsNorm(x, w(n.inputNorm(i), [d]), c.rms_norm_eps), bsShape, qkvW: pack(i, "weight"), qkvB: pack(i, "bias"), oW: w(n.attn(i, "o", "weight"), [d, NH * Dh]), NH, KVH, Dh, rope, bias, past, keep: layerKeep });
    if (options.kvCache) {
      g.output(att.key, speechIo.presentKey(i), "float", [1, KVH, "total", Dh]);
      g.output(att.value, speechIo.presentValue(i), "float", [1, KVH, "total", Dh]);
    }
    x = o.add(x, att.out);
    const moe = deepspeedTop2(o, c, weights, i, o.rmsNorm(x, w(n.postNorm(i), [d]), c.rms_norm_eps), capacity, o.gather(gumbel, g.const([i], [], "int64")));
    x = o.add(x, moe.y);
    g.output(moe.z, speechIo.routerLogits(i), "float", ["seq", E]);
    g.output(moe.selected, speechIo.selected(i), "int64", ["seq", 2]);
    g.output(moe.mask, speechIo.mask(i), "float", ["seq", E]);
    g.output(moe.weights, speechIo.weights(i), "float", ["seq", E]);
    g.output(moe.dropped, speechIo.dropped(i), "float", ["seq", E]);
  }
  g.scope = "";
  const hn = o.rmsNorm(x, w(n.norm, [d]), c.rms_norm_eps);
  g.output(o.linear(hn, w(n.outFnn("weight"), [Vo, d]), w(n.outFnn("bias"), [Vo])), speechIo.logits, "float", ["seq", Vo]);
  return g.toBytes();
}
