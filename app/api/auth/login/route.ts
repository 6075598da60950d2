import { checkCredentials, possibleName } from "@/app/server/auth";
import { loginSucceeded, takeLoginAttempt } from "@/app/server/limits";
import { accountError, loggedIn, readCredentials } from "../session";

export const runtime = "nodejs";
export const dynamic = "force-dynamic";

/** POST { name, password } → a session cookie, or 401 without saying which of the two was wrong. */
export async function POST(req: Request): Promise<Response> {
  const creds = await readCredentials(req);
  if (creds instanceof Response) return creds;
  const name = creds.name;
  const password = typeof creds.password === "string" ? creds.password : "";
  // No account has such a name, and no account such a password (sign-up refuses both): no throttle row, no argon2 work.
  if (!possibleName(name) || !password.isWellFormed()) return Response.json({ error: "wrong user name or password" }, { status: 401 });
  const attempt = await takeLoginAttempt(name);
  if (!attempt.ok) return Response.json({ error: `too many failed logins for "${name}"; try again in ${attempt.retryMinutes} min` }, { status: 429 });
  let user: Awaited<ReturnType<typeof checkCredentials>>;
  try {
    user = await checkCredentials(name, password);
  } catch (err) {
    return accountError(err); // the password checks' queue is full (429)
  }
  if (!user) return Response.json({ error: "wrong user name or password" }, { status: 401 });
  await loginSucceeded(name);
  return loggedIn(req, user);
}
