import { type MoeLlmConfig, headDim, paramNames } from "./config";
import { architectureOf } from "../families/conventions";
import { checkRoutingPrecision, dropPolicy, grinRouterLogits, grinRouting } from "./grin-routing";
import { bf16Values, roundBf16, type RoutingPrecision } from "../onnx/bf16";
import { GraphBuilder, type Dim } from "../onnx/builder";
import { Ops } from "../onnx/ops";
import type { WeightSource } from "../io/weights";
import { attentionParamShapes, declarePastKey0, kvCacheDims, gqaAttention, mlaAttention, PAD_BIAS, ropeTables, type AttentionInputs } from "./decoder/attention";
import { denseMlp, expertsOutput, ffnParamShapes } from "./decoder/ffn";
import { io, type MoeGraphOptions } from "./decoder/io";
import { familyRouting, type Routing, type RouterInputs } from "./decoder/routers";
import { norm, weight, type DecoderContext } from "./decoder/tensors";
import { compactGrinFits, compactGrinRouting, compactGrinRows, type CompactGrinNames, type CompactGrinRows } from "./decoder/grin-compact";
import { decodeStepAttention, decodeStepAttentionFits, fusedAttentionFits, fusedExperts, fusedGqaAttention, fusedNorm, fusedRopeTables, fusedSkipNorm, nullSinkInput, type FusedAttentionInputs } from "./decoder/fused";

/**
 * The MoE-LLM decoder as an ONNX graph: Uni-MoE-2.0 (Qwen2 attention with M-RoPE + dynamic-capacity MoE, PAPER.md
 * §2-3) and the imported families (families/table.ts), whose variants are self-contained functions in decoder/:
 * attention.ts (GQA with biases, q/k norm, sliding windows, sinks; DeepSeek's MLA; RoPE with YaRN/LongRoPE
 * frequencies), routers.ts (softmax top-k, DeepSeek's softmax and grouped sigmoid routers, sparsemixer) and ffn.ts
 * (SwiGLU / clamped-SwiGLU experts, shared experts, the dense MLP of router-less layers).
 *
 * Dimension letters: B batch, S new tokens, P past tokens, T = P + S, N = B*S tokens, H hidden,
 * NH query heads, KVH key/value heads, G = NH/KVH, Dh head dim, V vocab, L layers,
 * R routed experts, Z null experts, SH shared experts, D = R + Z dynamic columns, E = D + SH router columns.
 *
 * Inputs : input_ids int64 [B,S]  (or inputs_embeds float [B,S,H] with `embeds: true`)
 *          position_ids int64 [3,B,S] (t, h, w)
 *          past_key_{i}, past_value_{i} float [B,KVH,P,Dh]    (kvCache; MLA: [B,1,P,kv_lora_rank] and [B,1,P,rope dims],
 *                                                                 see attention.ts kvCacheDims)
 *          router_bias float [L,E], ban_mask float [L,E], force_mask float [L,E], top_p float [1],
 *          top_k float [1] (fixed-k routers only: the k in force, exactly — resolveTopK)
 *            — required inputs (onnxruntime-node ignores feeds for overridable initializers); the neutral
 *            values are zeros for the masks and bias, the config's P and k for top_p and top_k (resolveTopP,
 *            resolveTopK); MoeLlmRunner feeds them when omitted.
 *            Rows of dense (router-less) layers are ignored.
 * Outputs: logits [B,S,V], last_hidden [B,S,H] (after the final norm),
 *          present_key_{i}, present_value_{i} [B,KVH,T,Dh]                  (kvCache)
 *          per MoE layer i (decoder index; dense layers have none)                                 (trace):
 *          router_logits_{i} [N,E], mask_{i} [N,E] (0/1), weights_{i} [N,E], k_{i} int64 [N],
 *          scores_{i} [N,R] (deepseek_sigmoid: the selection scores)
 *          dropped_{i} [N,E] (0/1: selected, then dropped over capacity; Uni-MoE with config.token_drop)
 *          hidden_{i} [B,S,H] residual stream after layer i (every decoder layer), before the final norm   (lens)
 *
 * Interventions (neutral value = no change; `router_logits_{i}` reports the logits after the bias):
 * - router_bias is added to the router logits before anything else (Top-P, GRIN, g all see it). DeepSeek-V3 is the
 *   exception: its bias joins e_score_correction_bias on the selection scores (router_logits stay raw).
 * - The fixed-k routers (decoder/routers.ts) apply ban, force and the top_k override in one rule shared by all kinds.
 * - ban_mask > 0.5 bans a column. A banned dynamic column is an -inf logit for the whole dynamic routing:
 *   it leaves the Top-P softmax (p is renormalised over the allowed columns), is never chosen, and k is
 *   capped at the number of allowed dynamic columns (all of them banned → k = 0, shared experts only).
 *   A banned shared column gets mask 0 (it leaves g and contributes nothing).
 * - force_mask > 0.5 on an allowed dynamic column: the chosen set is the union of the model's own choice
 *   and the forced columns, so k = k_model + (forced columns the model did not choose). The GRIN steps take
 *   the forced columns first (by logit), then continue by logit; a step's m is the chosen column's logit.
 *   Ban wins over force. Force on a shared column changes nothing (shared columns are always on).
 * - top_p is the P in force, exactly (MoeLlmRunner feeds resolveTopP: the override, else the config's P); P = 0 means
 *   the fixed mlp_dynamic_top_k. P >= 1 in fp32 routing selects all allowed dynamic columns (no rounding cut-off);
 *   bf16 routing (the release's emulation) keeps the released cut-off for P = 1.0 too (grin-routing.ts).
 *   Graphs of GRAPH_BUILDER_VERSION < TOP_P_EXACT_SINCE read top_p <= 0 as "the config's P" (imports written then:
 *   MoeLlmRunner's `legacyTopP`).
 * The Uni-MoE routing itself (Top-P k, GRIN multipliers, capacity token drop, in fp32 or bf16 as the release computes
 * it) is models/moe-llm/grin-routing.ts: k is reported as the release reports it (D + 1 when the cumsum never reaches P, before
 * drops), and with `token_drop` every call drops, decode steps included (outputs dropped_{i} with the trace).
 * Attention is causal, within a sliding window in the layers that have one (config sliding_window_per_layer, see
 * "sliding-window bias" below). With `padding`, attention_mask int64 [B,T] (1 real, 0 padding; T = past + new) hides padded
 * keys from every query (additive PAD_BIAS) and takes padded tokens out of Uni-MoE's dynamic routing, as the release does;
 * MoeLlmRunner.forwardBatch pads records left or right and returns each record's own rows.
 */
export { io, type MoeGraphOptions } from "./decoder/io";

/** Bumped whenever the graph builder's output changes, so cached graphs are rebuilt (imports record it: import.ts). */
export const GRAPH_BUILDER_VERSION = 8;
/** The first builder version whose top_p input is exactly the P in force (before: top_p <= 0 = the config's P). */
export const TOP_P_EXACT_SINCE = 5;

/** Sizes derived from a config. */
export function moeDims(c: MoeLlmConfig) {
  const R = c.mlp_dynamic_expert_num, Z = c.mlp_dynamic_null_expert_num, SH = c.mlp_fixed_expert_num;
  const NH = c.num_attention_heads, KVH = c.num_key_value_heads;
  return { H: c.hidden_size, L: c.num_hidden_layers, V: c.vocab_size, NH, KVH, G: NH / KVH, Dh: headDim(c), R, Z, SH, D: R + Z, E: R + Z + SH };
}

/** Every parameter the decoder reads, with its PyTorch shape. */
export function moeLlmParamShapes(c: MoeLlmConfig): Map<string, number[]> {
  const { H, L, V } = moeDims(c);
  const arch = architectureOf(c);
  const m = new Map<string, number[]>();
  const normShape = (name: string) => {
    m.set(name, [H]);
    if (arch.norm === "layer") m.set(paramNames.normBias(name), [H]);
  };
  m.set(paramNames.embed, [V, H]);
  for (let i = 0; i < L; i++) {
    normShape(paramNames.inputNorm(i));
    normShape(paramNames.postNorm(i));
    attentionParamShapes(c, i, m);
    ffnParamShapes(c, i, m);
  }
  normShape(paramNames.finalNorm);
  if (!c.tie_word_embeddings) m.set(paramNames.lmHead, [V, H]);
  if (arch.lmHeadBias) m.set(paramNames.lmHeadBias, [V]);
  return m;
}

function checkConfig(c: MoeLlmConfig): void {
  const { NH, KVH, Dh, D } = moeDims(c);
  if (c.token_drop) dropPolicy(c);
  const sec = c.rope_scaling.mrope_section;
  if (NH % KVH !== 0) throw new Error(`num_attention_heads ${NH} is not a multiple of num_key_value_heads ${KVH}`);
  if (!Number.isInteger(Dh) || Dh % 2 !== 0) throw new Error(`head_dim ${Dh} must be an even integer`);
  if (sec.reduce((a, b) => a + b, 0) !== Dh / 2) throw new Error(`mrope_section [${sec}] must sum to head_dim/2 = ${Dh / 2}`);
  const arch = architectureOf(c);
  if (arch.routing !== "uni_moe_top_p" && c.mlp_dynamic_null_expert_num !== 0) throw new Error(`routing_convention ${arch.routing} has no null experts (mlp_dynamic_null_expert_num must be 0)`);
  if (arch.sharedExpertGate && c.mlp_fixed_expert_num !== 1) throw new Error("shared_expert_gate needs exactly one shared expert (mlp_fixed_expert_num 1)");
  if (arch.routing !== "uni_moe_top_p" && c.mlp_dynamic_top_k > D) throw new Error(`mlp_dynamic_top_k ${c.mlp_dynamic_top_k} exceeds the ${D} dynamic columns`);
  if (arch.routing === "sparsemixer" && c.mlp_dynamic_top_k !== 2) throw new Error(`sparsemixer routing is defined for top-2 only (transformers' sparsemixer raises for top_k ${c.mlp_dynamic_top_k})`);
  if (arch.routing.startsWith("deepseek")) {
    const { nGroup, topkGroup, topkMethod } = arch.router;
    const grouped = arch.routing === "deepseek_sigmoid" || topkMethod === "group_limited_greedy";
    if (grouped && (D % nGroup !== 0 || topkGroup > nGroup || (arch.routing === "deepseek_sigmoid" && D / nGroup < 2)))
      throw new Error(`n_group ${nGroup} / topk_group ${topkGroup} do not fit ${D} routed experts (groups of equal size${arch.routing === "deepseek_sigmoid" ? ", at least 2 each" : ""}, topk_group <= n_group)`);
    if (c.mlp_fixed_expert_num > 0 && arch.sharedExpertGate) throw new Error("DeepSeek's shared experts have no gate");
  }
  if (arch.ropeInterleave && arch.attention !== "mla") throw new Error("rope_interleave is implemented for MLA attention only");
  if (arch.denseLayers.some(Boolean) && c.token_drop) throw new Error("token_drop with dense layers is not supported");
}

/** The per-layer routing inputs: bias/ban/force [1,E] rows, top_p [1] (Uni-MoE), top_k [1] (fixed-k routers). */
interface LayerRouting extends RouterInputs {
  topP: string;
  /** bool [N,1], with padding: false for padded tokens (Uni-MoE routing excludes them) */
  valid?: string;
}

/** The MoE feed-forward of one layer: x [N,H] → [N,H] (+ routing and the reported router logits for the trace). */
/** The fused graph's compact Uni-MoE routing block (decoder/grin-compact.ts): the layer's rows, P, and output names. */
interface CompactRouting {
  rows: CompactGrinRows;
  P: string;
  trace: boolean;
  names?: CompactGrinNames;
  /** the decode-step graph: one token */
  oneToken?: boolean;
}

function moeLayer(o: Ops, c: MoeLlmConfig, ws: WeightSource, shapes: Map<string, number[]>, i: number, x: string, r: LayerRouting, mode: "sparse" | "dense" | "op", precision: RoutingPrecision, fusedCtx?: DecoderContext, compact?: CompactRouting) {
  const g = o.g;
  const arch = architectureOf(c);
  const { E } = moeDims(c);
  const init = (name: string, dims?: number[]) => {
    const t = weight(ws, shapes, name);
    return g.initializer(name, t.data, dims ?? t.shape);
  };
  let routed: Routing;
  let reported: string;
  if (arch.routing === "uni_moe_top_p") {
    const W = weight(ws, shapes, paramNames.router(i));
    const router = g.initializer(paramNames.router(i), precision === "bf16" ? bf16Values(W.data) : W.data, W.shape);
    if (compact) {
      routed = compactGrinRouting(o, c, x, router, compact.rows, compact.P, { trace: compact.trace, valid: r.valid, names: compact.names, oneToken: compact.oneToken });
      const y = fusedExperts(fusedCtx!, i, x, routed, mode);
      return { y, routing: routed, z: routed.logits! };
    }
    reported = grinRouterLogits(o, x, router, r.bias, precision); // [N,E]
    routed = grinRouting(o, c, { z: reported, ban: r.ban, force: r.force, topP: r.topP, staticShapes: r.staticShapes, valid: r.valid }, precision);
  } else {
    let z = o.linear(x, init(paramNames.router(i)), arch.router.bias ? init(paramNames.routerBias(i)) : undefined); // [N, router rows]
    const rows = shapes.get(paramNames.router(i))![0]!;
    // DeepSeek's shared experts have no router row: their trace column reads 0
    if (rows < E) z = o.concat([z, o.expand(g.scalar(0), o.concat([o.shape(z, 0, 1), g.ints([E - rows])], 0))], 1);
    const correction = arch.routing === "deepseek_sigmoid" ? init(paramNames.scoreCorrection(i), [1, c.mlp_dynamic_expert_num]) : undefined;
    routed = familyRouting(o, c, z, r, correction);
    reported = routed.logits!;
  }
  const y = fusedCtx ? fusedExperts(fusedCtx, i, x, routed, mode) : expertsOutput(o, c, ws, shapes, i, x, routed, mode === "op" ? "dense" : mode);
  return { y, routing: routed, z: reported };
}

/** The context the decoder's builders share, on `g`; `w` adds each canonical weight once (shape-checked). */
export function decoderContext(c: MoeLlmConfig, weights: WeightSource, g: GraphBuilder): DecoderContext {
  const shapes = moeLlmParamShapes(c);
  const declared = new Map<string, string>();
  const w = (name: string) => {
    let v = declared.get(name);
    if (v === undefined) {
      const t = weight(weights, shapes, name);
      v = g.initializer(name, t.data, t.shape);
      declared.set(name, v);
    }
    return v;
  };
  return { o: new Ops(g), g, c, arch: architectureOf(c), shapes, ws: weights, w };
}

/** The LM head on final-normed rows hn [N,H] → logits [N,V]: lm_head (or the tied embedding), plus the family's bias. */
export function lmHead(ctx: DecoderContext, hn: string): string {
  const head = ctx.w(ctx.c.tie_word_embeddings ? paramNames.embed : paramNames.lmHead);
  return ctx.o.linear(hn, head, ctx.arch.lmHeadBias ? ctx.w(paramNames.lmHeadBias) : undefined);
}

/** Whether the device-resident variant (MoeGraphOptions.gpu) can be built for this config and these options. */
export function deviceGraphFits(c: MoeLlmConfig, options: MoeGraphOptions): boolean {
  return !options.unfused && !options.padding && fusedAttentionFits(c) && !architectureOf(c).denseLayers.some(Boolean);
}

/**
 * The graph a decoder session on `provider` runs for the options asked: on WebGPU the device-resident variant with
 * dense dispatch (no NonZero, no int64 shape arithmetic: every node on the GPU, no Memcpy node inside, which
 * tests/integration/webgpu.test.ts checks) where it fits, and always the WebGPU attention (MoeGraphOptions.webgpu);
 * on the CPU (and CUDA) the options as asked (sparse dispatch is the CPU's default, docs/benchmarks.md has the
 * measured rule).
 */
export function deviceGraphOptions(c: MoeLlmConfig, options: MoeGraphOptions, provider: string): MoeGraphOptions {
  if (provider !== "webgpu") return options;
  const webgpu = { ...options, webgpu: true };
  if (options.gpu || !deviceGraphFits(c, options)) return webgpu;
  return { ...webgpu, moe: "dense", gpu: true };
}

/** Builds the decoder graph; returns a serialized ONNX ModelProto. */
/** `builder` lets a caller store the initializers elsewhere (models/import writes them as ONNX external data). */
export function buildMoeLlmGraph(config: MoeLlmConfig, weights: WeightSource, options: MoeGraphOptions, builder?: GraphBuilder): Uint8Array {
  checkConfig(config);
  const c = config;
  const precision = options.routingPrecision ?? "fp32";
  checkRoutingPrecision(c, precision);
  const { H, L, V, E, D } = moeDims(c);
  const ctx = decoderContext(c, weights, builder ?? new GraphBuilder("uni_moe_decoder"));
  const { o, g, arch, shapes, w } = ctx;

  /** Values shared by all layers are built once, outside any layer's scope. */
  const once = <T>(make: () => T): (() => T) => {
    let v: T | undefined;
    return () => {
      if (v === undefined) {
        const scope = g.scope;
        g.scope = "";
        v = make();
        g.scope = scope;
      }
      return v;
    };
  };
  const fused = !options.unfused;
  const expertsMode = fused && options.expertsOp ? "op" : options.moe;
  // the device-resident variant (WebGPU): no int64 shape arithmetic, which GPU providers leave on the CPU
  const gpu = !!options.gpu;
  if (gpu && (!fused || options.padding || !fusedAttentionFits(c) || arch.denseLayers.some(Boolean)))
    throw new Error("the device-resident decoder graph (gpu) is the fused graph of a GroupQueryAttention family without padding or dense layers");
  // the decode-step form: one token of one sequence, KV cache read in place and the new keys/values and trace packed
  const step = !!options.decodeStep;
  if (step && (!gpu || !options.kvCache || !decodeStepAttentionFits(c)))
    throw new Error("the decode-step graph is the device-resident graph with a KV cache, for attention without windows or sinks");
  /** per-layer key/value rows (decode step) and trace tensors, packed into one output each after the last layer */
  const packed = { keys: [] as string[], values: [] as string[], logits: [] as string[], mask: [] as string[], weights: [] as string[], k: [] as string[] };

  // ---- inputs ----
  let x: string; // [N,H]
  let x3: string; // [B,S,H]
  const embed = options.embeds && c.tie_word_embeddings === false ? undefined : w(paramNames.embed);
  let ids = "";
  if (options.embeds) {
    x3 = g.input(io.embeds, "float", ["batch", "seq", H]);
    x = o.reshape(x3, g.ints([-1, H]));
  } else {
    ids = g.input(io.ids, "int64", ["batch", "seq"]);
    if (gpu) {
      x3 = o.gather(embed!, ids); // [B,S,H]: no int64 Reshape
      x = o.reshape(x3, g.ints([-1, H]));
    } else {
      x3 = "";
      x = o.gather(embed!, o.reshape(ids, g.ints([-1])));
    }
  }
  const bsShape = once(() => (options.embeds ? o.shape(x3, 0, 2) : o.shape(ids))); // int64 [2] = [B,S]
  const bsh = once(() => o.concat([bsShape(), g.ints([-1])], 0)); // int64 [3] = [B,S,-1]
  const pos = g.input(io.positions, "int64", [3, "batch", "seq"]);
  const routerBias = g.input(io.routerBias, "float", [L, E]);
  const banMask = g.input(io.ban, "float", [L, E]);
  const forceMask = g.input(io.force, "float", [L, E]);
  const topP = g.input(io.topP, "float", [1]); // the P in force (grin-routing.ts)
  const topK = arch.routing === "uni_moe_top_p" ? "" : g.input(io.topK, "float", [1]);

  const embedded = x; // [N,H]
  // ---- lengths: S new tokens, P past, T = P + S ----
  const lengths = once(() => {
    const sLen = o.slice(bsShape(), [1], [2], [0]); // [1]
    const pLen = options.kvCache ? o.shape(declarePastKey0(ctx), 2, 3) : g.ints([0]);
    return { sLen, pLen, tLen: o.add(pLen, sLen) }; // [1] each
  });
  if (!gpu) lengths();
  else if (options.kvCache && !step) declarePastKey0(ctx);
  const scalar = (t: string) => o.squeeze(t, [0]);
  const one = once(() => g.const([1], [], "int64")); // not every form counts (the device-resident forms do not)
  /** gpu: each token's row b·S + s (int64 [B,S]), from float counts (CumSum) and a float→int64 Cast, both on the device; the decode step's one token: [[0]] */
  const tokenRows = once(() => {
    if (step) return g.const([0], [1, 1], "int64");
    const ones = o.add(o.mul(o.slice(x3, [0], [1], [2]), g.scalar(0)), g.scalar(1)); // [B,S,1]
    const within = o.sub(o.cumsum(ones, 1), g.scalar(1)); // s
    const before = g.op("CumSum", [o.reduceSum(ones, [1]), g.const([0], [], "int64")], { exclusive: 1 }); // [B,1,1] b·S
    return o.cast(o.squeeze(o.add(within, before), [2]), "int64"); // [B,S]
  });
  /** [N,F] → [B,S,F] (the decode step: [1,F] → [1,1,F]; RotaryEmbedding refuses anything but one token against its [1,1] rows) */
  const toBS = (t: string) => (step ? o.unsqueeze(t, [0]) : gpu ? o.gather(t, tokenRows()) : o.reshape(t, bsh()));
  // ---- causal bias [S,T]: key j visible to query i iff j <= P + i ----
  const positions = once(() => ({ qPos: o.range(scalar(lengths().pLen), scalar(lengths().tLen), one()), kPos: o.range(g.const([0], [], "int64"), scalar(lengths().tLen), one()) })); // [S], [T]
  const causal = once(() => o.where(o.greater(o.unsqueeze(positions().kPos, [0]), o.unsqueeze(positions().qPos, [1])), g.scalar(-Infinity), g.scalar(0))); // [S,T]
  // ---- sliding-window bias [S,T] (only for layers with a window W): the causal bias, and key j also hidden from query
  // position q = P + i when q - j >= W, i.e. visible iff j <= q and q - j < W (itself and the W - 1 keys before it).
  // That is transformers' rule: src/transformers/masking_utils.py (commit 00c4411c) sliding_window_causal_mask_function =
  // sliding_window_overlay (~l.88-97, `kv_idx > q_idx - sliding_window`) AND causal_mask_function (~l.72-76,
  // `kv_idx <= q_idx`), on cache positions (not on
  // position_ids, so not on M-RoPE's t/h/w rows). Older eager masks (AttentionMaskConverter) agree; the old flash-attention
  // path let W + 1 keys through (transformers issues #29623, #39408). The KV cache keeps every past key (present_* grows
  // with the whole context): memory is NOT bounded by the window, the mask only hides the keys that fell out of it.
  // (The fused graph's GroupQueryAttention applies the same rule with local_window_size = W on ONNX Runtime's CPU
  // kernel, as tests/unit/models/moe-llm/fused-decoder.test.ts checks on gpt-oss's window-4 layers.)
  const windowBiases = new Map<number, () => string>();
  const layerMask = (layer: number): string => {
    const W = arch.slidingWindows[layer];
    if (W === null || W === undefined) return causal();
    if (!windowBiases.has(W))
      windowBiases.set(
        W,
        once(() => {
          const distance = o.sub(o.unsqueeze(positions().qPos, [1]), o.unsqueeze(positions().kPos, [0])); // int64 [S,T] = q - j
          return o.where(o.greater(distance, g.const([W - 1], [], "int64")), g.scalar(-Infinity), causal());
        }),
      );
    return windowBiases.get(W)!();
  };
  // ---- padding (batched prefill): attention_mask [B,T] hides padded keys; padded tokens leave Uni-MoE's dynamic routing
  if (options.padding && c.token_drop) throw new Error("batched prefill with padding is not supported with token_drop: the capacity would count the padding");
  const attentionMask = options.padding ? g.input(io.attentionMask, "int64", ["batch", "total"]) : "";
  const padKeys = once(() => o.unsqueeze(o.where(o.greater(attentionMask, g.const([0], [], "int64")), g.scalar(0), g.scalar(PAD_BIAS)), [1, 2])); // [B,1,1,T]
  const valid = once(() => o.greater(o.reshape(o.slice(attentionMask, lengths().pLen, lengths().tLen, [1]), g.ints([-1, 1])), g.const([0], [], "int64"))); // bool [N,1]
  const rope = once(() => ropeTables(ctx, pos));
  const attention: AttentionInputs = {
    get bsShape() {
      return bsShape();
    },
    kvCache: options.kvCache,
    get rope() {
      return rope();
    },
    mask: layerMask,
    get pad() {
      return options.padding ? padKeys() : undefined;
    },
  };
  const fusedAttention = once((): FusedAttentionInputs => ({ ...fusedLengths(), ...(options.webgpu ? { webgpu: { nullSink: nullSinkInput(g, c.num_attention_heads) } } : {}) }));
  const fusedLengths = (): FusedAttentionInputs => {
    if (step) return { toBS, kvCache: true, rope: fusedRopeTables(ctx, pos, "", { rows: tokenRows() }), seqlensK: "", totalLength: "", bias: "" };
    if (gpu) {
      // lengths come in as inputs (GroupQueryAttention reads total_sequence_length from host memory; MoeLlmRunner feeds
      // both), rotary angles from position_ids through a float table (no int64 → float Cast on the device)
      const seqlensK = g.input(io.seqlensK, "int32", ["batch"]);
      const totalLength = g.input(io.totalLength, "int32", []);
      return { toBS, kvCache: options.kvCache, rope: fusedRopeTables(ctx, pos, "", { rows: tokenRows() }), seqlensK, totalLength, bias: "" };
    }
    const { sLen, tLen } = lengths();
    const seqlensK = o.cast(o.expand(o.sub(tLen, one()), o.slice(bsShape(), [0], [1], [0])), "int32"); // [B]
    return { toBS, kvCache: options.kvCache, rope: fusedRopeTables(ctx, pos, scalar(o.shape(embedded, 0, 1))), seqlensK, totalLength: scalar(o.cast(tLen, "int32")), bias: options.padding ? o.expand(padKeys(), o.concat([o.slice(bsShape(), [0], [1], [0]), g.ints([1]), sLen, tLen], 0)) : "" };
  };
  const attend = (i: number, h: string) => {
    if (step) {
      const { out, key, value } = decodeStepAttention(ctx, fusedAttention(), i, h);
      packed.keys.push(key);
      packed.values.push(value);
      return out;
    }
    if (fused && fusedAttentionFits(c)) return fusedGqaAttention(ctx, fusedAttention(), i, h);
    return arch.attention === "mla" ? mlaAttention(ctx, attention, i, h) : gqaAttention(ctx, attention, i, h);
  };

  // the fused graph's compact Uni-MoE routing: its per-layer rows are built once per forward, outside the layers
  const useCompact = fused && arch.routing === "uni_moe_top_p" && compactGrinFits(c, precision);
  const compactRows = once(() => compactGrinRows(o, c, routerBias, banMask, forceMask, topP, options.trace));

  const residuals: string[] = [];
  // fused: the residual add is folded into the next norm (SkipSimplifiedLayerNormalization); `pending` is the sublayer
  // output still to be added to x
  let pending: string | undefined;
  const addAndNorm = (sub: string | undefined, weightName: string): string => {
    if (!fused) {
      if (sub !== undefined) x = o.add(x, sub);
      return norm(ctx, x, weightName);
    }
    if (sub === undefined) return fusedNorm(ctx, x, weightName);
    const [n, sum] = fusedSkipNorm(ctx, x, sub, weightName);
    x = sum;
    return n;
  };
  /** decode step: one layer's trace rows (one token: [1,E], k [1]; `kRow`: k is already [1]), packed after the last layer */
  const traced = (z: string, mask: string, w: string, k: string, kRow = false) => {
    packed.logits.push(z);
    packed.mask.push(mask);
    packed.weights.push(w);
    packed.k.push(kRow ? k : o.reshape(k, g.ints([1])));
  };
  for (let i = 0; i < L; i++) {
    g.scope = `l${i}/`;
    const h = addAndNorm(pending, paramNames.inputNorm(i));
    if (pending !== undefined) residuals.push(x);
    const h2 = addAndNorm(attend(i, h), paramNames.postNorm(i));
    if (arch.denseLayers[i]) {
      pending = denseMlp(ctx, i, h2);
      continue;
    }
    if (useCompact) {
      const { P, rows } = compactRows();
      const names = options.trace ? { logits: io.routerLogits(i), mask: io.mask(i), weights: io.weights(i) } : undefined;
      const moe = moeLayer(o, c, weights, shapes, i, h2, { bias: "", ban: "", force: "", topP, topK, valid: options.padding ? valid() : undefined }, expertsMode, precision, ctx, { rows: rows[i]!, P, trace: options.trace, names, oneToken: step });
      pending = moe.y;
      if (options.trace && step) traced(moe.routing.logits!, moe.routing.mask, moe.routing.weights, moe.routing.k, true); // the compact block's k is [N]
      else if (options.trace) {
        // written to the output names directly (no Identity nodes); k as int64 [N] (reshaped in float, then cast)
        g.declareOutput(io.routerLogits(i), "float", ["tokens", E]);
        void moe.routing.mask;
        g.declareOutput(io.mask(i), "float", ["tokens", E]);
        g.declareOutput(io.weights(i), "float", ["tokens", E]);
        g.node("Cast", [moe.routing.k], { to: 7 }, { outputs: [io.k(i)] });
        g.declareOutput(io.k(i), "int64", ["tokens"]);
      }
      continue;
    }
    const row = (t: string) => o.slice(t, [i], [i + 1], [0]); // [1,E]
    const moe = moeLayer(o, c, weights, shapes, i, h2, { bias: row(routerBias), ban: row(banMask), force: row(forceMask), topP, topK, staticShapes: fused, valid: options.padding ? valid() : undefined }, expertsMode, precision, fused ? ctx : undefined);
    pending = moe.y;
    if (options.trace && step) {
      traced(moe.z, moe.routing.mask, moe.routing.weights, moe.routing.k);
      if (moe.routing.scores) g.output(moe.routing.scores, io.scores(i), "float", ["tokens", D]);
      if (moe.routing.dropped) g.output(moe.routing.dropped, io.dropped(i), "float", ["tokens", E]);
    } else if (options.trace) {
      g.output(moe.z, io.routerLogits(i), "float", ["tokens", E]);
      g.output(moe.routing.mask, io.mask(i), "float", ["tokens", E]);
      g.output(moe.routing.weights, io.weights(i), "float", ["tokens", E]);
      g.output(o.reshape(o.cast(moe.routing.k, "int64"), g.ints([-1])), io.k(i), "int64", ["tokens"]);
      if (moe.routing.scores) g.output(moe.routing.scores, io.scores(i), "float", ["tokens", D]);
      if (moe.routing.dropped) g.output(moe.routing.dropped, io.dropped(i), "float", ["tokens", E]);
    }
  }
  g.scope = "";

  if (step) {
    const join = (parts: string[], name?: string) => g.node(parts.length === 1 ? "Identity" : "Concat", parts, parts.length === 1 ? {} : { axis: 0 }, name ? { outputs: [name] } : {})[0]!;
    const pack = (parts: string[], name: string, dims: Dim[]) => g.declareOutput(join(parts, name), "float", dims);
    const [heads, dim] = kvCacheDims(c).key;
    pack(packed.keys, io.newKeys, [L, heads * dim]);
    pack(packed.values, io.newValues, [L, heads * dim]);
    if (options.trace) {
      const M = packed.logits.length;
      pack(packed.logits, io.packedTrace.routerLogits, [M, E]);
      pack(packed.mask, io.packedTrace.mask, [M, E]);
      pack(packed.weights, io.packedTrace.weights, [M, E]);
      g.declareOutput(g.node("Cast", [join(packed.k)], { to: 7 }, { outputs: [io.packedTrace.k] })[0]!, "int64", [M]);
    }
  }

  // ---- head ----
  const hn = addAndNorm(pending, paramNames.finalNorm); // [N,H]
  residuals.push(x);
  /** [N,F] → the graph output `name` [B,S,F] (the decode step names the Unsqueeze's output: no Identity node) */
  const headOutput = (t: string, name: string, F: number) =>
    step ? g.declareOutput(g.node("Unsqueeze", [t, g.ints([0])], {}, { outputs: [name] })[0]!, "float", ["batch", "seq", F]) : g.output(toBS(t), name, "float", ["batch", "seq", F]);
  headOutput(hn, io.lastHidden, H);
  headOutput(lmHead(ctx, hn), io.logits, V);
  if (options.lens) residuals.forEach((r, i) => g.output(toBS(r), io.hidden(i), "float", ["batch", "seq", H]));
  return g.toBytes();
}

/**
 * Only the routing as a graph, for tests and tools (the N rows are one forward call, e.g. for the capacity):
 * inputs router_logits [N,E] (rounded to bf16 first under bf16: what the release's bf16 gate would give),
 * ban_mask/force_mask [1,E] (zeros = neutral), top_p [1] (the P in force: feed the config's for its own routing);
 * fixed-k routers also take top_k [1] (the k in force: feed the config's for its own routing)
 * and DeepSeek-V3's e_score_correction_bias [1,R];
 * outputs mask [N,E], weights [N,E], k int64 [N] (DeepSeek-V3: and scores [N,R]; Uni-MoE with token_drop: and dropped [N,E]).
 */
export function buildRoutingGraph(config: MoeLlmConfig, precision: RoutingPrecision = "fp32"): Uint8Array {
  if (config.token_drop) dropPolicy(config);
  checkRoutingPrecision(config, precision);
  const { E } = moeDims(config);
  const g = new GraphBuilder("uni_moe_routing");
  const o = new Ops(g);
  const zIn = g.input("router_logits", "float", ["tokens", E]);
  const z = precision === "bf16" ? roundBf16(o, zIn) : zIn;
  const ban = g.input(io.ban, "float", [1, E]);
  const force = g.input(io.force, "float", [1, E]);
  const topP = g.input(io.topP, "float", [1]);
  const arch = architectureOf(config);
  let r: Routing;
  if (arch.routing === "uni_moe_top_p") r = grinRouting(o, config, { z, ban, force, topP }, precision);
  else {
    const topK = g.input(io.topK, "float", [1]);
    const correction = arch.routing === "deepseek_sigmoid" ? g.input("e_score_correction_bias", "float", [1, config.mlp_dynamic_expert_num]) : undefined;
    r = familyRouting(o, config, z, { bias: g.const(Array<number>(E).fill(0), [1, E]), ban, force, topK }, correction);
    if (r.scores) g.output(r.scores, "scores", "float", ["tokens", config.mlp_dynamic_expert_num]);
  }
  g.output(r.mask, "mask", "float", ["tokens", E]);
  g.output(r.weights, "weights", "float", ["tokens", E]);
  g.output(o.reshape(o.cast(r.k, "int64"), g.ints([-1])), "k", "int64", ["tokens"]);
  if (r.dropped) g.output(r.dropped, "dropped", "float", ["tokens", E]);
  return g.toBytes();
}

/**
 * One MoE feed-forward block (layer `layer`'s router and experts) as a graph, for benchmarks and tools
 * (with token_drop, the N rows are one sequence):
 * inputs hidden [N,H] (already normalised), router_bias/ban_mask/force_mask [1,E] (zeros = neutral), top_p [1] (the P
 * in force; top_k [1] for fixed-k routers, the k in force);
 * outputs y [N,H] (without the residual) and, with `trace`, router_logits/mask/weights [N,E] and k int64 [N].
 */
export function buildMoeLayerGraph(config: MoeLlmConfig, weights: WeightSource, layer: number, options: Pick<MoeGraphOptions, "moe" | "trace" | "routingPrecision">): Uint8Array {
  checkConfig(config);
  const { H, E } = moeDims(config);
  const g = new GraphBuilder("uni_moe_layer");
  const o = new Ops(g);
  const x = g.input("hidden", "float", ["tokens", H]);
  const bias = g.input(io.routerBias, "float", [1, E]);
  const ban = g.input(io.ban, "float", [1, E]);
  const force = g.input(io.force, "float", [1, E]);
  const topP = g.input(io.topP, "float", [1]);
  const topK = architectureOf(config).routing === "uni_moe_top_p" ? "" : g.input(io.topK, "float", [1]);
  const moe = moeLayer(o, config, weights, moeLlmParamShapes(config), layer, x, { bias, ban, force, topP, topK }, options.moe, options.routingPrecision ?? "fp32");
  g.output(moe.y, "y", "float", ["tokens", H]);
  if (options.trace) {
    g.output(moe.z, "router_logits", "float", ["tokens", E]);
    g.output(moe.routing.mask, "mask", "float", ["tokens", E]);
    g.output(moe.routing.weights, "weights", "float", ["tokens", E]);
    g.output(o.reshape(o.cast(moe.routing.k, "int64"), g.ints([-1])), "k", "int64", ["tokens"]);
    if (moe.routing.dropped) g.output(moe.routing.dropped, "dropped", "float", ["tokens", E]);
  }
  return g.toBytes();
}
