"use client";
import { BarChart, HeatmapChart } from "echarts/charts";
import { GridComponent, LegendComponent, TitleComponent, TooltipComponent, VisualMapComponent } from "echarts/components";
import * as echarts from "echarts/core";
import { CanvasRenderer, SVGRenderer } from "echarts/renderers";

// Only what the routing views draw, so the bundle stays small.
echarts.use([HeatmapChart, BarChart, GridComponent, TooltipComponent, VisualMapComponent, LegendComponent, TitleComponent, CanvasRenderer, SVGRenderer]);

export { echarts };
export type EChartsOption = echarts.EChartsCoreOption;
