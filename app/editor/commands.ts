"use client";
import { useReactFlow } from "@xyflow/react";
import { useRouter } from "next/navigation";
import { createContext, useContext, useMemo, useRef } from "react";
import type { Workflow } from "@/engine/workflow/schema";
import { readWorkflowFromMedia } from "@/engine/provenance";
import { downloadBlob } from "@/app/lib/download";
import { trpc } from "@/app/lib/trpc";
import { useRun } from "./run-store";
import { useEditor } from "./store";
import { setUi, showToast, useEditorUi } from "./ui-store";

/** What the editor's parts (header, shortcuts, dialogs, drop zone) do with the server; one stable object per workflow. */
export interface EditorCommands {
  save(): Promise<void>;
  saveAsCopy(): Promise<void>;
  /** Loads the latest saved version, dropping unsaved changes. */
  reload(): Promise<void>;
  /** A workflow .json, or a PNG/WAV this app wrote (it carries the workflow that made it). */
  importFile(f: File): Promise<void>;
  startRun(targetNodeId?: string): Promise<void>;
  cancelRun(): void;
  exportDocument(): void;
}

export const EditorCommandsContext = createContext<EditorCommands | null>(null);

export function useCommands(): EditorCommands {
  const c = useContext(EditorCommandsContext);
  if (!c) throw new Error("useCommands outside the editor");
  return c;
}

function exportDocument(doc: Workflow) {
  downloadBlob(`${doc.name.replace(/[^\w.-]+/g, "_") || "workflow"}.json`, new Blob([JSON.stringify(doc, null, 2)], { type: "application/json" }));
}

/** The commands of workflow `id`. The mutations are read through a ref, so the object stays the same across renders. */
export function useEditorCommands(id: string): EditorCommands {
  const router = useRouter();
  const utils = trpc.useUtils();
  const { fitView } = useReactFlow();
  const m = {
    save: trpc.workflow.save.useMutation(),
    create: trpc.workflow.create.useMutation(),
    check: trpc.workflow.check.useMutation(),
    startRun: trpc.run.start.useMutation(),
    cancelRun: trpc.run.cancel.useMutation(),
  };
  const live = useRef({ m, router, utils, fitView });
  live.current = { m, router, utils, fitView };

  return useMemo<EditorCommands>(() => {
    const fitSoon = () => setTimeout(() => void live.current.fitView({ duration: 200 }), 50);
    /** Replaces the canvas (one undo step); returns a hint for the toast when that replaced nodes. */
    const replaceWith = (document: Workflow, problems: Parameters<ReturnType<typeof useEditor.getState>["setProblems"]>[0]): string => {
      const replaced = useEditor.getState().nodes.length > 0;
      useEditor.getState().replaceDocument(document);
      useEditor.getState().setProblems(problems);
      fitSoon();
      return replaced ? " Undo (Ctrl+Z) brings back what was on the canvas." : "";
    };
    const importText = async (text: string, fileName: string) => {
      try {
        const { workflow, problems } = await live.current.m.check.mutateAsync({ document: text });
        const undo = replaceWith(workflow, problems);
        showToast(`${problems.length ? `Imported ${fileName} with ${problems.length} problem(s).` : `Imported ${fileName}.`}${undo}`);
      } catch (err) {
        showToast(`Could not import ${fileName}: ${(err as Error).message}`, true);
      }
    };
    const reload = async () => {
      const fresh = await live.current.utils.workflow.get.fetch({ id }, { staleTime: 0 });
      useEditor.getState().load(id, fresh.version, fresh.document);
      setUi({ conflict: null });
      showToast(`Reloaded version ${fresh.version}.`);
    };
    return {
      async save() {
        const s = useEditor.getState();
        setUi({ saving: true });
        try {
          const { version } = await live.current.m.save.mutateAsync({ id, baseVersion: s.baseVersion, document: s.document(), message: useEditorUi.getState().message || undefined });
          useEditor.getState().markSaved(version);
          setUi({ message: "" });
          showToast(`Saved version ${version}.`);
          void live.current.utils.workflow.list.invalidate();
        } catch (err) {
          const e = err as { message: string; data?: { code?: string } };
          if (e.data?.code === "CONFLICT") setUi({ conflict: e.message });
          else showToast(`Not saved: ${e.message}`, true);
        } finally {
          setUi({ saving: false });
        }
      },
      async saveAsCopy() {
        const doc = useEditor.getState().document();
        const { id: newId } = await live.current.m.create.mutateAsync({ document: { ...doc, name: `${doc.name} (copy)` }, message: `Copy of ${id} with unsaved changes` });
        useEditor.getState().markSaved(useEditor.getState().baseVersion); // nothing left to lose here
        setUi({ conflict: null });
        live.current.router.push(`/w/${newId}`);
      },
      reload,
      async importFile(f) {
        const isMedia = /\.(png|wav)$/i.test(f.name) || f.type === "image/png" || f.type === "audio/wav";
        if (!isMedia) return importText(await f.text(), f.name);
        try {
          // read here (the file stays in the browser; engine/provenance.ts is plain byte work), checked by the server as an import
          const embedded = readWorkflowFromMedia(new Uint8Array(await f.arrayBuffer()));
          if (embedded === null) throw new Error("this file carries no MoE Studio workflow");
          const { workflow, problems } = await live.current.m.check.mutateAsync({ document: JSON.stringify(embedded) });
          const undo = replaceWith(workflow, problems);
          showToast(`Opened the workflow stored in ${f.name}.${undo}`);
        } catch (err) {
          showToast(`Could not open ${f.name}: ${(err as Error).message}`, true);
        }
      },
      async startRun(targetNodeId) {
        const s = useEditor.getState();
        try {
          const document = s.document();
          const { runId } = await live.current.m.startRun.mutateAsync({ document, workflowId: id, workflowVersion: s.baseVersion, targetNodeId });
          useRun.getState().begin(runId, document);
          void live.current.utils.run.list.invalidate();
        } catch (err) {
          showToast(`Could not start the run: ${(err as Error).message}`, true);
        }
      },
      cancelRun() {
        const runId = useRun.getState().runId;
        if (runId) live.current.m.cancelRun.mutate({ runId });
      },
      exportDocument() {
        exportDocument(useEditor.getState().document());
      },
    };
  }, [id]);
}
