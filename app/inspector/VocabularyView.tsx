"use client";
import { useMemo, useState } from "react";
import type { RoutingAggregate } from "@/engine/routing/aggregate";
import { expertVocabulary, taskSpecialisation, type GroupField } from "@/engine/routing/specialisation";

/** A token's text as shown in a table: whitespace and control characters made visible. */
function showToken(text: string): string {
  const t = text.replace(/\n/g, "⏎").replace(/\t/g, "⇥").replace(/ /g, "·");
  return t === "" ? "∅" : t;
}

/**
 * Per expert at a chosen layer, the tokens it receives most often (count, share of the expert's inputs,
 * share of that token's occurrences); per task, the experts most over-represented against the overall mix.
 */
export function VocabularyView({ agg, field }: { agg: RoutingAggregate; field: GroupField }) {
  const [layer, setLayer] = useState(0);
  const [top, setTop] = useState(8);
  const vocab = useMemo(() => (agg.vocabulary ? expertVocabulary(agg, layer, top) : null), [agg, layer, top]);
  const spec = useMemo(() => taskSpecialisation(agg, layer, field), [agg, layer, field]);
  const pct = (v: number) => `${(v * 100).toFixed(1)} %`;
  return (
    <div className="inspector-body" style={{ gridTemplateColumns: "1fr" }} data-testid="vocabulary-view">
      <section className="wide">
        <label>
          Layer{" "}
          <select value={layer} onChange={(e) => setLayer(Number(e.target.value))} data-testid="vocab-layer">
            {Array.from({ length: agg.numLayers }, (_, l) => (
              <option key={l} value={l}>
                L{l}
              </option>
            ))}
          </select>
        </label>{" "}
        <label>
          Tokens per expert{" "}
          <select value={top} onChange={(e) => setTop(Number(e.target.value))}>
            {[5, 8, 15, 30].map((n) => (
              <option key={n}>{n}</option>
            ))}
          </select>
        </label>
        {agg.vocabulary && agg.vocabulary.overflowTokens > 0 && (
          <span className="muted"> · {agg.vocabulary.overflowTokens} tokens beyond the {agg.vocabulary.maxTokens}-id cap are counted in totals only</span>
        )}
      </section>
      <section className="wide">
        <h3>Experts over-represented per {field} at L{layer} (share of the {field}&apos;s selections ÷ share overall)</h3>
        <table className="balance" data-testid="spec-table">
          <thead>
            <tr>
              <th>{field}</th>
              <th>tokens</th>
              <th>most over-represented</th>
              <th>least</th>
            </tr>
          </thead>
          <tbody>
            {spec.map((s) => {
              const used = s.experts.filter((e) => e.lift !== null);
              const fmt = (e: (typeof used)[number]) => `${e.expert} ×${e.lift!.toFixed(2)} (${pct(e.share)} vs ${pct(e.overallShare)})`;
              return (
                <tr key={s.task}>
                  <td>{s.task === "" ? "(none)" : s.task}</td>
                  <td>{s.tokens}</td>
                  <td>{used.slice(0, 3).filter((e) => e.lift! > 1).map(fmt).join(" · ") || <span className="muted">none above ×1</span>}</td>
                  <td>{used.length > 3 ? fmt(used[used.length - 1]!) : ""}</td>
                </tr>
              );
            })}
          </tbody>
        </table>
      </section>
      <section className="wide">
        <h3>Tokens each expert receives most often at L{layer}</h3>
        {!vocab && <p className="muted">This aggregate has no vocabulary counts.</p>}
        {vocab && (
          <table className="balance" data-testid="vocab-table">
            <thead>
              <tr>
                <th>expert</th>
                <th>selections</th>
                <th>top tokens: count (share of the expert · share of the token&apos;s uses)</th>
              </tr>
            </thead>
            <tbody>
              {vocab.map((e) => (
                <tr key={e.expert}>
                  <td>
                    {e.expert}
                    {e.role === "null" ? " (null)" : ""}
                  </td>
                  <td>{e.selections}</td>
                  <td>
                    {e.top.map((t) => (
                      <span key={t.id} className="vocab-token" title={`token id ${t.id}`} style={{ marginRight: 10, whiteSpace: "nowrap" }}>
                        <code>{showToken(t.text)}</code> {t.count} ({pct(t.shareOfExpert)} · {pct(t.shareOfToken)})
                      </span>
                    ))}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </section>
    </div>
  );
}
