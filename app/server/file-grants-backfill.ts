import { readdir, readFile } from "node:fs/promises";
import path from "node:path";
import { BLOB_ID, DiskStorage, fileIdsIn } from "@/engine/storage";
import { databaseUrl, dataDir, isPostgresUrl } from "@/prisma/url";
import { fileRefs, grantFiles } from "./access";
import { db } from "./db";
import { fileStorage } from "./storage";

const MIGRATION = "20261124010000_file_grants";

/** When the FileGrant migration was applied here (rows made before it have no grants yet), or null. */
async function grantsSince(): Promise<Date | null> {
  const rows = isPostgresUrl(databaseUrl())
    ? await db().$queryRawUnsafe<{ at: Date | string }[]>(`SELECT applied_at AS at FROM "_studio_migrations" WHERE name = $1`, MIGRATION)
    : await db().$queryRawUnsafe<{ at: Date | string | number }[]>(`SELECT finished_at AS at FROM "_prisma_migrations" WHERE migration_name = ?`, MIGRATION);
  const at = rows[0]?.at;
  return at === undefined || at === null ? null : new Date(at);
}

/** The uploaders the server recorded before FileGrant, one file per hash: <data dir>/file-owners/<aa>/<sha256>. */
async function legacyUploaders(): Promise<Map<string, string[]>> {
  const root = path.join(dataDir(), "file-owners");
  const out = new Map<string, string[]>();
  for (const dir of await readdir(root).catch(() => [] as string[])) {
    for (const hash of await readdir(path.join(root, dir)).catch(() => [] as string[])) {
      if (!/^[0-9a-f]{64}$/.test(hash)) continue;
      out.set(hash, (await readFile(path.join(root, dir, hash), "utf8")).split("\n").filter(Boolean));
    }
  }
  return out;
}

/**
 * Grants for what was made before files had them (run by `npm run setup`; idempotent, and only rows
 * older than the FileGrant migration are looked at). Uploads go to their recorded uploaders. A run keeps
 * the files named in its nodes' outputs, except uploads of other users (before this, a document could
 * name any file id; such a name opens nothing now). A saved version keeps the files of its file params
 * that its author may read by those grants.
 */
export async function backfillFileGrants(): Promise<{ uploads: number; runs: number; versions: number }> {
  const since = await grantsSince();
  const counts = { uploads: 0, runs: 0, versions: 0 };
  if (!since) return counts;
  const uploaders = await legacyUploaders();
  const uploaderOf = (id: string) => uploaders.get(id.slice(0, 64)) ?? [];
  // The recorded uploads under the ids the store holds them by (a hash with its extension).
  const store = fileStorage();
  for (const [hash, users] of uploaders) {
    const dir = store instanceof DiskStorage ? path.dirname(store.pathOf(hash)) : null;
    const ids = dir ? (await readdir(dir).catch(() => [] as string[])).filter((f) => f.startsWith(hash) && BLOB_ID.test(f)) : [];
    for (const user of users) await grantFiles(ids, { userId: user });
    counts.uploads += ids.length * users.length;
  }
  const runs = await db().run.findMany({ where: { createdAt: { lt: since } }, select: { id: true, ownerId: true, document: true, nodeRuns: { select: { outputs: true } } } });
  for (const run of runs) {
    const named = new Set<string>();
    for (const n of run.nodeRuns) {
      try {
        for (const id of fileIdsIn(JSON.parse(n.outputs ?? "null"))) named.add(id);
      } catch {
        // unreadable outputs: nothing to grant
      }
    }
    const kept = [...named].filter((id) => {
      const by = uploaderOf(id);
      return by.length === 0 || by.includes(run.ownerId);
    });
    await grantFiles(kept, { runId: run.id });
    counts.runs += kept.length;
  }
  const versions = await db().workflowVersion.findMany({ where: { createdAt: { lt: since } }, select: { id: true, document: true, workflow: { select: { ownerId: true } } } });
  for (const v of versions) {
    let doc: unknown;
    try {
      doc = JSON.parse(v.document);
    } catch {
      continue;
    }
    const nodes = (doc as { nodes?: unknown }).nodes;
    if (!Array.isArray(nodes)) continue;
    const refs = fileRefs({ nodes: nodes as never }).map((r) => r.fileId).filter((id) => BLOB_ID.test(id));
    const owner = v.workflow.ownerId;
    const readable = [];
    for (const id of refs) {
      if (uploaderOf(id).includes(owner)) readable.push(id);
      else if (await db().fileGrant.findFirst({ where: { fileId: id, run: { ownerId: owner } }, select: { id: true } })) readable.push(id);
    }
    await grantFiles(readable, { versionId: v.id });
    counts.versions += readable.length;
  }
  return counts;
}
