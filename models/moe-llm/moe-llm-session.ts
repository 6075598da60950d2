import * as ort from "onnxruntime-node";
import { resolveTopK, resolveTopP, type MoeLlmConfig } from "./config";
import { checkNoColumn, dropPolicy, noColumnMessage } from "./grin-routing";
import { buildMoeLlmGraph, GRAPH_BUILDER_VERSION, io, type MoeGraphOptions, moeDims, TOP_P_EXACT_SINCE } from "./moe-llm-graph";
import { kvCacheDims } from "./decoder/attention";
import { contextLimit } from "./context-limit";
import { ropeTableSize } from "./decoder/fused";
import { architectureOf, moeLayerIndices } from "../families/conventions";
import type { WeightSource } from "../io/weights";
import type { BatchWindow } from "@/engine/batch/window";
import { SESSION_CONFIG_ENTRIES } from "@/engine/runtime/providers";

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
  /**
   * The routing Top-P override in (0, 1] (dynamic-capacity routers); absent = the model's own P. The graph's top_p is
   * fed the P in force (`resolveTopP`, config.ts) — an override equal to the model's P routes exactly as none.
   */
  topP?: number;
  /** The top-k override (fixed-k routers); absent = the model's k. The graph's top_k is fed the k in force (`resolveTopK`). */
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

/** A key for "same interventions" (requests with different ones cannot share a forward); topP, topK: the values fed. */
function interventionsKey(iv: Interventions = {}, topP: number, topK: number): string {
  const arr = (a: Float32Array | undefined) => (a && a.some((v) => v !== 0) ? Array.from(a).join(",") : "");
  return [arr(iv.routerBias), arr(iv.ban), arr(iv.force), topP, topK].join("|");
}

const sessionIds = new WeakMap<object, number>();
let nextSessionId = 0;
const sessionId = (s: object) => {
  let id = sessionIds.get(s);
  if (id === undefined) sessionIds.set(s, (id = nextSessionId++));
  return id;
};

/**
 * The KV cache of one padded forward, shared by its records: [B, heads, T, dim] per layer and the mask [B*T] that
 * says which of each row's keys are real. A record's own cache (PaddedKvView) is this plus its row; the next padded
 * step of the same records feeds it back as it is (no copy), the mask extended by their new tokens.
 */
interface PaddedCache {
  cache: KvCache;
  mask: Int32Array;
  batch: number;
}

type KvDims = { key: [number, number]; value: [number, number] };

/** A cache that is a view of a larger buffer: its own compact [1, heads, length, dim] arrays are built once, if read. */
abstract class KvView implements KvCache {
  private own?: { keys: Float32Array[]; values: Float32Array[] };
  constructor(
    readonly length: number,
    protected readonly dims: KvDims,
  ) {}
  get keys(): Float32Array[] {
    return (this.own ??= this.compact()).keys;
  }
  get values(): Float32Array[] {
    return (this.own ??= this.compact()).values;
  }
  protected abstract compact(): { keys: Float32Array[]; values: Float32Array[] };
}

/** One record's cache inside a PaddedCache. */
class PaddedKvView extends KvView {
  constructor(
    readonly shared: PaddedCache,
    readonly row: number,
    length: number,
    dims: KvDims,
  ) {
    super(length, dims);
  }
  protected compact() {
    const { cache, mask, batch } = this.shared;
    const T = cache.length, r = this.row;
    const real: number[] = [];
    for (let t = 0; t < T; t++) if (mask[r * T + t]) real.push(t);
    if (real.length !== this.length) throw new Error(`internal: padded cache row ${r} has ${real.length} real keys, expected ${this.length}`);
    const pick = (a: Float32Array, heads: number, dim: number) => {
      if (a.length !== batch * heads * T * dim) throw new Error("internal: padded cache size");
      const o = new Float32Array(heads * real.length * dim);
      for (let h = 0; h < heads; h++) real.forEach((t, j) => o.set(a.subarray(((r * heads + h) * T + t) * dim, ((r * heads + h) * T + t + 1) * dim), (h * real.length + j) * dim));
      return o;
    };
    return { keys: cache.keys.map((k) => pick(k, ...this.dims.key)), values: cache.values.map((v) => pick(v, ...this.dims.value)) };
  }
}

/**
 * Tokens a KV store grows by when full. Not doubling: onnxruntime-node copies every fetched output, the shared present
 * included, into a new JS buffer, so each step pays for the whole capacity (docs/benchmarks.md, "Decode twin").
 */
export const KV_STORE_GROWTH = 64;

/**
 * Capacity buffers per layer for one sequence's in-place decode steps: [1, heads, capacity, dim] ("heads": the
 * GroupQueryAttention twin shares them as past and present) or [capacity, heads·dim] ("positions": the decode-step
 * graph reads the first rows as its past and the runner appends each new token's row). `tip` is the length of the
 * newest cache written into it: a step may only continue the cache that ends there (claimKvStore).
 */
interface KvStore {
  keys: Float32Array[];
  values: Float32Array[];
  capacity: number;
  tip: number;
  layout: KvLayout;
}

type KvLayout = "heads" | "positions";

/** Position t of head h in a store buffer (index of its first element). */
function storeOffset(layout: KvLayout, capacity: number, heads: number, dim: number, h: number, t: number): number {
  return layout === "heads" ? (h * capacity + t) * dim : (t * heads + h) * dim;
}

/**
 * The cache after an in-place decode step: the first `length` positions of a KvStore. Later steps write only positions
 * at or past their past's length, so this view stays valid; its compact [1, heads, length, dim] arrays are copied out
 * only if read (e.g. by a graph that is not the twin).
 */
export class InPlaceKvCache extends KvView {
  constructor(
    readonly store: KvStore,
    length: number,
    dims: KvDims,
  ) {
    super(length, dims);
  }
  protected compact() {
    const { store, length: n } = this;
    const pick = (a: Float32Array, [heads, dim]: [number, number]) => {
      const o = new Float32Array(heads * n * dim);
      if (store.layout === "heads") for (let h = 0; h < heads; h++) o.set(a.subarray(h * store.capacity * dim, (h * store.capacity + n) * dim), h * n * dim);
      else for (let h = 0; h < heads; h++) for (let t = 0; t < n; t++) o.set(a.subarray((t * heads + h) * dim, (t * heads + h + 1) * dim), (h * n + t) * dim);
      return o;
    };
    return { keys: store.keys.map((k) => pick(k, this.dims.key)), values: store.values.map((v) => pick(v, this.dims.value)) };
  }
}

/**
 * The store a one-token step after `past` writes into, claimed for that step (its tip moves to past.length + 1 before
 * the run, so a second step from the same past, even a concurrent one, branches instead of overwriting): the past's
 * own store when it ends there and has room; otherwise a new one with the past copied in (a prefill's cache, a branch
 * from an older cache, or a full store).
 */
function claimKvStore(past: KvCache, dims: KvDims, layout: KvLayout): KvStore {
  const n = past.length;
  let store: KvStore;
  const from = past instanceof InPlaceKvCache ? past.store : undefined;
  if (from && from.layout === layout && from.tip === n && from.capacity > n) store = from;
  else {
    const capacity = n + KV_STORE_GROWTH;
    const copy = (which: "keys" | "values", [heads, dim]: [number, number]) =>
      Array.from({ length: past instanceof InPlaceKvCache ? past.store.keys.length : past.keys.length }, (_, l) => {
        const o = new Float32Array(heads * capacity * dim);
        // the source: a store (its own layout and capacity) or a compact [1, heads, n, dim] cache
        const src = from ? from[which][l]! : past[which][l]!;
        const [srcLayout, srcCapacity] = from ? [from.layout, from.capacity] : (["heads", n] as const);
        if (!from && src.length !== heads * n * dim) throw new Error(`forward: past ${which} of layer ${l} must be [1*${heads}*${n}*${dim}]`);
        if (srcLayout === layout && layout === "heads") for (let h = 0; h < heads; h++) o.set(src.subarray(h * srcCapacity * dim, (h * srcCapacity + n) * dim), h * capacity * dim);
        else if (srcLayout === layout) o.set(src.subarray(0, n * heads * dim));
        else
          for (let h = 0; h < heads; h++)
            for (let t = 0; t < n; t++) {
              const at = storeOffset(srcLayout, srcCapacity, heads, dim, h, t);
              o.set(src.subarray(at, at + dim), storeOffset(layout, capacity, heads, dim, h, t));
            }
        return o;
      });
    store = { keys: copy("keys", dims.key), values: copy("values", dims.value), capacity, tip: n, layout };
  }
  store.tip = n + 1;
  return store;
}

/** What a runner may have besides its graph. */
export interface RunnerExtras {
  /** With a window (graph built with `padding`): one-record forwards are coalesced with other records' (see forward). */
  window?: BatchWindow;
  /** The GRAPH_BUILDER_VERSION the graph was built with (an import records its own; default: this build's). */
  builderVersion?: number;
  /** With a decode twin: one-token steps of one sequence after a cache run on it (see withDecodeTwin). */
  decodeTwin?: MoeLlmRunner;
  /**
   * A decode twin's device-resident graph on the CPU: one-token steps of one sequence update the KV cache in place
   * (InPlaceKvCache). Set by withDecodeTwin.
   */
  kvInPlace?: boolean;
}

/** Runs the decoder graph with onnxruntime-node (CPU unless other providers are passed in `sessionOptions`). */
export class MoeLlmRunner {
  private constructor(
    readonly config: MoeLlmConfig,
    readonly options: MoeGraphOptions,
    readonly session: ort.InferenceSession,
    /** the serialized model (e.g. to cache on disk by content hash) */
    readonly model: Uint8Array,
    /** What a runner may have besides its graph: see RunnerExtras. */
    readonly extras: RunnerExtras = {},
  ) {}

  /** The most tokens a sequence may hold (read once: the configuration is not read at every decode step). */
  private contextMax?: ReturnType<typeof contextLimit>;

  /**
   * The graph's top_p feed: the P in force; a graph built before TOP_P_EXACT_SINCE (an older import) reads 0 as the
   * config's P and is fed as it was then, so it routes exactly as before.
   */
  topPFeed(override: number | undefined): number {
    return this.builderVersion < TOP_P_EXACT_SINCE ? (override ?? 0) : resolveTopP(this.config, override);
  }

  static async create(config: MoeLlmConfig, weights: WeightSource, options: MoeGraphOptions, sessionOptions: ort.InferenceSession.SessionOptions = {}): Promise<MoeLlmRunner> {
    const model = buildMoeLlmGraph(config, weights, options);
    const session = await ort.InferenceSession.create(model, { graphOptimizationLevel: "all", logSeverityLevel: 3, extra: SESSION_CONFIG_ENTRIES, ...sessionOptions });
    return new MoeLlmRunner(config, options, session, model);
  }

  /** Wraps a session made elsewhere (e.g. the engine's session pool) from a graph built with `options`. */
  static fromSession(config: MoeLlmConfig, options: MoeGraphOptions, session: ort.InferenceSession, model: Uint8Array = new Uint8Array(), extras: RunnerExtras = {}): MoeLlmRunner {
    if (extras.window && !options.padding) throw new Error("MoeLlmRunner: coalescing forwards needs a graph built with padding");
    return new MoeLlmRunner(config, options, session, model, extras);
  }

  private get window(): BatchWindow | undefined {
    return this.extras.window;
  }

  /** The GRAPH_BUILDER_VERSION the graph was built with (an import records its own): decides how top_p is fed. */
  get builderVersion(): number {
    return this.extras.builderVersion ?? GRAPH_BUILDER_VERSION;
  }

  /**
   * This runner with a decode twin: a runner of the same model whose graph differs only in the expert dispatch and
   * the device-resident form (`moe: "dense"`, `gpu`; see decodeTwinOptions in moe-llm-model.ts). Every decode step of
   * ONE sequence (batch 1, one new token after a non-empty cache, no attention mask; with `gpu`, a position inside its
   * rotary table) runs on the twin; everything else (prefill, padded batches) on this runner. The KV-cache layout and the routing block are the same, so a generation's ids and routing are
   * those of this runner alone and its logits agree within float32 rounding (tests/unit/models/moe-llm/decode-twin.test.ts).
   * The twin's session is not released by this runner. When the twin is the device-resident form (lengths as inputs),
   * its steps update the KV cache in place (InPlaceKvCache) unless `kvInPlace` is false.
   */
  withDecodeTwin(twin: MoeLlmRunner, o: { kvInPlace?: boolean } = {}): MoeLlmRunner {
    const a = this.options as unknown as Record<string, unknown>, b = twin.options as unknown as Record<string, unknown>;
    const own = new Set(["moe", "gpu", "decodeStep", "expertsOp"]);
    const differ = [...new Set([...Object.keys(a), ...Object.keys(b)])].some((k) => !own.has(k) && a[k] !== b[k]);
    if (!this.options.kvCache || differ || twin.config !== this.config)
      throw new Error("withDecodeTwin: the twin must be a KV-cache graph of the same model whose options differ only in `moe`, `gpu`, `decodeStep` and `expertsOp`");
    const inPlace = o.kvInPlace !== false && !!twin.options.gpu;
    if (twin.options.decodeStep && !inPlace) throw new Error("withDecodeTwin: a decode-step twin keeps its cache in place (kvInPlace)");
    const decodeTwin = new MoeLlmRunner(twin.config, twin.options, twin.session, twin.model, { ...twin.extras, kvInPlace: inPlace });
    return new MoeLlmRunner(this.config, this.options, this.session, this.model, { ...this.extras, decodeTwin });
  }

  /** An empty cache for `batch` sequences. */
  emptyCache(batch: number): KvCache {
    const { L } = moeDims(this.config);
    void batch;
    return { length: 0, keys: Array.from({ length: L }, () => new Float32Array(0)), values: Array.from({ length: L }, () => new Float32Array(0)) };
  }

  /**
   * One forward. With a batch window, a one-record prefill (no past) or one-token decode step (with past) is queued
   * and run with the other records' requests of the same kind as ONE padded forward (forwardPadded); the result is
   * this record's own, as its forward alone would give (routing exact, logits within float32 rounding).
   */
  async forward(input: ForwardInput): Promise<ForwardOutput> {
    const past = input.past?.length ?? 0;
    if (this.window && input.batch === 1 && !input.attentionMask && (past === 0 || input.seq === 1) && (past === 0 || this.options.kvCache)) {
      const kind = past === 0 ? "prefill" : "decode";
      const key = `${sessionId(this.session)}|${JSON.stringify(this.options)}|${kind}|${interventionsKey(input.interventions, this.topPFeed(input.interventions?.topP), resolveTopK(this.config, input.interventions?.topK))}`;
      return this.window.submit(key, input, past + input.seq, (inputs: ForwardInput[]) => this.forwardPadded(inputs));
    }
    return this.forwardDirect(input);
  }

  /**
   * Several one-record requests (batch 1; each a prompt with no past, or tokens after its own cache) as ONE forward
   * (graph built with `padding`, same interventions for all): the caches are padded to the longest past and the new
   * tokens to the longest request, on the right, and the attention mask hides every pad. Record r's keys are laid
   * out as [its past | pads | its new tokens | pads]; its outputs are its own rows, and its present cache is a view of
   * the batch's (PaddedKvView: its real rows, copied out only if read), so the next step of the same records feeds
   * the batch's cache back without copying. What each record gets is what its forward alone returns.
   */
  async forwardPadded(inputs: ForwardInput[]): Promise<ForwardOutput[]> {
    if (inputs.length === 1 && !(inputs[0]!.past instanceof PaddedKvView)) return [await this.forwardDirect(inputs[0]!)];
    if (!this.options.padding) throw new Error("forwardPadded: the graph was built without padding (MoeGraphOptions.padding)");
    const { L, H, V } = moeDims(this.config);
    const dims = kvCacheDims(this.config);
    const B = inputs.length;
    for (const x of inputs) if (x.batch !== 1 || x.attentionMask) throw new Error("forwardPadded: every request is one record without its own mask");
    const lens = inputs.map((x) => x.seq), pasts = inputs.map((x) => x.past?.length ?? 0);
    const S = Math.max(...lens);
    if (pasts.some((p) => p > 0) && !this.options.kvCache) throw new Error("forwardPadded: a past cache needs a kvCache graph");
    // The same records as the previous padded step, each once: its cache is fed back as it is (row r of the request
    // in row[r]); otherwise each record's cache is copied in after its past: [past | pads].
    const views = inputs.map((x) => (x.past instanceof PaddedKvView ? x.past : undefined));
    const shared = views[0]?.shared;
    const reuse = shared !== undefined && shared.batch === B && views.every((v) => v?.shared === shared) && new Set(views.map((v) => v!.row)).size === B;
    const row = reuse ? views.map((v) => v!.row) : inputs.map((_, r) => r);
    const P = reuse ? shared!.cache.length : Math.max(...pasts), T = P + S;
    const embeds = this.options.embeds ? new Float32Array(B * S * H) : undefined;
    const ids = embeds ? undefined : new BigInt64Array(B * S);
    const positions = new BigInt64Array(3 * B * S), mask = new Int32Array(B * T);
    inputs.forEach((x, i) => {
      const n = lens[i]!, r = row[i]!;
      if (x.positions.length !== 3 * n) throw new Error(`forward: positions must be [3*1*${n}]`);
      if (embeds) {
        if (!x.embeds || x.embeds.length !== n * H) throw new Error(`forward: embeds must be [1*${n}*${H}]`);
        embeds.set(x.embeds, r * S * H);
      } else {
        if (!x.ids || x.ids.length !== n) throw new Error(`forward: ids must be [1*${n}]`);
        const xi = x.ids;
        for (let s = 0; s < n; s++) ids![r * S + s] = typeof xi[s] === "bigint" ? (xi[s] as bigint) : BigInt(xi[s] as number);
      }
      for (let a = 0; a < 3; a++) for (let s = 0; s < n; s++) positions[a * B * S + r * S + s] = BigInt(x.positions[a * n + s]!);
      if (reuse) mask.set(shared!.mask.subarray(r * P, (r + 1) * P), r * T);
      else mask.fill(1, r * T, r * T + pasts[i]!);
      mask.fill(1, r * T + P, r * T + P + n);
    });
    let past: KvCache | undefined;
    if (reuse) past = shared!.cache;
    else if (this.options.kvCache) {
      // [B, heads, P, dim]: each record's past at the start of its row, pads after it
      const pad = (which: "keys" | "values", l: number) => {
        const [heads, dim] = which === "keys" ? dims.key : dims.value;
        const out = new Float32Array(B * heads * P * dim);
        inputs.forEach((x, r) => {
          const p = pasts[r]!;
          if (p === 0) return;
          const src = x.past![which][l]!;
          if (src.length !== heads * p * dim) throw new Error(`forward: past ${which} of layer ${l} must be [1*${heads}*${p}*${dim}]`);
          for (let h = 0; h < heads; h++) out.set(src.subarray(h * p * dim, (h + 1) * p * dim), (r * heads + h) * P * dim);
        });
        return out;
      };
      past = { length: P, keys: Array.from({ length: L }, (_, l) => pad("keys", l)), values: Array.from({ length: L }, (_, l) => pad("values", l)) };
    }
    const out = await this.forwardDirect({ batch: B, seq: S, ...(embeds ? { embeds } : { ids }), positions, past, interventions: inputs[0]!.interventions, attentionMask: mask });
    const next: PaddedCache | undefined = out.present ? { cache: out.present, mask, batch: B } : undefined;
    const rows = <A extends Float32Array | BigInt64Array>(a: A, width: number, i: number): A => a.slice(row[i]! * S * width, (row[i]! * S + lens[i]!) * width) as A;
    return inputs.map((_, i) => {
      const res: ForwardOutput = { logits: rows(out.logits, V, i), lastHidden: rows(out.lastHidden, H, i) };
      if (next) res.present = new PaddedKvView(next, row[i]!, pasts[i]! + lens[i]!, dims);
      if (out.trace)
        res.trace = out.trace.map((t) => {
          const E = t.mask.length / (B * S);
          return {
            layer: t.layer,
            routerLogits: rows(t.routerLogits, E, i),
            mask: rows(t.mask, E, i),
            weights: rows(t.weights, E, i),
            k: rows(t.k, 1, i),
            ...(t.scores ? { scores: rows(t.scores, t.scores.length / (B * S), i) } : {}),
          };
        });
      if (out.hidden) res.hidden = out.hidden.map((h) => rows(h, H, i));
      return res;
    });
  }

  /** One forward as given (no coalescing). */
  async forwardDirect(input: ForwardInput): Promise<ForwardOutput> {
    if (this.twinTakes(input)) return this.extras.decodeTwin!.forwardDirect(input);
    const inPlace = this.extras.kvInPlace && input.batch === 1 && input.seq === 1 && !input.attentionMask && (input.past?.length ?? 0) > 0;
    return this.run(input, inPlace ? claimKvStore(input.past!, kvCacheDims(this.config), this.options.decodeStep ? "positions" : "heads") : undefined);
  }

  /** The forward; with `store`, a one-token step whose past is the store's first past.length positions, written in place. */
  private async run(input: ForwardInput, store?: KvStore): Promise<ForwardOutput> {
    const { L, E, H, V } = moeDims(this.config);
    const cache = kvCacheDims(this.config);
    const arch = architectureOf(this.config);
    const { batch: B, seq: S } = input;
    const context = (input.past?.length ?? 0) + S;
    const limit = (this.contextMax ??= contextLimit(this.config));
    if (context > limit.tokens) throw new Error(`the sequence has ${context.toLocaleString("en")} tokens; at most ${limit.by} fit; shorten the prompt or generate fewer tokens`);
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
    feeds[io.topP] = new ort.Tensor("float32", new Float32Array([this.topPFeed(iv.topP)]), [1]);
    // any graph takes the k in force: those before top_k meant exactly k read an override equal to the model's k as none
    if (this.session.inputNames.includes(io.topK)) feeds[io.topK] = new ort.Tensor("float32", new Float32Array([resolveTopK(this.config, iv.topK)]), [1]);
    else if (iv.topK !== undefined) throw new Error(`${this.config.model_type}: this graph has no top-k input (${arch.routing === "uni_moe_top_p" ? "a dynamic-capacity router chooses k by Top-P" : "it was built before top-k overrides existed; import the model again"})`);
    if (this.session.inputNames.includes(io.totalLength)) {
      // the device-resident graph (MoeGraphOptions.gpu): lengths as inputs, positions within its float table
      const T = (input.past?.length ?? 0) + S;
      feeds[io.totalLength] = new ort.Tensor("int32", Int32Array.of(T), []);
      feeds[io.seqlensK] = new ort.Tensor("int32", new Int32Array(B).fill(T - 1), [B]);
      const limit = ropeTableSize(this.config);
      for (const p of Array.from(input.positions as ArrayLike<number | bigint>)) if (Number(p) < 0 || Number(p) >= limit) throw new Error(`forward: position ${p} is outside 0…${limit - 1}, the device-resident graph's rotary table`);
    }
    // with a store: past and present are the same capacity buffers, which GroupQueryAttention then shares (it writes
    // only the new token's keys; lengths come from seqlens_k / total_sequence_length); every other output is fetched
    let fetches: Record<string, ort.Tensor | null> | undefined;
    const step = this.options.decodeStep;
    if (step && (!store || B !== 1 || S !== 1)) throw new Error("forward: the decode-step graph takes one new token of one sequence after a cache held in place");
    if (step) {
      // the past is the first rows of the store, wrapped (not copied); the new token's row is appended after the run
      const n = input.past!.length;
      for (let i = 0; i < L; i++) {
        feeds[io.pastKey(i)] = new ort.Tensor("float32", store!.keys[i]!.subarray(0, n * cache.key[0] * cache.key[1]), [n, cache.key[0] * cache.key[1]]);
        feeds[io.pastValue(i)] = new ort.Tensor("float32", store!.values[i]!.subarray(0, n * cache.value[0] * cache.value[1]), [n, cache.value[0] * cache.value[1]]);
      }
    } else if (store) {
      fetches = Object.fromEntries(this.session.outputNames.map((n) => [n, null]));
      for (let i = 0; i < L; i++) {
        const key = new ort.Tensor("float32", store.keys[i]!, [1, cache.key[0], store.capacity, cache.key[1]]);
        const value = new ort.Tensor("float32", store.values[i]!, [1, cache.value[0], store.capacity, cache.value[1]]);
        feeds[io.pastKey(i)] = fetches[io.presentKey(i)] = key;
        feeds[io.pastValue(i)] = fetches[io.presentValue(i)] = value;
      }
    } else if (this.options.kvCache) {
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
    const out = fetches ? await this.session.run(feeds, fetches) : await this.session.run(feeds);
    const f32 = (name: string) => out[name]!.data as Float32Array;
    const result: ForwardOutput = { logits: f32(io.logits), lastHidden: f32(io.lastHidden) };
    if (result.logits.length !== B * S * V) throw new Error("forward: unexpected logits size");
    if (step) {
      const n = input.past!.length, keys = f32(io.newKeys), values = f32(io.newValues);
      const kw = cache.key[0] * cache.key[1], vw = cache.value[0] * cache.value[1];
      for (let i = 0; i < L; i++) {
        store!.keys[i]!.set(keys.subarray(i * kw, (i + 1) * kw), n * kw);
        store!.values[i]!.set(values.subarray(i * vw, (i + 1) * vw), n * vw);
      }
    }
    if (store) result.present = new InPlaceKvCache(store, input.past!.length + S, cache);
    else if (this.options.kvCache) {
      const length = (input.past?.length ?? 0) + S;
      result.present = { length, keys: Array.from({ length: L }, (_, i) => f32(io.presentKey(i))), values: Array.from({ length: L }, (_, i) => f32(io.presentValue(i))) };
    }
    if (this.options.trace && step) {
      const logits = f32(io.packedTrace.routerLogits), mask = f32(io.packedTrace.mask), weights = f32(io.packedTrace.weights), k = out[io.packedTrace.k]!.data as BigInt64Array;
      result.trace = moeLayerIndices(this.config).map((i, j) => ({
        layer: i,
        routerLogits: logits.slice(j * E, (j + 1) * E),
        mask: mask.slice(j * E, (j + 1) * E),
        weights: weights.slice(j * E, (j + 1) * E),
        k: k.slice(j, j + 1),
        ...(out[io.dropped(i)] ? { dropped: f32(io.dropped(i)) } : {}),
        ...(out[io.scores(i)] ? { scores: f32(io.scores(i)) } : {}),
      }));
    } else if (this.options.trace)
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

  private twinTakes(input: ForwardInput): boolean {
    const twin = this.extras.decodeTwin;
    if (!twin || input.batch !== 1 || input.seq !== 1 || !input.past?.length || input.attentionMask) return false;
    const limit = ropeTableSize(this.config);
    return !twin.options.gpu || Array.from(input.positions as ArrayLike<number | bigint>).every((p) => Number(p) >= 0 && Number(p) < limit);
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
    const out = await this.forwardDirect({ batch: B, seq: S, ...(embeds ? { embeds } : { ids }), positions, interventions: o.interventions, attentionMask: mask, past: this.options.kvCache ? this.emptyCache(B) : undefined });
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
