import { TRPCError } from "@trpc/server";
import { describeDiff, diffWorkflows, type WorkflowDiff } from "@/engine/workflow/diff";
import { loadWorkflow } from "@/engine/workflow/load";
import { parseAndMigrate, WorkflowParseError } from "@/engine/workflow/migrate";
import type { Workflow } from "@/engine/workflow/schema";
import type { Problem } from "@/engine/workflow/validate";
import { catalogue } from "@/nodes";
import { db } from "./db";
import { grantVersionFiles } from "./access";
import { newId } from "./ids";
import { documentWork } from "./large-documents";
import { nextTurn } from "@/engine/turns";

/** The asking user, or UNAUTHORIZED when auth is on and nobody is logged in. */
export function requireUser(userId: string | null): string {
  if (!userId) throw new TRPCError({ code: "UNAUTHORIZED", message: "log in first" });
  return userId;
}

/** A workflow of this user; someone else's workflow is NOT_FOUND, the same as a missing one. */
export async function ownedWorkflow(userId: string | null, workflowId: string) {
  const owner = requireUser(userId);
  const row = await db().workflow.findFirst({ where: { id: workflowId, ownerId: owner } });
  if (!row) throw new TRPCError({ code: "NOT_FOUND", message: `workflow ${workflowId} does not exist` });
  return row;
}

export interface VersionInfo {
  version: number;
  message: string;
  author: string;
  /** The author's user name when there is one ("local" on a single-user install). */
  authorName: string;
  createdAt: string;
}

/** Every version of a workflow, newest first, with time, author and message. */
export async function listHistory(userId: string | null, workflowId: string): Promise<{ latestVersion: number; versions: VersionInfo[] }> {
  const row = await ownedWorkflow(userId, workflowId);
  const rows = await db().workflowVersion.findMany({
    where: { workflowId },
    orderBy: { version: "desc" },
    select: { version: true, message: true, author: true, createdAt: true },
  });
  const authorIds = [...new Set(rows.map((r) => r.author))];
  const users = await db().user.findMany({ where: { id: { in: authorIds } }, select: { id: true, name: true } });
  const names = new Map(users.map((u) => [u.id, u.name]));
  return {
    latestVersion: row.latestVersion,
    versions: rows.map((r) => ({ ...r, authorName: names.get(r.author) ?? r.author, createdAt: r.createdAt.toISOString() })),
  };
}

/** A stored version of a workflow, or NOT_FOUND. */
export async function versionRow(workflowId: string, version: number) {
  const row = await db().workflowVersion.findUnique({ where: { workflowId_version: { workflowId, version } } });
  if (!row) throw new TRPCError({ code: "NOT_FOUND", message: `workflow ${workflowId} has no version ${version}` });
  return row;
}

/** A stored version as the editor would open it (migrated, node params upgraded), or a clear error. */
function readVersion(row: { version: number; document: string }): { document: Workflow; problems: Problem[] } {
  const { version } = row;
  try {
    const { workflow, problems } = loadWorkflow(row.document, catalogue);
    return { document: workflow, problems };
  } catch (err) {
    if (err instanceof WorkflowParseError) throw new TRPCError({ code: "UNPROCESSABLE_CONTENT", message: `version ${version} cannot be read: ${err.message}` });
    throw err;
  }
}

export interface VersionDiff {
  from: { version: number; document: Workflow };
  to: { version: number; document: Workflow };
  diff: WorkflowDiff;
  lines: string[];
}

/** What changed from version `from` to version `to` (either order; the diff reads from → to). */
export async function diffVersions(userId: string | null, workflowId: string, from: number, to: number): Promise<VersionDiff> {
  await ownedWorkflow(userId, workflowId);
  const [rowA, rowB] = await Promise.all([versionRow(workflowId, from), versionRow(workflowId, to)]);
  return documentWork(Math.max(rowA.document.length, rowB.document.length), async () => {
    const a = readVersion(rowA);
    await nextTurn();
    const b = readVersion(rowB);
    await nextTurn();
    const diff = diffWorkflows(a.document, b.document);
    return { from: { version: from, document: a.document }, to: { version: to, document: b.document }, diff, lines: describeDiff(diff) };
  });
}

/**
 * Restores version N by saving its document as a NEW version on top of the latest ("Restored version N").
 * Old versions are never touched. A save that lands in between makes this refuse with CONFLICT.
 */
export async function restoreVersion(userId: string | null, workflowId: string, version: number): Promise<{ version: number }> {
  const owner = requireUser(userId);
  const row = await ownedWorkflow(owner, workflowId);
  if (row.deletedAt) throw new TRPCError({ code: "PRECONDITION_FAILED", message: "this workflow is in the trash; restore it from the trash first" });
  const old = await versionRow(workflowId, version);
  return documentWork(old.document.length, async () => {
    let document: Workflow;
    try {
      document = parseAndMigrate(old.document);
    } catch (err) {
      if (err instanceof WorkflowParseError) throw new TRPCError({ code: "UNPROCESSABLE_CONTENT", message: `version ${version} cannot be read: ${err.message}` });
      throw err;
    }
    await nextTurn();
    return saveRestored(owner, row.latestVersion, workflowId, version, document);
  });
}

async function saveRestored(owner: string, base: number, workflowId: string, version: number, document: Workflow): Promise<{ version: number }> {
  const next = base + 1;
  const versionId = newId();
  const restored = await db().$transaction(async (tx) => {
    const updated = await tx.workflow.updateMany({
      where: { id: workflowId, ownerId: owner, latestVersion: base, deletedAt: null },
      data: { latestVersion: next, name: document.name, description: document.description, tags: JSON.stringify(document.tags) },
    });
    if (updated.count === 0) {
      throw new TRPCError({ code: "CONFLICT", message: `workflow ${workflowId} was saved while restoring version ${version}; try again` });
    }
    await tx.workflowVersion.create({
      data: {
        id: versionId,
        workflowId,
        version: next,
        schemaVersion: document.schemaVersion,
        document: JSON.stringify(document),
        message: `Restored version ${version}`,
        author: owner,
      },
    });
    return { version: next };
  });
  await grantVersionFiles(versionId, owner, document);
  return restored;
}
