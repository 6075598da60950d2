/**
 * Where ONNX Runtime places a graph's nodes, from its own verbose session log: the `Node placements` lines
 * (session_state.cc, VerifyEachNodeIsAssignedToAnEp: per provider, every node when the graph is split), the
 * Memcpy nodes it inserts between providers (transformer_memcpy.cc, AddCopyNode: "Add MemcpyFromHost after
 * <tensor>", "Add MemcpyToHost before <tensor>"), and why a node went to the CPU: no kernel for it on the
 * provider (GetCapability: "... kernel not found in registries for Op type: <op> node name: <name>") or ONNX
 * Runtime's own choice to keep small shape computations on the CPU ("Candidate for fallback CPU execution").
 *
 * The session is created (not run) in a child process (ort-child.ts) with logSeverityLevel 0, since the log goes
 * to the native stderr. A Memcpy node is a copy inside the graph; feeding inputs and reading outputs are copies
 * ONNX Runtime makes outside it and are not counted.
 */
import { statSync } from "node:fs";
import type { ExecutionProvider } from "./types";
import { runOrtChild } from "./ort-child";

export interface ProviderPlacement {
  /** ONNX Runtime's name, e.g. "WebGpuExecutionProvider" */
  provider: string;
  /** nodes on it, Memcpy nodes excluded */
  nodes: number;
  /** nodes by op type (empty when ONNX Runtime placed every node on one provider and so listed none) */
  ops: Record<string, number>;
}

export interface CpuFallback {
  op: string;
  nodes: number;
  /** nodes of this op with no kernel on the requested provider (for the data types they have) */
  noKernel: number;
  /** nodes ONNX Runtime chose to run on the CPU although the provider has a kernel (shape computations) */
  preferredOnCpu: number;
}

export interface PlacementReport {
  /** the provider asked for */
  provider: ExecutionProvider;
  /** every node of the optimised graph, Memcpy nodes excluded */
  nodes: number;
  byProvider: ProviderPlacement[];
  memcpy: {
    fromHost: number;
    toHost: number;
    /** where each copy sits: the tensor it follows (FromHost) or precedes (ToHost) */
    sites: { kind: "MemcpyFromHost" | "MemcpyToHost"; tensor: string }[];
  };
  /** nodes that run on the CPU although another provider was asked for, by op type */
  cpuFallbacks: CpuFallback[];
}

const ORT_NAMES: Record<ExecutionProvider, string> = { cpu: "CPUExecutionProvider", cuda: "CUDAExecutionProvider", webgpu: "WebGpuExecutionProvider" };
const isMemcpy = (op: string) => op === "MemcpyFromHost" || op === "MemcpyToHost";

/** One ORT log line: `<date> <time> [V:onnxruntime:<logid>, <file>:<line> <function>] <message>`. */
const LINE = /^\S+ \S+ \[[VIWEF]:onnxruntime:[^,\]]*, [^:\]]+:\d+ ([^\]]+)\] (.*)$/;

/** Parses the verbose log of one session's creation on `provider`. */
export function parsePlacementLog(log: string, provider: ExecutionProvider): PlacementReport {
  const byProvider = new Map<string, ProviderPlacement>();
  const sites: PlacementReport["memcpy"]["sites"] = [];
  const noKernel = new Set<string>();
  const preferred = new Set<string>();
  let current: ProviderPlacement | undefined;
  let sawPlacement = false;
  for (const raw of log.split("\n")) {
    const m = LINE.exec(raw.trimEnd());
    if (!m) continue;
    const [, fn, msg] = m as unknown as [string, string, string];
    if (fn === "VerifyEachNodeIsAssignedToAnEp") {
      sawPlacement = true;
      const head = /^ (?:All nodes|Node\(s\)) placed on \[(\w+)\]\. Number of nodes: (\d+)/.exec(msg);
      if (head) {
        current = { provider: head[1]!, nodes: Number(head[2]), ops: {} };
        byProvider.set(current.provider, current);
        continue;
      }
      const node = /^ {2}(\S+) \((.*)\)$/.exec(msg);
      if (node && current) {
        const op = node[1]!;
        current.ops[op] = (current.ops[op] ?? 0) + 1;
      }
      continue;
    }
    if (fn === "AddCopyNode") {
      const copy = /^Add (MemcpyFromHost|MemcpyToHost) (?:after|before) (.+) for \w+$/.exec(msg);
      if (copy) sites.push({ kind: copy[1] as "MemcpyFromHost" | "MemcpyToHost", tensor: copy[2]! });
      continue;
    }
    const missing = /kernel not found in registries for Op type: (\S+) node name: (.*)$/.exec(msg);
    if (missing) noKernel.add(missing[2]!);
    const cand = /^Candidate for fallback CPU execution: (.*)$/.exec(msg);
    if (cand) preferred.add(cand[1]!);
  }
  if (!sawPlacement) throw new Error("ONNX Runtime's log has no node placement lines (was the session created with logSeverityLevel 0?)");
  // Per-node names of the CPU nodes are in the listing; match them to the reasons.
  const cpuNodes = cpuNodeNames(log);
  for (const p of byProvider.values()) {
    for (const op of Object.keys(p.ops).filter(isMemcpy)) {
      p.nodes -= p.ops[op]!;
      delete p.ops[op];
    }
  }
  const cpuName = ORT_NAMES.cpu;
  const fallbacks = new Map<string, CpuFallback>();
  if (provider !== "cpu") {
    for (const { op, name } of cpuNodes) {
      const f = fallbacks.get(op) ?? { op, nodes: 0, noKernel: 0, preferredOnCpu: 0 };
      f.nodes++;
      if (noKernel.has(name)) f.noKernel++;
      else if (preferred.has(name)) f.preferredOnCpu++;
      fallbacks.set(op, f);
    }
  }
  const list = [...byProvider.values()].filter((p) => p.nodes > 0 || p.provider !== cpuName);
  return {
    provider,
    nodes: list.reduce((n, p) => n + p.nodes, 0),
    byProvider: list.sort((a, b) => b.nodes - a.nodes),
    memcpy: { fromHost: sites.filter((s) => s.kind === "MemcpyFromHost").length, toHost: sites.filter((s) => s.kind === "MemcpyToHost").length, sites },
    cpuFallbacks: [...fallbacks.values()].sort((a, b) => b.nodes - a.nodes || a.op.localeCompare(b.op)),
  };
}

function cpuNodeNames(log: string): { op: string; name: string }[] {
  const out: { op: string; name: string }[] = [];
  let onCpu = false;
  for (const raw of log.split("\n")) {
    const m = LINE.exec(raw.trimEnd());
    if (!m || m[1] !== "VerifyEachNodeIsAssignedToAnEp") continue;
    const head = /^ (?:All nodes|Node\(s\)) placed on \[(\w+)\]/.exec(m[2]!);
    if (head) {
      onCpu = head[1] === ORT_NAMES.cpu;
      continue;
    }
    const node = /^ {2}(\S+) \((.*)\)$/.exec(m[2]!);
    if (node && onCpu && !isMemcpy(node[1]!)) out.push({ op: node[1]!, name: node[2]! });
  }
  return out;
}

/** Whether every node runs on the provider asked for, with no copy between providers inside the graph. */
export function allOnProvider(r: PlacementReport): boolean {
  return r.byProvider.length === 1 && r.byProvider[0]!.provider === ORT_NAMES[r.provider] && r.memcpy.fromHost + r.memcpy.toHost === 0;
}

/** "1820 nodes on WebGpuExecutionProvider, 140 on CPUExecutionProvider; 75 MemcpyFromHost, 72 MemcpyToHost" */
export function describePlacement(r: PlacementReport): string {
  const parts = r.byProvider.map((p, i) => `${p.nodes}${i === 0 ? " nodes" : ""} on ${p.provider}`).join(", ");
  const copies = r.memcpy.fromHost + r.memcpy.toHost === 0 ? "no Memcpy node" : `${r.memcpy.fromHost} MemcpyFromHost, ${r.memcpy.toHost} MemcpyToHost`;
  return `${parts}; ${copies}`;
}

const cache = new Map<string, Promise<PlacementReport>>();

/**
 * Creates a session of the ONNX file `file` on `provider` in a child process and reports the placement. Cached
 * per (file, size, mtime, provider). `env` is added to the child's environment (the caller's own provider set-up,
 * e.g. VK_ICD_FILENAMES, is inherited).
 */
export function placementOf(file: string, provider: ExecutionProvider, env: Record<string, string> = {}): Promise<PlacementReport> {
  const st = statSync(file);
  const key = `${file}|${st.size}|${st.mtimeMs}|${provider}|${JSON.stringify(env)}`;
  let hit = cache.get(key);
  if (!hit) {
    hit = (async () => {
      const run = await runOrtChild({ task: "session", file, ep: provider, severity: 0 }, env, 600_000);
      if (!run.result.ok) throw new Error(`cannot create a session of ${file} on ${provider}: ${run.result.error}`);
      return parsePlacementLog(run.stderr, provider);
    })();
    cache.set(key, hit);
    hit.catch(() => cache.delete(key));
  }
  return hit;
}
