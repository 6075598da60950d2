"use client";
/**
 * The one map from a preview's `type` (what engine/values/<kind>.ts `describe` returns) to the view that shows it in a
 * node, on the shared page and wherever a run's outputs are listed. A new view is its own file plus one line here.
 */
import dynamic from "next/dynamic";
import type { ComponentType } from "react";
import { AudioPreview, ImagePreview, TextPreview, VideoPreview } from "./MediaViews";

/** Every view gets the output socket's name and its stored preview (JSON: `type`, `headline` and the kind's fields). */
export type OutputViewProps = { socket: string; value: Record<string, unknown> };

const lazy = (load: () => Promise<ComponentType<OutputViewProps>>) => dynamic(load, { ssr: false });

export const VIEWS: Record<string, ComponentType<OutputViewProps>> = {
  image: ImagePreview,
  audio: AudioPreview,
  video: VideoPreview,
  text: TextPreview,
  "routing-report": lazy(() => import("./RoutingInspector").then((m) => m.RoutingReportView)),
  "rope-report": lazy(() => import("./RopeInspector").then((m) => m.RopeReportView)),
  "compare-report": lazy(() => import("./CompareView").then((m) => m.CompareReportView)),
  "routing-aggregate": lazy(() => import("./AggregateView").then((m) => m.AggregateReportView)),
  dataset: lazy(() => import("./DatasetPreview").then((m) => m.DatasetPreview)),
  "expert-ablation": lazy(() => import("./AblationView").then((m) => m.AblationReportView)),
};
