import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import type { RunContext } from "../../../engine/node";
import { DiskStorage } from "../../../engine/storage";

/** A run context over a real DiskStorage in a fresh temp dir; call `dispose` when done. */
export async function makeCtx(): Promise<{ ctx: RunContext; storage: DiskStorage; logs: string[]; dispose(): Promise<void> }> {
  const dir = await mkdtemp(path.join(tmpdir(), "moe-nodes-"));
  const storage = new DiskStorage(dir);
  const logs: string[] = [];
  const ctx: RunContext = {
    runId: "test-run",
    nodeId: "n1",
    signal: new AbortController().signal,
    progress: () => {},
    storage,
    log: (m) => logs.push(m),
  };
  return { ctx, storage, logs, dispose: () => rm(dir, { recursive: true, force: true }) };
}
