import { nextTurn } from "@/engine/turns";
import { randomBytes } from "node:crypto";
import { TRPCError } from "@trpc/server";
import { loadWorkflow } from "@/engine/workflow/load";
import { WorkflowParseError } from "@/engine/workflow/migrate";
import type { Workflow, WorkflowNote } from "@/engine/workflow/schema";
import type { Problem } from "@/engine/workflow/validate";
import { catalogue } from "@/nodes";
import { activeShare, sharedRunQuery } from "./access";
import { db } from "./db";
import { ownedWorkflow, requireUser, versionRow } from "./history";
import { newId } from "./ids";
import { copyTurn, documentWork } from "./large-documents";
import { createWorkflowFor } from "./workflows";

/** One message for unknown, revoked and expired links alike, so a probe learns nothing about which. */
export const NOT_SHARED = "link not found or no longer shared";

/** 256 bits from the OS CSPRNG, base64url (43 characters). */
export function newShareToken(): string {
  return randomBytes(32).toString("base64url");
}

const TOKEN_SHAPE = /^[A-Za-z0-9_-]{43}$/;

export interface ShareInfo {
  id: string;
  token: string;
  path: string;
  workflowId: string;
  version: number | null;
  createdBy: string;
  createdAt: string;
  expiresAt: string | null;
  revokedAt: string | null;
  status: "active" | "revoked" | "expired";
}

type ShareRow = { id: string; token: string; workflowId: string; version: number | null; createdBy: string; createdAt: Date; expiresAt: Date | null; revokedAt: Date | null };

function isLive(row: Pick<ShareRow, "expiresAt" | "revokedAt">, now = new Date()): boolean {
  return !row.revokedAt && !(row.expiresAt && row.expiresAt.getTime() <= now.getTime());
}

function info(row: ShareRow): ShareInfo {
  return {
    id: row.id,
    token: row.token,
    path: `/s/${row.token}`,
    workflowId: row.workflowId,
    version: row.version,
    createdBy: row.createdBy,
    createdAt: row.createdAt.toISOString(),
    expiresAt: row.expiresAt?.toISOString() ?? null,
    revokedAt: row.revokedAt?.toISOString() ?? null,
    status: row.revokedAt ? "revoked" : isLive(row) ? "active" : "expired",
  };
}

/** A read-only link to one of the user's workflows: its latest version (version omitted) or a pinned one. */
export async function createShare(userId: string | null, input: { workflowId: string; version?: number; expiresAt?: Date }): Promise<ShareInfo> {
  const owner = requireUser(userId);
  const wf = await ownedWorkflow(owner, input.workflowId);
  if (wf.deletedAt) throw new TRPCError({ code: "PRECONDITION_FAILED", message: "a workflow in the trash cannot be shared" });
  if (input.version !== undefined) await versionRow(wf.id, input.version);
  if (input.expiresAt && input.expiresAt.getTime() <= Date.now()) {
    throw new TRPCError({ code: "BAD_REQUEST", message: "the expiry must be in the future" });
  }
  const row = await db().shareLink.create({
    data: { id: newId(), token: newShareToken(), workflowId: wf.id, version: input.version ?? null, createdBy: owner, expiresAt: input.expiresAt ?? null },
  });
  return info(row);
}

/** Every link of one of the user's workflows (revoked and expired ones too, marked so), newest first. */
export async function listShares(userId: string | null, workflowId: string): Promise<ShareInfo[]> {
  await ownedWorkflow(userId, workflowId);
  const rows = await db().shareLink.findMany({ where: { workflowId }, orderBy: { createdAt: "desc" } });
  return rows.map(info);
}

/** Revokes a link of one of the user's workflows; other users' links are NOT_FOUND. Revoking twice is harmless. */
export async function revokeShare(userId: string | null, shareId: string): Promise<ShareInfo> {
  const owner = requireUser(userId);
  const row = await db().shareLink.findFirst({ where: { id: shareId, workflow: { ownerId: owner } } });
  if (!row) throw new TRPCError({ code: "NOT_FOUND", message: `share link ${shareId} does not exist` });
  if (row.revokedAt) return info(row);
  return info(await db().shareLink.update({ where: { id: row.id }, data: { revokedAt: new Date() } }));
}

/** The live link behind a token, with its workflow; anything else is the one NOT_FOUND. */
async function liveLink(token: string) {
  const link = TOKEN_SHAPE.test(token) ? await activeShare(token) : null;
  if (!link) throw new TRPCError({ code: "NOT_FOUND", message: NOT_SHARED });
  return link;
}

export interface SharedNodeOutputs {
  nodeId: string;
  nodeType: string;
  status: string;
  summary: string | null;
  durationMs: number | null;
  outputs: Record<string, unknown> | null;
}

export interface SharedWorkflow {
  name: string;
  description: string;
  version: number;
  /** True when the link is pinned to this version; false when it follows the latest. */
  pinned: boolean;
  /** The document validated like an import; null when it cannot be read at all (see readError). */
  document: Workflow | null;
  problems: Problem[];
  readError: string | null;
  notes: WorkflowNote[];
  lastRun: { id: string; finishedAt: string | null; workflowVersion: number | null; nodes: SharedNodeOutputs[] } | null;
  expiresAt: string | null;
}

function parseJson(text: string | null): Record<string, unknown> | null {
  if (!text) return null;
  try {
    return JSON.parse(text) as Record<string, unknown>;
  } catch {
    return null;
  }
}

interface ReadVersion {
  document: Workflow | null;
  problems: Problem[];
  readError: string | null;
  chars: number;
}

/**
 * Saved versions as a link shows them, read and validated once: versions never change, and a public link may be
 * opened many times (a 15 MB document took ~1 s to read per view). The latest few, up to 64 M characters in all.
 */
const readVersions = new Map<string, ReadVersion>();
const READ_VERSIONS_MAX = 16;
const READ_VERSIONS_MAX_CHARS = 64 * 1024 * 1024;

async function sharedVersion(workflowId: string, version: number): Promise<ReadVersion> {
  const key = `${workflowId}\u0000${version}`;
  const hit = readVersions.get(key);
  if (hit) {
    readVersions.delete(key); // most recently used last
    readVersions.set(key, hit);
    return hit;
  }
  const row = await db().workflowVersion.findUnique({ where: { workflowId_version: { workflowId, version } } });
  if (!row) throw new TRPCError({ code: "NOT_FOUND", message: NOT_SHARED });
  const read: ReadVersion = { document: null, problems: [], readError: null, chars: row.document.length };
  await documentWork(read.chars, async () => {
    try {
      ({ workflow: read.document, problems: read.problems } = loadWorkflow(row.document, catalogue));
    } catch (err) {
      if (!(err instanceof WorkflowParseError)) throw err;
      read.readError = err.message;
    }
  }, key);
  readVersions.set(key, read);
  let chars = 0;
  for (const v of readVersions.values()) chars += v.chars;
  for (const [k, v] of readVersions) {
    if (readVersions.size <= READ_VERSIONS_MAX && chars <= READ_VERSIONS_MAX_CHARS) break;
    if (k === key) continue;
    readVersions.delete(k);
    chars -= v.chars;
  }
  return read;
}

/**
 * What a share link shows, read-only: the graph (validated like any import: a broken document shows its
 * problems, it never crashes the page), its notes, and the node outputs of the owner's last finished run of what
 * the shown version computes (access.ts sharedRunQuery; for a pinned link, of the pinned version: pinned means pinned).
 */
export async function resolveShare(token: string): Promise<SharedWorkflow> {
  const link = await liveLink(token);
  const version = link.version ?? link.workflow.latestVersion;
  const { document, problems, readError, chars } = await sharedVersion(link.workflowId, version);
  const run = await db().run.findFirst({ ...(await sharedRunQuery(link)), include: { nodeRuns: true } });
  // A big answer (document and output previews) is built, and sent, in its turn: a public link may be opened by many.
  const answerChars = chars + (run?.nodeRuns.reduce((sum, n) => sum + (n.outputs?.length ?? 0), 0) ?? 0);
  return documentWork(answerChars, async () => ({
    name: document?.name ?? link.workflow.name,
    description: document?.description ?? link.workflow.description,
    version,
    pinned: link.version !== null,
    document,
    problems,
    readError,
    notes: document?.notes ?? [],
    lastRun: run && {
      id: run.id,
      finishedAt: run.finishedAt?.toISOString() ?? null,
      workflowVersion: run.workflowVersion,
      nodes: run.nodeRuns.map((n) => ({ nodeId: n.nodeId, nodeType: n.nodeType, status: n.status, summary: n.summary, durationMs: n.durationMs, outputs: parseJson(n.outputs) })),
    },
    expiresAt: link.expiresAt?.toISOString() ?? null,
  }), `${link.workflowId}\u0000${version}`);
}

/** Copies the shared document into the viewer's own workspace as a new workflow; the original is untouched. */
export async function forkShare(userId: string | null, token: string): Promise<{ id: string; version: number }> {
  const owner = requireUser(userId);
  return copyTurn(async () => {
    const shared = await resolveShare(token);
    if (!shared.document) throw new TRPCError({ code: "UNPROCESSABLE_CONTENT", message: `the shared workflow cannot be read: ${shared.readError}` });
    await nextTurn();
    const document: Workflow = { ...structuredClone(shared.document), name: `${shared.document.name} (fork)`.slice(0, 200) }; // (shared.document is the read version all views share)
    await nextTurn();
    // The fork may use the files the link let the viewer read.
    return createWorkflowFor(owner, document, undefined, `Forked from a shared link ("${shared.name}" version ${shared.version})`, token);
  });
}
