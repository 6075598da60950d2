/**
 * Personal API tokens: `Authorization: Bearer mst_…` lets a script act as the token's owner (the same
 * per-user scoping as a login session). A token is 32 random bytes; the database keeps its SHA-256 and
 * its first characters (to tell tokens apart in lists), never the token itself.
 */
import { createHash, randomBytes } from "node:crypto";
import { db } from "./db";
import { newId } from "./ids";

export const TOKEN_PREFIX = "mst_";
const TOKEN_RE = /^mst_[A-Za-z0-9_-]{43}$/;
const NAME_RE = /^[\p{L}\p{N} ._-]{1,64}$/u;
const DAY_MS = 24 * 60 * 60 * 1000;

export class TokenError extends Error {}

function tokenHash(token: string): string {
  return createHash("sha256").update(token).digest("hex");
}

export interface TokenInfo {
  id: string;
  name: string;
  prefix: string;
  createdAt: string;
  lastUsedAt: string | null;
  expiresAt: string | null;
}

function info(t: { id: string; name: string; prefix: string; createdAt: Date; lastUsedAt: Date | null; expiresAt: Date | null }): TokenInfo {
  return { id: t.id, name: t.name, prefix: t.prefix, createdAt: t.createdAt.toISOString(), lastUsedAt: t.lastUsedAt?.toISOString() ?? null, expiresAt: t.expiresAt?.toISOString() ?? null };
}

/** The longest lifetime a token may be given (100 years; far past it a date is no longer a date). */
export const MAX_TOKEN_DAYS = 36_500;

/** A new token for `ownerId`; the token itself is returned once and never stored. */
export async function createToken(ownerId: string, name: string, opts: { days?: number; now?: Date } = {}): Promise<{ token: string; info: TokenInfo }> {
  if (!NAME_RE.test(name)) throw new TokenError("a token name is 1–64 letters, digits, spaces, . _ or -");
  if (opts.days !== undefined && !(Number.isFinite(opts.days) && opts.days > 0 && opts.days <= MAX_TOKEN_DAYS)) throw new TokenError(`a token's lifetime is a positive number of days, at most ${MAX_TOKEN_DAYS}`);
  if (await db().apiToken.findFirst({ where: { ownerId, name }, select: { id: true } })) throw new TokenError(`you already have a token named "${name}"`);
  const token = `${TOKEN_PREFIX}${randomBytes(32).toString("base64url")}`;
  const now = opts.now ?? new Date();
  const row = await db().apiToken.create({
    data: { id: newId(), hash: tokenHash(token), prefix: token.slice(0, 10), ownerId, name, createdAt: now, expiresAt: opts.days ? new Date(now.getTime() + opts.days * DAY_MS) : null },
  });
  return { token, info: info(row) };
}

export async function listTokens(ownerId: string): Promise<TokenInfo[]> {
  return (await db().apiToken.findMany({ where: { ownerId }, orderBy: { createdAt: "asc" } })).map(info);
}

/** Deletes one of the owner's tokens, named by id or name; false when there is no such token. */
export async function revokeToken(ownerId: string, idOrName: string): Promise<boolean> {
  const { count } = await db().apiToken.deleteMany({ where: { ownerId, OR: [{ id: idOrName }, { name: idOrName }] } });
  return count > 0;
}

/** The owner a bearer token acts as, or null (unknown, malformed or expired; an expired token is deleted when seen). */
export async function tokenOwner(token: string, now = new Date()): Promise<string | null> {
  if (!TOKEN_RE.test(token)) return null;
  const row = await db().apiToken.findUnique({ where: { hash: tokenHash(token) } });
  if (!row) return null;
  if (row.expiresAt && row.expiresAt.getTime() <= now.getTime()) {
    await db().apiToken.deleteMany({ where: { id: row.id } });
    return null;
  }
  // At most one write a minute per token, so a busy script does not turn every read into a write.
  if (!row.lastUsedAt || now.getTime() - row.lastUsedAt.getTime() > 60_000) await db().apiToken.update({ where: { id: row.id }, data: { lastUsedAt: now } });
  return row.ownerId;
}

/** The token of an `Authorization: Bearer …` header, undefined without one. */
export function bearerToken(req: Request): string | undefined {
  const h = req.headers.get("authorization");
  const m = h ? /^Bearer\s+(\S+)\s*$/i.exec(h) : null;
  return m ? m[1] : undefined;
}
