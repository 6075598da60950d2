"use client";
import { useEffect, useState } from "react";
import { trpc } from "@/app/lib/trpc";
import { useEditor, type EditorState } from "./store";

/** What the cost of an Expert Ablation node depends on, read from the graph: its params, the model node whose trace it gets, the Dataset upstream. */
function planInput(s: EditorState, nodeId: string): { source: string; model: string; spec: string; mode: string; maxAblations: number; maxRecords: number } | null {
  const me = s.nodes.find((n) => n.id === nodeId);
  const traceEdge = s.edges.find((e) => e.target === nodeId && e.targetHandle === "trace");
  const llm = traceEdge && s.nodes.find((n) => n.id === traceEdge.source);
  if (!me || !llm) return null;
  // The Dataset node among the model's ancestors.
  const seen = new Set<string>([llm.id]);
  const queue = [llm.id];
  let source: string | undefined;
  while (queue.length && source === undefined) {
    const id = queue.shift()!;
    for (const e of s.edges.filter((x) => x.target === id)) {
      if (seen.has(e.source)) continue;
      seen.add(e.source);
      const n = s.nodes.find((x) => x.id === e.source);
      if (n?.data.nodeType === "input.dataset") source = String(n.data.params.source ?? "examples/sample/records.jsonl");
      queue.push(e.source);
    }
  }
  if (source === undefined) return null;
  const p = me.data.params;
  const ablate = String(p.ablate ?? "experts");
  return {
    source,
    model: String(llm.data.params.model ?? "uni-moe-tiny/tiny"),
    spec: ablate === "subset" ? `subset:${String(p.subset ?? "")}` : ablate,
    mode: String(llm.data.params.mode ?? "generate"),
    maxAblations: Number(p.maxAblations ?? 0) || 0,
    maxRecords: Number(p.maxRecords ?? 0) || 0,
  };
}

/** The cost of the sweep as it is set up now, under the Ablate select (debounced while the graph is edited). */
export function AblationCost({ nodeId }: { nodeId: string }) {
  const key = useEditor((s) => JSON.stringify(planInput(s, nodeId)));
  const [input, setInput] = useState(key);
  useEffect(() => {
    const t = setTimeout(() => setInput(key), 400);
    return () => clearTimeout(t);
  }, [key]);
  const parsed = JSON.parse(input) as ReturnType<typeof planInput>;
  const plan = trpc.ablation.plan.useQuery(parsed!, { enabled: parsed !== null, staleTime: 30_000, retry: false });
  if (!parsed) return <div className="muted" data-testid={`ablation-cost-${nodeId}`}>connect the trace of an MoE-LLM fed by a Dataset to see the cost</div>;
  if (plan.error) return <div className="error-text" data-testid={`ablation-cost-${nodeId}`}>{plan.error.message}</div>;
  if (!plan.data) return <div className="muted" data-testid={`ablation-cost-${nodeId}`}>estimating the cost…</div>;
  const d = plan.data;
  return (
    <div className="muted" data-testid={`ablation-cost-${nodeId}`} title={`ablations: ${d.ids.join(", ")}`}>
      cost: {d.passes} passes (baseline + {d.ablations} ablations) × ≈{d.tokensPerPass.toLocaleString("en-US")} text tokens per pass ({d.records} records) ≈ {d.tokens.toLocaleString("en-US")} tokens
      {parsed.mode === "generate" && <div className="error-text">set the MoE-LLM&apos;s mode to score-answer (or score-text) first</div>}
    </div>
  );
}
