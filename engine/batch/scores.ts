/**
 * Teacher-forced NLL over a batch: the per-token `nll` of scored traces (models/moe-llm/scoring.ts) summed per record
 * group (task + label, as the routing aggregate groups), so mean NLL and perplexity per task or label are exact
 * whatever the order or caching of records. Sums only; a record contributes (Σ nll, scored tokens).
 */
import { parseRecordGroup } from "../routing/aggregate";
import type { RoutingTrace } from "../trace";

export interface NllSum {
  /** Σ NLL (nats). */
  sum: number;
  /** Scored tokens. */
  tokens: number;
  /** Records that contributed. */
  records: number;
}

/** Per record group (engine/routing/aggregate.ts recordGroup). */
export type NllTotals = Record<string, NllSum>;

/** A trace's scored tokens (those with `nll`), or null when it was not scored. */
export function traceNll(trace: RoutingTrace): { sum: number; tokens: number } | null {
  let sum = 0;
  let tokens = 0;
  for (const t of trace.tokens) {
    if (t.nll === undefined) continue;
    sum += t.nll;
    tokens++;
  }
  return tokens ? { sum, tokens } : null;
}

export function addNll(totals: NllTotals, group: string, s: { sum: number; tokens: number }): void {
  const t = (totals[group] ??= { sum: 0, tokens: 0, records: 0 });
  t.sum += s.sum;
  t.tokens += s.tokens;
  t.records++;
}

/** Totals combined by task or label ("" = records without one), in first-seen order of the groups. */
export function nllBy(totals: NllTotals, field: "task" | "label"): Map<string, NllSum> {
  const out = new Map<string, NllSum>();
  for (const [group, s] of Object.entries(totals)) {
    const key = parseRecordGroup(group)[field];
    const t = out.get(key) ?? { sum: 0, tokens: 0, records: 0 };
    out.set(key, { sum: t.sum + s.sum, tokens: t.tokens + s.tokens, records: t.records + s.records });
  }
  return out;
}

/** Every group together. */
export function nllAll(totals: NllTotals): NllSum {
  const out = { sum: 0, tokens: 0, records: 0 };
  for (const s of Object.values(totals)) {
    out.sum += s.sum;
    out.tokens += s.tokens;
    out.records += s.records;
  }
  return out;
}

export const meanNll = (s: NllSum | undefined): number => (s && s.tokens ? s.sum / s.tokens : NaN);
