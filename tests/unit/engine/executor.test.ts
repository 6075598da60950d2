import { beforeEach, describe, expect, it } from "vitest";
import { OutputCache } from "@/engine/cache";
import type { RunEvent } from "@/engine/events";
import { Executor } from "@/engine/executor";
import { defineNode, NodeCatalogue, recordingWrites } from "@/engine/node";
import { z } from "zod";
import { catalogue, MemoryStorage, probe, resetProbe, runs, wf } from "./helpers";

function setup(concurrency = 2) {
  const storage = new MemoryStorage();
  const cache = new OutputCache({ maxBytes: 1 << 24, storage });
  const executor = new Executor({ catalogue, storage, cache, concurrency });
  return { storage, cache, executor };
}

/** s1 → a1 → a2 (chain) and s2 → b1 (independent branch). */
const chain = (k1 = 0, v2 = 5) =>
  wf(
    [
      { id: "s1", type: "test.source", params: { value: 1 } },
      { id: "a1", type: "test.add", params: { k: k1 } },
      { id: "a2", type: "test.add", params: { k: 10 } },
      { id: "s2", type: "test.source", params: { value: v2 } },
      { id: "b1", type: "test.add", params: { k: 100 } },
    ],
    [["s1", "a1"], ["a1", "a2"], ["s2", "b1"]],
  );

beforeEach(resetProbe);

describe("Executor", () => {
  it("runs everything in topological order and returns outputs", async () => {
    const { executor } = setup();
    const r = await executor.run(chain(), { runId: "r1" });
    expect(r.status).toBe("finished");
    expect(r.outputs.get("a2")).toEqual({ out: 11 });
    expect(r.outputs.get("b1")).toEqual({ out: 105 });
    expect([...r.nodes.values()].every((n) => n.status === "done" && n.cacheKey)).toBe(true);
  });

  it("an unchanged re-run is served entirely from the cache", async () => {
    const { executor } = setup();
    await executor.run(chain(), { runId: "r1" });
    resetProbe();
    const r = await executor.run(chain(), { runId: "r2" });
    expect(r.status).toBe("finished");
    expect([...r.nodes.values()].map((n) => n.status)).toEqual(Array(5).fill("cached"));
    expect(probe.counts.size).toBe(0);
    expect(r.outputs.get("a2")).toEqual({ out: 11 });
  });

  it("after a param change only that node and its dependents run again", async () => {
    const { executor } = setup();
    const first = await executor.run(chain(0), { runId: "r1" });
    resetProbe();
    const r = await executor.run(chain(7), { runId: "r2" });
    expect(Object.fromEntries([...r.nodes].map(([id, n]) => [id, n.status]))).toEqual({
      s1: "cached", a1: "done", a2: "done", s2: "cached", b1: "cached",
    });
    expect([runs("s1"), runs("a1"), runs("a2"), runs("s2"), runs("b1")]).toEqual([0, 1, 1, 0, 0]);
    expect(r.outputs.get("a2")).toEqual({ out: 18 });
    expect(r.nodes.get("a2")!.cacheKey).not.toBe(first.nodes.get("a2")!.cacheKey);
  });

  it("a seed param changes the cache key", async () => {
    const { executor } = setup();
    const doc = (seed: number) => wf([{ id: "s", type: "test.source", params: { value: 1, seed } }], []);
    const a = await executor.run(doc(1), { runId: "r1" });
    const b = await executor.run(doc(2), { runId: "r2" });
    const c = await executor.run(doc(1), { runId: "r3" });
    expect(a.nodes.get("s")!.cacheKey).not.toBe(b.nodes.get("s")!.cacheKey);
    expect(c.nodes.get("s")!.cacheKey).toBe(a.nodes.get("s")!.cacheKey);
    expect(b.nodes.get("s")!.status).toBe("done");
    expect(c.nodes.get("s")!.status).toBe("cached");
  });

  it("cache keys ignore node ids, positions and param spelling that parses the same", async () => {
    const { executor } = setup();
    const a = await executor.run(wf([{ id: "x", type: "test.source", params: { value: 2 } }], []), { runId: "r1" });
    const doc = wf([{ id: "y", type: "test.source", params: { value: 2, seed: 0 } }], []);
    doc.nodes[0]!.position = { x: 500, y: 500 };
    const b = await executor.run(doc, { runId: "r2" });
    expect(b.nodes.get("y")!.status).toBe("cached");
    expect(b.nodes.get("y")!.cacheKey).toBe(a.nodes.get("x")!.cacheKey);
  });

  it("run-to-node runs only the target and its ancestors", async () => {
    const { executor } = setup();
    const r = await executor.run(chain(), { runId: "r1", targetNodeId: "a1" });
    expect(r.status).toBe("finished");
    expect([...r.nodes.keys()]).toEqual(["s1", "a1"]);
    expect([runs("s1"), runs("a1"), runs("a2"), runs("s2"), runs("b1")]).toEqual([1, 1, 0, 0, 0]);
  });

  it("an unknown node type fails the run only when it is in the run set", async () => {
    const { executor } = setup();
    const doc = chain();
    doc.nodes.push({ id: "ghost", type: "test.nope", typeVersion: 1, params: {}, position: { x: 0, y: 0 } });
    const partial = await executor.run(doc, { runId: "r1", targetNodeId: "a2" });
    expect(partial.status).toBe("finished");
    const full = await executor.run(doc, { runId: "r2" });
    expect(full.status).toBe("failed");
    expect(full.error).toMatch(/"ghost".*unknown type "test\.nope"/);
  });

  it("a failed node is not cached, its dependents are skipped, and an independent branch finishes", async () => {
    const { executor, cache } = setup();
    const doc = wf(
      [
        { id: "s1", type: "test.source" },
        { id: "bad", type: "test.fail", label: "Broken step", params: { message: "disk on fire" } },
        { id: "after", type: "test.add" },
        { id: "after2", type: "test.add" },
        { id: "s2", type: "test.source", params: { value: 3 } },
        { id: "ok", type: "test.add", params: { delayMs: 5 } },
      ],
      [["s1", "bad"], ["bad", "after"], ["after", "after2"], ["s2", "ok"]],
    );
    const events: RunEvent[] = [];
    const r = await executor.run(doc, { runId: "r1", onEvent: (e) => events.push(e) });
    expect(r.status).toBe("failed");
    expect(r.nodes.get("bad")!.status).toBe("error");
    expect(r.nodes.get("bad")!.error).toBe('Node "Broken step" (test.fail): disk on fire');
    expect(r.nodes.get("after")!.status).toBe("skipped");
    expect(r.nodes.get("after2")!.status).toBe("skipped");
    expect(r.nodes.get("ok")!.status).toBe("done");
    expect(r.outputs.get("ok")).toEqual({ out: 3 });
    expect(runs("after")).toBe(0);
    expect(cache.has(r.nodes.get("bad")!.cacheKey!)).toBe(false);
    const err = events.find((e) => e.type === "node-error");
    expect(err).toMatchObject({ nodeId: "bad", message: 'Node "Broken step" (test.fail): disk on fire' });
    expect(events.at(-1)).toMatchObject({ type: "failed" });
    expect((events.at(-1) as { message: string }).message).toMatch(/Broken step.*disk on fire.*2 dependent nodes skipped/);

    // Run again: the failed node executes again (no cache entry), the good ones are cached.
    resetProbe();
    const again = await executor.run(doc, { runId: "r2" });
    expect(runs("bad")).toBe(1);
    expect(again.nodes.get("ok")!.status).toBe("cached");
  });

  it("cancellation stops a long node mid-loop and caches nothing half-done", async () => {
    const { executor, cache } = setup();
    const doc = wf(
      [
        { id: "s", type: "test.source" },
        { id: "loop", type: "test.loop", params: { steps: 10_000, stepMs: 1 } },
        { id: "after", type: "test.add" },
      ],
      [["s", "loop"], ["loop", "after"]],
    );
    const ac = new AbortController();
    const events: RunEvent[] = [];
    const started = performance.now();
    const r = await executor.run(doc, {
      runId: "r1",
      signal: ac.signal,
      onEvent: (e) => {
        events.push(e);
        if (e.type === "progress" && e.fraction > 0.001) ac.abort();
      },
    });
    expect(performance.now() - started).toBeLessThan(2000);
    expect(r.status).toBe("cancelled");
    expect(r.nodes.get("s")!.status).toBe("done");
    expect(r.nodes.get("loop")!.status).toBe("cancelled");
    expect(r.nodes.get("after")!.status).toBe("cancelled");
    expect(runs("after")).toBe(0);
    expect(cache.has(r.nodes.get("s")!.cacheKey!)).toBe(true);
    expect(cache.stats().entries).toBe(1);
    expect(events.at(-1)!.type).toBe("cancelled");
    expect(events.some((e) => e.type === "node-error")).toBe(false);
  });

  it("an already aborted signal runs nothing", async () => {
    const { executor } = setup();
    const ac = new AbortController();
    ac.abort();
    const r = await executor.run(chain(), { runId: "r1", signal: ac.signal });
    expect(r.status).toBe("cancelled");
    expect(probe.counts.size).toBe(0);
    expect([...r.nodes.values()].every((n) => n.status === "cancelled")).toBe(true);
  });

  it("keeps at most `concurrency` nodes executing at once on a wide graph", async () => {
    const { executor } = setup(2);
    const nodes = [{ id: "s", type: "test.source", params: { value: 1 } }];
    const edges: [string, string][] = [];
    for (let k = 0; k < 12; k++) {
      nodes.push({ id: `w${k}`, type: "test.add", params: { k, delayMs: 5 } } as never);
      edges.push(["s", `w${k}`]);
    }
    const r = await executor.run(wf(nodes, edges), { runId: "r1" });
    expect(r.status).toBe("finished");
    expect(probe.maxActive).toBe(2);

    resetProbe();
    const wide = new Executor({ catalogue, storage: new MemoryStorage(), concurrency: 4 });
    await wide.run(wf(nodes, edges), { runId: "r2" });
    expect(probe.maxActive).toBe(4);
  });

  it("a cycle sneaked into a document fails before any node runs, naming the nodes", async () => {
    const { executor } = setup();
    const doc = wf(
      [
        { id: "s", type: "test.source" },
        { id: "p", type: "test.add", label: "Ping" },
        { id: "q", type: "test.add", label: "Pong" },
      ],
      [["s", "p", "b"], ["q", "p"], ["p", "q"]],
    );
    const events: RunEvent[] = [];
    const r = await executor.run(doc, { runId: "r1", onEvent: (e) => events.push(e) });
    expect(r.status).toBe("failed");
    expect(r.error).toMatch(/cycle/);
    expect(r.error).toMatch(/Ping/);
    expect(r.error).toMatch(/Pong/);
    expect(probe.counts.size).toBe(0);
    expect(events.map((e) => e.type)).toEqual(["failed"]);
  });

  it("emits events in order", async () => {
    const { executor } = setup(1);
    const doc = wf(
      [
        { id: "s", type: "test.source" },
        { id: "l", type: "test.loop", params: { steps: 2, stepMs: 0 } },
      ],
      [["s", "l"]],
    );
    const events: RunEvent[] = [];
    await executor.run(doc, { runId: "r1", onEvent: (e) => events.push(e) });
    expect(events.map((e) => ("nodeId" in e ? `${e.type}:${e.nodeId}` : e.type))).toEqual([
      "started", "node-start:s", "node-done:s", "node-start:l", "progress:l", "progress:l", "node-done:l", "finished",
    ]);
    expect(events[0]).toMatchObject({ runId: "r1", executionProvider: "none", nodeIds: ["s", "l"] });
    expect(events.every((e) => e.runId === "r1" && typeof e.at === "number")).toBe(true);
    for (let k = 1; k < events.length; k++) expect(events[k]!.at).toBeGreaterThanOrEqual(events[k - 1]!.at);

    events.length = 0;
    await executor.run(doc, { runId: "r2", onEvent: (e) => events.push(e) });
    expect(events.map((e) => e.type)).toEqual(["started", "node-cached", "node-cached", "finished"]);
    expect(events[1]).toMatchObject({ nodeId: "s", summary: "out: 0" });
  });

  it("nondeterministic nodes and their dependents never hit the cache", async () => {
    const { executor } = setup();
    const doc = wf([{ id: "r", type: "test.random" }, { id: "a", type: "test.add" }], [["r", "a"]]);
    await executor.run(doc, { runId: "r1" });
    const r = await executor.run(doc, { runId: "r2" });
    expect(runs("r")).toBe(2);
    expect(runs("a")).toBe(2);
    expect(r.nodes.get("a")!.status).toBe("done");
  });

  it("invalid params fail the run with a message naming the node", async () => {
    const { executor } = setup();
    const r = await executor.run(wf([{ id: "s", type: "test.source", label: "Seed", params: { value: "x" } }], []), { runId: "r1" });
    expect(r.status).toBe("failed");
    expect(r.error).toMatch(/"Seed" \(test\.source\).*value/);
  });

  it("a listener that throws does not break the run", async () => {
    const { executor } = setup();
    const r = await executor.run(chain(), { runId: "r1", onEvent: () => { throw new Error("listener"); } });
    expect(r.status).toBe("finished");
  });
});

describe("Executor.onOutputs", () => {
  it("reports each node's outputs once, done or cached", async () => {
    const { executor } = setup();
    const seen: string[] = [];
    await executor.run(chain(), { runId: "r1", onOutputs: (id, o, status) => seen.push(`${id}:${status}:${o.out}`) });
    expect(seen.sort()).toEqual(["a1:done:1", "a2:done:11", "b1:done:105", "s1:done:1", "s2:done:5"]);
    seen.length = 0;
    await executor.run(chain(), { runId: "r2", onOutputs: (id, _o, status) => seen.push(`${id}:${status}`) });
    expect(seen.every((s) => s.endsWith(":cached"))).toBe(true);
    expect(seen).toHaveLength(5);
  });
});

describe("files a node writes", () => {
  // Writes a file with its value in it and outputs the file's id.
  const writer = defineNode({
    type: "test.writer",
    typeVersion: 1,
    title: "Writer",
    category: "Utility",
    description: "stores its value",
    inputs: {},
    outputs: { out: { type: "JSON" } },
    params: z.object({ value: z.string().default("x") }),
    async execute({ params, ctx }) {
      return { out: { kind: "note", file: await ctx.storage.write(Buffer.from(params.value), "txt") } };
    },
  });

  it("are reported with its outputs, and again with the cached outputs, through the run's own storage", async () => {
    const base = new MemoryStorage();
    const cache = new OutputCache({ maxBytes: 1 << 20, storage: base });
    const executor = new Executor({ catalogue: new NodeCatalogue([writer] as never[]), storage: base, cache });
    const doc = wf([{ id: "w", type: "test.writer", params: { value: "hello" } }], []);
    const seen: [string, readonly string[]][] = [];
    const throughRun: string[] = [];
    const storage = recordingWrites(base, (written) => void throughRun.push(written));
    await executor.run(doc, { runId: "r1", storage, onOutputs: (_id, _o, status, files) => seen.push([status, files]) });
    const id = [...base.blobs.keys()].find((k) => k.endsWith(".txt"))!;
    expect(throughRun).toEqual([id]);
    await executor.run(doc, { runId: "r2", onOutputs: (_id, _o, status, files) => seen.push([status, files]) });
    expect(seen).toEqual([["done", [id]], ["cached", [id]]]);
  });
});

describe("Executor: a run of many cheap nodes", () => {
  it("lets the event loop take turns (a chain of promise continuations held other requests for the whole run)", async () => {
    const busy = defineNode({
      type: "test.busy",
      typeVersion: 1,
      title: "Busy",
      category: "Utility",
      description: "1 ms of synchronous work, no I/O.",
      inputs: {},
      outputs: { out: { type: "NUMBER" } },
      params: z.object({ n: z.number().default(0) }),
      async execute({ params }) {
        const until = performance.now() + 1;
        while (performance.now() < until);
        return { out: params.n };
      },
    });
    const executor = new Executor({ catalogue: new NodeCatalogue([busy]), storage: new MemoryStorage(), concurrency: 2 });
    const doc = wf(Array.from({ length: 300 }, (_, i) => ({ id: `b${i}`, type: "test.busy", params: { n: i } })), []);
    let turns = 0;
    const timer = setInterval(() => turns++, 0);
    const t0 = performance.now();
    const r = await executor.run(doc, { runId: "busy" });
    const ms = performance.now() - t0;
    clearInterval(timer);
    expect(r.status).toBe("finished");
    // ~300 ms of work: a turn at least every ~10 ms (each turn runs the timer once at most)
    expect(turns, `${turns} turns in ${ms.toFixed(0)} ms`).toBeGreaterThan(ms / 40);
  });

  it("a failed run's message names the first 5 failed nodes and counts the rest", async () => {
    const { executor } = setup();
    const doc = wf(Array.from({ length: 12 }, (_, i) => ({ id: `f${i}`, type: "test.fail", params: { message: `m${i}` } })), []);
    const r = await executor.run(doc, { runId: "fails" });
    expect(r.status).toBe("failed");
    expect(r.error).toMatch(/^12 nodes failed: (.*m\d+.*; ){5}and 7 more$/);
    expect([...r.nodes.values()].filter((n) => n.status === "error")).toHaveLength(12);
  });
});
