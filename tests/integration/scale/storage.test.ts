import { existsSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { fileIdsIn, parseS3Url } from "@/engine/storage";
import { tempDir } from "./services";

// STUDIO_ARTIFACTS=<dir>: every process (web, workers) reads and writes the same content-addressed files.
const shared = path.join(tempDir("studio-artifacts-"), "shared");
process.env.STUDIO_ARTIFACTS = shared;
const { fileStorage } = await import("@/app/server/storage");

describe("artifact storage by configuration", () => {
  it("STUDIO_ARTIFACTS=<dir> stores blobs there, content-addressed", async () => {
    const store = fileStorage();
    const id = await store.write(new TextEncoder().encode("hello"), "txt");
    expect(id).toBe("2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824.txt");
    expect(store.pathOf(id).startsWith(shared)).toBe(true);
    expect(existsSync(store.pathOf(id))).toBe(true);
    expect((await store.read(id)).toString()).toBe("hello");
  });

  it("s3:// addresses parse into bucket and prefix, bad ones are refused with the reason", () => {
    expect(parseS3Url("s3://studio-lab/runs/artifacts/")).toEqual({ bucket: "studio-lab", prefix: "runs/artifacts" });
    expect(parseS3Url("s3://studio-lab")).toEqual({ bucket: "studio-lab", prefix: "" });
    expect(() => parseS3Url("s3://")).toThrow(/not an s3:\/\/bucket\/prefix address/);
    expect(() => parseS3Url("https://example.com/x")).toThrow(/not an s3:\/\/bucket\/prefix address/);
  });

  it("finds the file ids a document refers to (fetched from S3 before a run)", () => {
    const a = "a".repeat(64) + ".png";
    const b = "b".repeat(64);
    const doc = { nodes: [{ params: { file: a, note: "not an id" } }, { params: { list: [b, 3, null] } }] };
    expect([...fileIdsIn(doc)].sort()).toEqual([a, b]);
  });
});
