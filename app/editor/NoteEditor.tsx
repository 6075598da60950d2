"use client";
import Editor from "@monaco-editor/react";
import { setupMonaco } from "./monaco-setup";

setupMonaco();

/** A markdown note, edited in (bundled) Monaco. */
export default function NoteEditor({ value, onChange }: { value: string; onChange: (v: string) => void }) {
  return (
    <div className="note-editor" data-testid="note-editor">
      <Editor
        height="140px"
        defaultLanguage="markdown"
        defaultValue={value}
        theme="vs-dark"
        onChange={(v) => onChange(v ?? "")}
        options={{ minimap: { enabled: false }, lineNumbers: "off", wordWrap: "on", fontSize: 13, scrollBeyondLastLine: false }}
      />
    </div>
  );
}
