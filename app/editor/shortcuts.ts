"use client";
import { useEffect } from "react";
import type { EditorCommands } from "./commands";
import { useEditor } from "./store";
import { setUi, useEditorUi } from "./ui-store";

function isTyping(target: EventTarget | null): boolean {
  const el = target as HTMLElement | null;
  return !!el?.closest?.("input, textarea, select, [contenteditable='true'], .monaco-editor");
}

/** The editor's keyboard shortcuts (the `?` sheet lists them); the canvas ones act only on the Canvas tab. */
export function useEditorShortcuts(commands: EditorCommands) {
  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      const mod = e.ctrlKey || e.metaKey;
      const key = e.key.toLowerCase();
      if (mod && key === "s") {
        e.preventDefault();
        void commands.save();
        return;
      }
      if (mod && key === "enter") {
        e.preventDefault();
        void commands.startRun();
        return;
      }
      if (isTyping(e.target)) return;
      if (e.key === "?" && !mod) {
        e.preventDefault();
        setUi({ shortcutsOpen: !useEditorUi.getState().shortcutsOpen });
        return;
      }
      if (useEditorUi.getState().tab !== "canvas") return;
      const s = useEditor.getState();
      if (mod && key === "z" && !e.shiftKey) s.undo();
      else if ((mod && key === "z" && e.shiftKey) || (mod && key === "y")) s.redo();
      else if (mod && key === "c") s.copySelected();
      else if (mod && key === "v") s.paste();
      else if (mod && key === "d") s.duplicateSelected();
      else if (mod && key === "k") setUi({ paletteOpen: true });
      else if (e.shiftKey && key === "a") setUi({ paletteOpen: true });
      else return;
      e.preventDefault();
    };
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  }, [commands]);
}
