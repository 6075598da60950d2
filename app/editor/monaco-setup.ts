"use client";
import { loader } from "@monaco-editor/react";
import * as monaco from "monaco-editor";

// Monaco is bundled with the app: @monaco-editor/react would otherwise load it from a CDN (and hang offline).
declare global {
  interface Window {
    MonacoEnvironment?: { getWorker(workerId: string, label: string): Worker };
  }
}

let done = false;

export function setupMonaco(): typeof monaco {
  if (done) return monaco;
  done = true;
  self.MonacoEnvironment = {
    getWorker(_id, label) {
      if (label === "json") return new Worker(new URL("monaco-editor/languages/features/json/json.worker.js", import.meta.url), { type: "module" });
      if (label === "typescript" || label === "javascript") {
        return new Worker(new URL("monaco-editor/languages/features/typescript/ts.worker.js", import.meta.url), { type: "module" });
      }
      return new Worker(new URL("monaco-editor/editor/editor.worker.js", import.meta.url), { type: "module" });
    },
  };
  loader.config({ monaco });
  return monaco;
}
