/**
 * Vocabulary and specialisation views of a RoutingAggregate (aggregate.ts):
 * - per expert at a layer, the token ids it receives most often (needs the aggregate's vocabulary counts);
 * - per task (or label), the experts most over-represented relative to the overall mix.
 * Everything here is read from sums; nothing walks a trace.
 */
import { parseRecordGroup, type RoutingAggregate } from "./aggregate";

export interface ExpertVocabularyEntry {
  id: number;
  text: string;
  /** Times this token selected the expert at the layer. */
  count: number;
  /** count / all selections of the expert at the layer (what share of the expert's inputs this token is). */
  shareOfExpert: number;
  /** count / occurrences of the token (how often this token goes to the expert). */
  shareOfToken: number;
}

export interface ExpertVocabulary {
  expert: string;
  role: "routed" | "null";
  /** All selections of the expert at the layer (tracked ids + overflow). */
  selections: number;
  top: ExpertVocabularyEntry[];
}

/** Per dynamic expert, its `top` most frequent tokens at `layer` (ties: lower id first). */
export function expertVocabulary(agg: RoutingAggregate, layer: number, top = 10): ExpertVocabulary[] {
  const v = agg.vocabulary;
  if (!v) throw new Error("this aggregate has no vocabulary counts (aggregate with { vocabulary: true })");
  if (!Number.isInteger(layer) || layer < 0 || layer >= agg.numLayers) throw new RangeError(`layer ${layer} is outside 0..${agg.numLayers - 1}`);
  const dyn = agg.dynamicExperts();
  const rows = v.layerRows(layer);
  const texts = new Map<number, [string, number]>(v.entries().map(([id, t, n]) => [id, [t, n]]));
  const overflow = v.overflowRow(layer);
  return dyn.map((e, d) => {
    let selections = overflow[d]!;
    const list: { id: number; count: number }[] = [];
    for (const [id, counts] of rows) {
      const c = counts[d]!;
      selections += c;
      if (c > 0) list.push({ id, count: c });
    }
    list.sort((a, b) => b.count - a.count || a.id - b.id);
    return {
      expert: e.name,
      role: e.role as "routed" | "null",
      selections,
      top: list.slice(0, top).map(({ id, count }) => {
        const [text, occ] = texts.get(id)!;
        return { id, text, count, shareOfExpert: selections > 0 ? count / selections : 0, shareOfToken: occ > 0 ? count / occ : 0 };
      }),
    };
  });
}

export type GroupField = "task" | "label";

/** The aggregate's groups per task (or label) value, for queries like `agg.metrics({ group })`. */
export function groupsBy(agg: RoutingAggregate, field: GroupField): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const g of agg.groups()) {
    const key = parseRecordGroup(g)[field];
    let list = out.get(key);
    if (!list) out.set(key, (list = []));
    list.push(g);
  }
  return new Map([...out.entries()].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)));
}

export interface ExpertLift {
  expert: string;
  role: "routed" | "null";
  /** Share of the task's selections at the layer that went to this expert. */
  share: number;
  /** The same share over all tasks. */
  overallShare: number;
  /** share / overallShare (> 1: over-represented in this task). Null when the expert is never selected overall. */
  lift: number | null;
  selections: number;
}

export interface TaskSpecialisation {
  task: string;
  tokens: number;
  /** Dynamic experts sorted by lift, most over-represented first. */
  experts: ExpertLift[];
}

/**
 * Per task (or label) at `layer`: each dynamic expert's share of the task's selections against its share
 * of all selections. Shares are of selections (a token with k experts counts k times), like Fig. 7's bars.
 */
export function taskSpecialisation(agg: RoutingAggregate, layer: number, field: GroupField = "task"): TaskSpecialisation[] {
  if (!Number.isInteger(layer) || layer < 0 || layer >= agg.numLayers) throw new RangeError(`layer ${layer} is outside 0..${agg.numLayers - 1}`);
  const dyn = agg.dynamicExperts();
  const all = agg.selections()[layer]!;
  const allTotal = all.reduce((a, b) => a + b, 0);
  const counts = agg.counts();
  const out: TaskSpecialisation[] = [];
  for (const [task, groups] of groupsBy(agg, field)) {
    const sel = agg.selections({ group: groups })[layer]!;
    const total = sel.reduce((a, b) => a + b, 0);
    const experts = dyn.map((e, d) => {
      const share = total > 0 ? sel[d]! / total : 0;
      const overallShare = allTotal > 0 ? all[d]! / allTotal : 0;
      return { expert: e.name, role: e.role as "routed" | "null", share, overallShare, lift: overallShare > 0 ? share / overallShare : null, selections: sel[d]! };
    });
    experts.sort((a, b) => (b.lift ?? -1) - (a.lift ?? -1) || (a.expert < b.expert ? -1 : 1));
    out.push({ task, tokens: groups.reduce((n, g) => n + (counts.byGroup[g] ?? 0), 0), experts });
  }
  return out;
}
