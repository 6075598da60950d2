import { z } from "zod";
import { GraphBuilder } from "../onnx/builder";
import { Ops } from "../onnx/ops";
import { gqaAttention, halfSplitRope } from "../onnx/attention";
import type { Tensor32, WeightSource } from "../io/weights";

/**
 * MoE-TTS decoder (PAPER.md §5): a decoder-only transformer (Qwen2-style attention with QKV bias, GQA,
 * 1D RoPE, RMSNorm) whose feed-forward is a Mixture of Experts: X routed SwiGLU experts, top-K.
 *
 * Routing convention (one token, router logits z over X experts, no bias):
 *   p = softmax(z); the K largest p (ties: lower expert index first, as ONNX TopK) are chosen;
 *   weight_e = p_e / Σ_{chosen} p  (the chosen probabilities renormalised to sum to 1; 0 elsewhere);
 *   y = Σ_{chosen} weight_e · Expert_e(x). No null or shared experts, no capacity, no jitter.
 *
 * Token id layout (one vocabulary, `ttsIds`):
 *   [0, textVocab)                         the LLM tokenizer's ids (byteTokenizer: bytes, then its specials)
 *   [textVocab, textVocab + 6)             TTS control tokens [SOPT] [EOPT] [BOS] [EOT] [SOS] [EOS]
 *   [codecOffset, codecOffset + 4096)      codec codes 0..4095 (codecOffset = textVocab + 6)
 * Conditioning: [SOPT] style prompt [EOPT] [BOS] text [EOT] [SOS], then codec codes until [EOS].
 *
 * Dimension letters: B batch, S new tokens, P past tokens, T = P + S, N = B*S, H hidden, NH query heads,
 * KVH key/value heads, G = NH/KVH, Dh head dim, I expert intermediate, X experts, K experts per token, V vocab.
 *
 * Inputs : input_ids int64 [B,S]; position_ids int64 [B,S] (1D RoPE positions);
 *          past_key_{i}, past_value_{i} float [B,KVH,P,Dh]                          (kvCache)
 * Outputs: logits [B,S,V]; present_key_{i}, present_value_{i} [B,KVH,T,Dh]          (kvCache)
 *          router_logits_{i} [N,X], mask_{i} [N,X] (0/1), weights_{i} [N,X], k_{i} int64 [N]  (trace)
 *
 * Parameter names follow the Qwen2-MoE layout (`model.layers.{i}.mlp.gate.weight`,
 * `model.layers.{i}.mlp.experts.{e}.{gate,up,down}_proj.weight`); the released Uni-MoE-TTS checkpoint's
 * names are not confirmed here, so an importer may need a rename table.
 */

/** The TTS control tokens, in id order after the text vocabulary. */
export const TTS_CONTROL_TOKENS = ["[SOPT]", "[EOPT]", "[BOS]", "[EOT]", "[SOS]", "[EOS]"] as const;
export type TtsControlToken = (typeof TTS_CONTROL_TOKENS)[number];

export const zCodecConfig = z.object({
  /** Codes in the single codebook. */
  codebook_size: z.number().int().positive(),
  codebook_dim: z.number().int().positive(),
  sample_rate: z.number().int().positive(),
  /** Waveform samples per code (= sample_rate / codes per second = product of strides). */
  samples_per_code: z.number().int().positive(),
  /** Channels after conv_in, then after each upsampling stage (strides.length + 1 entries). */
  channels: z.array(z.number().int().positive()).min(2),
  /** ConvTranspose1d strides of the upsampling stages. */
  strides: z.array(z.number().int().positive()).min(1),
  /** LeakyReLU slope between convolutions. */
  leaky_slope: z.number().min(0).max(1),
});
export type CodecConfig = z.infer<typeof zCodecConfig>;

export const zTtsConfig = z.object({
  model_type: z.literal("uni_moe_tts"),
  hidden_size: z.number().int().positive(),
  num_hidden_layers: z.number().int().positive(),
  num_attention_heads: z.number().int().positive(),
  num_key_value_heads: z.number().int().positive(),
  head_dim: z.number().int().positive(),
  /** Intermediate size of each expert (SwiGLU). */
  intermediate_size: z.number().int().positive(),
  num_experts: z.number().int().positive(),
  num_experts_per_tok: z.number().int().positive(),
  rms_norm_eps: z.number().positive(),
  rope_theta: z.number().positive(),
  vocab_size: z.number().int().positive(),
  /** Ids the LLM tokenizer defines (text ids come first, unchanged). */
  text_vocab_size: z.number().int().positive(),
  control_tokens: z.array(z.string()).length(TTS_CONTROL_TOKENS.length),
  /** Id of codec code 0. */
  codec_offset: z.number().int().positive(),
  /** Codec tokens per second of audio. */
  codec_rate: z.number().positive(),
  codec: zCodecConfig,
  initializer_range: z.number().positive().optional(),
  seeded_untrained: z.boolean().optional(),
});
export type TtsConfig = z.infer<typeof zTtsConfig>;

/** Checks the id layout and shapes; throws a clear error on the first inconsistency. */
export function checkTtsConfig(c: TtsConfig): void {
  const bad = (m: string) => {
    throw new Error(`TTS config: ${m}`);
  };
  if (c.num_attention_heads % c.num_key_value_heads !== 0) bad(`num_attention_heads ${c.num_attention_heads} is not a multiple of num_key_value_heads ${c.num_key_value_heads}`);
  if (c.head_dim % 2 !== 0) bad(`head_dim ${c.head_dim} must be even`);
  if (c.num_experts_per_tok > c.num_experts) bad(`num_experts_per_tok ${c.num_experts_per_tok} exceeds num_experts ${c.num_experts}`);
  if (c.control_tokens.some((t, i) => t !== TTS_CONTROL_TOKENS[i])) bad(`control_tokens must be ${TTS_CONTROL_TOKENS.join(" ")}`);
  if (c.codec_offset !== c.text_vocab_size + TTS_CONTROL_TOKENS.length) bad(`codec_offset ${c.codec_offset} must be text_vocab_size + ${TTS_CONTROL_TOKENS.length}`);
  if (c.vocab_size !== c.codec_offset + c.codec.codebook_size) bad(`vocab_size ${c.vocab_size} must be codec_offset + codebook_size = ${c.codec_offset + c.codec.codebook_size}`);
  const k = c.codec;
  if (k.channels.length !== k.strides.length + 1) bad(`codec.channels needs strides.length + 1 = ${k.strides.length + 1} entries`);
  if (k.strides.reduce((a, b) => a * b, 1) !== k.samples_per_code) bad(`codec strides [${k.strides}] must multiply to samples_per_code ${k.samples_per_code}`);
  if (Math.abs(k.sample_rate / c.codec_rate - k.samples_per_code) > 1e-9) bad(`sample_rate / codec_rate must equal samples_per_code ${k.samples_per_code}`);
}

/** The id layout of a config. */
export function ttsIds(c: TtsConfig) {
  const control = (t: TtsControlToken) => c.text_vocab_size + TTS_CONTROL_TOKENS.indexOf(t);
  return {
    textVocab: c.text_vocab_size,
    SOPT: control("[SOPT]"),
    EOPT: control("[EOPT]"),
    BOS: control("[BOS]"),
    EOT: control("[EOT]"),
    SOS: control("[SOS]"),
    EOS: control("[EOS]"),
    codecOffset: c.codec_offset,
    codecSize: c.codec.codebook_size,
    /** vocab id of codec code `code` */
    code: (code: number) => c.codec_offset + code,
    isCode: (id: number) => id >= c.codec_offset && id < c.codec_offset + c.codec.codebook_size,
  };
}

/** Parameter names. */
export const ttsParamNames = {
  embed: "model.embed_tokens.weight",
  finalNorm: "model.norm.weight",
  lmHead: "lm_head.weight",
  inputNorm: (i: number) => `model.layers.${i}.input_layernorm.weight`,
  postNorm: (i: number) => `model.layers.${i}.post_attention_layernorm.weight`,
  attn: (i: number, p: "q" | "k" | "v" | "o", kind: "weight" | "bias") => `model.layers.${i}.self_attn.${p}_proj.${kind}`,
  router: (i: number) => `model.layers.${i}.mlp.gate.weight`,
  expert: (i: number, e: number, p: "gate" | "up" | "down") => `model.layers.${i}.mlp.experts.${e}.${p}_proj.weight`,
};

export type TtsParamKind = "embed" | "norm" | "linear" | "bias" | "router" | "lm_head";

/** Every decoder parameter with its PyTorch shape (Linear weights [out, in]), in file order. */
export function ttsParamTable(c: TtsConfig): { name: string; shape: number[]; kind: TtsParamKind; layer?: number }[] {
  const H = c.hidden_size, Dh = c.head_dim, q = c.num_attention_heads * Dh, kv = c.num_key_value_heads * Dh, I = c.intermediate_size;
  const n = ttsParamNames;
  const t: { name: string; shape: number[]; kind: TtsParamKind; layer?: number }[] = [{ name: n.embed, shape: [c.vocab_size, H], kind: "embed" }];
  for (let i = 0; i < c.num_hidden_layers; i++) {
    const L = (name: string, shape: number[], kind: TtsParamKind) => t.push({ name, shape, kind, layer: i });
    L(n.inputNorm(i), [H], "norm");
    L(n.attn(i, "q", "weight"), [q, H], "linear");
    L(n.attn(i, "q", "bias"), [q], "bias");
    L(n.attn(i, "k", "weight"), [kv, H], "linear");
    L(n.attn(i, "k", "bias"), [kv], "bias");
    L(n.attn(i, "v", "weight"), [kv, H], "linear");
    L(n.attn(i, "v", "bias"), [kv], "bias");
    L(n.attn(i, "o", "weight"), [H, q], "linear");
    L(n.postNorm(i), [H], "norm");
    L(n.router(i), [c.num_experts, H], "router");
    for (let e = 0; e < c.num_experts; e++) {
      L(n.expert(i, e, "gate"), [I, H], "linear");
      L(n.expert(i, e, "up"), [I, H], "linear");
      L(n.expert(i, e, "down"), [H, I], "linear");
    }
  }
  t.push({ name: n.finalNorm, shape: [H], kind: "norm" });
  t.push({ name: n.lmHead, shape: [c.vocab_size, H], kind: "lm_head" });
  return t;
}

export interface TtsGraphOptions {
  /** Adds past_key/value inputs and present_key/value outputs. */
  kvCache: boolean;
  /** Adds the per-layer routing outputs. */
  trace: boolean;
}

/** Graph input/output names. */
export const ttsIo = {
  ids: "input_ids",
  positions: "position_ids",
  pastKey: (i: number) => `past_key_${i}`,
  pastValue: (i: number) => `past_value_${i}`,
  presentKey: (i: number) => `present_key_${i}`,
  presentValue: (i: number) => `present_value_${i}`,
  logits: "logits",
  routerLogits: (i: number) => `router_logits_${i}`,
  mask: (i: number) => `mask_${i}`,
  weights: (i: number) => `weights_${i}`,
  k: (i: number) => `k_${i}`,
};

/** Reads a weight and checks its shape. */
export function checkedWeight(ws: WeightSource, name: string, shape: number[]): Tensor32 {
  const t = ws.get(name);
  if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) throw new Error(`weight "${name}" has shape [${t.shape}], expected [${shape}]`);
  return t;
}

function catRows(ts: Float32Array[]): Float32Array {
  const out = new Float32Array(ts.reduce((a, t) => a + t.length, 0));
  let o = 0;
  for (const t of ts) {
    out.set(t, o);
    o += t.length;
  }
  return out;
}

/**
 * Top-K MoE of one layer: h [N,H] → y [N,H], plus the routing tensors. Each expert runs only on the
 * tokens that chose it (NonZero → Gather → SwiGLU → ScatterND add), in expert order.
 */
function moeTopK(o: Ops, c: TtsConfig, ws: WeightSource, i: number, h: string) {
  const g = o.g;
  const H = c.hidden_size, I = c.intermediate_size, X = c.num_experts, K = c.num_experts_per_tok;
  const n = ttsParamNames;
  const router = g.initializer(n.router(i), checkedWeight(ws, n.router(i), [X, H]).data, [X, H]);
  const z = o.linear(h, router); // [N,X]
  const p = o.softmax(z, 1); // [N,X]
  const [topP, topIdx] = o.topk(p, g.ints([K]), 1); // [N,K] (ties: lower index first)
  const rw = o.div(topP, o.reduceSum(topP, [1])); // [N,K] renormalised
  const zeros = o.expand(g.scalar(0), o.shape(z)); // [N,X]
  const weights = o.scatterElements(zeros, topIdx, rw, 1); // [N,X]
  const mask = o.scatterElements(zeros, topIdx, o.expand(g.scalar(1), o.shape(topIdx)), 1); // [N,X]
  const k = o.expand(g.const([K], [1], "int64"), o.shape(z, 0, 1)); // [N]

  let y = o.expand(g.scalar(0), o.shape(h)); // [N,H]
  const maskT = o.transpose(o.greater(mask, g.scalar(0.5)), [1, 0]); // [X,N] bool
  const wT = o.transpose(weights, [1, 0]); // [X,N]
  for (let e = 0; e < X; e++) {
    const w = (p2: "gate" | "up" | "down", shape: number[]) => checkedWeight(ws, n.expert(i, e, p2), shape).data;
    const gateUp = g.initializer(`l${i}.expert${e}.gate_up`, catRows([w("gate", [I, H]), w("up", [I, H])]), [2 * I, H]);
    const down = g.initializer(n.expert(i, e, "down"), w("down", [H, I]), [H, I]);
    const row = g.const([e], [], "int64");
    const idx = o.transpose(o.nonzero(o.gather(maskT, row)), [1, 0]); // [n_e,1]
    const flat = o.reshape(idx, g.ints([-1])); // [n_e]
    const [gate, up] = o.split(o.linear(o.gather(h, flat), gateUp), [I, I], 1) as [string, string]; // [n_e,I] each
    const he = o.linear(o.mul(o.silu(gate), up), down); // [n_e,H]
    const we = o.unsqueeze(o.gather(o.gather(wT, row), flat), [1]); // [n_e,1]
    y = o.scatterAddRows(y, idx, o.mul(he, we));
  }
  return { y, z, mask, weights, k };
}

/** Builds the TTS decoder graph; returns a serialized ONNX ModelProto. */
export function buildTtsGraph(config: TtsConfig, weights: WeightSource, options: TtsGraphOptions): Uint8Array {
  checkTtsConfig(config);
  const c = config;
  const H = c.hidden_size, L = c.num_hidden_layers, V = c.vocab_size, NH = c.num_attention_heads, KVH = c.num_key_value_heads, Dh = c.head_dim, X = c.num_experts;
  const n = ttsParamNames;
  const shapes = new Map(ttsParamTable(c).map((p) => [p.name, p.shape]));
  const g = new GraphBuilder("uni_moe_tts_decoder");
  const o = new Ops(g);
  const w = (name: string) => g.initializer(name, checkedWeight(weights, name, shapes.get(name)!).data, shapes.get(name)!);

  // ---- inputs: x [N,H] ----
  const ids = g.input(ttsIo.ids, "int64", ["batch", "seq"]);
  const bsShape = o.shape(ids); // [B,S]
  let x = o.gather(w(n.embed), o.reshape(ids, g.ints([-1])));
  const pos = g.input(ttsIo.positions, "int64", ["batch", "seq"]);

  const rope = halfSplitRope(o, pos, Dh, c.rope_theta);

  // ---- causal bias [S,T]: key j visible to query i iff j <= P + i ----
  const sLen = o.slice(bsShape, [1], [2], [0]);
  const pLen = options.kvCache ? o.shape(g.input(ttsIo.pastKey(0), "float", ["batch", KVH, "past", Dh]), 2, 3) : g.ints([0]);
  const sc = (t: string) => o.squeeze(t, [0]);
  const one = g.const([1], [], "int64");
  const qPos = o.range(sc(pLen), sc(o.add(pLen, sLen)), one); // [S]
  const kPos = o.range(g.const([0], [], "int64"), sc(o.add(pLen, sLen)), one); // [T]
  const causal = o.where(o.greater(o.unsqueeze(kPos, [0]), o.unsqueeze(qPos, [1])), g.scalar(-Infinity), g.scalar(0)); // [S,T]
  const qkv = (i: number, kind: "weight" | "bias") => {
    const parts = (["q", "k", "v"] as const).map((p) => checkedWeight(weights, n.attn(i, p, kind), shapes.get(n.attn(i, p, kind))!));
    const rows = parts.reduce((a, t) => a + t.shape[0]!, 0);
    return g.initializer(`l${i}.qkv_proj.${kind}`, catRows(parts.map((t) => t.data)), kind === "weight" ? [rows, H] : [rows]);
  };

  for (let i = 0; i < L; i++) {
    g.scope = `l${i}/`;
    // attention: x [N,H] → [N,H]
    const past = options.kvCache
      ? { key: i === 0 ? ttsIo.pastKey(0) : g.input(ttsIo.pastKey(i), "float", ["batch", KVH, "past", Dh]), value: g.input(ttsIo.pastValue(i), "float", ["batch", KVH, "past", Dh]) }
      : undefined;
    const att = gqaAttention(o, { h: o.rmsNorm(x, w(n.inputNorm(i)), c.rms_norm_eps), bsShape, qkvW: qkv(i, "weight"), qkvB: qkv(i, "bias"), oW: w(n.attn(i, "o", "weight")), NH, KVH, Dh, rope, bias: causal, past });
    if (options.kvCache) {
      g.output(att.key, ttsIo.presentKey(i), "float", ["batch", KVH, "total", Dh]);
      g.output(att.value, ttsIo.presentValue(i), "float", ["batch", KVH, "total", Dh]);
    }
    x = o.add(x, att.out);

    // MoE: x [N,H] → [N,H]
    const moe = moeTopK(o, c, weights, i, o.rmsNorm(x, w(n.postNorm(i)), c.rms_norm_eps));
    x = o.add(x, moe.y);
    if (options.trace) {
      g.output(moe.z, ttsIo.routerLogits(i), "float", ["tokens", X]);
      g.output(moe.mask, ttsIo.mask(i), "float", ["tokens", X]);
      g.output(moe.weights, ttsIo.weights(i), "float", ["tokens", X]);
      g.output(moe.k, ttsIo.k(i), "int64", ["tokens"]);
    }
  }
  g.scope = "";

  // ---- head: logits [B,S,V] ----
  const hn = o.rmsNorm(x, w(n.finalNorm), c.rms_norm_eps);
  g.output(o.reshape(o.linear(hn, w(n.lmHead)), o.concat([bsShape, g.ints([V])], 0)), ttsIo.logits, "float", ["batch", "seq", V]);
  return g.toBytes();
}
