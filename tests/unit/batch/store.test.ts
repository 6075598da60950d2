import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { RecordStore, type RecordEntry } from "@/engine/batch/store";

const tmp = mkdtempSync(path.join(os.tmpdir(), "record-store-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const hash = (i: number) => i.toString(16).padStart(2, "0").repeat(32);
const entry = (i: number): RecordEntry => ({ v: 1, record: hash(i), ms: i, aggregate: { n: i } as never });

describe("RecordStore", () => {
  it("writes entries into shard folders, reads them back, and survives its folder being removed while in use", async () => {
    const store = new RecordStore(tmp, "f".repeat(64));
    await Promise.all([1, 2, 3, 1].map((i) => store.put(entry(i))));
    expect((await store.get(hash(2)))?.ms).toBe(2);
    expect(await store.get(hash(9))).toBeUndefined();
    expect(readdirSync(path.join(store.dir, "records")).sort()).toEqual(["01", "02", "03"]);
    // A shard made earlier is gone (store cleared meanwhile): the next write makes it again.
    rmSync(store.dir, { recursive: true, force: true });
    await store.put(entry(2));
    await store.put(entry(4));
    expect((await store.get(hash(2)))?.ms).toBe(2);
    expect((await store.get(hash(4)))?.ms).toBe(4);
    expect(readdirSync(path.join(store.dir, "records", "02")).filter((f) => f.endsWith(".tmp"))).toEqual([]);
  });

  it("two batches of one workflow writing its aggregate at once both succeed (they shared a temp file: ENOENT on rename)", async () => {
    const a = new RecordStore(tmp, "e".repeat(64)), b = new RecordStore(tmp, "e".repeat(64));
    const texts = Array.from({ length: 8 }, (_, i) => `{"n":${i}}`);
    await Promise.all(texts.map((t, i) => (i % 2 ? a : b).writeFile("aggregate.json", t)));
    expect(readdirSync(a.dir).filter((f) => f.endsWith(".tmp"))).toEqual([]);
  });
});
