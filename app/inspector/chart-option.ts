import { escapeHtml } from "@/app/lib/escape-html";
import type { EChartsOption } from "./echarts";

type Formatter = (...args: unknown[]) => unknown;
type Tooltip = { formatter?: unknown };
type WithTooltip = { tooltip?: Tooltip | Tooltip[] };

const asText = (out: unknown) => (typeof out === "string" ? escapeHtml(out) : out);

function textFormatter(tooltip: Tooltip): Tooltip {
  const f = tooltip.formatter;
  if (typeof f !== "function") return tooltip; // template strings: ECharts escapes what it fills in
  return {
    ...tooltip,
    formatter: (params: unknown, ticket: unknown, callback?: (ticket: unknown, html: unknown) => void) =>
      // The third argument answers later (an asynchronous tooltip): what it is given is text too.
      asText((f as Formatter)(params, ticket, callback && ((t: unknown, html: unknown) => callback(t, asText(html))))),
  };
}

function withTextTooltip<T>(o: T): T {
  const t = o && typeof o === "object" && !Array.isArray(o) ? (o as WithTooltip).tooltip : undefined;
  if (!t || typeof t !== "object") return o;
  return { ...o, tooltip: Array.isArray(t) ? t.map(textFormatter) : textFormatter(t) };
}

const each = (v: unknown, f: (x: unknown) => unknown) => (Array.isArray(v) ? v.map(f) : f(v));

function textSeries(s: unknown): unknown {
  const withData = withTextTooltip(s) as { data?: unknown };
  const data = withData?.data;
  const itemTooltip = (d: unknown) => !!d && typeof d === "object" && !Array.isArray(d) && "tooltip" in d;
  return Array.isArray(data) && data.some(itemTooltip) ? { ...withData, data: data.map((d) => (itemTooltip(d) ? withTextTooltip(d) : d)) } : withData;
}

/**
 * ECharts (in its default HTML tooltip mode) puts what a function `formatter` returns into the page as
 * HTML. Every chart's option passes through here before ECharts sees it (Chart.tsx), so what any
 * formatter returns is shown as text: a trace label, compare label or expert name cannot become markup.
 * Covered: the chart's tooltip, each component's (legend, axes, visualMap, …), each series' and each
 * data item's. A formatter that means to format builds DOM (returns an HTMLElement, passed unchanged).
 */
export function textTooltips(option: EChartsOption): EChartsOption {
  const out: Record<string, unknown> = withTextTooltip({ ...(option as Record<string, unknown>) });
  for (const [key, value] of Object.entries(out)) {
    if (key === "tooltip" || !value || typeof value !== "object") continue;
    out[key] = key === "series" ? each(value, textSeries) : each(value, withTextTooltip);
  }
  return out as EChartsOption;
}
