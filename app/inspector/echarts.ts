"use client";
import { BarChart, HeatmapChart, LineChart, ScatterChart } from "echarts/charts";
import { DataZoomComponent, GridComponent, LegendComponent, MarkLineComponent, TitleComponent, TooltipComponent, VisualMapComponent } from "echarts/components";
import * as echarts from "echarts/core";
import { CanvasRenderer, SVGRenderer } from "echarts/renderers";

// Only what the routing views draw, so the bundle stays small.
echarts.use([HeatmapChart, BarChart, LineChart, ScatterChart, DataZoomComponent, MarkLineComponent, GridComponent, TooltipComponent, VisualMapComponent, LegendComponent, TitleComponent, CanvasRenderer, SVGRenderer]);

export { echarts };
export type EChartsOption = echarts.EChartsCoreOption;
