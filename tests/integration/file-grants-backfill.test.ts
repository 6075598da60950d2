import Database from "better-sqlite3";
import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { freshDataDir } from "./fresh-db";

// An install from before FileGrant: uploaders in <data dir>/file-owners, runs and versions naming files.
const DATA = freshDataDir();
process.env.STUDIO_DATA_DIR = DATA;
process.env.STUDIO_AUTH = "on";
delete process.env.STUDIO_ARTIFACTS;
const { backfillFileGrants } = await import("@/app/server/file-grants-backfill");
const { canReadArtifact } = await import("@/app/server/access");
const { fileStorage } = await import("@/app/server/storage");
const { db } = await import("@/app/server/db");

const past = new Date("2026-01-01T00:00:00Z");
const imageDoc = (file: string) => JSON.stringify({ schemaVersion: 2, name: "w", nodes: [{ id: "img", type: "input.image", typeVersion: 1, params: { file }, position: { x: 0, y: 0 } }], edges: [] });

describe("grants for data made before files had them", () => {
  it("uploads go to their uploaders; runs keep the files of their outputs but not other users' uploads; versions what their author may read", async () => {
    const sqlite = new Database(path.join(DATA, "studio.db"));
    sqlite.exec(`CREATE TABLE "_prisma_migrations" ("migration_name" TEXT, "finished_at" DATETIME); INSERT INTO "_prisma_migrations" VALUES ('20261124010000_file_grants', '2026-06-01 00:00:00')`);
    sqlite.close();
    const store = fileStorage();
    const [mine, theirs, artifact] = await Promise.all([store.write(Buffer.from("alice's upload"), "png"), store.write(Buffer.from("bob's upload"), "png"), store.write(Buffer.from("an output"), "json")]);
    for (const [id, user] of [[mine, "alice"], [theirs, "bob"]] as const) {
      mkdirSync(path.join(DATA, "file-owners", id.slice(0, 2)), { recursive: true });
      writeFileSync(path.join(DATA, "file-owners", id.slice(0, 2), id.slice(0, 64)), `${user}\n`);
    }
    await db().workflow.create({ data: { id: "w1", name: "w", ownerId: "alice", latestVersion: 2, createdAt: past } });
    await db().workflowVersion.createMany({ data: [1, 2].map((v) => ({ id: `v${v}`, workflowId: "w1", version: v, schemaVersion: 2, document: imageDoc(v === 1 ? mine : theirs), createdAt: past })) });
    await db().run.create({ data: { id: "r1", workflowId: "w1", ownerId: "alice", document: imageDoc(mine), status: "finished", createdAt: past } });
    await db().nodeRun.create({ data: { id: "n1", runId: "r1", nodeId: "img", nodeType: "x", status: "done", outputs: JSON.stringify({ a: { file: mine }, b: { file: artifact }, forged: { file: theirs } }) } });
    // A run made after the migration is not looked at.
    await db().run.create({ data: { id: "r2", ownerId: "alice", document: "{}", status: "finished" } });
    await db().nodeRun.create({ data: { id: "n2", runId: "r2", nodeId: "x", nodeType: "x", status: "done", outputs: JSON.stringify({ file: theirs }) } });

    expect(await canReadArtifact("alice", mine)).toBe(false);
    const counts = await backfillFileGrants();
    expect(counts).toEqual({ uploads: 2, runs: 2, versions: 1 });
    expect(await backfillFileGrants()).toEqual(counts); // idempotent
    expect(await db().fileGrant.count()).toBe(5);
    expect(await canReadArtifact("alice", mine)).toBe(true);
    expect(await canReadArtifact("alice", artifact)).toBe(true);
    expect(await canReadArtifact("alice", theirs)).toBe(false);
    expect(await canReadArtifact("bob", theirs)).toBe(true);
    expect(await canReadArtifact("bob", mine)).toBe(false);
  });
});
