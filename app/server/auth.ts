import { Lane } from "@/engine/lane";
import { createHash, randomBytes } from "node:crypto";
import { hash, verify } from "@node-rs/argon2";
import { db, isConflict } from "./db";
import { authEnabled, SESSION_COOKIE } from "./auth-mode";
import { newId } from "./ids";
import { bearerToken, tokenOwner } from "./tokens";
import { config } from "@/engine/config";

export { authEnabled, isLoopbackHost, SESSION_COOKIE, singleUserHostRefused } from "./auth-mode";

/** The owner id of everything on an unauthenticated single-user install. */
export const LOCAL_USER = "local";

const DAY_MS = 24 * 60 * 60 * 1000;

/** STUDIO_SIGNUP=open: anyone may create an account on /login. */
export function openSignup(): boolean {
  return config().STUDIO_SIGNUP === "open";
}

/** Self sign-up: the first account may always be created; more only with STUDIO_SIGNUP=open. */
export async function signupAllowed(): Promise<boolean> {
  return openSignup() || (await db().user.count()) === 0;
}

export function sessionDays(): number {
  return config().STUDIO_SESSION_DAYS;
}

// --- accounts -------------------------------------------------------------------------------------

export class AccountError extends Error {
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
    this.name = "AccountError";
  }
}

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
export const MIN_PASSWORD = 8;
export const MAX_PASSWORD = 1024;

/** Whether some account could have this name (the login route answers other names without any work). */
export function possibleName(name: unknown): name is string {
  return typeof name === "string" && NAME_RE.test(name);
}

export function checkName(name: unknown): string {
  if (!possibleName(name)) {
    throw new AccountError("a user name is 1–64 letters, digits, _ . or - (starting with a letter or digit)", 400);
  }
  if (name.toLowerCase() === LOCAL_USER) throw new AccountError(`"${LOCAL_USER}" is reserved for the single-user install`, 400);
  return name;
}

export function checkPassword(password: unknown): string {
  if (typeof password !== "string" || password.length < MIN_PASSWORD) throw new AccountError(`a password has at least ${MIN_PASSWORD} characters`, 400);
  if (password.length > MAX_PASSWORD) throw new AccountError(`a password has at most ${MAX_PASSWORD} characters`, 400);
  // A lone UTF-16 surrogate hashes as U+FFFD (UTF-8), so "\ud800…" and "\udfff…" would be one password.
  if (!password.isWellFormed()) throw new AccountError("a password must be well-formed text (it holds a lone UTF-16 surrogate)", 400);
  return password;
}

/** Too many password checks are waiting already (AccountError 429: the login route answers it as such). */
export const PASSWORDS_BUSY = "the server is checking many passwords at once; try again in a moment";

/**
 * argon2 work, one at a time, at most PASSWORD_QUEUE waiting: each check takes a core for ~50 ms, so anonymous
 * logins with made-up names (each verified against a decoy, so as not to tell which names exist) kept both cores
 * busy; now they take one at most, and the app keeps the other.
 */
const PASSWORD_QUEUE = 32;
const passwords = new Lane(PASSWORD_QUEUE, () => new AccountError(PASSWORDS_BUSY, 429));
const oneAtATime = <T>(work: () => Promise<T>): Promise<T> => passwords.run(work);

/** argon2id with the library's defaults (19 MiB memory, 2 passes: the OWASP minimum). */
export function hashPassword(password: string): Promise<string> {
  return oneAtATime(() => hash(password));
}

export function verifyPassword(passwordHash: string, password: string): Promise<boolean> {
  return oneAtATime(() => verify(passwordHash, password).catch(() => false));
}

export type Role = "admin" | "user";

/**
 * Creates an account. Names are unique regardless of case: the database holds the lower-cased name under
 * a unique index, so of two concurrent sign-ups for "dave" and "Dave" exactly one succeeds. The first
 * account of the server is its admin (decided in the same serializable transaction as the insert, so two
 * concurrent first sign-ups cannot both be first); `admin: true` makes a later one an admin too.
 * `onlyFirst`: refuse unless no account exists yet (self sign-up while sign-up is closed).
 */
export async function createUser(name: string, password: string, opts: { admin?: boolean; onlyFirst?: boolean } = {}): Promise<{ id: string; name: string }> {
  checkName(name);
  checkPassword(password);
  // Closed sign-up with an account already there: refused before the argon2 work (anyone could queue it otherwise).
  // The transaction below decides the race for the first account.
  if (opts.onlyFirst && (await db().user.count()) > 0) throw new AccountError(SIGNUP_CLOSED, 403);
  const passwordHash = await hashPassword(password);
  try {
    const user = await db().$transaction(
      async (tx) => {
        const first = (await tx.user.count()) === 0;
        if (opts.onlyFirst && !first) throw new AccountError(SIGNUP_CLOSED, 403);
        const role: Role = first || opts.admin ? "admin" : "user";
        return tx.user.create({ data: { id: newId(), name, nameKey: name.toLowerCase(), passwordHash, role } });
      },
      { isolationLevel: "Serializable" },
    );
    return { id: user.id, name: user.name };
  } catch (err) {
    if (!isConflict(err)) throw err;
    // Lost a race: to the same name in any case, or (with onlyFirst) to another first account.
    const taken = await db().user.findUnique({ where: { nameKey: name.toLowerCase() }, select: { id: true } });
    if (taken) throw new AccountError(`the name "${name}" is taken`, 409);
    if (opts.onlyFirst) throw new AccountError(SIGNUP_CLOSED, 403);
    throw err;
  }
}

export const SIGNUP_CLOSED = "sign-up is closed on this server; ask its admin for an account (npm run cli -- user add <name>)";

/** Admins manage what every user shares: the installed models and the server's defaults. Single-user: the one user. */
export async function isAdmin(userId: string | null): Promise<boolean> {
  if (!authEnabled()) return true;
  if (!userId) return false;
  return (await db().user.findUnique({ where: { id: userId }, select: { role: true } }))?.role === "admin";
}

// Verified against when the name is unknown, so a wrong name takes as long as a wrong password.
let decoyHash: Promise<string> | undefined;

/** The user for a name and password, or null (without saying which of the two was wrong). */
export async function checkCredentials(name: string, password: string): Promise<{ id: string; name: string } | null> {
  const user = typeof name === "string" && name.length <= 64 ? await db().user.findUnique({ where: { name } }) : null;
  if (!user) {
    decoyHash ??= hash(randomBytes(16).toString("hex")); // made once (not queued: a full queue must not leave it failed)
    await verifyPassword(await decoyHash, String(password).slice(0, MAX_PASSWORD));
    return null;
  }
  if (typeof password !== "string" || password.length > MAX_PASSWORD) return null;
  return (await verifyPassword(user.passwordHash, password)) ? { id: user.id, name: user.name } : null;
}

// --- sessions -------------------------------------------------------------------------------------

function sessionId(token: string): string {
  return createHash("sha256").update(token).digest("hex");
}

/** A new session: the 256-bit token goes to the cookie, the database keeps only its SHA-256. */
export async function createSession(userId: string, now = new Date()): Promise<{ token: string; expiresAt: Date }> {
  const token = randomBytes(32).toString("base64url");
  const expiresAt = new Date(now.getTime() + sessionDays() * DAY_MS);
  await db().session.create({ data: { id: sessionId(token), userId, expiresAt } });
  return { token, expiresAt };
}

/** The user of a live session, or null; an expired session is deleted when it is seen. */
export async function sessionUser(token: string | undefined | null, now = new Date()): Promise<{ id: string; name: string } | null> {
  if (!token || token.length > 200) return null;
  const session = await db().session.findUnique({ where: { id: sessionId(token) }, include: { user: { select: { id: true, name: true } } } });
  if (!session) return null;
  if (session.expiresAt.getTime() <= now.getTime()) {
    await db().session.deleteMany({ where: { id: session.id } });
    return null;
  }
  return session.user;
}

export async function revokeSession(token: string | undefined | null): Promise<void> {
  if (token) await db().session.deleteMany({ where: { id: sessionId(token) } });
}

// --- requests -------------------------------------------------------------------------------------

export function readCookie(header: string | null, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(";")) {
    const eq = part.indexOf("=");
    if (eq > 0 && part.slice(0, eq).trim() === name) {
      try {
        return decodeURIComponent(part.slice(eq + 1).trim());
      } catch {
        return undefined; // a malformed value is no cookie (it made every API route answer 500)
      }
    }
  }
  return undefined;
}

function isHttps(req: Request): boolean {
  const forwarded = req.headers.get("x-forwarded-proto");
  if (forwarded) return forwarded.split(",")[0]!.trim() === "https";
  return new URL(req.url).protocol === "https:";
}

/** http-only, SameSite=Lax, Secure when the request came over https. */
export function sessionCookie(req: Request, token: string, expiresAt: Date): string {
  return [`${SESSION_COOKIE}=${token}`, "Path=/", "HttpOnly", "SameSite=Lax", `Expires=${expiresAt.toUTCString()}`, ...(isHttps(req) ? ["Secure"] : [])].join("; ");
}

export function clearedSessionCookie(req: Request): string {
  return [`${SESSION_COOKIE}=`, "Path=/", "HttpOnly", "SameSite=Lax", "Max-Age=0", ...(isHttps(req) ? ["Secure"] : [])].join("; ");
}

/**
 * Who is asking: with an `Authorization: Bearer` API token, its owner (null when the token is not valid);
 * otherwise LOCAL_USER in single-user mode, the session's user id when logged in, null when not.
 */
export async function requestUserId(req: Request): Promise<string | null> {
  const bearer = bearerToken(req);
  if (bearer !== undefined) {
    const owner = await tokenOwner(bearer);
    if (!owner) return null;
    if (!authEnabled()) return LOCAL_USER;
    // With accounts on, a token acts only for an account that still exists (not for the single-user owner).
    return owner !== LOCAL_USER && (await db().user.findUnique({ where: { id: owner }, select: { id: true } })) ? owner : null;
  }
  if (!authEnabled()) return LOCAL_USER;
  const user = await sessionUser(readCookie(req.headers.get("cookie"), SESSION_COOKIE));
  return user?.id ?? null;
}
