"use client";
import { trpc } from "@/app/lib/trpc";

interface Rule {
  layer: number | "*";
  expert: string;
  action: "ban" | "force" | "bias";
  value?: number;
}

function parseRules(text: string): Rule[] | null {
  if (!text.trim()) return [];
  try {
    const v = JSON.parse(text) as unknown;
    return Array.isArray(v) ? (v as Rule[]) : null;
  } catch {
    return null;
  }
}

/**
 * Ban / force / bias experts per layer, as rows instead of JSON. The param stays JSON text, so the
 * document, the CLI (--set) and the engine see one format; rows the form cannot show fall back to text.
 */
export function InterventionsField({ value, onChange, modelRef, label }: { value: string; onChange: (v: string) => void; modelRef: string; label: string }) {
  const info = trpc.models.info.useQuery({ ref: modelRef }, { staleTime: 60_000, retry: false });
  const rules = parseRules(value);
  const set = (next: Rule[]) => onChange(next.length ? JSON.stringify(next) : "");
  if (rules === null || !info.data) {
    return <textarea className="nodrag nowheel" value={value} onChange={(e) => onChange(e.target.value)} aria-label={label} />;
  }
  const experts = info.data.experts.filter((e) => e.role !== "shared");
  return (
    <div className="interventions nodrag" data-testid="interventions">
      {rules.map((r, i) => (
        <div key={i} className="row">
          <select value={String(r.layer)} onChange={(e) => set(rules.map((x, j) => (j === i ? { ...x, layer: e.target.value === "*" ? "*" : Number(e.target.value) } : x)))} aria-label="Layer">
            <option value="*">all MoE layers</option>
            {info.data.moeLayers.map((l) => (
              <option key={l} value={l}>L{l}</option>
            ))}
          </select>
          <select value={r.expert} onChange={(e) => set(rules.map((x, j) => (j === i ? { ...x, expert: e.target.value } : x)))} aria-label="Expert">
            {experts.map((e) => (
              <option key={e.name} value={e.name}>{e.name}</option>
            ))}
          </select>
          <select value={r.action} onChange={(e) => set(rules.map((x, j) => (j === i ? { ...x, action: e.target.value as Rule["action"], ...(e.target.value === "bias" ? { value: x.value ?? 1 } : {}) } : x)))} aria-label="Action">
            <option value="ban">ban</option>
            <option value="force">force</option>
            <option value="bias">bias</option>
          </select>
          {r.action === "bias" && <input type="number" step={0.1} value={r.value ?? 0} onChange={(e) => set(rules.map((x, j) => (j === i ? { ...x, value: Number(e.target.value) } : x)))} aria-label="Bias" />}
          <button onClick={() => set(rules.filter((_, j) => j !== i))} aria-label="Remove rule">×</button>
        </div>
      ))}
      <button onClick={() => set([...rules, { layer: "*", expert: experts[0]?.name ?? "E1", action: "ban" }])}>+ rule</button>
    </div>
  );
}
