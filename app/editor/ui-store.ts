"use client";
import { create } from "zustand";

export type EditorTab = "canvas" | "json" | "notebook";
export type Toast = { text: string; error?: boolean } | null;

/**
 * The editor's chrome: which tab, panel and dialog is open, the toast, the save conflict and the version
 * message. Apart from the document (store.ts) so that each part of the page subscribes to the few fields it
 * draws: typing a version message or opening a panel re-renders neither the canvas nor the problems list.
 */
export interface EditorUi {
  tab: EditorTab;
  paletteOpen: boolean;
  runsOpen: boolean;
  historyOpen: boolean;
  shareOpen: boolean;
  shortcutsOpen: boolean;
  /** A file dragged over the editor: the drop hint shows. */
  fileOver: boolean;
  toast: Toast;
  /** The server's message when a save was refused because a newer version exists. */
  conflict: string | null;
  /** The optional message of the next saved version. */
  message: string;
  saving: boolean;
}

const INITIAL: EditorUi = {
  tab: "canvas",
  paletteOpen: false,
  runsOpen: false,
  historyOpen: false,
  shareOpen: false,
  shortcutsOpen: false,
  fileOver: false,
  toast: null,
  conflict: null,
  message: "",
  saving: false,
};

export const useEditorUi = create<EditorUi>()(() => INITIAL);

export const setUi = (patch: Partial<EditorUi>) => useEditorUi.setState(patch);
export const showToast = (text: string, error?: boolean) => setUi({ toast: error ? { text, error } : { text } });
/** Back to a closed, empty chrome (leaving the editor: the next workflow opens as fresh as a new page). */
export const resetUi = () => useEditorUi.setState(INITIAL, true);
