import { clearedSessionCookie, readCookie, revokeSession, SESSION_COOKIE, singleUserHostRefused } from "@/app/server/auth";
import { checkOrigin } from "@/app/server/origin";

export const runtime = "nodejs";
export const dynamic = "force-dynamic";

/** POST: ends this session (the row is deleted, the cookie cleared), then back to the login page. */
export async function POST(req: Request): Promise<Response> {
  const refused = checkOrigin(req);
  if (refused) return refused;
  const badHost = singleUserHostRefused(req.headers.get("host"));
  if (badHost) return Response.json({ error: badHost }, { status: 403 });
  await revokeSession(readCookie(req.headers.get("cookie"), SESSION_COOKIE));
  const headers = new Headers({ "set-cookie": clearedSessionCookie(req), "cache-control": "no-store" });
  if ((req.headers.get("accept") ?? "").includes("application/json")) return Response.json({ ok: true }, { headers });
  headers.set("location", "/login");
  return new Response(null, { status: 303, headers });
}
