/**
 * Node types matching every word of `query` (in title, type, category or description), best first: words found in the
 * title or type rank above words found only in the category or description, then catalogue order. "routing" finds the
 * Routing Inspector before a Dataset whose description mentions a Routing Aggregate.
 */
export function searchNodeTypes<T extends { title: string; type: string; category: string; description: string }>(nodes: readonly T[], query: string): T[] {
  const words = query.toLowerCase().split(/\s+/).filter(Boolean);
  const scored: { node: T; score: number; at: number }[] = [];
  nodes.forEach((node, at) => {
    const name = `${node.title} ${node.type}`.toLowerCase();
    const rest = `${node.category} ${node.description}`.toLowerCase();
    let score = 0;
    for (const w of words) {
      if (name.startsWith(w) || name.includes(` ${w}`) || name.includes(`.${w}`)) score += 3; // a word of the name begins with it
      else if (name.includes(w)) score += 2;
      else if (rest.includes(w)) score += 1;
      else return;
    }
    scored.push({ node, score, at });
  });
  return scored.sort((a, b) => b.score - a.score || a.at - b.at).map((s) => s.node);
}
