"use client";
/**
 * Canvas performance switches (DESIGN.md: the editor pans a 300-node graph at 60 fps; tests/bench/editor.ts).
 * Below LOD_ZOOM a node's text is a few screen pixels tall and its widgets cannot be used, so it draws as an
 * outline (title, run status, socket dots) instead of its full body.
 */
// 0.3, not higher: a fitted or auto-laid-out pipeline of a dozen nodes opens at ~0.35–0.4 and keeps its outputs
// (previews, heatmaps) in view; a 300-node graph opens at ~0.2.
export const LOD_ZOOM = 0.3;

export type CanvasFeature = "lod" | "cull" | "capture";

const off = new Map<CanvasFeature, boolean>();
/**
 * `?lod=off`, `?cull=off`, `?capture=off` in the editor's URL switch off level of detail, rendering only what is
 * in view, and pointer capture while panning: the pan bench's "before" and its per-feature comparisons.
 */
export function canvasFeature(name: CanvasFeature): boolean {
  if (typeof window === "undefined") return true;
  if (!off.has(name)) off.set(name, new URLSearchParams(window.location.search).get(name) === "off");
  return !off.get(name);
}
