/**
 * Incremental routing aggregate: sums only, never the trace. Memory is bounded by
 * (#groups × #modalities × #phases present) × L × (D² + small) + the transition matrices, whatever the
 * number of tokens added. Sums are kept per bucket (group, modality, phase), created on first use, so a
 * query can combine any of them. `metrics()` returns the same shapes as computeMetrics (metrics.ts),
 * with `perToken: null`; the count-based metrics equal those of the concatenated traces exactly, and
 * the float sums (entropy, null/shared weight) up to summation order.
 */
import { z } from "zod";
import { layerIds, type ExpertInfo, type Modality, type Phase, type RoutingTrace } from "../trace";
import {
  MODALITY_ORDER,
  PHASE_ORDER,
  accumulate,
  addSums,
  adjacentPairs,
  checkPairs,
  emptySums,
  expertLayout,
  orderKeys,
  type ExpertLayout,
  type LayerPair,
  type Sums,
} from "./core";
import { formatIssues, parseJSON } from "./json";
import { checkShapes, finalize, selectTokens, type RoutingMetrics, type SplitKey, type TokenFilter } from "./metrics";

export const DEFAULT_GROUP = "default";

/** Default cap on distinct token ids the vocabulary counts keep per aggregate (see VocabularyCounts). */
export const DEFAULT_MAX_VOCABULARY = 65_536;

export interface AggregateOptions {
  /** Count, per layer, how often each token id selected each dynamic expert (off by default). */
  vocabulary?: boolean | { maxTokens?: number };
}

/**
 * A dataset record's group key: task and label together, so one aggregate answers "by task", "by label"
 * and "by task and label" exactly (a query unions the matching groups). Missing values are "".
 */
export function recordGroup(task: string | undefined, label: string | undefined): string {
  return JSON.stringify([task ?? "", label ?? ""]);
}

/** Inverse of `recordGroup`; a group that is not one (e.g. "default") is read as task = the group. */
export function parseRecordGroup(group: string): { task: string; label: string } {
  if (group.startsWith("[")) {
    try {
      const v = JSON.parse(group) as unknown;
      if (Array.isArray(v) && v.length === 2 && typeof v[0] === "string" && typeof v[1] === "string") return { task: v[0], label: v[1] };
    } catch {
      /* not a record group */
    }
  }
  return { task: group, label: "" };
}

export interface AggregateQuery {
  group?: string | readonly string[];
  modality?: Modality | readonly Modality[];
  phase?: Phase | readonly Phase[];
}

export interface AddOptions {
  /** Bucket the tokens under this group (default "default"), e.g. a task or a prompt set. */
  group?: string;
  /** Only add these tokens of the trace. */
  filter?: TokenFilter;
}

interface Bucket {
  group: string;
  modality: string;
  phase: string;
  traces: number;
  sums: Sums;
}

const key = (g: string, m: string, p: string) => JSON.stringify([g, m, p]);

export class RoutingAggregate {
  readonly experts: ExpertInfo[];
  readonly numLayers: number;
  readonly pairs: LayerPair[];
  private readonly lay: ExpertLayout;
  private readonly buckets = new Map<string, Bucket>();
  private readonly tracesByGroup = new Map<string, number>();
  /** Per-token-id expert counts, when asked for (options.vocabulary). */
  readonly vocabulary: VocabularyCounts | null;
  /** Decoder index of each layer (from the traces: a model with dense layers has gaps); null = 0..numLayers-1. */
  private layerIdsOf: number[] | null = null;

  /** `transitions`: layer pairs whose top-expert transitions are counted (default every (i, i + 1)). */
  constructor(experts: readonly ExpertInfo[], numLayers: number, transitions?: readonly LayerPair[], options: AggregateOptions = {}) {
    if (!Number.isInteger(numLayers) || numLayers < 0) throw new RangeError(`numLayers must be a non-negative integer, got ${numLayers}`);
    this.experts = experts.map((e) => ({ name: e.name, role: e.role }));
    this.numLayers = numLayers;
    this.lay = expertLayout(this.experts);
    this.pairs = checkPairs(transitions ?? adjacentPairs(numLayers), numLayers);
    const v = options.vocabulary;
    this.vocabulary = v ? new VocabularyCounts(this.lay.D, numLayers, typeof v === "object" ? v.maxTokens : undefined) : null;
  }

  /** An empty aggregate with the same experts, layers, transition pairs and vocabulary setting. */
  emptyLike(): RoutingAggregate {
    const out = new RoutingAggregate(this.experts, this.numLayers, this.pairs, { vocabulary: this.vocabulary ? { maxTokens: this.vocabulary.maxTokens } : false });
    out.layerIdsOf = this.layerIdsOf;
    return out;
  }

  /** Keeps the traces' decoder indices (they must agree) so the metrics name layers as the traces do. */
  private takeLayerIds(ids: number[] | null, what: string): void {
    if (ids === null || ids.every((v, i) => v === i)) ids = null;
    if (this.layerIdsOf === null && this.tracesByGroup.size === 0) this.layerIdsOf = ids;
    else if ((this.layerIdsOf ?? []).join() !== (ids ?? []).join()) throw new Error(`${what} has layers [${ids ?? "0.."}], the aggregate [${this.layerIdsOf ?? "0.."}]`);
  }

  private labelled(m: RoutingMetrics): RoutingMetrics {
    if (this.layerIdsOf) m.layers.forEach((l, i) => (l.layer = this.layerIdsOf![i]!));
    return m;
  }

  /** Dynamic experts (routed + null) in the column order the sums use. */
  dynamicExperts(): ExpertInfo[] {
    return Array.from(this.lay.dynCols, (c) => this.experts[c]!);
  }

  /** Raw per-layer selection counts [D] of the tokens matching `query` (what the shares are made of). */
  selections(query: AggregateQuery = {}): Float64Array[] {
    return this.matching(query).layers.map((l) => l.selections);
  }

  private bucket(group: string, modality: string, phase: string): Bucket {
    const k = key(group, modality, phase);
    let b = this.buckets.get(k);
    if (!b) this.buckets.set(k, (b = { group, modality, phase, traces: 0, sums: emptySums(this.lay, this.numLayers, this.pairs.length) }));
    return b;
  }

  private checkCompatible(experts: readonly ExpertInfo[], numLayers: number, what: string): void {
    if (numLayers !== this.numLayers) throw new Error(`${what} has ${numLayers} layers, the aggregate ${this.numLayers}`);
    const same = experts.length === this.experts.length && experts.every((e, i) => e.name === this.experts[i]!.name && e.role === this.experts[i]!.role);
    if (!same) {
      const fmt = (x: readonly ExpertInfo[]) => x.map((e) => `${e.name}:${e.role}`).join(", ");
      throw new Error(`${what} has experts [${fmt(experts)}], the aggregate [${fmt(this.experts)}]`);
    }
  }

  /** Adds the sums of a trace's tokens (the trace is not kept). */
  add(trace: RoutingTrace, options: AddOptions = {}): this {
    this.checkCompatible(trace.experts, trace.layers.length, "the trace");
    checkShapes(trace);
    this.takeLayerIds(layerIds(trace), "the trace");
    const group = options.group ?? DEFAULT_GROUP;
    const rows = selectTokens(trace, options.filter);
    const parts = new Map<string, { m: string; p: string; rows: number[] }>();
    for (const r of rows) {
      const t = trace.tokens[r]!;
      const k = key(group, t.modality, t.phase);
      let part = parts.get(k);
      if (!part) parts.set(k, (part = { m: t.modality, p: t.phase, rows: [] }));
      part.rows.push(r);
    }
    for (const part of parts.values()) {
      const b = this.bucket(group, part.m, part.p);
      accumulate(b.sums, this.lay, trace, Int32Array.from(part.rows), this.pairs);
      b.traces++;
    }
    this.tracesByGroup.set(group, (this.tracesByGroup.get(group) ?? 0) + 1);
    this.vocabulary?.add(trace, rows, this.lay);
    return this;
  }

  /** Adds another aggregate's sums into this one (same experts, layers and transition pairs). */
  merge(other: RoutingAggregate): this {
    this.checkCompatible(other.experts, other.numLayers, "the other aggregate");
    const samePairs = other.pairs.length === this.pairs.length && other.pairs.every(([i, j], p) => i === this.pairs[p]![0] && j === this.pairs[p]![1]);
    if (!samePairs) throw new Error("the other aggregate counts transitions over different layer pairs");
    if (other.tracesByGroup.size > 0) this.takeLayerIds(other.layerIdsOf, "the other aggregate");
    for (const b of other.buckets.values()) {
      const mine = this.bucket(b.group, b.modality, b.phase);
      addSums(mine.sums, b.sums);
      mine.traces += b.traces;
    }
    for (const [g, n] of other.tracesByGroup) this.tracesByGroup.set(g, (this.tracesByGroup.get(g) ?? 0) + n);
    if (this.vocabulary && other.vocabulary) this.vocabulary.merge(other.vocabulary);
    else if (this.vocabulary) throw new Error("the other aggregate has no vocabulary counts, this one does");
    return this;
  }

  groups(): string[] {
    return [...new Set([...this.tracesByGroup.keys(), ...[...this.buckets.values()].map((b) => b.group)])].sort();
  }

  /** Token counts in total, per group, per modality and per phase; traces added per group. */
  counts(): { tokens: number; byGroup: Record<string, number>; byModality: Record<string, number>; byPhase: Record<string, number>; traces: Record<string, number> } {
    const out = { tokens: 0, byGroup: {} as Record<string, number>, byModality: {} as Record<string, number>, byPhase: {} as Record<string, number>, traces: Object.fromEntries(this.tracesByGroup) };
    for (const b of this.buckets.values()) {
      const n = b.sums.tokens;
      out.tokens += n;
      out.byGroup[b.group] = (out.byGroup[b.group] ?? 0) + n;
      out.byModality[b.modality] = (out.byModality[b.modality] ?? 0) + n;
      out.byPhase[b.phase] = (out.byPhase[b.phase] ?? 0) + n;
    }
    return out;
  }

  private matching(q: AggregateQuery): Sums {
    const set = <T extends string>(v: T | readonly T[] | undefined) => (v === undefined ? null : new Set<string>(typeof v === "string" ? [v] : v));
    const gs = set(q.group);
    const ms = set(q.modality);
    const ps = set(q.phase);
    const out = emptySums(this.lay, this.numLayers, this.pairs.length);
    // Fixed bucket order (group, modality, phase) so results do not depend on insertion order.
    const sorted = [...this.buckets.values()].sort((a, b) => (a.group < b.group ? -1 : a.group > b.group ? 1 : 0) || MODALITY_ORDER.indexOf(a.modality as Modality) - MODALITY_ORDER.indexOf(b.modality as Modality) || PHASE_ORDER.indexOf(a.phase as Phase) - PHASE_ORDER.indexOf(b.phase as Phase));
    for (const b of sorted) {
      if ((!gs || gs.has(b.group)) && (!ms || ms.has(b.modality)) && (!ps || ps.has(b.phase))) addSums(out, b.sums);
    }
    return out;
  }

  /** Metrics of all tokens added, of one group (string) or of any combination of groups/modalities/phases. */
  metrics(query?: string | AggregateQuery): RoutingMetrics {
    const q = typeof query === "string" ? { group: query } : (query ?? {});
    return this.labelled(finalize(this.matching(q), this.experts, this.lay, this.pairs, null));
  }

  /** One RoutingMetrics per modality or phase present (within `query`), in canonical order. */
  metricsBy(splitBy: SplitKey | "group", query?: string | AggregateQuery): Record<string, RoutingMetrics> {
    const q = typeof query === "string" ? { group: query } : (query ?? {});
    const present = new Set<string>();
    for (const b of this.buckets.values()) if (b.sums.tokens > 0) present.add(splitBy === "group" ? b.group : splitBy === "modality" ? b.modality : b.phase);
    const order = splitBy === "modality" ? MODALITY_ORDER : splitBy === "phase" ? PHASE_ORDER : [];
    const out: Record<string, RoutingMetrics> = {};
    for (const k of orderKeys(present, order)) {
      const sub = this.matching({ ...q, [splitBy]: k });
      if (sub.tokens > 0) out[k] = this.labelled(finalize(sub, this.experts, this.lay, this.pairs, null));
    }
    return out;
  }

  toJSON(): AggregateJSON {
    const arr = (a: Float64Array) => Array.from(a);
    return {
      kind: "routing-aggregate",
      version: 1,
      experts: this.experts,
      numLayers: this.numLayers,
      ...(this.layerIdsOf ? { layerIds: [...this.layerIdsOf] } : {}),
      transitionPairs: this.pairs.map(([i, j]) => [i, j]),
      traces: Object.fromEntries(this.tracesByGroup),
      buckets: [...this.buckets.values()].map((b) => ({
        group: b.group,
        modality: b.modality,
        phase: b.phase,
        traces: b.traces,
        tokens: b.sums.tokens,
        layers: b.sums.layers.map((l) => ({
          selections: arr(l.selections),
          kHist: arr(l.kHist),
          nullTokens: l.nullTokens,
          nullOnlyTokens: l.nullOnlyTokens,
          nullWeight: l.nullWeight,
          sharedWeight: l.sharedWeight,
          entropy: l.entropy,
          coactivation: arr(l.coactivation),
          topCounts: arr(l.topCounts),
        })),
        transitions: b.sums.transitions.map(arr),
      })),
      ...(this.vocabulary ? { vocabulary: this.vocabulary.toJSON() } : {}),
    };
  }

  /** Rebuilds an aggregate from `toJSON()` output (object or JSON text); throws a clear error when invalid. */
  static fromJSON(input: unknown): RoutingAggregate {
    const raw = typeof input === "string" ? parseJSON(input) : input;
    const parsed = aggregateSchema.safeParse(raw);
    if (!parsed.success) throw new Error(`invalid routing aggregate: ${formatIssues(parsed.error.issues)}`);
    const j = parsed.data;
    const agg = new RoutingAggregate(j.experts, j.numLayers, j.transitionPairs as LayerPair[], { vocabulary: j.vocabulary ? { maxTokens: j.vocabulary.maxTokens } : false });
    const D = agg.lay.D;
    const len = (where: string, a: number[], n: number) => {
      if (a.length !== n) throw new Error(`invalid routing aggregate: ${where} has ${a.length} values, expected ${n}`);
      return Float64Array.from(a);
    };
    // k histograms: D + 2 buckets (k > D last); aggregates written before that bucket existed have D + 1
    const kBuckets = (h: Float64Array) => (h.length === D + 2 ? h : Float64Array.from({ length: D + 2 }, (_, k) => h[k] ?? 0));
    j.buckets.forEach((b, bi) => {
      if (b.layers.length !== j.numLayers) throw new Error(`invalid routing aggregate: buckets[${bi}] has ${b.layers.length} layers, expected ${j.numLayers}`);
      if (b.transitions.length !== agg.pairs.length) throw new Error(`invalid routing aggregate: buckets[${bi}] has ${b.transitions.length} transition matrices, expected ${agg.pairs.length}`);
      const mine = agg.bucket(b.group, b.modality, b.phase);
      mine.traces = b.traces;
      mine.sums.tokens = b.tokens;
      mine.sums.byModality = { [b.modality]: b.tokens };
      mine.sums.byPhase = { [b.phase]: b.tokens };
      mine.sums.layers = b.layers.map((l, li) => {
        const w = `buckets[${bi}].layers[${li}]`;
        return {
          selections: len(`${w}.selections`, l.selections, D),
          kHist: kBuckets(len(`${w}.kHist`, l.kHist, l.kHist.length === D + 1 ? D + 1 : D + 2)),
          nullTokens: l.nullTokens,
          nullOnlyTokens: l.nullOnlyTokens,
          nullWeight: l.nullWeight,
          sharedWeight: l.sharedWeight,
          entropy: l.entropy,
          coactivation: len(`${w}.coactivation`, l.coactivation, D * D),
          topCounts: len(`${w}.topCounts`, l.topCounts, D),
        };
      });
      mine.sums.transitions = b.transitions.map((t, p) => len(`buckets[${bi}].transitions[${p}]`, t, D * D));
    });
    for (const [g, n] of Object.entries(j.traces)) agg.tracesByGroup.set(g, n);
    if (j.layerIds) {
      if (j.layerIds.length !== j.numLayers) throw new Error(`invalid routing aggregate: layerIds has ${j.layerIds.length} values, expected ${j.numLayers}`);
      agg.layerIdsOf = j.layerIds;
    }
    if (j.vocabulary) agg.vocabulary!.load(j.vocabulary);
    return agg;
  }
}

const count = z.number().finite().nonnegative();
const aggregateSchema = z.object({
  kind: z.literal("routing-aggregate"),
  version: z.literal(1),
  experts: z.array(z.object({ name: z.string(), role: z.enum(["routed", "null", "shared"]) })),
  numLayers: z.number().int().nonnegative(),
  layerIds: z.array(z.number().int().nonnegative()).optional(),
  transitionPairs: z.array(z.tuple([z.number().int().nonnegative(), z.number().int().nonnegative()])),
  traces: z.record(z.string(), z.number().int().nonnegative()),
  buckets: z.array(
    z.object({
      group: z.string(),
      modality: z.string(),
      phase: z.string(),
      traces: z.number().int().nonnegative(),
      tokens: z.number().int().nonnegative(),
      layers: z.array(
        z.object({
          selections: z.array(count),
          kHist: z.array(count),
          nullTokens: count,
          nullOnlyTokens: count,
          nullWeight: z.number().finite(),
          sharedWeight: z.number().finite(),
          entropy: z.number().finite(),
          coactivation: z.array(count),
          topCounts: z.array(count),
        }),
      ),
      transitions: z.array(z.array(count)),
    }),
  ),
  vocabulary: z
    .object({
      maxTokens: z.number().int().positive(),
      tokens: z.array(z.tuple([z.number().int(), z.string(), count])),
      overflowTokens: count,
      layers: z.array(z.object({ ids: z.array(z.number().int()), counts: z.array(count), overflow: z.array(count) })),
    })
    .optional(),
});

export type VocabularyJSON = NonNullable<z.infer<typeof aggregateSchema>["vocabulary"]>;

/**
 * Per layer, how many times each token id selected each dynamic expert: a Map from token id to a [D]
 * row of counts, plus each id's text and occurrences. Exact while at most `maxTokens` distinct ids have
 * been seen (enough for the byte-level tiny tokenizer and for any dataset's working vocabulary up to the
 * cap); tokens of ids beyond the cap are still counted, in a per-layer `overflow` row and
 * `overflowTokens`, so every total stays exact and only their per-id breakdown is dropped. Memory is
 * O(L × maxTokens × D) whatever the number of records.
 */
export class VocabularyCounts {
  readonly maxTokens: number;
  /** token id → [text, occurrences (tokens added, each counted once — every token passes every layer)]. */
  private readonly tokens = new Map<number, [string, number]>();
  private readonly perLayer: Map<number, Float64Array>[];
  private readonly overflow: Float64Array[];
  overflowTokens = 0;

  constructor(readonly D: number, readonly numLayers: number, maxTokens = DEFAULT_MAX_VOCABULARY) {
    if (!Number.isInteger(maxTokens) || maxTokens < 1) throw new RangeError(`vocabulary maxTokens must be a positive integer, got ${maxTokens}`);
    this.maxTokens = maxTokens;
    this.perLayer = Array.from({ length: numLayers }, () => new Map());
    this.overflow = Array.from({ length: numLayers }, () => new Float64Array(D));
  }

  /** True when an id is tracked (existing, or room for a new one: it is then registered). */
  private admit(id: number, text: string, occurrences: number): boolean {
    const t = this.tokens.get(id);
    if (t) {
      t[1] += occurrences;
      return true;
    }
    if (this.tokens.size >= this.maxTokens) {
      this.overflowTokens += occurrences;
      return false;
    }
    this.tokens.set(id, [text, occurrences]);
    return true;
  }

  private row(l: number, id: number): Float64Array {
    const m = this.perLayer[l]!;
    let r = m.get(id);
    if (!r) m.set(id, (r = new Float64Array(this.D)));
    return r;
  }

  add(trace: RoutingTrace, rows: Int32Array, lay: ExpertLayout): void {
    const { E, D, dynCols } = lay;
    for (let i = 0; i < rows.length; i++) {
      const r = rows[i]!;
      const tok = trace.tokens[r]!;
      const tracked = this.admit(tok.id, tok.text, 1);
      for (let l = 0; l < this.numLayers; l++) {
        const mask = trace.layers[l]!.mask;
        const target = tracked ? this.row(l, tok.id) : this.overflow[l]!;
        for (let d = 0; d < D; d++) if (mask[r * E + dynCols[d]!] !== 0) target[d]!++;
      }
    }
  }

  merge(other: VocabularyCounts): void {
    if (other.D !== this.D || other.numLayers !== this.numLayers) throw new Error("vocabulary counts of different shapes cannot be merged");
    // Ascending ids, so which ids make the cap does not depend on the other map's insertion order.
    for (const id of [...other.tokens.keys()].sort((a, b) => a - b)) {
      const [text, occ] = other.tokens.get(id)!;
      const tracked = this.admit(id, text, occ);
      for (let l = 0; l < this.numLayers; l++) {
        const src = other.perLayer[l]!.get(id);
        if (!src) continue;
        const dst = tracked ? this.row(l, id) : this.overflow[l]!;
        for (let d = 0; d < this.D; d++) dst[d]! += src[d]!;
      }
    }
    this.overflowTokens += other.overflowTokens;
    for (let l = 0; l < this.numLayers; l++) for (let d = 0; d < this.D; d++) this.overflow[l]![d]! += other.overflow[l]![d]!;
  }

  /** Distinct token ids tracked. */
  get size(): number {
    return this.tokens.size;
  }

  /** [id, text, occurrences] of every tracked id, ascending id. */
  entries(): [number, string, number][] {
    return [...this.tokens.entries()].sort((a, b) => a[0] - b[0]).map(([id, [text, n]]) => [id, text, n]);
  }

  /** Counts [D] of one token id at one layer (zeros when never seen). */
  counts(layer: number, id: number): Float64Array {
    return this.perLayer[layer]?.get(id) ?? new Float64Array(this.D);
  }

  /** Per-layer rows: token id → [D] counts (read only). */
  layerRows(layer: number): ReadonlyMap<number, Float64Array> {
    const m = this.perLayer[layer];
    if (!m) throw new RangeError(`layer ${layer} is outside 0..${this.numLayers - 1}`);
    return m;
  }

  overflowRow(layer: number): Float64Array {
    return this.overflow[layer]!;
  }

  toJSON(): VocabularyJSON {
    return {
      maxTokens: this.maxTokens,
      tokens: this.entries(),
      overflowTokens: this.overflowTokens,
      layers: this.perLayer.map((m, l) => {
        const ids = [...m.keys()].sort((a, b) => a - b);
        const counts: number[] = [];
        for (const id of ids) counts.push(...m.get(id)!);
        return { ids, counts, overflow: Array.from(this.overflow[l]!) };
      }),
    };
  }

  load(j: VocabularyJSON): void {
    if (j.layers.length !== this.numLayers) throw new Error(`invalid routing aggregate: vocabulary has ${j.layers.length} layers, expected ${this.numLayers}`);
    for (const [id, text, n] of j.tokens) this.tokens.set(id, [text, n]);
    this.overflowTokens = j.overflowTokens;
    j.layers.forEach((l, li) => {
      if (l.counts.length !== l.ids.length * this.D || l.overflow.length !== this.D) throw new Error(`invalid routing aggregate: vocabulary layer ${li} has the wrong number of counts`);
      l.ids.forEach((id, i) => {
        if (!this.tokens.has(id)) throw new Error(`invalid routing aggregate: vocabulary layer ${li} counts token ${id}, which has no entry`);
        this.perLayer[li]!.set(id, Float64Array.from(l.counts.slice(i * this.D, (i + 1) * this.D)));
      });
      this.overflow[li] = Float64Array.from(l.overflow);
    });
  }
}

export type AggregateJSON = z.infer<typeof aggregateSchema>;
