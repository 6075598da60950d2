import { escapeHtml } from "@/app/lib/escape-html";
import type { EChartsOption } from "./echarts";

type Formatter = (...args: unknown[]) => unknown;
type WithTooltip = { tooltip?: { formatter?: unknown } | { formatter?: unknown }[] };

function textFormatter(tooltip: { formatter?: unknown }): { formatter?: unknown } {
  const f = tooltip.formatter;
  if (typeof f !== "function") return tooltip; // template strings: ECharts escapes what it fills in
  return { ...tooltip, formatter: (...args: unknown[]) => {
    const out = (f as Formatter)(...args);
    return typeof out === "string" ? escapeHtml(out) : out;
  } };
}

function withTextTooltip<T extends WithTooltip>(o: T): T {
  if (!o.tooltip) return o;
  return { ...o, tooltip: Array.isArray(o.tooltip) ? o.tooltip.map(textFormatter) : textFormatter(o.tooltip) };
}

/**
 * ECharts (in its default HTML tooltip mode) puts what a function `formatter` returns into the page as
 * HTML. Every chart's option passes through here before ECharts sees it, so a formatter's result is
 * shown as text: a trace label or expert name cannot become markup (the chart, series and data-item
 * tooltips alike).
 */
export function textTooltips(option: EChartsOption): EChartsOption {
  const out = withTextTooltip(option as WithTooltip & EChartsOption);
  const series = (out as { series?: unknown }).series;
  if (!series) return out;
  const fix = (s: unknown) => {
    if (!s || typeof s !== "object") return s;
    const withData = withTextTooltip(s as WithTooltip & { data?: unknown });
    const data = withData.data;
    return Array.isArray(data) && data.some((d) => d && typeof d === "object" && !Array.isArray(d) && "tooltip" in d) ? { ...withData, data: data.map((d) => (d && typeof d === "object" && !Array.isArray(d) ? withTextTooltip(d as WithTooltip) : d)) } : withData;
  };
  return { ...out, series: Array.isArray(series) ? series.map(fix) : fix(series) } as EChartsOption;
}
