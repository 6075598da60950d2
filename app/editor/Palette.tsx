"use client";
import { useMemo, useState } from "react";
import type { NodeTypeInfo } from "@/app/server/catalog";
import { useCatalog } from "./catalog";
import { searchNodeTypes } from "./palette-search";

/** Searchable list of node types; Enter or click adds the highlighted one. */
export function Palette({ onPick, onClose }: { onPick: (node: NodeTypeInfo) => void; onClose: () => void }) {
  const catalog = useCatalog();
  const [query, setQuery] = useState("");
  const [active, setActive] = useState(0);
  const matches = useMemo(() => searchNodeTypes(catalog.nodes, query), [catalog, query]);
  const pick = (n: NodeTypeInfo | undefined) => n && onPick(n);
  return (
    <div className="palette-backdrop" onMouseDown={(e) => e.target === e.currentTarget && onClose()}>
      <div className="palette" role="dialog" aria-label="Add node">
        <input
          autoFocus
          placeholder="Add a node… (type to search)"
          value={query}
          onChange={(e) => {
            setQuery(e.target.value);
            setActive(0);
          }}
          onKeyDown={(e) => {
            if (e.key === "Escape") onClose();
            else if (e.key === "ArrowDown") setActive((a) => Math.min(a + 1, matches.length - 1));
            else if (e.key === "ArrowUp") setActive((a) => Math.max(a - 1, 0));
            else if (e.key === "Enter") pick(matches[active]);
            else return;
            e.preventDefault();
          }}
        />
        <ul role="listbox">
          {matches.map((n, i) => (
            <li key={n.type} role="option" aria-selected={i === active} className={i === active ? "active" : ""} onMouseEnter={() => setActive(i)} onClick={() => pick(n)}>
              <span>{n.title}</span>
              <span className="desc">{n.description}</span>
              <span className="cat">{n.category}</span>
            </li>
          ))}
          {matches.length === 0 && <li className="muted">No node matches “{query}”.</li>}
        </ul>
      </div>
    </div>
  );
}
