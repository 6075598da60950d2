"use client";
import Editor from "@monaco-editor/react";
import { useEffect, useMemo, useRef, useState } from "react";
import { z } from "zod";
import { parseAndMigrate } from "@/engine/workflow/migrate";
import { zWorkflow } from "@/engine/workflow/schema";
import { setupMonaco } from "./monaco-setup";
import { useEditor } from "./store";

const monaco = setupMonaco();
const SCHEMA_URI = "moe-studio://schemas/workflow.json";

/**
 * The workflow document as JSON. Monaco checks it against the schema as you type; a valid edit is
 * applied to the canvas (as one undo step), an invalid one is shown and left alone.
 */
export default function JsonView() {
  const initial = useMemo(() => JSON.stringify(useEditor.getState().document(), null, 2), []);
  const [status, setStatus] = useState<{ ok: boolean; text: string }>({ ok: true, text: "Edit the document here; valid changes apply to the canvas." });
  const timer = useRef<ReturnType<typeof setTimeout>>(undefined);

  useEffect(() => {
    monaco.json.jsonDefaults.setDiagnosticsOptions({
      validate: true,
      allowComments: false,
      schemas: [{ uri: SCHEMA_URI, fileMatch: ["*"], schema: z.toJSONSchema(zWorkflow, { io: "input" }) }],
    });
    return () => clearTimeout(timer.current);
  }, []);

  function onChange(text: string | undefined) {
    clearTimeout(timer.current);
    timer.current = setTimeout(() => {
      try {
        const doc = parseAndMigrate(text ?? "");
        const current = useEditor.getState().document();
        if (JSON.stringify(doc) !== JSON.stringify(current)) useEditor.getState().replaceDocument(doc);
        setStatus({ ok: true, text: "The document is valid; the canvas shows it." });
      } catch (err) {
        setStatus({ ok: false, text: `Not applied: ${(err as Error).message}` });
      }
    }, 350);
  }

  return (
    <div className="json-view">
      <Editor
        height="100%"
        defaultLanguage="json"
        defaultValue={initial}
        path="workflow.json"
        theme="vs-dark"
        onChange={onChange}
        options={{ minimap: { enabled: false }, fontSize: 13, tabSize: 2, scrollBeyondLastLine: false }}
      />
      <div className={`json-status ${status.ok ? "" : "error-text"}`} data-testid="json-status">
        {status.text}
      </div>
    </div>
  );
}
