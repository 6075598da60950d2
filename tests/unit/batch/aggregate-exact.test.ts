import { describe, expect, it } from "vitest";
import { parseRecordGroup, recordGroup, RoutingAggregate } from "../../../engine/routing/aggregate";
import { expertVocabulary, groupsBy, taskSpecialisation } from "../../../engine/routing/specialisation";
import { mulberry32, syntheticTrace } from "../../../engine/routing/synthetic";
import type { RoutingTrace } from "../../../engine/trace";

const TASKS = ["caption", "math", "translate"];
const LABELS = ["easy", "hard"];

/** N seeded records: a trace each (token ids drawn from a small vocabulary so ids repeat), a task and a label. */
function records(n: number, seed: number) {
  const rnd = mulberry32(seed);
  return Array.from({ length: n }, (_, i) => {
    const trace = syntheticTrace({ seed: seed * 1000 + i, layers: 3, tokens: 5 + Math.floor(rnd() * 30), routed: 5, nulls: 1, shared: 1, modalities: ["text", "image"] });
    for (const t of trace.tokens) {
      t.id = Math.floor(rnd() * 40);
      t.text = `w${t.id}`;
    }
    return { trace, task: TASKS[Math.floor(rnd() * 3)]!, label: LABELS[Math.floor(rnd() * 2)]! };
  });
}

/**
 * Independent reference: plain loops over the traces' arrays (no core.ts): per layer, selections of
 * each dynamic column, k histogram and co-activation, restricted to records matching `keep`.
 */
function reference(recs: { trace: RoutingTrace; task: string; label: string }[], keep: (r: { task: string; label: string }) => boolean) {
  const experts = recs[0]!.trace.experts;
  const dyn = experts.map((e, c) => [e, c] as const).filter(([e]) => e.role !== "shared").map(([, c]) => c);
  const D = dyn.length;
  const L = recs[0]!.trace.layers.length;
  const out = Array.from({ length: L }, () => ({ sel: new Array(D).fill(0), k: new Array(D + 2).fill(0), co: new Array(D * D).fill(0), tokens: 0 }));
  for (const r of recs) {
    if (!keep(r)) continue;
    const E = experts.length;
    r.trace.layers.forEach((layer, l) => {
      for (let t = 0; t < r.trace.tokens.length; t++) {
        out[l]!.tokens++;
        out[l]!.k[layer.k[t]!]++;
        const chosen = dyn.map((c, d) => (layer.mask[t * E + c] ? d : -1)).filter((d) => d >= 0);
        for (const a of chosen) {
          out[l]!.sel[a]++;
          for (const b of chosen) out[l]!.co[a * D + b]++;
        }
      }
    });
  }
  return out;
}

function build(recs: ReturnType<typeof records>) {
  const agg = new RoutingAggregate(recs[0]!.trace.experts, 3, undefined, { vocabulary: true });
  for (const r of recs) agg.add(r.trace, { group: recordGroup(r.task, r.label) });
  return agg;
}

/** Sum of one-record aggregates, each through JSON (as the batch store keeps them). */
function sumOfPartials(recs: ReturnType<typeof records>) {
  let total: RoutingAggregate | undefined;
  for (const r of recs) {
    const one = new RoutingAggregate(r.trace.experts, 3, undefined, { vocabulary: true }).add(r.trace, { group: recordGroup(r.task, r.label) });
    const back = RoutingAggregate.fromJSON(JSON.stringify(one.toJSON()));
    total ??= back.emptyLike();
    total.merge(back);
  }
  return total!;
}

function expectCountsMatch(agg: RoutingAggregate, recs: ReturnType<typeof records>, query: { group?: string[] }, keep: (r: { task: string; label: string }) => boolean) {
  const want = reference(recs, keep);
  const m = agg.metrics(query);
  m.layers.forEach((l, i) => {
    expect(l.tokens).toBe(want[i]!.tokens);
    expect(l.selectionCounts).toEqual(want[i]!.sel);
    expect(l.kCounts).toEqual(want[i]!.k);
    expect(Array.from(l.coactivation)).toEqual(want[i]!.co);
  });
}

describe("dataset aggregation is exact", () => {
  const recs = records(60, 7);

  it("the aggregate of N records equals the reference sums over the N traces, overall and per task and label", () => {
    const agg = build(recs);
    expectCountsMatch(agg, recs, {}, () => true);
    const byTask = groupsBy(agg, "task");
    expect([...byTask.keys()]).toEqual(TASKS);
    for (const [task, groups] of byTask) expectCountsMatch(agg, recs, { group: groups }, (r) => r.task === task);
    for (const [label, groups] of groupsBy(agg, "label")) expectCountsMatch(agg, recs, { group: groups }, (r) => r.label === label);
    expect(agg.counts().traces[recordGroup("math", "easy")]).toBe(recs.filter((r) => r.task === "math" && r.label === "easy").length);
  });

  it("summing one-record partials (through JSON) equals adding the traces: counts exactly, float sums to 1e-12", () => {
    const direct = build(recs);
    const summed = sumOfPartials(recs);
    const a = direct.toJSON();
    const b = summed.toJSON();
    const sortB = (j: typeof a) => [...j.buckets].sort((x, y) => JSON.stringify([x.group, x.modality, x.phase]).localeCompare(JSON.stringify([y.group, y.modality, y.phase])));
    const ba = sortB(a);
    const bb = sortB(b);
    expect(bb.length).toBe(ba.length);
    ba.forEach((x, i) => {
      const y = bb[i]!;
      expect([y.group, y.modality, y.phase, y.tokens, y.traces]).toEqual([x.group, x.modality, x.phase, x.tokens, x.traces]);
      x.layers.forEach((lx, l) => {
        const ly = y.layers[l]!;
        for (const k of ["selections", "kHist", "coactivation", "topCounts"] as const) expect(ly[k]).toEqual(lx[k]);
        expect([ly.nullTokens, ly.nullOnlyTokens]).toEqual([lx.nullTokens, lx.nullOnlyTokens]);
        for (const k of ["entropy", "nullWeight", "sharedWeight"] as const) expect(Math.abs(ly[k] - lx[k])).toBeLessThanOrEqual(1e-12 * Math.max(1, Math.abs(lx[k])));
      });
      expect(y.transitions).toEqual(x.transitions);
    });
    expect(b.vocabulary).toEqual(a.vocabulary);
  });

  it("incremental: the aggregate of 40 records plus 20 added later equals the aggregate of all 60 computed at once", () => {
    const first = sumOfPartials(recs.slice(0, 40));
    const later = sumOfPartials(recs.slice(40));
    const incremental = RoutingAggregate.fromJSON(first.toJSON()).merge(later);
    const full = sumOfPartials(recs);
    expect(incremental.metrics().layers.map((l) => l.selectionCounts)).toEqual(full.metrics().layers.map((l) => l.selectionCounts));
    expect(incremental.counts()).toEqual(full.counts());
    expect(incremental.vocabulary!.toJSON()).toEqual(full.vocabulary!.toJSON());
    expectCountsMatch(incremental, recs, {}, () => true);
  });

  it("vocabulary counts equal a per-(layer, token id, expert) reference loop; occurrences count tokens", () => {
    const agg = build(recs);
    const v = agg.vocabulary!;
    const E = recs[0]!.trace.experts.length;
    const dyn = [0, 1, 2, 3, 4, 5]; // 5 routed + 1 null, shared column 6 excluded
    const want = new Map<string, number>();
    const occ = new Map<number, number>();
    for (const r of recs) {
      r.trace.tokens.forEach((t, i) => {
        occ.set(t.id, (occ.get(t.id) ?? 0) + 1);
        r.trace.layers.forEach((layer, l) => dyn.forEach((c, d) => layer.mask[i * E + c] && want.set(`${l}:${t.id}:${d}`, (want.get(`${l}:${t.id}:${d}`) ?? 0) + 1)));
      });
    }
    for (const [key, n] of want) {
      const [l, id, d] = key.split(":").map(Number) as [number, number, number];
      expect(v.counts(l, id)[d]).toBe(n);
    }
    expect(v.entries().map(([id, , n]) => [id, n])).toEqual([...occ.entries()].sort((a, b) => a[0] - b[0]));
  });

  it("a vocabulary cap keeps totals exact and moves the excess ids to an overflow row", () => {
    const capped = new RoutingAggregate(recs[0]!.trace.experts, 3, undefined, { vocabulary: { maxTokens: 10 } });
    for (const r of recs) capped.add(r.trace, { group: recordGroup(r.task, r.label) });
    const v = capped.vocabulary!;
    expect(v.size).toBe(10);
    const all = capped.metrics().layers;
    for (let l = 0; l < 3; l++) {
      const total = new Float64Array(6);
      for (const row of v.layerRows(l).values()) row.forEach((c, d) => (total[d]! += c));
      v.overflowRow(l).forEach((c, d) => (total[d]! += c));
      expect(Array.from(total)).toEqual(all[l]!.selectionCounts);
    }
    expect(v.entries().reduce((a, [, , n]) => a + n, 0) + v.overflowTokens).toBe(capped.counts().tokens);
  });
});

describe("specialisation views", () => {
  it("expertVocabulary: top tokens per expert with counts, shares of the expert and of the token", () => {
    const recs = records(30, 3);
    const agg = build(recs);
    const view = expertVocabulary(agg, 1, 5);
    expect(view.map((e) => e.expert)).toEqual(["E1", "E2", "E3", "E4", "E5", "null"]);
    const sel = agg.metrics().layers[1]!.selectionCounts;
    view.forEach((e, d) => {
      expect(e.selections).toBe(sel[d]);
      expect(e.top.length).toBeLessThanOrEqual(5);
      for (let i = 1; i < e.top.length; i++) expect(e.top[i - 1]!.count).toBeGreaterThanOrEqual(e.top[i]!.count);
      for (const t of e.top) {
        expect(t.count).toBe(agg.vocabulary!.counts(1, t.id)[d]);
        expect(t.shareOfExpert).toBeCloseTo(t.count / e.selections, 12);
        const occ = agg.vocabulary!.entries().find(([id]) => id === t.id)![2];
        expect(t.shareOfToken).toBeCloseTo(t.count / occ, 12);
        expect(t.text).toBe(`w${t.id}`);
      }
    });
  });

  it("taskSpecialisation: lift = task share / overall share, by hand on two one-token tasks", () => {
    const experts = [
      { name: "A", role: "routed" as const },
      { name: "B", role: "routed" as const },
    ];
    const one = (sel: [number, number]): RoutingTrace => ({
      kind: "routing-trace",
      model: "m",
      convention: "c",
      experts,
      tokens: [{ id: 1, text: "x", modality: "text", position: [0, 0, 0], phase: "prefill" }],
      layers: [{ routerLogits: Float32Array.from([0, 0]), mask: Uint8Array.from(sel), weights: Float32Array.from(sel.map((s) => s / (sel[0] + sel[1]))), k: Int32Array.from([sel[0] + sel[1]]) }],
    });
    const agg = new RoutingAggregate(experts, 1);
    agg.add(one([1, 0]), { group: recordGroup("t1", "") }); // t1 → A
    agg.add(one([1, 1]), { group: recordGroup("t2", "") }); // t2 → A, B
    agg.add(one([0, 1]), { group: recordGroup("t2", "") }); // t2 → B
    const spec = taskSpecialisation(agg, 0);
    // overall: A 2/4, B 2/4. t1: A 1/1 → lift 2, B 0. t2: A 1/3 → 2/3, B 2/3 → 4/3.
    expect(spec.map((s) => s.task)).toEqual(["t1", "t2"]);
    expect(spec[0]!.experts.map((e) => [e.expert, e.lift])).toEqual([["A", 2], ["B", 0]]);
    expect(spec[1]!.experts[0]!.expert).toBe("B");
    expect(spec[1]!.experts[0]!.lift).toBeCloseTo(4 / 3, 12);
    expect(spec[1]!.experts[1]!.lift).toBeCloseTo(2 / 3, 12);
    expect(spec[1]!.tokens).toBe(2);
  });

  it("record groups round-trip; plain groups read as tasks", () => {
    expect(parseRecordGroup(recordGroup("a,b", 'q"'))).toEqual({ task: "a,b", label: 'q"' });
    expect(parseRecordGroup("default")).toEqual({ task: "default", label: "" });
  });
});
