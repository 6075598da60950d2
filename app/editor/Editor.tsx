"use client";
import { ReactFlowProvider, useReactFlow } from "@xyflow/react";
import dynamic from "next/dynamic";
import { useSearchParams } from "next/navigation";
import { useEffect, useMemo } from "react";
import { trpc } from "@/app/lib/trpc";
import { Canvas } from "./Canvas";
import { CatalogContext, makeClientCatalog } from "./catalog";
import { EditorCommandsContext, useCommands, useEditorCommands } from "./commands";
import { DropHint, EditorDialogs, EditorToast, RunErrorBanner } from "./EditorDialogs";
import { EditorHeader } from "./EditorHeader";
import { HistoryPanel } from "./HistoryPanel";
import { StartRunContext } from "./NodeRunView";
import { Notebook } from "./Notebook";
import { ProblemsPanel } from "./ProblemsPanel";
import { RunPanel } from "./RunPanel";
import { useRun } from "./run-store";
import { useEditorShortcuts } from "./shortcuts";
import { isDirty, useEditor } from "./store";
import { resetUi, setUi, showToast, useEditorUi } from "./ui-store";

const JsonView = dynamic(() => import("./JsonView"), { ssr: false, loading: () => <p className="muted" style={{ padding: 12 }}>Loading editor…</p> });

/*
 * The editor page is split into parts that each subscribe to what they draw: the shell below follows only the
 * loaded workflow; the header's parts (EditorHeader.tsx) their own fields (name, unsaved mark, run status,
 * panel toggles, version message); the canvas the nodes and links; the problems panel the problems and the
 * structural revision its server check follows; the panels and dialogs the editor's chrome (ui-store.ts).
 * A drag frame re-renders the canvas and what draws the moved node, and nothing serialises the document.
 */

function RunsPanel({ workflowId }: { workflowId: string }) {
  const open = useEditorUi((s) => s.runsOpen);
  return open ? <RunPanel workflowId={workflowId} onClose={() => setUi({ runsOpen: false })} /> : null;
}

function History({ workflowId }: { workflowId: string }) {
  const open = useEditorUi((s) => s.historyOpen);
  const { reload } = useCommands();
  if (!open) return null;
  return (
    <HistoryPanel
      workflowId={workflowId}
      onClose={() => setUi({ historyOpen: false })}
      onRestored={(version, from) => void reload().then(() => showToast(`Restored version ${from} as version ${version}.`))}
    />
  );
}

function TabContent() {
  const tab = useEditorUi((s) => s.tab);
  const { setCenter, getNode } = useReactFlow();
  if (tab === "canvas") return <Canvas />;
  if (tab === "json") return <JsonView />;
  return (
    <Notebook
      onFocusNode={(nodeId) => {
        setUi({ tab: "canvas" });
        useEditor.getState().selectOnly(nodeId);
        setTimeout(() => {
          const n = getNode(nodeId);
          if (n) void setCenter(n.position.x + 120, n.position.y + 80, { zoom: 1, duration: 200 });
        }, 50);
      }}
    />
  );
}

/** The canvas area: panels, tab content and messages; dropping a file on it opens that file's workflow. */
function EditorBody({ workflowId }: { workflowId: string }) {
  const { importFile } = useCommands();
  return (
    <div
      className="editor-body"
      onDragOver={(e) => {
        if (e.dataTransfer.types.includes("Files")) {
          e.preventDefault();
          if (!useEditorUi.getState().fileOver) setUi({ fileOver: true });
        }
      }}
      onDragLeave={() => setUi({ fileOver: false })}
      onDrop={(e) => {
        setUi({ fileOver: false });
        const f = e.dataTransfer.files[0];
        if (!f) return;
        e.preventDefault();
        void importFile(f);
      }}
    >
      <RunsPanel workflowId={workflowId} />
      <History workflowId={workflowId} />
      <RunErrorBanner />
      <TabContent />
      <EditorToast />
      <DropHint />
    </div>
  );
}

function EditorInner({ id }: { id: string }) {
  const search = useSearchParams();
  const utils = trpc.useUtils();
  const loaded = trpc.workflow.get.useQuery({ id }, { staleTime: Infinity });
  const commands = useEditorCommands(id);
  useEditorShortcuts(commands);
  useEffect(() => resetUi, []); // leaving the editor closes its panels and dialogs

  useEffect(() => {
    if (loaded.data && useEditor.getState().workflowId !== id) {
      useRun.getState().clear();
      useEditor.getState().load(id, loaded.data.version, loaded.data.document);
      useEditor.getState().setProblems(loaded.data.problems);
      const count = search.get("imported");
      if (count) showToast(`Imported with ${count} problem(s); see the list below.`);
      // Reopening a workflow shows its last finished run's outputs.
      void utils.run.list.fetch({ workflowId: id, limit: 5 }).then(async (runs) => {
        const last = runs.find((r) => r.status === "finished" || r.status === "failed");
        if (last && useRun.getState().runId === null) useRun.getState().show(await utils.run.get.fetch({ runId: last.id }));
      });
    }
  }, [loaded.data, id, search, utils]);

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

  const startRun = useMemo(() => (target?: string) => void commands.startRun(target), [commands]);

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
    <EditorCommandsContext.Provider value={commands}>
      <StartRunContext.Provider value={startRun}>
        <div className="editor">
          <EditorHeader />
          <EditorBody workflowId={id} />
          <ProblemsPanel />
          <EditorDialogs workflowId={id} />
        </div>
      </StartRunContext.Provider>
    </EditorCommandsContext.Provider>
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
