import { nextTurn } from "@/engine/turns";
import { TRPCError } from "@trpc/server";
import { loadWorkflow } from "@/engine/workflow/load";
import { WorkflowParseError } from "@/engine/workflow/migrate";
import { emptyWorkflow, type Workflow } from "@/engine/workflow/schema";
import type { Problem } from "@/engine/workflow/validate";
import { catalogue } from "@/nodes";
import { LOCAL_USER } from "./auth";
import { db } from "./db";
import { checkWorkflowDocument } from "./document-guard";
import { grantVersionFiles } from "./access";
import { newId } from "./ids";
import { copyTurn, documentWork, LARGE_DOCUMENT_CHARS } from "./large-documents";

export interface WorkflowSummary {
  id: string;
  name: string;
  description: string;
  tags: string[];
  latestVersion: number;
  updatedAt: string;
  deletedAt: string | null;
}

type WorkflowRow = { id: string; name: string; description: string; tags: string; latestVersion: number; updatedAt: Date; deletedAt: Date | null };

function summary(row: WorkflowRow): WorkflowSummary {
  return {
    id: row.id,
    name: row.name,
    description: row.description,
    tags: JSON.parse(row.tags) as string[],
    latestVersion: row.latestVersion,
    updatedAt: row.updatedAt.toISOString(),
    deletedAt: row.deletedAt ? row.deletedAt.toISOString() : null,
  };
}

/**
 * Every function that takes `ownerId` sees only that owner's workflows: another owner's workflow is
 * NOT_FOUND, exactly like a missing one, so ids cannot be probed. `ownerId` undefined (only where it
 * is optional) means every owner: the local CLI, an admin tool on the machine itself.
 */
function scope(id: string, ownerId: string | undefined) {
  return ownerId === undefined ? { id } : { id, ownerId };
}

export async function listWorkflows(opts: { search?: string; trash?: boolean; ownerId?: string }): Promise<WorkflowSummary[]> {
  const rows = await db().workflow.findMany({
    where: {
      ...(opts.ownerId === undefined ? {} : { ownerId: opts.ownerId }),
      deletedAt: opts.trash ? { not: null } : null,
      ...(opts.search ? { OR: [{ name: { contains: opts.search } }, { description: { contains: opts.search } }, { tags: { contains: opts.search } }] } : {}),
    },
    orderBy: { updatedAt: "desc" },
    take: 500,
  });
  return rows.map(summary);
}

/** `shareToken`: the document came through this share link (a fork), whose files it may keep using. */
export async function createWorkflow(input: { name?: string; document?: unknown; message?: string; ownerId?: string; shareToken?: string }): Promise<{ id: string; version: number }> {
  // Documents are checked (plain JSON, the schema) before they are stored; graph problems are allowed (work in progress).
  const document = checkWorkflowDocument(input.document === undefined ? emptyWorkflow(input.name) : input.document);
  if (input.name) document.name = input.name;
  const id = newId();
  const ownerId = input.ownerId ?? LOCAL_USER;
  const versionId = newId();
  await db().$transaction([
    db().workflow.create({
      data: { id, name: document.name, description: document.description, tags: JSON.stringify(document.tags), latestVersion: 1, ownerId },
    }),
    db().workflowVersion.create({
      data: { id: versionId, workflowId: id, version: 1, schemaVersion: document.schemaVersion, document: JSON.stringify(document), message: input.message ?? "Created", author: ownerId },
    }),
  ]);
  await grantVersionFiles(versionId, ownerId, document, input.shareToken);
  return { id, version: 1 };
}

/** A new workflow owned by `ownerId` (for forks and imports made on someone's behalf). */
export function createWorkflowFor(ownerId: string, document: unknown, name?: string, message?: string, shareToken?: string): Promise<{ id: string; version: number }> {
  return createWorkflow({ ownerId, document, name, message, shareToken });
}

async function requireWorkflow(id: string, ownerId: string | undefined): Promise<WorkflowRow> {
  const row = await db().workflow.findFirst({ where: scope(id, ownerId) });
  if (!row) throw new TRPCError({ code: "NOT_FOUND", message: `workflow ${id} does not exist` });
  return row;
}

/** A saved version, migrated and checked (`storedChars`: the length of its stored JSON). */
export async function getWorkflow(id: string, version?: number, ownerId?: string): Promise<{ summary: WorkflowSummary; version: number; document: Workflow; problems: Problem[]; storedChars: number }> {
  const row = await requireWorkflow(id, ownerId);
  const v = await db().workflowVersion.findUnique({ where: { workflowId_version: { workflowId: id, version: version ?? row.latestVersion } } });
  if (!v) throw new TRPCError({ code: "NOT_FOUND", message: `workflow ${id} has no version ${version}` });
  return documentWork(v.document.length, async () => {
    try {
      // Stored documents migrate on read, so documents saved by older versions keep opening.
      const { workflow, problems } = loadWorkflow(v.document, catalogue);
      return { summary: summary(row), version: v.version, document: workflow, problems, storedChars: v.document.length };
    } catch (err) {
      if (err instanceof WorkflowParseError) throw new TRPCError({ code: "UNPROCESSABLE_CONTENT", message: `version ${v.version} cannot be read: ${err.message}` });
      throw err;
    }
  });
}

/**
 * Saves a new immutable version on top of `baseVersion`. If someone saved in between, the save is
 * refused with CONFLICT (never a silent overwrite); the client offers reload or save-as-copy.
 */
export async function saveWorkflow(input: { id: string; baseVersion: number; document: unknown; message?: string; ownerId: string }): Promise<{ version: number }> {
  const document = checkWorkflowDocument(input.document);
  const next = input.baseVersion + 1;
  const versionId = newId();
  const saved = await db().$transaction(async (tx) => {
    // Compare-and-set on latestVersion: only one of two concurrent saves on the same base can win.
    const updated = await tx.workflow.updateMany({
      where: { id: input.id, ownerId: input.ownerId, latestVersion: input.baseVersion, deletedAt: null },
      data: { latestVersion: next, name: document.name, description: document.description, tags: JSON.stringify(document.tags) },
    });
    if (updated.count === 0) {
      const row = await tx.workflow.findFirst({ where: { id: input.id, ownerId: input.ownerId } });
      if (!row) throw new TRPCError({ code: "NOT_FOUND", message: `workflow ${input.id} does not exist` });
      if (row.deletedAt) throw new TRPCError({ code: "PRECONDITION_FAILED", message: "this workflow is in the trash; restore it before saving" });
      throw new TRPCError({
        code: "CONFLICT",
        message: `This workflow was saved elsewhere (version ${row.latestVersion}) after you opened version ${input.baseVersion}. Reload it, or save your changes as a copy.`,
      });
    }
    await tx.workflowVersion.create({
      data: { id: versionId, workflowId: input.id, version: next, schemaVersion: document.schemaVersion, document: JSON.stringify(document), message: input.message ?? "", author: input.ownerId },
    });
    return { version: next };
  });
  await grantVersionFiles(versionId, input.ownerId, document);
  return saved;
}

export async function renameWorkflow(ownerId: string, id: string, name: string): Promise<{ version: number }> {
  const current = await getWorkflow(id, undefined, ownerId);
  const rename = () => saveWorkflow({ id, ownerId, baseVersion: current.version, document: { ...current.document, name }, message: `Renamed to "${name}"` });
  // A large document's save (check, serialise, write) takes its turn too; the read above was this request's claim.
  return current.storedChars >= LARGE_DOCUMENT_CHARS ? copyTurn(async () => (await nextTurn(), rename())) : rename();
}

export async function duplicateWorkflow(ownerId: string, id: string): Promise<{ id: string; version: number }> {
  return copyTurn(async () => {
    const current = await getWorkflow(id, undefined, ownerId);
    await nextTurn();
    return createWorkflow({ ownerId, document: { ...current.document, name: `${current.document.name} (copy)` }, message: `Duplicated from ${id} v${current.version}` });
  });
}

export async function setTrashed(ownerId: string, id: string, trashed: boolean): Promise<void> {
  await requireWorkflow(id, ownerId);
  await db().workflow.updateMany({ where: { id, ownerId }, data: { deletedAt: trashed ? new Date() : null } });
}

export async function deleteForever(ownerId: string, id: string): Promise<void> {
  const row = await requireWorkflow(id, ownerId);
  if (!row.deletedAt) throw new TRPCError({ code: "PRECONDITION_FAILED", message: "only workflows in the trash can be deleted for good" });
  await db().workflow.deleteMany({ where: { id, ownerId } });
}

export async function listVersions(ownerId: string, id: string) {
  await requireWorkflow(id, ownerId);
  const rows = await db().workflowVersion.findMany({
    where: { workflowId: id },
    orderBy: { version: "desc" },
    select: { version: true, message: true, author: true, createdAt: true },
  });
  return rows.map((r) => ({ ...r, createdAt: r.createdAt.toISOString() }));
}
