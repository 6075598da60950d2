/**
 * What measuring a run's memory costs the executor: the same 200-node graph (20 layers × 10 trivial nodes)
 * run with memory measured (the default) and with `memoryProbe: false`, interleaved in one process.
 * Medians. `npx tsx tests/bench/run-memory.ts`
 */
import { z } from "zod";
import { Executor } from "../../engine/executor";
import { defineNode, NodeCatalogue, type Storage } from "../../engine/node";
import { CURRENT_SCHEMA_VERSION, type Workflow } from "../../engine/workflow/schema";
import { median } from "./stats";

const storage: Storage = {
  pathOf: (id) => id,
  read: async (id) => {
    throw new Error(`no storage here (${id})`);
  },
  write: async () => {
    throw new Error("no storage here");
  },
  exists: async () => false,
};

const add = defineNode({
  type: "bench.add",
  typeVersion: 1,
  title: "Add",
  category: "Utility",
  description: "a + b + k",
  inputs: { a: { type: "NUMBER", optional: true }, b: { type: "NUMBER", optional: true } },
  outputs: { out: { type: "NUMBER" } },
  params: z.object({ k: z.number().default(0) }),
  async execute({ inputs, params }) {
    return { out: ((inputs.a as number | undefined) ?? 0) + ((inputs.b as number | undefined) ?? 0) + params.k };
  },
});
const catalogue = new NodeCatalogue([add] as never[]);

function layered(layers = 20, width = 10): Workflow {
  const nodes: Workflow["nodes"] = [];
  const edges: Workflow["edges"] = [];
  for (let l = 0; l < layers; l++)
    for (let i = 0; i < width; i++) {
      const id = `n${l}_${i}`;
      nodes.push({ id, type: "bench.add", typeVersion: 1, params: { k: l }, position: { x: l * 200, y: i * 100 } });
      if (l > 0) {
        edges.push({ id: `e${l}_${i}a`, source: `n${l - 1}_${i}`, sourceSocket: "out", target: id, targetSocket: "a" });
        edges.push({ id: `e${l}_${i}b`, source: `n${l - 1}_${(i + 1) % width}`, sourceSocket: "out", target: id, targetSocket: "b" });
      }
    }
  return { schemaVersion: CURRENT_SCHEMA_VERSION, name: "bench", description: "", tags: [], nodes, edges, notes: [] };
}

async function main() {
  const doc = layered();
  const n = doc.nodes.length;
  const measured = new Executor({ catalogue, storage, concurrency: 2 });
  const unmeasured = new Executor({ catalogue, storage, concurrency: 2, memoryProbe: false });
  const time = async (ex: Executor, runId: string) => {
    const t = performance.now();
    const r = await ex.run(doc, { runId, onEvent: () => {} });
    if (r.status !== "finished") throw new Error(`${runId}: ${r.status} ${r.error}`);
    return performance.now() - t;
  };
  for (let k = 0; k < 30; k++) {
    await time(measured, "warm");
    await time(unmeasured, "warm");
  }
  const on: number[] = [];
  const off: number[] = [];
  for (let k = 0; k < 200; k++) {
    on.push(await time(measured, `on${k}`));
    off.push(await time(unmeasured, `off${k}`));
  }
  // One node: what starting and stopping the sampler costs a run.
  const single = layered(1, 1);
  const on1: number[] = [];
  const off1: number[] = [];
  for (let k = 0; k < 1000; k++) {
    let t = performance.now();
    await measured.run(single, { runId: `s-on${k}` });
    on1.push(performance.now() - t);
    t = performance.now();
    await unmeasured.run(single, { runId: `s-off${k}` });
    off1.push(performance.now() - t);
  }
  const perNode = (xs: number[]) => (median(xs) * 1000) / n;
  const result = {
    nodes: n,
    measuredUsPerNode: perNode(on),
    unmeasuredUsPerNode: perNode(off),
    addedUsPerNode: perNode(on) - perNode(off),
    oneNodeRunMeasuredUs: median(on1) * 1000,
    oneNodeRunUnmeasuredUs: median(off1) * 1000,
  };
  console.log(
    `executor, ${n} trivial nodes, medians of 200 runs: memory measured ${result.measuredUsPerNode.toFixed(1)} µs/node, not measured ${result.unmeasuredUsPerNode.toFixed(1)} µs/node (+${result.addedUsPerNode.toFixed(1)} µs/node); ` +
      `a one-node run: ${result.oneNodeRunMeasuredUs.toFixed(0)} µs measured, ${result.oneNodeRunUnmeasuredUs.toFixed(0)} µs not (+${(result.oneNodeRunMeasuredUs - result.oneNodeRunUnmeasuredUs).toFixed(0)} µs per run)`,
  );
  console.log(JSON.stringify(result));
}

void main();
