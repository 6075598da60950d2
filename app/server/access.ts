import { createHash } from "node:crypto";
import { BLOB_ID } from "@/engine/storage";
import type { Workflow } from "@/engine/workflow/schema";
import { authEnabled } from "./auth";
import { catalogInfo } from "./catalog";
import { storedComputation } from "./computation";
import { db, isConflict } from "./db";
import { nextTurn } from "@/engine/turns";

/**
 * Who may read a stored file follows where it came from, as the server saw it happen (FileGrant rows):
 * the user who uploaded it; a run that wrote it or took it as an input; a saved version that uses it.
 * Never the text of a document: a file id typed into a workflow opens nothing.
 */
type Subject = { userId: string } | { runId: string } | { versionId: string };

function subjectKey(s: Subject): string {
  return "userId" in s ? `user:${s.userId}` : "runId" in s ? `run:${s.runId}` : `version:${s.versionId}`;
}

/** Ids per query: far below SQLite's limit on bound variables. */
const IDS_PER_QUERY = 500;

function* inChunks<T>(items: T[], size = IDS_PER_QUERY): Generator<T[]> {
  for (let i = 0; i < items.length; i += size) yield items.slice(i, i + size);
}

/**
 * Records that `subject` may read these files (idempotent: one row per file and subject). Rows already there are
 * found in one query per 500 files and the rest written together; a document naming thousands of files costs a
 * few queries with turns of the event loop between, not thousands back to back.
 */
export async function grantFiles(fileIds: Iterable<string>, subject: Subject): Promise<void> {
  const key = subjectKey(subject);
  const rowId = (fileId: string) => createHash("sha256").update(`${fileId}|${key}`).digest("hex");
  const ids = [...new Set(fileIds)].filter((f) => BLOB_ID.test(f));
  for (const chunk of inChunks(ids)) {
    const wanted = new Map(chunk.map((fileId) => [rowId(fileId), fileId]));
    const there = await db().fileGrant.findMany({ where: { id: { in: [...wanted.keys()] } }, select: { id: true } });
    for (const { id } of there) wanted.delete(id);
    try {
      if (wanted.size) await db().fileGrant.createMany({ data: [...wanted].map(([id, fileId]) => ({ id, fileId, ...subject })) });
    } catch (err) {
      if (!isConflict(err)) throw err;
      // granted meanwhile by another request: write the rest one by one
      for (const [id, fileId] of wanted) {
        try {
          await db().fileGrant.create({ data: { id, fileId, ...subject } });
        } catch (e) {
          if (!isConflict(e)) throw e;
        }
      }
    }
    if (chunk.length === IDS_PER_QUERY) await nextTurn(); // more may follow
  }
}

/** Remembers who uploaded a file (or was handed it, like the example media). */
export function recordUploader(userId: string, fileId: string): Promise<void> {
  if (!BLOB_ID.test(fileId)) throw new Error(`"${fileId}" is not a valid file id`);
  return grantFiles([fileId], { userId });
}

/** Params that name a stored file, per node type (the catalogue's `widget: "file"` params). */
let fileParams: Map<string, string[]> | undefined;

/** The stored files a document's nodes name in their file params (what its input nodes read). */
export function fileRefs(doc: Pick<Workflow, "nodes">): { nodeId: string; label: string; fileId: string }[] {
  fileParams ??= new Map(
    catalogInfo({}).nodes.map((n) => {
      const props = (n.paramsSchema.properties ?? {}) as Record<string, { widget?: unknown }>;
      return [n.type, Object.keys(props).filter((k) => props[k]!.widget === "file")];
    }),
  );
  const refs: { nodeId: string; label: string; fileId: string }[] = [];
  for (const n of doc.nodes) {
    for (const param of fileParams.get(n.type) ?? []) {
      const value = (n.params as Record<string, unknown> | undefined)?.[param];
      if (typeof value === "string" && value !== "") refs.push({ nodeId: n.id, label: n.label ?? n.id, fileId: value });
    }
  }
  return refs;
}

/** The ShareLink a token names, with its workflow, if it is neither revoked nor expired (nor its workflow in the trash). */
export async function activeShare(token: string, now = new Date()) {
  if (!token || token.length > 200) return null;
  const link = await db().shareLink.findUnique({ where: { token }, include: { workflow: true } });
  if (!link || link.revokedAt || (link.expiresAt && link.expiresAt.getTime() <= now.getTime())) return null;
  // A link to a workflow in the trash shares nothing (the share page says "not found" for it too).
  if (link.workflow.deletedAt) return null;
  return link;
}

type Link = { workflowId: string; version: number | null; workflow: { ownerId: string; latestVersion: number } };

/** How many earlier versions a share link looks back through for ones that compute what the shown version does. */
const SAME_COMPUTATION_LOOKBACK = 20;
/** Saved versions never change: their computations, by workflow id and version (bounded). */
const versionComputations = new Map<string, string | null>();

/** A saved version's storedComputation, remembered (undefined: no such version). */
export async function versionComputation(workflowId: string, version: number): Promise<string | null | undefined> {
  const key = `${workflowId}:${version}`;
  if (versionComputations.has(key)) return versionComputations.get(key);
  const row = await db().workflowVersion.findUnique({ where: { workflowId_version: { workflowId, version } }, select: { document: true } });
  if (!row) return undefined; // not saved (yet): nothing to remember
  const computation = storedComputation(row.document);
  if (versionComputations.size >= 5000) versionComputations.delete(versionComputations.keys().next().value!);
  versionComputations.set(key, computation);
  return computation;
}

/**
 * The versions whose runs a link may show: the one it shows (the pinned one, else the latest) and the versions just
 * before it that compute the same thing (a note, a name or a layout saved since changes nothing that ran). A version
 * that computes something else ends the walk: its runs read and wrote what the owner may have since removed.
 */
async function versionsShown(link: Link): Promise<number[]> {
  const shown = link.version ?? link.workflow.latestVersion;
  const computation = await versionComputation(link.workflowId, shown);
  const versions = [shown];
  if (computation === null || computation === undefined) return versions;
  for (let v = shown - 1; v >= 1 && versions.length <= SAME_COMPUTATION_LOOKBACK; v--) {
    if ((await versionComputation(link.workflowId, v)) !== computation) break;
    versions.push(v);
  }
  return versions;
}

/**
 * The run a share link shows: the owner's last finished run of the version it shows, or of an earlier version that
 * computes the same thing (versionsShown), or none. A run of unsaved edits belongs to no version (routers/run.ts
 * runVersion). The share page and file access both use it.
 */
export async function sharedRunQuery(link: Link) {
  return {
    where: { workflowId: link.workflowId, ownerId: link.workflow.ownerId, status: "finished", workflowVersion: { in: await versionsShown(link) } },
    orderBy: { createdAt: "desc" as const },
  };
}

/**
 * May this user (or a holder of this share token) read a stored file? With accounts off, the one user
 * reads everything. Otherwise: its uploader; the owner of a run that wrote it or took it as an input; the
 * owner of a workflow whose saved version uses it; and, while a share link is active, anyone holding it for
 * the files of the shared version and of the run the share page shows.
 */
export async function canReadArtifact(userId: string | null, artifactId: string, shareToken?: string | null): Promise<boolean> {
  return (await readableFiles(userId, [artifactId], shareToken)).has(artifactId);
}

/**
 * Which of these files `canReadArtifact` would allow, each distinct id checked once, in one query per 500 ids (and
 * the share link, when given, resolved once): a document whose thousands of nodes name files made thousands of
 * awaited queries that never gave the event loop a turn.
 */
export async function readableFiles(userId: string | null, fileIds: Iterable<string>, shareToken?: string | null): Promise<Set<string>> {
  const ids = [...new Set(fileIds)].filter((f) => BLOB_ID.test(f));
  if (!authEnabled()) return new Set(ids);
  const readable = new Set<string>();
  const grantedAmong = async (OR: object[]) => {
    for (const chunk of inChunks(ids.filter((f) => !readable.has(f)))) {
      const rows = await db().fileGrant.findMany({ where: { fileId: { in: chunk }, OR }, select: { fileId: true } });
      for (const r of rows) readable.add(r.fileId);
      if (chunk.length === IDS_PER_QUERY) await nextTurn();
    }
  };
  if (userId && ids.length) await grantedAmong([{ userId }, { run: { ownerId: userId } }, { version: { workflow: { ownerId: userId } } }]);
  if (shareToken && readable.size < ids.length) {
    const link = await activeShare(shareToken);
    if (!link) return readable;
    const [version, run] = await Promise.all([
      db().workflowVersion.findUnique({ where: { workflowId_version: { workflowId: link.workflowId, version: link.version ?? link.workflow.latestVersion } }, select: { id: true } }),
      db().run.findFirst({ ...(await sharedRunQuery(link)), select: { id: true } }),
    ]);
    const subjects = [...(version ? [{ versionId: version.id }] : []), ...(run ? [{ runId: run.id }] : [])];
    if (subjects.length) await grantedAmong(subjects);
  }
  return readable;
}

/**
 * A saved version may use the files its author may read (uploads, outputs of their runs, files of their
 * other versions, or of a share they forked from: `shareToken`); those become readable through it. Other
 * file ids in it (typed in, or from another server) open nothing: their nodes find no file.
 */
export async function grantVersionFiles(versionId: string, authorId: string, doc: Pick<Workflow, "nodes">, shareToken?: string): Promise<void> {
  await grantFiles(await readableFiles(authorId, fileRefs(doc).map((r) => r.fileId), shareToken), { versionId });
}
