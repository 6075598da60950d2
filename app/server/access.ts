import { appendFile, mkdir, readFile } from "node:fs/promises";
import path from "node:path";
import { resolveInside } from "@/engine/paths";
import { BLOB_ID } from "@/engine/storage";
import { dataDir } from "@/prisma/url";
import { authEnabled } from "./auth";
import { db } from "./db";

function uploadersFile(fileId: string): string {
  const hash = fileId.slice(0, 64);
  return resolveInside(path.join(dataDir(), "file-owners"), `${hash.slice(0, 2)}/${hash}`, "file id");
}

/** Remembers who uploaded a file (one user id per line next to the content-addressed store). */
export async function recordUploader(userId: string, fileId: string): Promise<void> {
  if (!BLOB_ID.test(fileId)) throw new Error(`"${fileId}" is not a valid file id`);
  if (await uploadedBy(userId, fileId)) return;
  const file = uploadersFile(fileId);
  await mkdir(path.dirname(file), { recursive: true });
  await appendFile(file, `${userId}\n`);
}

async function uploadedBy(userId: string, fileId: string): Promise<boolean> {
  try {
    return (await readFile(uploadersFile(fileId), "utf8")).split("\n").includes(userId);
  } catch {
    return false;
  }
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

/**
 * May this user (or a holder of this share token) read a stored file? With accounts off, the one user
 * reads everything. Otherwise: its uploader; the owner of a workflow whose document refers to it (for
 * inputs and example media); the owner of a run whose outputs or document refer to it; and anyone with
 * an active share link to a workflow whose shared version or last run refers to it.
 */
export async function canReadArtifact(userId: string | null, artifactId: string, shareToken?: string | null): Promise<boolean> {
  if (!BLOB_ID.test(artifactId)) return false;
  if (!authEnabled()) return true;
  const hash = artifactId.slice(0, 64);
  if (userId) {
    if (await uploadedBy(userId, artifactId)) return true;
    const output = await db().nodeRun.findFirst({ where: { outputs: { contains: hash }, run: { ownerId: userId } }, select: { id: true } });
    if (output) return true;
    const runDoc = await db().run.findFirst({ where: { ownerId: userId, document: { contains: hash } }, select: { id: true } });
    if (runDoc) return true;
    const version = await db().workflowVersion.findFirst({ where: { document: { contains: hash }, workflow: { ownerId: userId } }, select: { id: true } });
    if (version) return true;
  }
  if (shareToken) {
    const link = await activeShare(shareToken);
    if (!link) return false;
    // The last run, and the last finished one (what a share page shows while a newer run is going).
    const last = await db().run.findFirst({ where: { workflowId: link.workflowId }, orderBy: { createdAt: "desc" }, select: { id: true } });
    const lastFinished = await db().run.findFirst({ where: { workflowId: link.workflowId, status: "finished" }, orderBy: { createdAt: "desc" }, select: { id: true } });
    const runIds = [...new Set([last?.id, lastFinished?.id].filter((id): id is string => !!id))];
    if (runIds.length && (await db().nodeRun.findFirst({ where: { runId: { in: runIds }, outputs: { contains: hash } }, select: { id: true } }))) return true;
    const version = link.version ?? link.workflow.latestVersion;
    const shared = await db().workflowVersion.findFirst({ where: { workflowId: link.workflowId, version, document: { contains: hash } }, select: { id: true } });
    if (shared) return true;
  }
  return false;
}
