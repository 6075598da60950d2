"use client";
import Editor, { type OnMount } from "@monaco-editor/react";
import { useEffect, useMemo, useRef } from "react";
import { inputsDeclaration, type InputHint } from "@/engine/sandbox/hints";
import type { SocketType } from "@/engine/sockets";
import { useCatalog } from "./catalog";
import { setupMonaco } from "./monaco-setup";
import { useRun } from "./run-store";
import { useEditor } from "./store";

const monaco = setupMonaco();

// Scripts are function bodies: a top-level `return` is fine (TS 1108 "return only in a function").
// No DOM lib: the sandbox has no window, fetch or timers, so the editor should not offer them.
monaco.typescript.javascriptDefaults.setDiagnosticsOptions({ noSemanticValidation: false, noSyntaxValidation: false, diagnosticCodesToIgnore: [1108] });
monaco.typescript.javascriptDefaults.setCompilerOptions({
  target: monaco.typescript.ScriptTarget.ES2020,
  allowNonTsExtensions: true,
  allowJs: true,
  lib: ["es2020"],
});

/**
 * Every JavaScript model sees every extra lib, and each Script node declares its own `inputs`: only
 * one declaration is installed at a time, that of the editor last focused (or mounted).
 */
let installed: { owner: string; content: string; lib: { dispose(): void } } | undefined;
function installInputs(owner: string, content: string): void {
  if (installed?.owner === owner && installed.content === content) return;
  installed?.lib.dispose();
  installed = { owner, content, lib: monaco.typescript.javascriptDefaults.addExtraLib(content, `file:///script-node/${owner}/inputs.d.ts`) };
}

/** Where each input of a node comes from: `socket=source.output:TYPE|…`, stable for store equality. */
function useConnections(nodeId: string, sockets: string[]): string {
  const catalog = useCatalog();
  return useEditor((s) =>
    sockets
      .map((socket) => {
        const edge = s.edges.find((e) => e.target === nodeId && e.targetHandle === socket);
        if (!edge) return socket;
        const from = s.nodes.find((n) => n.id === edge.source);
        const type = from && catalog.get(from.data.nodeType)?.outputs[edge.sourceHandle ?? ""]?.type;
        return `${socket}=${edge.source}.${edge.sourceHandle ?? ""}:${type ?? "ANY"}`;
      })
      .join("|"),
  );
}

/** A Script node's code, in Monaco (JavaScript), with `inputs` typed from what is connected. */
export default function ScriptField({ nodeId, value, onChange, label }: { nodeId: string; value: string; onChange: (v: string) => void; label: string }) {
  const catalog = useCatalog();
  const nodeType = useEditor((s) => s.nodes.find((n) => n.id === nodeId)?.data.nodeType ?? "");
  const sockets = useMemo(() => Object.keys(catalog.get(nodeType)?.inputs ?? {}), [catalog, nodeType]);
  const connections = useConnections(nodeId, sockets);
  // The previews of the connected outputs from the run on screen (their shapes refine the types).
  const previews = useRun((s) =>
    JSON.stringify(
      connections.split("|").map((c) => {
        const m = /=([^.]*)\.([^:]*):/.exec(c);
        return m ? (s.nodes[m[1]!]?.outputs?.[m[2]!] ?? null) : null;
      }),
    ),
  );
  const declaration = useMemo(() => {
    const seen = JSON.parse(previews) as (InputHint["preview"] | null)[];
    const hints: InputHint[] = connections.split("|").map((c, k) => {
      const m = /^([^=]+)(?:=([^:]*):(.*))?$/.exec(c)!;
      return m[2] === undefined ? { socket: m[1]! } : { socket: m[1]!, source: m[2], sourceType: m[3] as SocketType, preview: seen[k] ?? undefined };
    });
    return inputsDeclaration(hints);
  }, [connections, previews]);

  const focused = useRef(false);
  useEffect(() => {
    if (focused.current || !installed || installed.owner === nodeId) installInputs(nodeId, declaration);
  }, [nodeId, declaration]);
  const latest = useRef(declaration);
  latest.current = declaration;

  const onMount: OnMount = (editor) => {
    editor.onDidFocusEditorText(() => {
      focused.current = true;
      installInputs(nodeId, latest.current);
    });
    editor.onDidBlurEditorText(() => (focused.current = false));
  };

  return (
    <div className="script-field nodrag nowheel" data-testid={`script-editor-${nodeId}`} aria-label={label} style={{ width: "100%", height: 180, border: "1px solid #334155" }}>
      <Editor
        height="180px"
        defaultLanguage="javascript"
        path={`file:///script-node/${nodeId}/code.js`}
        value={value}
        theme="vs-dark"
        onMount={onMount}
        onChange={(v) => onChange(v ?? "")}
        options={{
          minimap: { enabled: false },
          fontSize: 12,
          lineNumbersMinChars: 2,
          lineDecorationsWidth: 4,
          folding: false,
          wordWrap: "on",
          scrollBeyondLastLine: false,
          tabSize: 2,
          automaticLayout: true,
        }}
      />
    </div>
  );
}
