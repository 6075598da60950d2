"use client";
import { ReactFlowProvider, useReactFlow } from "@xyflow/react";
import dynamic from "next/dynamic";
import { useRouter, useSearchParams } from "next/navigation";
import { useCallback, useEffect, useMemo, useRef, useState } from "react";
import { useEscape } from "../lib/use-escape";
import { ShortcutSheet } from "./ShortcutSheet";
import type { Workflow } from "@/engine/workflow/schema";
import { trpc } from "@/app/lib/trpc";
import { Canvas } from "./Canvas";
import { Notebook } from "./Notebook";
import { CatalogContext, makeClientCatalog } from "./catalog";
import { HistoryPanel } from "./HistoryPanel";
import { autoLayout } from "./layout";
import { StartRunContext } from "./NodeRunView";
import { RunMemoryTag } from "./RunMemory";
import { RunPanel } from "./RunPanel";
import { ShareDialog } from "./ShareDialog";
import { useRun } from "./run-store";
import { isDirty, useEditor } from "./store";
import { downloadBlob } from "@/app/lib/download";

const JsonView = dynamic(() => import("./JsonView"), { ssr: false, loading: () => <p className="muted" style={{ padding: 12 }}>Loading editor…</p> });

type Toast = { text: string; error?: boolean } | null;

function isTyping(target: EventTarget | null): boolean {
  const el = target as HTMLElement | null;
  return !!el?.closest?.("input, textarea, select, [contenteditable='true'], .monaco-editor");
}

function exportDocument(doc: Workflow) {
  downloadBlob(`${doc.name.replace(/[^\w.-]+/g, "_") || "workflow"}.json`, new Blob([JSON.stringify(doc, null, 2)], { type: "application/json" }));
}

function EditorInner({ id }: { id: string }) {
  const router = useRouter();
  const search = useSearchParams();
  const utils = trpc.useUtils();
  const loaded = trpc.workflow.get.useQuery({ id }, { staleTime: Infinity });
  const save = trpc.workflow.save.useMutation();
  const create = trpc.workflow.create.useMutation();
  const check = trpc.workflow.check.useMutation();
  const fromMedia = trpc.provenance.fromMedia.useMutation();
  const [tab, setTab] = useState<"canvas" | "json" | "notebook">("canvas");
  const [paletteOpen, setPaletteOpen] = useState(false);
  const [toast, setToast] = useState<Toast>(null);
  const [conflict, setConflict] = useState<string | null>(null);
  const [message, setMessage] = useState("");
  const [dragging, setDragging] = useState(false);
  const importInput = useRef<HTMLInputElement>(null);
  const { fitView, setCenter, getNode } = useReactFlow();
  const [runsOpen, setRunsOpen] = useState(false);
  const [historyOpen, setHistoryOpen] = useState(false);
  const [shareOpen, setShareOpen] = useState(false);
  const [shortcutsOpen, setShortcutsOpen] = useState(false);
  useEscape(() => setConflict(null), conflict !== null);
  const startRunMutation = trpc.run.start.useMutation();
  const cancelRun = trpc.run.cancel.useMutation();
  const runId = useRun((s) => s.runId);
  const runStatus = useRun((s) => s.status);
  const runError = useRun((s) => s.error);
  const executionProvider = useRun((s) => s.executionProvider);
  const runtime = trpc.run.runtime.useQuery(undefined, { staleTime: 60_000 });
  trpc.run.events.useSubscription({ runId: runId ?? "-" }, {
    enabled: !!runId && (runStatus === "queued" || runStatus === "running"),
    onData: (e) => {
      useRun.getState().apply(e);
      if (e.type === "finished" || e.type === "failed" || e.type === "cancelled") void utils.run.list.invalidate();
    },
    onError: (err) => setToast({ text: `Lost the run's events: ${err.message}`, error: true }),
  });

  const startRun = useCallback(
    async (targetNodeId?: string) => {
      const s = useEditor.getState();
      try {
        const { runId: newRun } = await startRunMutation.mutateAsync({ document: s.document(), workflowId: id, workflowVersion: s.baseVersion, targetNodeId });
        useRun.getState().begin(newRun, s.document());
        void utils.run.list.invalidate();
      } catch (err) {
        setToast({ text: `Could not start the run: ${(err as Error).message}`, error: true });
      }
    },
    [id, startRunMutation, utils],
  );

  const name = useEditor((s) => s.meta.name);
  const baseVersion = useEditor((s) => s.baseVersion);
  const dirty = useEditor(isDirty);
  const problems = useEditor((s) => s.problems);
  const nodes = useEditor((s) => s.nodes);
  const edges = useEditor((s) => s.edges);

  useEffect(() => {
    if (loaded.data && useEditor.getState().workflowId !== id) {
      useRun.getState().clear();
      useEditor.getState().load(id, loaded.data.version, loaded.data.document);
      useEditor.getState().setProblems(loaded.data.problems);
      const count = search.get("imported");
      if (count) setToast({ text: `Imported with ${count} problem(s); see the list below.` });
      // Reopening a workflow shows its last finished run's outputs.
      void utils.run.list.fetch({ workflowId: id, limit: 5 }).then(async (runs) => {
        const last = runs.find((r) => r.status === "finished" || r.status === "failed");
        if (last && useRun.getState().runId === null) useRun.getState().show(await utils.run.get.fetch({ runId: last.id }));
      });
    }
  }, [loaded.data, id, search, utils]);

  useEffect(() => {
    if (!toast) return;
    const t = setTimeout(() => setToast(null), toast.error ? 6000 : 3500);
    return () => clearTimeout(t);
  }, [toast]);

  // Re-check the graph on the server shortly after each change (problems list and node outlines).
  const docKey = useMemo(() => JSON.stringify(useEditor.getState().document()), [nodes, edges]); // eslint-disable-line react-hooks/exhaustive-deps
  useEffect(() => {
    if (!useEditor.getState().workflowId) return;
    const t = setTimeout(() => {
      check.mutate({ document: JSON.parse(docKey) }, { onSuccess: (r) => useEditor.getState().setProblems(r.problems) });
    }, 300);
    return () => clearTimeout(t);
  }, [docKey]); // eslint-disable-line react-hooks/exhaustive-deps

  useEffect(() => {
    const onBeforeUnload = (e: BeforeUnloadEvent) => {
      if (isDirty(useEditor.getState())) {
        e.preventDefault();
        e.returnValue = "";
      }
    };
    window.addEventListener("beforeunload", onBeforeUnload);
    return () => window.removeEventListener("beforeunload", onBeforeUnload);
  }, []);

  const doSave = useCallback(async () => {
    const s = useEditor.getState();
    try {
      const { version } = await save.mutateAsync({ id, baseVersion: s.baseVersion, document: s.document(), message: message || undefined });
      useEditor.getState().markSaved(version);
      setMessage("");
      setToast({ text: `Saved version ${version}.` });
      void utils.workflow.list.invalidate();
    } catch (err) {
      const e = err as { message: string; data?: { code?: string } };
      if (e.data?.code === "CONFLICT") setConflict(e.message);
      else setToast({ text: `Not saved: ${e.message}`, error: true });
    }
  }, [id, message, save, utils]);

  const saveAsCopy = useCallback(async () => {
    const doc = useEditor.getState().document();
    const { id: newId } = await create.mutateAsync({ document: { ...doc, name: `${doc.name} (copy)` }, message: `Copy of ${id} with unsaved changes` });
    useEditor.getState().markSaved(useEditor.getState().baseVersion); // nothing left to lose here
    setConflict(null);
    router.push(`/w/${newId}`);
  }, [create, id, router]);

  const reload = useCallback(async () => {
    const fresh = await utils.workflow.get.fetch({ id }, { staleTime: 0 });
    useEditor.getState().load(id, fresh.version, fresh.document);
    setConflict(null);
    setToast({ text: `Reloaded version ${fresh.version}.` });
  }, [id, utils]);

  const importText = useCallback(
    async (text: string, fileName: string) => {
      try {
        const { workflow, problems: found } = await check.mutateAsync({ document: text });
        useEditor.getState().replaceDocument(workflow);
        useEditor.getState().setProblems(found);
        setToast({ text: found.length ? `Imported ${fileName} with ${found.length} problem(s).` : `Imported ${fileName}.` });
        setTimeout(() => fitView({ duration: 200 }), 50);
      } catch (err) {
        setToast({ text: `Could not import ${fileName}: ${(err as Error).message}`, error: true });
      }
    },
    [check, fitView],
  );

  /** A workflow .json, or a PNG/WAV this app wrote (it carries the workflow that made it). */
  const importFile = useCallback(
    async (f: File) => {
      const isMedia = /\.(png|wav)$/i.test(f.name) || f.type === "image/png" || f.type === "audio/wav";
      if (!isMedia) return importText(await f.text(), f.name);
      try {
        const bytes = new Uint8Array(await f.arrayBuffer());
        let binary = "";
        for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
        const { document, problems: found } = await fromMedia.mutateAsync({ base64: btoa(binary) });
        useEditor.getState().replaceDocument(document);
        useEditor.getState().setProblems(found);
        setToast({ text: `Opened the workflow stored in ${f.name}.` });
        setTimeout(() => fitView({ duration: 200 }), 50);
      } catch (err) {
        setToast({ text: `Could not open ${f.name}: ${(err as Error).message}`, error: true });
      }
    },
    [fitView, fromMedia, importText],
  );

  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      const mod = e.ctrlKey || e.metaKey;
      const key = e.key.toLowerCase();
      if (mod && key === "s") {
        e.preventDefault();
        void doSave();
        return;
      }
      if (mod && key === "enter") {
        e.preventDefault();
        void startRun();
        return;
      }
      if (isTyping(e.target)) return;
      if (e.key === "?" && !mod) {
        e.preventDefault();
        setShortcutsOpen((o) => !o);
        return;
      }
      if (tab !== "canvas") return;
      const s = useEditor.getState();
      if (mod && key === "z" && !e.shiftKey) s.undo();
      else if ((mod && key === "z" && e.shiftKey) || (mod && key === "y")) s.redo();
      else if (mod && key === "c") s.copySelected();
      else if (mod && key === "v") s.paste();
      else if (mod && key === "d") s.duplicateSelected();
      else if (mod && key === "k") setPaletteOpen(true);
      else if (e.shiftKey && key === "a") setPaletteOpen(true);
      else return;
      e.preventDefault();
    };
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  }, [doSave, startRun, tab]);

  if (loaded.error) {
    return (
      <main className="page">
        <div className="banner error">{loaded.error.message}</div>
        <a href="/">← All workflows</a>
      </main>
    );
  }
  if (!loaded.data) return <p className="muted" style={{ padding: 20 }}>Loading workflow…</p>;

  return (
    <StartRunContext.Provider value={(target) => void startRun(target)}>
    <div className="editor">
      <header className="editor-header">
        <a
          href="/"
          onClick={(e) => {
            if (isDirty(useEditor.getState()) && !confirm("You have unsaved changes. Leave without saving?")) e.preventDefault();
          }}
        >
          ← Workflows
        </a>
        <span className="title">
          <input aria-label="Workflow name" value={name} onChange={(e) => useEditor.getState().setMeta({ name: e.target.value })} style={{ width: 180 }} />
          {dirty && <span className="dirty-dot" title="Unsaved changes" data-testid="dirty">●</span>}
          <span className="muted" data-testid="version">v{baseVersion}</span>
        </span>
        <div className="tabs" role="tablist">
          <button role="tab" aria-selected={tab === "canvas"} onClick={() => setTab("canvas")}>Canvas</button>
          <button role="tab" aria-selected={tab === "json"} onClick={() => setTab("json")}>JSON</button>
          <button role="tab" aria-selected={tab === "notebook"} onClick={() => setTab("notebook")}>Notebook</button>
        </div>
        <span className="spacer" />
        <span className="ep-tag" title="ONNX Runtime execution provider" data-testid="ep">
          {(executionProvider ?? runtime.data?.executionProvider) === "webgpu" && runtime.data?.label ? runtime.data.label : (executionProvider ?? runtime.data?.executionProvider ?? "…")}
        </span>
        <RunMemoryTag />
        {runStatus === "queued" || runStatus === "running" ? (
          <button className="danger" onClick={() => runId && cancelRun.mutate({ runId })}>
            Cancel run
          </button>
        ) : (
          <button className="primary" onClick={() => void startRun()} title="Run the workflow (Ctrl+Enter)">
            ▶ Run
          </button>
        )}
        <span className={`run-status s-${runStatus}`} data-testid="run-status" title={runError}>
          {runStatus === "idle" ? "" : runStatus}
        </span>
        <button onClick={() => setRunsOpen(!runsOpen)} aria-pressed={runsOpen}>
          Runs
        </button>
        <button onClick={() => setHistoryOpen(!historyOpen)} aria-pressed={historyOpen}>
          History
        </button>
        <button onClick={() => setShareOpen(true)}>Share</button>
        <button onClick={() => setPaletteOpen(true)} title="Add node (Ctrl+K, or double-click the canvas)">+ Node</button>
        <button onClick={() => useEditor.getState().undo()} title="Undo (Ctrl+Z)" aria-label="Undo">↶</button>
        <button onClick={() => useEditor.getState().redo()} title="Redo (Ctrl+Shift+Z)" aria-label="Redo">↷</button>
        <button
          onClick={() => {
            const s = useEditor.getState();
            s.setPositions(autoLayout(s.nodes, s.edges));
            setTimeout(() => fitView({ duration: 200 }), 50);
          }}
        >
          Auto-layout
        </button>
        <button onClick={() => exportDocument(useEditor.getState().document())}>Export</button>
        <button onClick={() => importInput.current?.click()}>Import</button>
        <input
          ref={importInput}
          type="file"
          accept=".json,application/json,.png,image/png,.wav,audio/wav"
          hidden
          data-testid="editor-import-input"
          onChange={(e) => {
            const f = e.target.files?.[0];
            e.target.value = "";
            if (f) void importFile(f);
          }}
        />
        <input placeholder="Version message (optional)" value={message} onChange={(e) => setMessage(e.target.value)} style={{ width: 150 }} aria-label="Version message" />
        <button className="primary" onClick={() => void doSave()} disabled={save.isPending} title="Save (Ctrl+S)">
          {save.isPending ? "Saving…" : "Save"}
        </button>
        <button onClick={() => setShortcutsOpen(true)} title="Keyboard shortcuts and documentation (?)" aria-label="Help">
          ?
        </button>
      </header>
      <div
        className="editor-body"
        onDragOver={(e) => {
          if (e.dataTransfer.types.includes("Files")) {
            e.preventDefault();
            setDragging(true);
          }
        }}
        onDragLeave={() => setDragging(false)}
        onDrop={(e) => {
          setDragging(false);
          const f = e.dataTransfer.files[0];
          if (!f) return;
          e.preventDefault();
          void importFile(f);
        }}
      >
        {runsOpen && <RunPanel workflowId={id} onClose={() => setRunsOpen(false)} />}
        {historyOpen && (
          <HistoryPanel
            workflowId={id}
            onClose={() => setHistoryOpen(false)}
            onRestored={(version, from) => void reload().then(() => setToast({ text: `Restored version ${from} as version ${version}.` }))}
          />
        )}
        {runStatus === "failed" && runError && (
          <div className="toast error" style={{ top: "auto", bottom: 12 }} data-testid="run-error">
            {runError}
          </div>
        )}
        {tab === "canvas" && <Canvas paletteOpen={paletteOpen} setPaletteOpen={setPaletteOpen} onRefused={(r) => setToast({ text: `Link refused: ${r}`, error: true })} />}
        {tab === "json" && <JsonView />}
        {tab === "notebook" && (
          <Notebook
            onFocusNode={(nodeId) => {
              setTab("canvas");
              useEditor.getState().selectOnly(nodeId);
              setTimeout(() => {
                const n = getNode(nodeId);
                if (n) void setCenter(n.position.x + 120, n.position.y + 80, { zoom: 1, duration: 200 });
              }, 50);
            }}
          />
        )}
        {toast && (
          <div className={`toast ${toast.error ? "error" : ""}`} role="status">
            {toast.text}
          </div>
        )}
        {dragging && <div className="drop-hint">Drop a workflow .json, or a PNG/WAV made here, to open its workflow</div>}
      </div>
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
                if (n) setCenter(n.position.x + 100, n.position.y + 50, { zoom: 1, duration: 200 });
              }}
            >
              <span className={`sev-${p.severity}`}>{p.severity}</span>
              <span>{p.message}</span>
            </div>
          ))
        )}
      </footer>
      {shortcutsOpen && <ShortcutSheet onClose={() => setShortcutsOpen(false)} />}
      {shareOpen && <ShareDialog workflowId={id} version={baseVersion} dirty={dirty} onClose={() => setShareOpen(false)} />}
      {conflict && (
        <div className="dialog-backdrop">
          <div className="dialog" role="alertdialog" aria-label="Save conflict">
            <h2>Not saved: a newer version exists</h2>
            <p>{conflict}</p>
            <div className="buttons">
              <button onClick={() => setConflict(null)}>Cancel</button>
              <button onClick={() => void reload()}>Reload (discard my changes)</button>
              <button className="primary" onClick={() => void saveAsCopy()}>Save as a copy</button>
            </div>
          </div>
        </div>
      )}
    </div>
    </StartRunContext.Provider>
  );
}

export default function EditorPage({ id }: { id: string }) {
  const catalogQuery = trpc.catalog.useQuery(undefined, { staleTime: Infinity });
  const catalog = useMemo(() => (catalogQuery.data ? makeClientCatalog(catalogQuery.data) : null), [catalogQuery.data]);
  if (catalogQuery.error) return <div className="banner error">{catalogQuery.error.message}</div>;
  if (!catalog) return <p className="muted" style={{ padding: 20 }}>Loading…</p>;
  return (
    <CatalogContext.Provider value={catalog}>
      <ReactFlowProvider>
        <EditorInner id={id} />
      </ReactFlowProvider>
    </CatalogContext.Provider>
  );
}
