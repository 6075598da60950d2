import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { DiskStorage } from "@/engine/storage";

const root = mkdtempSync(path.join(os.tmpdir(), "storage-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe("DiskStorage.write", () => {
  it("many writes of the same new content at once all succeed with one id and one file, no temp files left", async () => {
    const storage = new DiskStorage(root);
    const bytes = new TextEncoder().encode(JSON.stringify({ same: "report", n: Math.random() }));
    const ids = await Promise.all(Array.from({ length: 16 }, () => storage.write(bytes, "json")));
    expect(new Set(ids).size).toBe(1);
    expect(readFileSync(storage.pathOf(ids[0]!), "utf8")).toBe(new TextDecoder().decode(bytes));
    const dir = path.dirname(storage.pathOf(ids[0]!));
    expect(readdirSync(dir).filter((f) => f.endsWith(".tmp"))).toEqual([]);
  });
});
