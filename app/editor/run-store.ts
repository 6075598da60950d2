"use client";
import { create } from "zustand";
import type { RunEvent, RunMemory } from "@/engine/events";
import type { Workflow } from "@/engine/workflow/schema";

export type NodeRunStatus = "waiting" | "running" | "done" | "cached" | "error" | "skipped" | "cancelled" | "interrupted";

export interface NodeRunView {
  status: NodeRunStatus;
  fraction?: number;
  message?: string;
  startedAt?: number;
  ms?: number;
  summary?: string;
  error?: string;
  outputs?: Record<string, unknown>;
  /** Latest progress preview (a stored image id), while the node runs. */
  preview?: string;
  /** Highest RSS of the executing process while this node ran (process-wide). */
  peakRssBytes?: number;
}

export interface PastRun {
  id: string;
  document?: Workflow | null;
  status: string;
  error: string | null;
  executionProvider: string | null;
  /** Null on runs recorded before memory was measured. */
  startRssBytes?: number | null;
  peakRssBytes?: number | null;
  peakDeviceBytes?: number | null;
  nodes: { nodeId: string; status: string; summary: string | null; error: string | null; durationMs: number | null; peakRssBytes?: number | null; outputs: Record<string, unknown> | null }[];
}

interface RunState {
  runId: string | null;
  /** The document the shown run executed (to mark notebook cells stale after edits). */
  runDocument: Workflow | null;
  status: "idle" | "queued" | "running" | "finished" | "failed" | "cancelled" | "interrupted";
  error?: string;
  executionProvider?: string;
  /** Memory of the process that executed the run: the start figure as it starts, the rest when it ends. */
  memory?: Partial<RunMemory>;
  nodes: Record<string, NodeRunView>;
  begin(runId: string, document?: Workflow): void;
  apply(e: RunEvent): void;
  show(run: PastRun): void;
  clear(): void;
}

function patch(nodes: Record<string, NodeRunView>, id: string, p: Partial<NodeRunView>): Record<string, NodeRunView> {
  return { ...nodes, [id]: { ...(nodes[id] ?? { status: "waiting" }), ...p } };
}

/** The state of the run shown on the canvas: live from run events, or a past run reopened. */
export const useRun = create<RunState>()((set, get) => ({
  runId: null,
  runDocument: null,
  status: "idle",
  nodes: {},
  begin(runId, document) {
    set({ runId, runDocument: document ?? null, status: "queued", error: undefined, memory: undefined, nodes: {} });
  },
  apply(e) {
    if (e.runId !== get().runId) return;
    const nodes = get().nodes;
    switch (e.type) {
      case "queued":
        set({ status: "queued" });
        break;
      case "started": {
        const planned: Record<string, NodeRunView> = {};
        for (const id of e.nodeIds) planned[id] = { status: "waiting" };
        set({ status: "running", executionProvider: e.executionProvider, memory: e.startRssBytes === undefined ? undefined : { startRssBytes: e.startRssBytes }, nodes: planned });
        break;
      }
      case "node-start":
        set({ nodes: patch(nodes, e.nodeId, { status: "running", startedAt: e.at, fraction: 0 }) });
        break;
      case "progress":
        set({ nodes: patch(nodes, e.nodeId, { fraction: e.fraction, message: e.message, ...(e.preview ? { preview: e.preview } : {}) }) });
        break;
      case "node-cached":
        set({ nodes: patch(nodes, e.nodeId, { status: "cached", summary: e.summary, ms: 0 }) });
        break;
      case "node-done":
        set({ nodes: patch(nodes, e.nodeId, { status: "done", summary: e.summary, ms: e.ms, fraction: 1, peakRssBytes: e.peakRssBytes }) });
        break;
      case "node-outputs":
        set({ nodes: patch(nodes, e.nodeId, { outputs: e.outputs }) });
        break;
      case "node-error":
        set({ nodes: patch(nodes, e.nodeId, { status: "error", error: e.message, peakRssBytes: e.peakRssBytes }) });
        break;
      case "finished":
        set({ status: "finished", ...(e.memory ? { memory: e.memory } : {}) });
        break;
      case "failed":
        set({ status: "failed", error: e.message, nodes: settle(nodes, "skipped"), ...(e.memory ? { memory: e.memory } : {}) });
        break;
      case "cancelled":
        set({ status: "cancelled", nodes: settle(nodes, "cancelled"), ...(e.memory ? { memory: e.memory } : {}) });
        break;
    }
  },
  show(run) {
    const nodes: Record<string, NodeRunView> = {};
    for (const n of run.nodes) {
      nodes[n.nodeId] = {
        status: n.status as NodeRunStatus,
        summary: n.summary ?? undefined,
        error: n.error ?? undefined,
        ms: n.durationMs ?? undefined,
        peakRssBytes: n.peakRssBytes ?? undefined,
        outputs: n.outputs ?? undefined,
      };
    }
    const memory = run.peakRssBytes == null ? undefined : { peakRssBytes: run.peakRssBytes, startRssBytes: run.startRssBytes ?? undefined, peakDeviceBytes: run.peakDeviceBytes ?? undefined };
    set({ runId: run.id, runDocument: run.document ?? null, status: run.status as RunState["status"], error: run.error ?? undefined, executionProvider: run.executionProvider ?? undefined, memory, nodes });
  },
  clear() {
    set({ runId: null, status: "idle", error: undefined, memory: undefined, nodes: {} });
  },
}));

/** Nodes still waiting or running when a run ends did not get to finish. */
function settle(nodes: Record<string, NodeRunView>, as: NodeRunStatus): Record<string, NodeRunView> {
  const out: Record<string, NodeRunView> = {};
  for (const [id, n] of Object.entries(nodes)) out[id] = n.status === "waiting" || n.status === "running" ? { ...n, status: as } : n;
  return out;
}
