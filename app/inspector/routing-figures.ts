/**
 * The paper's Fig. 7 and Fig. 8 as stacked-bar series, one implementation for the Routing Inspector
 * (one trace) and the aggregate view (a dataset, per task): both draw them with CanvasChart's StackedBars.
 */
import type { RoutingMetrics } from "@/engine/routing/metrics";
import type { BarSeries } from "./CanvasChart";

export const PALETTE = ["#60a5fa", "#f472b6", "#34d399", "#fbbf24", "#a78bfa", "#fb923c", "#22d3ee", "#f87171", "#a3e635", "#e879f9"];
export const NULL_COLOR = "#6b7280";

export function expertColor(m: RoutingMetrics, d: number): string {
  return m.experts.dynamic[d]?.role === "null" ? NULL_COLOR : PALETTE[d % PALETTE.length]!;
}

export const layerNames = (m: RoutingMetrics) => m.layers.map((l) => `L${l.layer}`);

/**
 * Fig. 7 ("share": each dynamic expert's share of the selections per layer) or Fig. 8 ("k": share of
 * tokens by the number of experts they chose, k = 1..D; k = 0 when padding or dropped tokens have it; and
 * "k > D (none)" when some token's Top-P never reached P — Uni-MoE as released reports k = D + 1 with no
 * dynamic expert), in %.
 */
export function stackedSeries(m: RoutingMetrics, kind: "share" | "k"): BarSeries[] {
  const D = m.experts.dynamic.length;
  if (kind === "share") return m.experts.dynamic.map((e, d) => ({ name: e.name, color: expertColor(m, d), values: m.layers.map((l) => +((l.selectionShare[d] ?? 0) * 100).toFixed(2)) }));
  const ks = Array.from({ length: D + 2 }, (_, k) => k).filter((k) => (k > 0 && k <= D) || m.layers.some((l) => (l.kCounts[k] ?? 0) > 0));
  return ks.map((k) => ({
    name: k > D ? `k > ${D} (none)` : `k = ${k}`,
    color: k === 0 || k > D ? NULL_COLOR : PALETTE[(k - 1) % PALETTE.length]!,
    values: m.layers.map((l) => +((l.kShare[k] ?? 0) * 100).toFixed(2)),
  }));
}
