/**
 * Incremental routing aggregate: sums only, never the trace. Memory is bounded by
 * (#groups × #modalities × #phases present) × L × (D² + small) + the transition matrices, whatever the
 * number of tokens added. Sums are kept per bucket (group, modality, phase), created on first use, so a
 * query can combine any of them. `metrics()` returns the same shapes as computeMetrics (metrics.ts),
 * with `perToken: null`; the count-based metrics equal those of the concatenated traces exactly, and
 * the float sums (entropy, null/shared weight) up to summation order.
 */
import { z } from "zod";
import type { ExpertInfo, Modality, Phase, RoutingTrace } from "../trace";
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

  /** `transitions`: layer pairs whose top-expert transitions are counted (default every (i, i + 1)). */
  constructor(experts: readonly ExpertInfo[], numLayers: number, transitions?: readonly LayerPair[]) {
    if (!Number.isInteger(numLayers) || numLayers < 0) throw new RangeError(`numLayers must be a non-negative integer, got ${numLayers}`);
    this.experts = experts.map((e) => ({ name: e.name, role: e.role }));
    this.numLayers = numLayers;
    this.lay = expertLayout(this.experts);
    this.pairs = checkPairs(transitions ?? adjacentPairs(numLayers), numLayers);
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
    return this;
  }

  /** Adds another aggregate's sums into this one (same experts, layers and transition pairs). */
  merge(other: RoutingAggregate): this {
    this.checkCompatible(other.experts, other.numLayers, "the other aggregate");
    const samePairs = other.pairs.length === this.pairs.length && other.pairs.every(([i, j], p) => i === this.pairs[p]![0] && j === this.pairs[p]![1]);
    if (!samePairs) throw new Error("the other aggregate counts transitions over different layer pairs");
    for (const b of other.buckets.values()) {
      const mine = this.bucket(b.group, b.modality, b.phase);
      addSums(mine.sums, b.sums);
      mine.traces += b.traces;
    }
    for (const [g, n] of other.tracesByGroup) this.tracesByGroup.set(g, (this.tracesByGroup.get(g) ?? 0) + n);
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
    return finalize(this.matching(q), this.experts, this.lay, this.pairs, null);
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
      if (sub.tokens > 0) out[k] = finalize(sub, this.experts, this.lay, this.pairs, null);
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
    };
  }

  /** Rebuilds an aggregate from `toJSON()` output (object or JSON text); throws a clear error when invalid. */
  static fromJSON(input: unknown): RoutingAggregate {
    const raw = typeof input === "string" ? parseJSON(input) : input;
    const parsed = aggregateSchema.safeParse(raw);
    if (!parsed.success) throw new Error(`invalid routing aggregate: ${formatIssues(parsed.error.issues)}`);
    const j = parsed.data;
    const agg = new RoutingAggregate(j.experts, j.numLayers, j.transitionPairs as LayerPair[]);
    const D = agg.lay.D;
    const len = (where: string, a: number[], n: number) => {
      if (a.length !== n) throw new Error(`invalid routing aggregate: ${where} has ${a.length} values, expected ${n}`);
      return Float64Array.from(a);
    };
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
          kHist: len(`${w}.kHist`, l.kHist, D + 1),
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
    return agg;
  }
}

const count = z.number().finite().nonnegative();
const aggregateSchema = z.object({
  kind: z.literal("routing-aggregate"),
  version: z.literal(1),
  experts: z.array(z.object({ name: z.string(), role: z.enum(["routed", "null", "shared"]) })),
  numLayers: z.number().int().nonnegative(),
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
});

export type AggregateJSON = z.infer<typeof aggregateSchema>;
