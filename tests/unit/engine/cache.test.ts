import { describe, expect, it } from "vitest";
import { estimateBytes, OutputCache } from "@/engine/cache";
import { Executor } from "@/engine/executor";
import { catalogue, MemoryStorage, resetProbe, runs, wf } from "./helpers";

describe("estimateBytes", () => {
  it("counts typed arrays by byteLength, strings at 2 bytes a char, and walks objects", () => {
    expect(estimateBytes(new Float32Array(1000))).toBe(4000);
    expect(estimateBytes("abcd")).toBe(8);
    const shared = new Uint8Array(100);
    expect(estimateBytes({ a: shared, b: shared })).toBeLessThan(300); // shared once
    const cyclic: Record<string, unknown> = { x: 1 };
    cyclic.self = cyclic;
    expect(estimateBytes(cyclic)).toBeGreaterThan(0);
  });
});

describe("OutputCache", () => {
  it("evicts least recently used entries to stay within maxBytes", async () => {
    const cache = new OutputCache({ maxBytes: 10_000 });
    await cache.set("a", { x: new Float32Array(1000) }); // ~4 KB
    await cache.set("b", { x: new Float32Array(1000) });
    expect(cache.stats().entries).toBe(2);
    await cache.get("a"); // a is now more recent than b
    await cache.set("c", { x: new Float32Array(1000) });
    const s = cache.stats();
    expect(s.entries).toBe(2);
    expect(s.evictions).toBe(1);
    expect(s.bytes).toBeLessThanOrEqual(10_000);
    expect(cache.has("b")).toBe(false);
    expect(cache.has("a") && cache.has("c")).toBe(true);
    expect(cache.delete("a")).toBe(true);
    expect(cache.stats().bytes).toBeLessThan(s.bytes);
    cache.clear();
    expect(cache.stats()).toMatchObject({ entries: 0, bytes: 0 });
  });

  it("counts hits and misses and skips values larger than the whole cache", async () => {
    const cache = new OutputCache({ maxBytes: 1000 });
    expect(await cache.get("nope")).toBeUndefined();
    await cache.set("huge", { x: new Float64Array(1000) });
    expect(cache.has("huge")).toBe(false);
    await cache.set("small", { x: 1 });
    expect(await cache.get("small")).toEqual({ x: 1 });
    expect(cache.stats()).toMatchObject({ hits: 1, misses: 1, entries: 1 });
  });

  it("spills large typed arrays to storage and restores them on a hit", async () => {
    const storage = new MemoryStorage();
    const cache = new OutputCache({ maxBytes: 100_000, storage, spillThresholdBytes: 4096 });
    const big = Float32Array.from({ length: 10_000 }, (_, k) => k * 0.5);
    await cache.set("k", { big, small: "hi" });
    const s = cache.stats();
    expect(s.spilledValues).toBe(1);
    expect(s.spilledBytes).toBe(40_000);
    expect(s.bytes).toBeLessThan(1000); // only the reference is held in memory
    expect(storage.blobs.size).toBe(1);
    const back = await cache.get("k");
    expect(back!.small).toBe("hi");
    expect(back!.big).toBeInstanceOf(Float32Array);
    expect(Array.from(back!.big as Float32Array)).toEqual(Array.from(big));
    // A missing blob turns into a miss rather than an error.
    storage.blobs.clear();
    expect(await cache.get("k")).toBeUndefined();
    expect(cache.has("k")).toBe(false);
  });

  it("an evicted entry makes its node run again", async () => {
    resetProbe();
    const storage = new MemoryStorage();
    const cache = new OutputCache({ maxBytes: 6000 });
    const executor = new Executor({ catalogue, storage, cache });
    const doc = (fill: number) => wf([{ id: "b", type: "test.big", params: { n: 1000, fill } }], []);
    await executor.run(doc(1), { runId: "r1" });
    await executor.run(doc(2), { runId: "r2" }); // evicts fill=1
    expect(cache.stats().evictions).toBe(1);
    const r = await executor.run(doc(1), { runId: "r3" });
    expect(r.nodes.get("b")!.status).toBe("done");
    expect(runs("b")).toBe(3);
  });
});
