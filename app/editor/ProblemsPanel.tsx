"use client";
import { useReactFlow } from "@xyflow/react";
import { useEffect, useRef } from "react";
import { trpc } from "@/app/lib/trpc";
import { useEditor } from "./store";

/** How long the graph must stay unchanged before the server checks it again. */
export const CHECK_DEBOUNCE_MS = 300;

/**
 * Re-checks the graph on the server shortly after each structural change (the problems list and node
 * outlines). It follows `structRev`, which moves, selection and sizes leave alone: a drag sends no check and
 * serialises nothing; the document is serialised once per check, when the check is sent.
 */
function useServerCheck() {
  const structRev = useEditor((s) => s.structRev);
  const check = trpc.workflow.check.useMutation();
  const mutate = useRef(check.mutate);
  mutate.current = check.mutate;
  useEffect(() => {
    if (!useEditor.getState().workflowId) return;
    const t = setTimeout(() => {
      const s = useEditor.getState();
      const workflowId = s.workflowId;
      mutate.current(
        { document: s.document() },
        // An answer about another workflow (navigated away meanwhile) is dropped.
        { onSuccess: (r) => useEditor.getState().workflowId === workflowId && useEditor.getState().setProblems(r.problems) },
      );
    }, CHECK_DEBOUNCE_MS);
    return () => clearTimeout(t);
  }, [structRev]);
}

/** The footer: the server's problems with the graph; a click on one with a node selects and centres that node. */
export function ProblemsPanel() {
  useServerCheck();
  const problems = useEditor((s) => s.problems);
  const { setCenter, getNode } = useReactFlow();
  return (
    <footer className="editor-footer" aria-label="Problems">
      {problems.length === 0 ? (
        <div className="problem muted">No problems.</div>
      ) : (
        problems.map((p, i) => (
          <div
            key={i}
            className="problem"
            data-testid="problem"
            onClick={() => {
              if (!p.nodeId) return;
              useEditor.getState().selectOnly(p.nodeId);
              const n = getNode(p.nodeId);
              if (n) void setCenter(n.position.x + 100, n.position.y + 50, { zoom: 1, duration: 200 });
            }}
          >
            <span className={`sev-${p.severity}`}>{p.severity}</span>
            <span>{p.message}</span>
          </div>
        ))
      )}
    </footer>
  );
}
