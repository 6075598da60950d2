const ENTITIES: Record<string, string> = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };

/**
 * Text made safe to put into HTML or XML, as element content or a quoted attribute value: the one place
 * user text is escaped where a string of markup has to be built (ECharts tooltips, SVG export).
 */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ENTITIES[c]!);
}
