import { describe, expect, it } from "vitest";
import { textTooltips } from "@/app/inspector/chart-option";
import type { EChartsOption } from "@/app/inspector/echarts";
import { escapeHtml } from "@/app/lib/escape-html";

const PAYLOAD = `<img src=x onerror="window.__xss=1">'&`;
const ESCAPED = "&lt;img src=x onerror=&quot;window.__xss=1&quot;&gt;&#39;&amp;";

describe("escapeHtml", () => {
  it("escapes the five characters that end text or a quoted attribute, and only those", () => {
    expect(escapeHtml(PAYLOAD)).toBe(ESCAPED);
    expect(escapeHtml("plain text, ünïcode → 😀")).toBe("plain text, ünïcode → 😀");
    expect(escapeHtml("&amp;")).toBe("&amp;amp;"); // escaping is not undone
  });
});

describe("textTooltips (every ECharts option passes it)", () => {
  type F = (...a: unknown[]) => unknown;
  const fmt = (o: unknown): F => (o as { formatter: F }).formatter;

  it("escapes what function formatters return: chart, series and data-item tooltips", () => {
    const option = {
      tooltip: { formatter: (p: { name: string }) => `${p.name} vs ${PAYLOAD}` },
      series: [
        { type: "heatmap", tooltip: { formatter: () => PAYLOAD }, data: [[0, 0, 1]] },
        { type: "bar", data: [{ value: 1, tooltip: { formatter: () => PAYLOAD } }, 2] },
      ],
    } as unknown as EChartsOption;
    const safe = textTooltips(option) as unknown as { tooltip: unknown; series: { tooltip?: unknown; data: unknown[] }[] };
    expect(fmt(safe.tooltip)({ name: "A" })).toBe(`A vs ${ESCAPED}`);
    expect(fmt(safe.series[0]!.tooltip)()).toBe(ESCAPED);
    expect(fmt((safe.series[1]!.data[0] as { tooltip: unknown }).tooltip)()).toBe(ESCAPED);
    expect(safe.series[1]!.data[1]).toBe(2);
    // The original option is not changed (charts memoise their options).
    expect(fmt((option as unknown as { tooltip: unknown }).tooltip)({ name: "A" })).toBe(`A vs ${PAYLOAD}`);
  });

  it("escapes component tooltips (legend, axes) and what an asynchronous formatter hands its callback", () => {
    const shown: unknown[] = [];
    const option = {
      legend: { tooltip: { show: true, formatter: () => PAYLOAD } },
      xAxis: [{ type: "category", tooltip: { formatter: () => PAYLOAD } }],
      tooltip: { formatter: (_p: unknown, ticket: unknown, cb: (t: unknown, html: string) => void) => (cb(ticket, PAYLOAD), "loading") },
    } as unknown as EChartsOption;
    const safe = textTooltips(option) as unknown as { legend: { tooltip: unknown }; xAxis: { tooltip: unknown }[]; tooltip: unknown };
    expect(fmt(safe.legend.tooltip)()).toBe(ESCAPED);
    expect(fmt(safe.xAxis[0]!.tooltip)()).toBe(ESCAPED);
    expect(fmt(safe.tooltip)({}, "t1", (t: unknown, html: unknown) => shown.push(t, html))).toBe("loading");
    expect(shown).toEqual(["t1", ESCAPED]);
  });

  it("passes a DOM node a formatter built through unchanged", () => {
    const node = { nodeType: 1, textContent: PAYLOAD };
    const safe = textTooltips({ tooltip: { formatter: () => node } } as unknown as EChartsOption) as unknown as { tooltip: unknown };
    expect(fmt(safe.tooltip)()).toBe(node);
  });

  it("leaves template-string formatters (ECharts escapes what it fills in) and options without tooltips alone", () => {
    const option = { tooltip: { formatter: "{b}: {c}" }, xAxis: { type: "category" } } as EChartsOption;
    expect(textTooltips(option)).toEqual(option);
    const bare = { xAxis: { type: "value" } } as EChartsOption;
    expect(textTooltips(bare)).toEqual(bare);
  });
});
