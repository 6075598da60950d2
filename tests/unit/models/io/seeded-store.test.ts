import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it, vi } from "vitest";
import { KeyedCache } from "@/models/io/keyed-cache";
import { writeSafetensors } from "@/models/io/safetensors";
import { ensureSeededModel, seededStaleReason, type SeededManifest } from "@/models/io/seeded-store";

const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), "seeded-store-test-"));
afterAll(() => fs.rmSync(tmpRoot, { recursive: true, force: true }));

interface Manifest extends SeededManifest {
  seed: number;
}

/** A two-tensor model whose values come from `seed`; `writes` counts the builds, `fail` makes `write` throw midway. */
function spec(dir: string, seed: number, opts: { fail?: boolean; writes?: { n: number } } = {}) {
  const config = { hidden: 4, seed };
  const contentHash = `hash-${seed}`;
  return {
    dir,
    contentHash,
    configFile: "config.json",
    config,
    weights: { "model.safetensors": () => 2 },
    otherFiles: ["extra.txt"],
    async write(tmp: string): Promise<Manifest> {
      if (opts.writes) opts.writes.n++;
      const { bytes } = await writeSafetensors(path.join(tmp, "model.safetensors"), [
        { name: "a", shape: [4], data: Float32Array.from({ length: 4 }, (_, i) => seed + i) },
        { name: "b", shape: [2, 2], data: () => new Float32Array(4).fill(seed) },
      ]);
      if (opts.fail) throw new Error("the build died midway");
      fs.writeFileSync(path.join(tmp, "extra.txt"), "x");
      return { contentHash, files: { "model.safetensors": bytes }, seed };
    },
    result: (o: { dir: string; built: boolean; manifest: Manifest; reason?: string }) => o,
  };
}

const siblings = (dir: string) => fs.readdirSync(path.dirname(dir)).filter((e) => e.startsWith(`.${path.basename(dir)}.`));

describe("seeded-model store (models/io/seeded-store.ts)", () => {
  it("builds once, then finds the model in place", async () => {
    const dir = path.join(tmpRoot, "a", "m");
    const first = await ensureSeededModel(spec(dir, 1));
    expect(first).toMatchObject({ dir, built: true, reason: "not built yet", manifest: { seed: 1, contentHash: "hash-1" } });
    expect(fs.readdirSync(dir).sort()).toEqual(["config.json", "extra.txt", "manifest.json", "model.safetensors"]);
    expect(seededStaleReason(dir, spec(dir, 1))).toBeNull();
    const writes = { n: 0 };
    const again = await ensureSeededModel(spec(dir, 1, { writes }));
    expect(again).toMatchObject({ built: false, manifest: { seed: 1 } });
    expect(writes.n).toBe(0);
  });

  it("concurrent calls for one directory share one build and one result object", async () => {
    const dir = path.join(tmpRoot, "b", "m");
    const writes = { n: 0 };
    const all = await Promise.all([1, 2, 3, 4].map(() => ensureSeededModel(spec(dir, 7, { writes }))));
    expect(writes.n).toBe(1);
    for (const r of all) expect(r).toBe(all[0]);
    expect(all[0]!.built).toBe(true);
    // settled builds are forgotten: a later call checks the disk again (and finds the model)
    expect((await ensureSeededModel(spec(dir, 7, { writes }))).built).toBe(false);
    expect(writes.n).toBe(1);
  });

  it("rebuilds a stale model, saying why: another seed, an edited config, a truncated or missing file", async () => {
    const dir = path.join(tmpRoot, "c", "m");
    await ensureSeededModel(spec(dir, 1));
    expect(seededStaleReason(dir, spec(dir, 2))).toMatch(/another config, seed/);
    const reseeded = await ensureSeededModel(spec(dir, 2));
    expect(reseeded).toMatchObject({ built: true, manifest: { seed: 2 } });
    expect(reseeded.reason).toMatch(/another config, seed/);

    fs.writeFileSync(path.join(dir, "config.json"), JSON.stringify({ hidden: 5, seed: 2 }));
    expect((await ensureSeededModel(spec(dir, 2))).reason).toBe("config.json was changed");

    fs.truncateSync(path.join(dir, "model.safetensors"), 10);
    expect((await ensureSeededModel(spec(dir, 2))).reason).toBe("model.safetensors has the wrong size");

    fs.rmSync(path.join(dir, "extra.txt"));
    expect((await ensureSeededModel(spec(dir, 2))).reason).toBe("no extra.txt");

    fs.rmSync(path.join(dir, "manifest.json"));
    expect((await ensureSeededModel(spec(dir, 2))).reason).toBe("no readable manifest.json");
    expect(seededStaleReason(dir, spec(dir, 2))).toBeNull();
    expect(siblings(dir)).toEqual([]);
  });

  it("a model that checked out is not re-read on the next call, but any edit to one of its files is seen (same size too)", async () => {
    const dir = path.join(tmpRoot, "c2", "m");
    await ensureSeededModel(spec(dir, 3)); // built
    await ensureSeededModel(spec(dir, 3)); // checked out
    const reads = vi.spyOn(fs, "readFileSync");
    const opens = vi.spyOn(fs, "openSync");
    expect((await ensureSeededModel(spec(dir, 3))).built).toBe(false); // checked out: remembered, nothing read
    expect(reads.mock.calls.length + opens.mock.calls.length).toBe(0);
    reads.mockRestore();
    opens.mockRestore();
    const config = path.join(dir, "config.json");
    const text = fs.readFileSync(config, "utf8");
    fs.writeFileSync(config, text.replace('"seed": 3', '"seed": 4')); // same length, other content
    expect(fs.readFileSync(config, "utf8").length).toBe(text.length);
    expect((await ensureSeededModel(spec(dir, 3))).reason).toBe("config.json was changed");
    expect((await ensureSeededModel(spec(dir, 3))).built).toBe(false);

    const weights = path.join(dir, "model.safetensors");
    const bytes = fs.readFileSync(weights);
    bytes.writeBigUInt64LE(BigInt(bytes.length), 0); // a header length past the end: same size, unreadable
    fs.writeFileSync(weights, bytes);
    expect((await ensureSeededModel(spec(dir, 3))).reason).toMatch(/^model\.safetensors is unreadable/);

    expect((await ensureSeededModel(spec(dir, 3))).built).toBe(false);
    const other = path.join(dir, "extra.txt");
    fs.rmSync(other);
    fs.writeFileSync(other, "x"); // replaced by an identical file: a new inode, checked again (and fine)
    expect((await ensureSeededModel(spec(dir, 3))).built).toBe(false);
    fs.rmSync(path.join(dir, "manifest.json"));
    expect((await ensureSeededModel(spec(dir, 3))).reason).toBe("no readable manifest.json");
  });

  it("a build that fails midway leaves no half model: a fresh dir stays absent, an existing model stays intact", async () => {
    const fresh = path.join(tmpRoot, "d", "m");
    await expect(ensureSeededModel(spec(fresh, 1, { fail: true }))).rejects.toThrow(/died midway/);
    expect(fs.existsSync(fresh)).toBe(false);
    expect(siblings(fresh)).toEqual([]);

    const kept = path.join(tmpRoot, "e", "m");
    await ensureSeededModel(spec(kept, 1));
    const before = fs.readFileSync(path.join(kept, "model.safetensors"));
    await expect(ensureSeededModel(spec(kept, 2, { fail: true }))).rejects.toThrow(/died midway/);
    expect(fs.readFileSync(path.join(kept, "model.safetensors")).equals(before)).toBe(true);
    expect(seededStaleReason(kept, spec(kept, 1))).toBeNull();
    expect(siblings(kept)).toEqual([]);
    // a failed build is not remembered: the next call builds
    expect((await ensureSeededModel(spec(kept, 2))).built).toBe(true);
  });

  it("removes the temporary dir of a build whose process died, and leaves a live process's alone", async () => {
    const dir = path.join(tmpRoot, "f", "m");
    fs.mkdirSync(path.dirname(dir), { recursive: true });
    const dead = path.join(path.dirname(dir), ".m.tmp-999999999-abc");
    const live = path.join(path.dirname(dir), `.m.tmp-${process.pid}-live`);
    for (const d of [dead, live]) {
      fs.mkdirSync(d);
      fs.writeFileSync(path.join(d, "model.safetensors"), "partial");
    }
    await ensureSeededModel(spec(dir, 1));
    expect(fs.existsSync(dead)).toBe(false);
    expect(fs.existsSync(live)).toBe(true);
    fs.rmSync(live, { recursive: true });
  });
});

describe("KeyedCache (models/io/keyed-cache.ts)", () => {
  it("shares one promise per key, forgets rejections, and with keep: false forgets settled values", async () => {
    let made = 0;
    const kept = new KeyedCache<string, number>();
    const make = () => Promise.resolve(++made);
    const [a, b] = [kept.get("k", make), kept.get("k", make)];
    expect(a).toBe(b);
    expect(await a).toBe(1);
    expect(await kept.get("k", make)).toBe(1);

    const failing = kept.get("bad", () => Promise.reject(new Error("no")));
    await expect(failing).rejects.toThrow("no");
    expect(await kept.get("bad", make)).toBe(2);

    const inFlight = new KeyedCache<string, number>({ keep: false });
    const p = inFlight.get("k", make);
    expect(inFlight.get("k", make)).toBe(p);
    await p;
    expect(inFlight.size).toBe(0);
    expect(await inFlight.get("k", make)).toBe(4);
  });

  it("a value made under another stamp is replaced and handed to onReplace", async () => {
    const replaced: number[] = [];
    const cache = new KeyedCache<string, number>({ onReplace: (old) => void old.then((v) => replaced.push(v)) });
    expect(await cache.get("k", async () => 1, "h1")).toBe(1);
    expect(await cache.get("k", async () => 2, "h1")).toBe(1);
    expect(await cache.get("k", async () => 3, "h2")).toBe(3);
    await Promise.resolve();
    expect(replaced).toEqual([1]);
    expect(cache.list().map(([k]) => k)).toEqual(["k"]);
    expect(await cache.delete("k")).toBe(3);
    expect(cache.size).toBe(0);
  });

  it("a create() that throws synchronously rejects and stores nothing", async () => {
    const cache = new KeyedCache<string, number>();
    await expect(
      cache.get("k", () => {
        throw new Error("sync");
      }),
    ).rejects.toThrow("sync");
    expect(cache.size).toBe(0);
  });
});
