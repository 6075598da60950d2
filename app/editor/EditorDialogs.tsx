"use client";
import { useEffect } from "react";
import { useEscape } from "../lib/use-escape";
import { useCommands } from "./commands";
import { useRun } from "./run-store";
import { ShareDialog } from "./ShareDialog";
import { ShortcutSheet } from "./ShortcutSheet";
import { isDirty, useEditor } from "./store";
import { setUi, useEditorUi } from "./ui-store";

/** The passing message (saved, imported, refused link, ...); it goes away by itself. */
export function EditorToast() {
  const toast = useEditorUi((s) => s.toast);
  useEffect(() => {
    if (!toast) return;
    const t = setTimeout(() => setUi({ toast: null }), toast.error ? 6000 : 3500);
    return () => clearTimeout(t);
  }, [toast]);
  if (!toast) return null;
  return (
    <div className={`toast ${toast.error ? "error" : ""}`} role="status">
      {toast.text}
    </div>
  );
}

/** The failed run's error, over the canvas. */
export function RunErrorBanner() {
  const failed = useRun((s) => (s.status === "failed" ? s.error : undefined));
  if (!failed) return null;
  return (
    <div className="toast error" style={{ top: "auto", bottom: 12 }} data-testid="run-error">
      {failed}
    </div>
  );
}

export function DropHint() {
  const fileOver = useEditorUi((s) => s.fileOver);
  return fileOver ? <div className="drop-hint">Drop a workflow .json, or a PNG/WAV made here, to open its workflow</div> : null;
}

function ConflictDialog({ message }: { message: string }) {
  const { reload, saveAsCopy } = useCommands();
  useEscape(() => setUi({ conflict: null }));
  return (
    <div className="dialog-backdrop">
      <div className="dialog" role="alertdialog" aria-label="Save conflict">
        <h2>Not saved: a newer version exists</h2>
        <p>{message}</p>
        <div className="buttons">
          <button onClick={() => setUi({ conflict: null })}>Cancel</button>
          <button onClick={() => void reload()}>Reload (discard my changes)</button>
          <button className="primary" onClick={() => void saveAsCopy()}>Save as a copy</button>
        </div>
      </div>
    </div>
  );
}

function Share({ workflowId }: { workflowId: string }) {
  const version = useEditor((s) => s.baseVersion);
  const dirty = useEditor(isDirty);
  return <ShareDialog workflowId={workflowId} version={version} dirty={dirty} onClose={() => setUi({ shareOpen: false })} />;
}

/** The shortcut sheet, the share dialog and the save conflict, each mounted only while open. */
export function EditorDialogs({ workflowId }: { workflowId: string }) {
  const shortcutsOpen = useEditorUi((s) => s.shortcutsOpen);
  const shareOpen = useEditorUi((s) => s.shareOpen);
  const conflict = useEditorUi((s) => s.conflict);
  return (
    <>
      {shortcutsOpen && <ShortcutSheet onClose={() => setUi({ shortcutsOpen: false })} />}
      {shareOpen && <Share workflowId={workflowId} />}
      {conflict && <ConflictDialog message={conflict} />}
    </>
  );
}
