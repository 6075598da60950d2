"use client";
import { memo, useEffect, useRef } from "react";
import { textTooltips } from "./chart-option";
import { echarts, type EChartsOption } from "./echarts";
import { downloadBlob, downloadUrl } from "@/app/lib/download";

/** One ECharts chart on a canvas, with PNG and SVG export. Tooltip formatters' results are shown as text (chart-option.ts). */
export const Chart = memo(function Chart({ option, height, name, testId }: { option: EChartsOption; height: number; name: string; testId: string }) {
  const el = useRef<HTMLDivElement>(null);
  const chart = useRef<echarts.ECharts | null>(null);
  useEffect(() => {
    if (!el.current) return;
    const c = echarts.init(el.current, "dark", { renderer: "canvas" });
    chart.current = c;
    const ro = new ResizeObserver(() => c.resize());
    ro.observe(el.current);
    return () => {
      ro.disconnect();
      c.dispose();
      chart.current = null;
    };
  }, []);
  useEffect(() => {
    performance.mark(`chart-${name}-start`);
    chart.current?.setOption({ backgroundColor: "transparent", animation: false, ...textTooltips(option) }, true);
    performance.measure(`chart-${name}`, `chart-${name}-start`);
  }, [option, name]);
  function exportSvg() {
    const width = el.current?.clientWidth ?? 800;
    const svg = echarts.init(null, "dark", { renderer: "svg", ssr: true, width, height });
    svg.setOption({ animation: false, ...textTooltips(option) });
    const text = svg.renderToSVGString();
    svg.dispose();
    downloadBlob(`${name}.svg`, new Blob([text], { type: "image/svg+xml" }));
  }
  return (
    <figure className="chart">
      <div ref={el} style={{ height }} data-testid={testId} />
      <figcaption>
        <button onClick={() => chart.current && downloadUrl(`${name}.png`, chart.current.getDataURL({ type: "png", pixelRatio: 2, backgroundColor: "#171a23" }))}>PNG</button>
        <button onClick={exportSvg}>SVG</button>
      </figcaption>
    </figure>
  );
});
