import { createHash } from "node:crypto";
import { z } from "zod";
import { defineNode, NodeCatalogue, type Storage } from "@/engine/node";
import { CURRENT_SCHEMA_VERSION, type Workflow } from "@/engine/workflow/schema";

/** In-memory content-addressed storage for tests. */
export class MemoryStorage implements Storage {
  readonly blobs = new Map<string, Buffer>();
  pathOf(id: string): string {
    return `/memory/${id}`;
  }
  async read(id: string): Promise<Buffer> {
    const b = this.blobs.get(id);
    if (!b) throw new Error(`file ${id} is missing`);
    return b;
  }
  async write(bytes: Uint8Array, ext: string): Promise<string> {
    const id = `${createHash("sha256").update(bytes).digest("hex")}.${ext}`;
    this.blobs.set(id, Buffer.from(bytes));
    return id;
  }
  async exists(id: string): Promise<boolean> {
    return this.blobs.has(id);
  }
}

/** Executions per node id, and the concurrency high-water mark; reset between tests. */
export const probe = { counts: new Map<string, number>(), active: 0, maxActive: 0 };
export function resetProbe(): void {
  probe.counts.clear();
  probe.active = 0;
  probe.maxActive = 0;
}
const count = (nodeId: string) => probe.counts.set(nodeId, (probe.counts.get(nodeId) ?? 0) + 1);
export const runs = (nodeId: string) => probe.counts.get(nodeId) ?? 0;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export const sourceNode = defineNode({
  type: "test.source",
  typeVersion: 1,
  title: "Source",
  category: "Utility",
  description: "Emits its value param (plus a seeded offset).",
  inputs: {},
  outputs: { out: { type: "NUMBER" } },
  params: z.object({ value: z.number().default(0), seed: z.number().int().default(0) }),
  async execute({ params, ctx }) {
    count(ctx.nodeId);
    return { out: params.value };
  },
});

export const addNode = defineNode({
  type: "test.add",
  typeVersion: 1,
  title: "Add",
  category: "Utility",
  description: "a + b + k",
  inputs: { a: { type: "NUMBER" }, b: { type: "NUMBER", optional: true } },
  outputs: { out: { type: "NUMBER" } },
  params: z.object({ k: z.number().default(0), delayMs: z.number().default(0) }),
  async execute({ inputs, params, ctx }) {
    count(ctx.nodeId);
    probe.active++;
    probe.maxActive = Math.max(probe.maxActive, probe.active);
    try {
      if (params.delayMs) await sleep(params.delayMs);
      return { out: (inputs.a as number) + ((inputs.b as number | undefined) ?? 0) + params.k };
    } finally {
      probe.active--;
    }
  },
});

export const failNode = defineNode({
  type: "test.fail",
  typeVersion: 1,
  title: "Fail",
  category: "Utility",
  description: "Always throws.",
  inputs: { a: { type: "NUMBER", optional: true } },
  outputs: { out: { type: "NUMBER" } },
  params: z.object({ message: z.string().default("boom") }),
  async execute({ params, ctx }) {
    count(ctx.nodeId);
    throw new Error(params.message);
  },
});

/** Loops for a long time, checking ctx.signal between steps, reporting progress. */
export const loopNode = defineNode({
  type: "test.loop",
  typeVersion: 1,
  title: "Loop",
  category: "Utility",
  description: "A long loop that honours cancellation.",
  inputs: { a: { type: "NUMBER", optional: true } },
  outputs: { out: { type: "NUMBER" } },
  params: z.object({ steps: z.number().int().default(1000), stepMs: z.number().default(2) }),
  async execute({ params, ctx }) {
    count(ctx.nodeId);
    for (let s = 0; s < params.steps; s++) {
      if (ctx.signal.aborted) throw new Error("aborted");
      ctx.progress(s / params.steps, `step ${s}`);
      await sleep(params.stepMs);
    }
    return { out: params.steps };
  },
});

export const bigNode = defineNode({
  type: "test.big",
  typeVersion: 1,
  title: "Big",
  category: "Utility",
  description: "A Float32Array of n elements.",
  inputs: {},
  outputs: { data: { type: "JSON" } },
  params: z.object({ n: z.number().int().default(1024), fill: z.number().default(1) }),
  async execute({ params, ctx }) {
    count(ctx.nodeId);
    return { data: new Float32Array(params.n).fill(params.fill) };
  },
});

export const randomNode = defineNode({
  type: "test.random",
  typeVersion: 1,
  title: "Random",
  category: "Utility",
  description: "Nondeterministic.",
  nondeterministic: true,
  inputs: {},
  outputs: { out: { type: "NUMBER" } },
  params: z.object({}),
  async execute({ ctx }) {
    count(ctx.nodeId);
    return { out: Math.random() };
  },
});

export const catalogue = new NodeCatalogue([sourceNode, addNode, failNode, loopNode, bigNode, randomNode] as never[]);

type N = { id: string; type: string; params?: Record<string, unknown>; label?: string };
type E = [source: string, target: string, targetSocket?: string, sourceSocket?: string];

/** A workflow from short node and edge lists: edges are [source, target, targetSocket = "a", sourceSocket = "out"]. */
export function wf(nodes: N[], edges: E[]): Workflow {
  return {
    schemaVersion: CURRENT_SCHEMA_VERSION,
    name: "test",
    description: "",
    tags: [],
    nodes: nodes.map((n, k) => ({ id: n.id, type: n.type, typeVersion: 1, params: n.params ?? {}, position: { x: k * 10, y: 0 }, ...(n.label ? { label: n.label } : {}) })),
    edges: edges.map(([s, t, ts = "a", ss = "out"], k) => ({ id: `e${k}`, source: s, sourceSocket: ss, target: t, targetSocket: ts })),
    notes: [],
  };
}
