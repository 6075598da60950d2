import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll } from "vitest";
import type { RunContext } from "@/engine/node";
import { SessionPool } from "@/engine/runtime";
import { DiskStorage } from "@/engine/storage";
import type { RoutingTrace } from "@/engine/trace";
import { CURRENT_SCHEMA_VERSION } from "@/engine/workflow/schema";
import { importCheckpoint } from "@/models/import/import";
import { moeLlm } from "@/nodes/moe-llm";

/**
 * A MoE-LLM node test's world: a models dir of its own (STUDIO_MODELS_DIR, restored after), a CPU session pool, and a
 * run context on them; `setup(root)` runs once they exist (before the suite's tests), and `root` is removed after.
 */
export function moeLlmWorld(name: string, setup: (root: string) => Promise<void> = async () => {}) {
  const root = mkdtempSync(path.join(tmpdir(), `moe-llm-${name}-`));
  const saved = process.env.STUDIO_MODELS_DIR;
  let pool: SessionPool;

  beforeAll(async () => {
    process.env.STUDIO_MODELS_DIR = path.join(root, "models");
    pool = new SessionPool({ intraOpNumThreads: 1, executionProvider: "cpu" });
    await setup(root);
  }, 120_000);
  afterAll(async () => {
    await pool.close();
    if (saved === undefined) delete process.env.STUDIO_MODELS_DIR;
    else process.env.STUDIO_MODELS_DIR = saved;
    rmSync(root, { recursive: true, force: true });
  });

  return { root, ctx: (): RunContext => ({ runId: "r", nodeId: "llm", signal: new AbortController().signal, storage: new DiskStorage(path.join(root, "files")), runtime: pool, progress: () => {}, log: () => {} }) };
}

/**
 * moeLlmWorld with one checkpoint that `writeSource(dir)` writes and the suite imports as `name` (its ref in `model()`,
 * after beforeAll).
 */
export function moeLlmFixture(name: string, writeSource: (dir: string) => Promise<void>) {
  let ref = "";
  const { ctx } = moeLlmWorld(name, async (root) => {
    await writeSource(path.join(root, "src"));
    ref = (await importCheckpoint(path.join(root, "src"), { root: path.join(root, "models"), name })).ref;
  });
  return {
    model: () => ref,
    /** A one-node document of the MoE-LLM at `typeVersion` with `params`, as a saved file has it. */
    docWith: (typeVersion: number, params: Record<string, unknown>) => ({
      schemaVersion: CURRENT_SCHEMA_VERSION,
      name: `routing ${name}`,
      nodes: [{ id: "llm", type: "model.moe-llm", typeVersion, params, position: { x: 0, y: 0 } }, { id: "prompt", type: "input.text", typeVersion: 1, params: { text: "hi" }, position: { x: -300, y: 0 } }],
      edges: [{ id: "e1", source: "prompt", sourceSocket: "text", target: "llm", targetSocket: "prompt" }],
      notes: [],
    }),
    /** Runs the node as the executor does: the document's params through the node's schema. */
    async trace(params: Record<string, unknown>): Promise<RoutingTrace> {
      const out = await moeLlm.execute({ inputs: { prompt: "the routing of a saved document" }, params: moeLlm.params.parse(params), ctx: ctx() });
      return out.trace as RoutingTrace;
    },
  };
}
