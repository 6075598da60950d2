import * as ort from "onnxruntime-node";
import type { MoeLlmConfig } from "./config";
import { checkNoColumn, dropPolicy, noColumnMessage } from "./grin-routing";
import { buildMoeLlmGraph, io, type MoeGraphOptions, moeDims } from "./moe-llm-graph";
import { kvCacheDims } from "./decoder/attention";
import { ropeTableSize } from "./decoder/fused";
import { architectureOf, moeLayerIndices } from "./families/conventions";
import type { WeightSource } from "./weights";

/** Per-layer keys and values, each [B, KVH, length, Dh] row-major (MLA: the latent and the rope key, see kvCacheDims). */
export interface KvCache {
  length: number;
  keys: Float32Array[];
  values: Float32Array[];
}

/** Routing interventions; omitted fields are neutral. Arrays are [L*E] row-major (layer, router column). */
export interface Interventions {
  routerBias?: Float32Array;
  /** 1 = banned (see moe-llm-graph.ts for how a ban interacts with Top-P) */
  ban?: Float32Array;
  /** 1 = forced */
  force?: Float32Array;
  /** > 0 overrides the config's Top-P threshold (dynamic-capacity routers) */
  topP?: number;
  /** > 0 overrides the number of experts per token (fixed-k routers) */
  topK?: number;
}

/** The routing of one MoE layer (dense layers have none). */
export interface LayerTrace {
  /** Decoder index of the layer. */
  layer: number;
  /** [N*E] router logits after the bias intervention (DeepSeek-V3: raw) */
  routerLogits: Float32Array;
  /** [N*E] 0/1 */
  mask: Float32Array;
  /** [N*E] final expert weights (sum to 1 per token) */
  weights: Float32Array;
  /** [N] dynamic k per token, as the release reports it (before capacity drops) */
  k: BigInt64Array;
  /** [N*E] 1 where a selection was dropped over capacity (config.token_drop) */
  dropped?: Float32Array;
  /** DeepSeek-V3: [N*R] the selection scores (sigmoid + correction bias + bias intervention) */
  scores?: Float32Array;
}

export interface ForwardInput {
  batch: number;
  seq: number;
  /** [B*S] token ids (graph built without `embeds`) */
  ids?: BigInt64Array | ArrayLike<number>;
  /** [B*S*H] input embeddings (graph built with `embeds: true`) */
  embeds?: Float32Array;
  /** [3*B*S] (t, h, w) position ids */
  positions: BigInt64Array | ArrayLike<number>;
  /** required when the graph has a KV cache; omitted = empty */
  past?: KvCache;
  interventions?: Interventions;
  /** [B*T] 1 = real token, 0 = padding (graphs built with `padding`; omitted = all real) */
  attentionMask?: ArrayLike<number>;
}

/** One record of a padded batch (forwardBatch): its tokens and its [3*len] (t..., h..., w...) positions. */
export interface BatchRecord {
  ids?: ArrayLike<number>;
  /** [len*H] (graph built with `embeds`) */
  embeds?: Float32Array;
  positions: ArrayLike<number>;
}

export interface ForwardOutput {
  /** [B*S*V] */
  logits: Float32Array;
  /** [B*S*H] after the final norm */
  lastHidden: Float32Array;
  /** with kvCache: the cache after this step (length P + S) */
  present?: KvCache;
  /** with trace: per MoE layer, in decoder order */
  trace?: LayerTrace[];
  /** with lens: per layer, the residual stream after it [B*S*H] (before the final norm) */
  hidden?: Float32Array[];
}

const toI64 = (a: BigInt64Array | ArrayLike<number>) => (a instanceof BigInt64Array ? a : BigInt64Array.from(Array.from(a), (v) => BigInt(v)));

/** Runs the decoder graph with onnxruntime-node (CPU unless other providers are passed in `sessionOptions`). */
export class MoeLlmRunner {
  private constructor(
    readonly config: MoeLlmConfig,
    readonly options: MoeGraphOptions,
    readonly session: ort.InferenceSession,
    /** the serialized model (e.g. to cache on disk by content hash) */
    readonly model: Uint8Array,
  ) {}

  static async create(config: MoeLlmConfig, weights: WeightSource, options: MoeGraphOptions, sessionOptions: ort.InferenceSession.SessionOptions = {}): Promise<MoeLlmRunner> {
    const model = buildMoeLlmGraph(config, weights, options);
    const session = await ort.InferenceSession.create(model, { graphOptimizationLevel: "all", logSeverityLevel: 3, ...sessionOptions });
    return new MoeLlmRunner(config, options, session, model);
  }

  /** Wraps a session made elsewhere (e.g. the engine's session pool) from a graph built with `options`. */
  static fromSession(config: MoeLlmConfig, options: MoeGraphOptions, session: ort.InferenceSession, model: Uint8Array = new Uint8Array()): MoeLlmRunner {
    return new MoeLlmRunner(config, options, session, model);
  }

  /** An empty cache for `batch` sequences. */
  emptyCache(batch: number): KvCache {
    const { L } = moeDims(this.config);
    void batch;
    return { length: 0, keys: Array.from({ length: L }, () => new Float32Array(0)), values: Array.from({ length: L }, () => new Float32Array(0)) };
  }

  async forward(input: ForwardInput): Promise<ForwardOutput> {
    const { L, E, H, V } = moeDims(this.config);
    const cache = kvCacheDims(this.config);
    const arch = architectureOf(this.config);
    const { batch: B, seq: S } = input;
    const context = (input.past?.length ?? 0) + S;
    if (arch.maxContext !== null && context > arch.maxContext)
      throw new Error(
        `${this.config.model_type}: ${context} tokens exceed the ${arch.maxContext} its RoPE is built for (LongRoPE's short factors; the long factors, used past original_max_position_embeddings, are not implemented)`,
      );
    if (!this.options.unfused && B > 1 && S > 1 && (input.past?.length ?? 0) > 0 && arch.attention !== "mla")
      throw new Error(`forward: the fused decoder graph continues a cached prompt of several tokens for one sequence at a time (GroupQueryAttention); got ${B} sequences of ${S} tokens after ${input.past!.length} cached`);
    const feeds: Record<string, ort.Tensor> = {};
    if (this.options.embeds) {
      if (!input.embeds || input.embeds.length !== B * S * H) throw new Error(`forward: embeds must be [${B}*${S}*${H}]`);
      feeds[io.embeds] = new ort.Tensor("float32", input.embeds, [B, S, H]);
    } else {
      if (!input.ids || input.ids.length !== B * S) throw new Error(`forward: ids must be [${B}*${S}]`);
      feeds[io.ids] = new ort.Tensor("int64", toI64(input.ids), [B, S]);
    }
    if (input.positions.length !== 3 * B * S) throw new Error(`forward: positions must be [3*${B}*${S}]`);
    feeds[io.positions] = new ort.Tensor("int64", toI64(input.positions), [3, B, S]);
    const iv = input.interventions ?? {};
    const neutral = new Float32Array(L * E); // router_bias, ban_mask, force_mask: zeros = no intervention
    const le = (a: Float32Array | undefined, what: string) => {
      if (a && a.length !== L * E) throw new Error(`forward: ${what} must be [${L}*${E}]`);
      return new ort.Tensor("float32", a ?? neutral, [L, E]);
    };
    feeds[io.routerBias] = le(iv.routerBias, "routerBias");
    feeds[io.ban] = le(iv.ban, "ban");
    feeds[io.force] = le(iv.force, "force");
    feeds[io.topP] = new ort.Tensor("float32", new Float32Array([iv.topP ?? 0]), [1]);
    if (this.session.inputNames.includes(io.topK)) feeds[io.topK] = new ort.Tensor("float32", new Float32Array([iv.topK ?? 0]), [1]);
    else if (iv.topK) throw new Error(`${this.config.model_type}: this graph has no top-k input (${arch.routing === "uni_moe_top_p" ? "a dynamic-capacity router chooses k by Top-P" : "it was built before top-k overrides existed; import the model again"})`);
    if (this.session.inputNames.includes(io.totalLength)) {
      // the device-resident graph (MoeGraphOptions.gpu): lengths as inputs, positions within its float table
      const T = (input.past?.length ?? 0) + S;
      feeds[io.totalLength] = new ort.Tensor("int32", Int32Array.of(T), []);
      feeds[io.seqlensK] = new ort.Tensor("int32", new Int32Array(B).fill(T - 1), [B]);
      const limit = ropeTableSize(this.config);
      for (const p of Array.from(input.positions as ArrayLike<number | bigint>)) if (Number(p) < 0 || Number(p) >= limit) throw new Error(`forward: position ${p} is outside 0…${limit - 1}, the device-resident graph's rotary table`);
    }
    if (this.options.kvCache) {
      const past = input.past ?? this.emptyCache(B);
      for (let i = 0; i < L; i++) {
        feeds[io.pastKey(i)] = new ort.Tensor("float32", past.keys[i]!, [B, cache.key[0], past.length, cache.key[1]]);
        feeds[io.pastValue(i)] = new ort.Tensor("float32", past.values[i]!, [B, cache.value[0], past.length, cache.value[1]]);
      }
    }
    if (this.options.padding) {
      const T = (input.past?.length ?? 0) + S;
      if (input.attentionMask && input.attentionMask.length !== B * T) throw new Error(`forward: attentionMask must be [${B}*${T}]`);
      feeds[io.attentionMask] = new ort.Tensor("int64", input.attentionMask ? toI64(input.attentionMask) : new BigInt64Array(B * T).fill(1n), [B, T]);
    } else if (input.attentionMask) throw new Error("forward: this graph was built without padding (no attention_mask input)");
    const out = await this.session.run(feeds);
    const f32 = (name: string) => out[name]!.data as Float32Array;
    const result: ForwardOutput = { logits: f32(io.logits), lastHidden: f32(io.lastHidden) };
    if (result.logits.length !== B * S * V) throw new Error("forward: unexpected logits size");
    if (this.options.kvCache) {
      const length = (input.past?.length ?? 0) + S;
      result.present = { length, keys: Array.from({ length: L }, (_, i) => f32(io.presentKey(i))), values: Array.from({ length: L }, (_, i) => f32(io.presentValue(i))) };
    }
    if (this.options.trace)
      result.trace = moeLayerIndices(this.config).map((i) => ({
        layer: i,
        routerLogits: f32(io.routerLogits(i)),
        mask: f32(io.mask(i)),
        weights: f32(io.weights(i)),
        k: out[io.k(i)]!.data as BigInt64Array,
        ...(out[io.dropped(i)] ? { dropped: f32(io.dropped(i)) } : {}),
        ...(out[io.scores(i)] ? { scores: f32(io.scores(i)) } : {}),
      }));
    this.refuseNoColumn(result, B * S);
    if (this.options.lens) result.hidden = Array.from({ length: L }, (_, i) => f32(io.hidden(i)));
    return result;
  }

  /**
   * Several records in one forward (no cache): padded to the longest on the right or the left, padding hidden from
   * attention and from Uni-MoE's dynamic routing (graph built with `padding`). Returns each record's own rows, as its
   * forward alone would: logits, last hidden, trace and residual streams of its real tokens (no KV cache).
   */
  async forwardBatch(records: BatchRecord[], o: { padding?: "left" | "right"; interventions?: Interventions } = {}): Promise<ForwardOutput[]> {
    if (!this.options.padding) throw new Error("forwardBatch: the graph was built without padding (MoeGraphOptions.padding)");
    const { H, V } = moeDims(this.config);
    const lens = records.map((r) => r.positions.length / 3);
    if (lens.some((n) => !Number.isInteger(n) || n < 1)) throw new Error("forwardBatch: every record needs [3*len] positions, len >= 1");
    const B = records.length, S = Math.max(...lens);
    const left = o.padding === "left";
    const at = (r: number, s: number) => r * S + (left ? S - lens[r]! : 0) + s; // row of token s of record r
    const ids = new BigInt64Array(B * S), positions = new BigInt64Array(3 * B * S), mask = new Int32Array(B * S);
    const embeds = this.options.embeds ? new Float32Array(B * S * H) : undefined;
    records.forEach((rec, r) => {
      const n = lens[r]!;
      for (let s = 0; s < n; s++) {
        const q = at(r, s);
        mask[q] = 1;
        for (let a = 0; a < 3; a++) positions[a * B * S + q] = BigInt(rec.positions[a * n + s]!);
        if (embeds) embeds.set(rec.embeds!.subarray(s * H, (s + 1) * H), q * H);
        else ids[q] = BigInt(rec.ids![s]!);
      }
    });
    const out = await this.forward({ batch: B, seq: S, ...(embeds ? { embeds } : { ids }), positions, interventions: o.interventions, attentionMask: mask, past: this.options.kvCache ? this.emptyCache(B) : undefined });
    const rows = <T extends Float32Array | BigInt64Array>(a: T, width: number, r: number): T => {
      const n = lens[r]!, first = at(r, 0);
      return a.slice(first * width, (first + n) * width) as T;
    };
    return records.map((_, r) => ({
      logits: rows(out.logits, V, r),
      lastHidden: rows(out.lastHidden, H, r),
      ...(out.trace
        ? {
            trace: out.trace.map((t) => {
              const E = t.mask.length / (B * S);
              return {
                layer: t.layer,
                routerLogits: rows(t.routerLogits, E, r),
                mask: rows(t.mask, E, r),
                weights: rows(t.weights, E, r),
                k: rows(t.k, 1, r),
                ...(t.scores ? { scores: rows(t.scores, t.scores.length / (B * S), r) } : {}),
              };
            }),
          }
        : {}),
      ...(out.hidden ? { hidden: out.hidden.map((h) => rows(h, H, r)) } : {}),
    }));
  }

  /** "position" token drop can leave a token with no expert; the release raises there, and so does this (grin-routing.ts). */
  private refuseNoColumn(result: ForwardOutput, n: number): void {
    const c = this.config;
    if (!c.token_drop || c.mlp_fixed_expert_num === 0 || dropPolicy(c) !== "position") return;
    if (result.trace) result.trace.forEach((t, i) => checkNoColumn(c, i, t.mask, n));
    else if (result.logits.some(Number.isNaN)) throw new Error(noColumnMessage(c, n, "a token of this call"));
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}
