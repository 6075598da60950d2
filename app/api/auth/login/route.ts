import { checkCredentials } from "@/app/server/auth";
import { failedLogins, MAX_FAILED_LOGINS } from "@/app/server/limits";
import { loggedIn, readCredentials } from "../session";

export const runtime = "nodejs";
export const dynamic = "force-dynamic";

/** POST { name, password } → a session cookie, or 401 without saying which of the two was wrong. */
export async function POST(req: Request): Promise<Response> {
  const creds = await readCredentials(req);
  if (creds instanceof Response) return creds;
  const name = String(creds.name ?? "").slice(0, 64);
  const key = name.toLowerCase();
  if (failedLogins.count(key) >= MAX_FAILED_LOGINS) {
    return Response.json({ error: `too many failed logins for "${name}"; try again in ${failedLogins.minutesUntilFree(key)} min` }, { status: 429 });
  }
  const user = await checkCredentials(name, typeof creds.password === "string" ? creds.password : "");
  if (!user) {
    failedLogins.add(key);
    return Response.json({ error: "wrong user name or password" }, { status: 401 });
  }
  failedLogins.clear(key);
  return loggedIn(req, user);
}
