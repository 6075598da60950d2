/** Small JSON helpers shared by aggregate.ts and export.ts. */
export function parseJSON(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new Error(`not valid JSON: ${(e as Error).message}`);
  }
}

export function formatIssues(issues: readonly { path: PropertyKey[]; message: string }[], max = 5): string {
  const fmtPath = (p: PropertyKey[]) => p.reduce<string>((s, k) => (typeof k === "number" ? `${s}[${k}]` : s ? `${s}.${String(k)}` : String(k)), "") || "(root)";
  const shown = issues.slice(0, max).map((i) => `${fmtPath(i.path)}: ${i.message}`);
  if (issues.length > max) shown.push(`… and ${issues.length - max} more`);
  return shown.join("; ");
}
