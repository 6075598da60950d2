"use client";
/**
 * Level of detail on the canvas. Below LOD_ZOOM a node's text is a few screen pixels tall and its widgets
 * cannot be used, so it draws as an outline (title, run status, socket dots) instead of its full body: a
 * zoomed-out 300-node graph then has a small DOM to paint and hit-test while it pans.
 */
export const LOD_ZOOM = 0.4;

let lodOff: boolean | undefined;
/** `?lod=off` in the editor's URL draws full nodes at every zoom (the pan bench's "before"). */
export function lodDisabled(): boolean {
  if (typeof window === "undefined") return false;
  lodOff ??= new URLSearchParams(window.location.search).get("lod") === "off";
  return lodOff;
}

let cullOn: boolean | undefined;
/** `?cull=on` renders only the nodes and links in view (xyflow's onlyRenderVisibleElements), for the bench to compare. */
export function cullEnabled(): boolean {
  if (typeof window === "undefined") return false;
  cullOn ??= new URLSearchParams(window.location.search).get("cull") === "on";
  return cullOn;
}
