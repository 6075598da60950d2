import { AccountError, authEnabled, createSession, sessionCookie, singleUserHostRefused } from "@/app/server/auth";
import { readBodyLimited } from "@/app/server/limits";
import { checkOrigin } from "@/app/server/origin";

/** Checks shared by the account routes: same origin, accounts on, a small JSON body { name, password }. */
export async function readCredentials(req: Request): Promise<{ name: unknown; password: unknown } | Response> {
  const refused = checkOrigin(req);
  if (refused) return refused;
  const badHost = singleUserHostRefused(req.headers.get("host"));
  if (badHost) return Response.json({ error: badHost }, { status: 403 });
  if (!authEnabled()) return Response.json({ error: "accounts are off: this is a single-user install (STUDIO_AUTH=off or a 127.0.0.1 bind)" }, { status: 404 });
  const body = await readBodyLimited(req, 16 * 1024);
  if (!body.ok) return Response.json({ error: "the request body is larger than 16 KB" }, { status: 413 });
  try {
    const parsed = JSON.parse(new TextDecoder().decode(body.bytes)) as unknown;
    if (typeof parsed !== "object" || parsed === null) throw new Error("not an object");
    const { name, password } = parsed as { name?: unknown; password?: unknown };
    return { name, password };
  } catch {
    return Response.json({ error: 'send JSON { "name": ..., "password": ... }' }, { status: 400 });
  }
}

/** A response that logs `userId` in: a new session in an http-only cookie. */
export async function loggedIn(req: Request, user: { id: string; name: string }, status = 200): Promise<Response> {
  const { token, expiresAt } = await createSession(user.id);
  return Response.json({ user: { id: user.id, name: user.name } }, { status, headers: { "set-cookie": sessionCookie(req, token, expiresAt), "cache-control": "no-store" } });
}

export function accountError(err: unknown): Response {
  if (err instanceof AccountError) return Response.json({ error: err.message }, { status: err.status });
  throw err;
}
