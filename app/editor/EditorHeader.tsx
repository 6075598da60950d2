"use client";
import { useReactFlow } from "@xyflow/react";
import { useRef } from "react";
import { trpc } from "@/app/lib/trpc";
import { useCommands } from "./commands";
import { autoLayout } from "./layout";
import { RunMemoryTag } from "./RunMemory";
import { useRun } from "./run-store";
import { isDirty, useEditor } from "./store";
import { setUi, showToast, useEditorUi, type EditorTab } from "./ui-store";

/** The unsaved-changes mark: the only part of the header that follows the document's edits. */
export function DirtyMark() {
  const dirty = useEditor(isDirty);
  return dirty ? <span className="dirty-dot" title="Unsaved changes" data-testid="dirty">●</span> : null;
}

function NameField() {
  const name = useEditor((s) => s.meta.name);
  return <input aria-label="Workflow name" value={name} onChange={(e) => useEditor.getState().setMeta({ name: e.target.value })} style={{ width: 180 }} />;
}

function Tabs() {
  const tab = useEditorUi((s) => s.tab);
  const button = (t: EditorTab, label: string) => (
    <button role="tab" aria-selected={tab === t} onClick={() => setUi({ tab: t })}>
      {label}
    </button>
  );
  return (
    <div className="tabs" role="tablist">
      {button("canvas", "Canvas")}
      {button("json", "JSON")}
      {button("notebook", "Notebook")}
    </div>
  );
}

/** Applies the open run's events to the run store while it is queued or running. */
function RunEvents() {
  const utils = trpc.useUtils();
  const runId = useRun((s) => s.runId);
  const live = useRun((s) => s.status === "queued" || s.status === "running");
  trpc.run.events.useSubscription(
    { runId: runId ?? "-" },
    {
      enabled: !!runId && live,
      onData: (e) => {
        useRun.getState().apply(e);
        if (e.type === "finished" || e.type === "failed" || e.type === "cancelled") void utils.run.list.invalidate();
      },
      onError: (err) => showToast(`Lost the run's events: ${err.message}`, true),
    },
  );
  return null;
}

/** The execution provider tag, Run / Cancel and the run's status. */
function RunControls() {
  const { startRun, cancelRun } = useCommands();
  const runStatus = useRun((s) => s.status);
  const runError = useRun((s) => s.error);
  const executionProvider = useRun((s) => s.executionProvider);
  const runtime = trpc.run.runtime.useQuery(undefined, { staleTime: 60_000 });
  const ep = executionProvider ?? runtime.data?.executionProvider;
  return (
    <>
      <RunEvents />
      <span className="ep-tag" title="ONNX Runtime execution provider" data-testid="ep">
        {ep === "webgpu" && runtime.data?.label ? runtime.data.label : (ep ?? "…")}
      </span>
      <RunMemoryTag />
      {runStatus === "queued" || runStatus === "running" ? (
        <button className="danger" onClick={cancelRun}>
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
    </>
  );
}

function PanelToggles() {
  const runsOpen = useEditorUi((s) => s.runsOpen);
  const historyOpen = useEditorUi((s) => s.historyOpen);
  return (
    <>
      <button onClick={() => setUi({ runsOpen: !runsOpen })} aria-pressed={runsOpen}>
        Runs
      </button>
      <button onClick={() => setUi({ historyOpen: !historyOpen })} aria-pressed={historyOpen}>
        History
      </button>
      <button onClick={() => setUi({ shareOpen: true })}>Share</button>
    </>
  );
}

/** Add node, undo/redo, auto-layout, export and import: they act on the store when clicked and follow nothing. */
function DocumentTools() {
  const { exportDocument, importFile } = useCommands();
  const { fitView } = useReactFlow();
  const importInput = useRef<HTMLInputElement>(null);
  return (
    <>
      <button onClick={() => setUi({ paletteOpen: true })} title="Add node (Ctrl+K, or double-click the canvas)">+ Node</button>
      <button onClick={() => useEditor.getState().undo()} title="Undo (Ctrl+Z)" aria-label="Undo">↶</button>
      <button onClick={() => useEditor.getState().redo()} title="Redo (Ctrl+Shift+Z)" aria-label="Redo">↷</button>
      <button
        onClick={() => {
          const s = useEditor.getState();
          s.setPositions(autoLayout(s.nodes, s.edges));
          setTimeout(() => void fitView({ duration: 200 }), 50);
        }}
      >
        Auto-layout
      </button>
      <button onClick={exportDocument}>Export</button>
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
    </>
  );
}

function SaveControls() {
  const { save } = useCommands();
  const message = useEditorUi((s) => s.message);
  const saving = useEditorUi((s) => s.saving);
  return (
    <>
      <input placeholder="Version message (optional)" value={message} onChange={(e) => setUi({ message: e.target.value })} style={{ width: 150 }} aria-label="Version message" />
      <button className="primary" onClick={() => void save()} disabled={saving} title="Save (Ctrl+S)">
        {saving ? "Saving…" : "Save"}
      </button>
    </>
  );
}

export function EditorHeader() {
  const baseVersion = useEditor((s) => s.baseVersion);
  return (
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
        <NameField />
        <DirtyMark />
        <span className="muted" data-testid="version">v{baseVersion}</span>
      </span>
      <Tabs />
      <span className="spacer" />
      <RunControls />
      <PanelToggles />
      <DocumentTools />
      <SaveControls />
      <button onClick={() => setUi({ shortcutsOpen: true })} title="Keyboard shortcuts and documentation (?)" aria-label="Help">
        ?
      </button>
    </header>
  );
}
